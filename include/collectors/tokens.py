"""Bearer tokens from an OpenID Connect token endpoint (Keycloak), reused across a worker's tasks.

CDSE's identity service is a Keycloak realm: ``POST <token_url>`` with the form
``grant_type=password&username=..&password=..&client_id=cdse-public`` answers
``{"access_token", "expires_in", "refresh_token", "refresh_expires_in", ...}``; the same endpoint
with ``grant_type=refresh_token&refresh_token=..`` renews the access token without the password.

``OidcTokenSource.access_token()`` returns a token valid for at least ``margin_s`` more seconds,
looking in two caches keyed by (token URL, client id, username and the password):

1. the process cache (module-global), so every driver of one process shares one login;
2. the worker cache (``token_store``): one encrypted file per login, shared by the task processes
   of one machine and user. Airflow 3 runs each task instance in its own process; through this
   file the next task reuses the token instead of logging in again. Under the login's file lock
   the source rereads the file and uses a stored token that is still valid, else refreshes it
   (refresh grant while the refresh token lives), else logs in (password grant), and stores the
   result, so processes that start together do one login. ``COLLECTION_BUILDER_TOKEN_CACHE_DIR``
   moves the file (``off``: the process cache only).

``invalidate()`` (after a provider answered 401) drops the refused token from both caches; a
newer token another process has stored meanwhile is kept.

Tokens and passwords are never logged and never put in error messages. ``may_receive_token`` is
the one rule for where a bearer token may go (CDSE's OData and STAC drivers both use it).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx

from include.collectors.base import Credentials
from include.collectors.http import (
    error_for_status,
    error_for_transport,
    is_loopback_host,
    redact_url,
)
from include.collectors.settings import (
    CDSE_AUTH_HOSTS,
    CDSE_CLIENT_ID,
    CDSE_CONN_ID,
    CDSE_TOKEN_URL,
)
from include.collectors.token_store import TokenRecord, TokenStore, open_token_store
from include.common.errors import ProviderError

log = logging.getLogger(__name__)

DEFAULT_MARGIN_S = 60.0
"""Refresh an access token this long before it expires."""

_CacheKey = tuple[str, str, str, str]
_CACHE: dict[_CacheKey, TokenRecord] = {}
_CACHE_LOCK = threading.Lock()


def clear_token_cache() -> None:
    """Forget every cached token of this process (tests; a credentials change).

    The worker cache is left alone: a changed password uses another file anyway, and tests point
    ``COLLECTION_BUILDER_TOKEN_CACHE_DIR`` at a temporary directory.
    """
    with _CACHE_LOCK:
        _CACHE.clear()


def cached_token_count() -> int:
    """Return how many logins this process holds tokens for."""
    with _CACHE_LOCK:
        return len(_CACHE)


class OidcTokenSource:
    """Access tokens for one account at one OpenID Connect token endpoint.

    Args:
        token_url: the realm's token endpoint.
        client_id: the public client to log in through (``cdse-public`` at CDSE).
        credentials: username and password (from the catalog's Airflow Connection).
        client: the HTTP client for the token endpoint (no auth hooks on it).
        catalog: the catalog name, for messages.
        conn_id: the Airflow Connection holding the credentials, for messages.
        margin_s: refresh this long before expiry.
        clock: seconds since the epoch (injected by tests).
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        credentials: Credentials | None,
        client: httpx.Client,
        catalog: str,
        conn_id: str,
        margin_s: float = DEFAULT_MARGIN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.credentials = credentials
        self.catalog = catalog
        self.conn_id = conn_id
        self.margin_s = margin_s
        self._client = client
        self._clock = clock

    def _key(self) -> _CacheKey:
        username, password = self._login()
        fingerprint = hashlib.sha256(password.encode("utf-8")).hexdigest()[:16]
        return (self.token_url, self.client_id, username, fingerprint)

    def _login(self) -> tuple[str, str]:
        credentials = self.credentials
        if credentials is None or not credentials.username or not credentials.password:
            raise ProviderError(
                f"{self.catalog}: no login and password to get an access token; create the "
                f"Airflow Connection {self.conn_id!r} with your account's login and password "
                f"(airflow connections add {self.conn_id} --conn-type http --conn-login <user> "
                "--conn-password <password>)"
            )
        return credentials.username, credentials.password

    def access_token(self) -> str:
        """Return an access token valid for at least ``margin_s`` seconds.

        Raises:
            ProviderError: no credentials, or the identity service refused them (401/400).
            ProviderUnavailableError: the identity service answered 5xx or was unreachable.
            RateLimitedError: the identity service answered 429.
        """
        key = self._key()
        with _CACHE_LOCK:
            state = _CACHE.get(key)
            if state is not None and self._is_fresh(state):
                return state.access_token
            store = self._store()
            if store is None:
                fresh = self._renew(state)
            else:
                fresh = self._from_store(store, state)
            _CACHE[key] = fresh
            return fresh.access_token

    def invalidate(self, refused: str | None = None) -> None:
        """Drop a refused access token (after the provider answered 401 to it).

        Args:
            refused: the token the provider refused; by default this process's cached one. The
                worker cache loses it only if it still holds that token: another process may
                have stored a newer one, which stays.
        """
        key = self._key()
        with _CACHE_LOCK:
            state = _CACHE.get(key)
            if refused is not None:
                token = refused
            elif state is not None:
                token = state.access_token
            else:
                return  # no token known to this process: nothing to compare the store with
            if state is not None and state.access_token == token:
                del _CACHE[key]
            store = self._store()
            if store is not None and store.discard(token):
                log.info("token.invalidated catalog=%s source=worker-cache", self.catalog)

    def _is_fresh(self, state: TokenRecord) -> bool:
        return state.expires_at - self._clock() > self.margin_s

    def _store(self) -> TokenStore | None:
        username, password = self._login()
        return open_token_store(
            token_url=self.token_url,
            client_id=self.client_id,
            username=username,
            password=password,
        )

    def _from_store(self, store: TokenStore, state: TokenRecord | None) -> TokenRecord:
        """Reuse, refresh or replace the worker's stored token, holding the login's lock."""
        with store.locked():
            stored = store.read()
            if stored is not None and self._is_fresh(stored):
                log.info(
                    "token.reused catalog=%s source=worker-cache expires_in_s=%.0f",
                    self.catalog,
                    stored.expires_at - self._clock(),
                )
                return stored
            fresh = self._renew(stored, state)
            store.write(fresh)
            return fresh

    def _renew(self, *candidates: TokenRecord | None) -> TokenRecord:
        """Refresh with the first candidate whose refresh token lives, else log in again."""
        now = self._clock()
        for state in candidates:
            if state is not None and state.refresh_token and state.refresh_expires_at - now > 5:
                renewed = self._refresh(state.refresh_token)
                return renewed if renewed is not None else self._password_grant()
        return self._password_grant()

    def _password_grant(self) -> TokenRecord:
        username, password = self._login()
        state = self._post(
            {
                "grant_type": "password",
                "username": username,
                "password": password,
                "client_id": self.client_id,
            },
            grant="password",
        )
        if state is None:  # pragma: no cover - _post only returns None for refresh grants
            raise ProviderError(f"{self.catalog}: login failed")
        return state

    def _refresh(self, refresh_token: str) -> TokenRecord | None:
        return self._post(
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": self.client_id,
            },
            grant="refresh_token",
        )

    def _post(self, form: dict[str, str], *, grant: str) -> TokenRecord | None:
        """Ask the token endpoint; None when a refresh grant is refused (log in again).

        Raises:
            ProviderError, ProviderUnavailableError, RateLimitedError: as ``access_token``.
        """
        action = f"{self.catalog} token"
        started = self._clock()
        try:
            response = self._client.post(
                self.token_url, data=form, headers={"Accept": "application/json"}
            )
        except httpx.RequestError as err:
            raise error_for_transport(err, url=self.token_url, action=action) from err
        if response.status_code in (400, 401) and grant == "refresh_token":
            log.info(
                "token.refresh_refused catalog=%s status=%d; logging in again",
                self.catalog,
                response.status_code,
            )
            return None
        if response.status_code in (400, 401, 403):
            reason = _oidc_error(response)
            raise ProviderError(
                f"{action} {redact_url(self.token_url)}: the identity service refused the login "
                f"(HTTP {response.status_code}{': ' + reason if reason else ''}); check the login "
                f"and password of Airflow Connection {self.conn_id!r}",
                status_code=response.status_code,
                body=reason,
            )
        if response.status_code >= 400:
            raise error_for_status(
                response.status_code,
                response.text,
                url=self.token_url,
                action=action,
                headers=response.headers,
            )
        state = self._parse(response, started)
        log.info(
            "token.obtained catalog=%s grant=%s user=%s expires_in_s=%.0f",
            self.catalog,
            grant,
            form.get("username") or (self.credentials.username if self.credentials else "-"),
            state.expires_at - started,
        )
        return state

    def _parse(self, response: httpx.Response, started: float) -> TokenRecord:
        try:
            parsed: Any = response.json()
        except ValueError:
            parsed = None
        data: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise ProviderError(
                f"{self.catalog} token {redact_url(self.token_url)}: the answer holds no "
                "access_token; check that token_url is the realm's OpenID Connect token endpoint",
                status_code=response.status_code,
            )
        expires_in = _seconds(data.get("expires_in"), default=300.0)
        refresh = data.get("refresh_token")
        refresh_in = _seconds(data.get("refresh_expires_in"), default=0.0)
        return TokenRecord(
            access_token=token,
            expires_at=started + expires_in,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            refresh_expires_at=started + refresh_in,
        )


def may_receive_token(
    url: httpx.URL | str, *, own_urls: Iterable[str], auth_hosts: Iterable[str]
) -> bool:
    """Return whether a request to ``url`` may carry a bearer token.

    Allowed: the hosts of ``own_urls`` (the catalog's and the token endpoint's) and the hosts in
    ``auth_hosts`` or their subdomains, over HTTPS; plain HTTP only to loopback (tests, tunnels).
    Anything else (another host, a look-alike such as ``dataspace.copernicus.eu.evil.net``, a
    loopback name that is not one of those hosts) gets no token.
    """
    parts = httpx.URL(str(url))
    host = (parts.host or "").lower()
    if not host or (parts.scheme != "https" and not is_loopback_host(host)):
        return False
    own = {(urlsplit(own_url).hostname or "").lower() for own_url in own_urls}
    if host in own:
        return True
    suffixes = [str(suffix).lower().lstrip(".") for suffix in auth_hosts]
    return any(host == suffix or host.endswith("." + suffix) for suffix in suffixes if suffix)


def _seconds(value: object, *, default: float) -> float:
    if isinstance(value, bool):
        return default
    if isinstance(value, int | float) and value >= 0:
        return float(value)
    return default


def _oidc_error(response: httpx.Response) -> str:
    """Return ``error: error_description`` of an OAuth error answer (never holds secrets)."""
    try:
        data = response.json()
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    parts = [str(data[k]) for k in ("error", "error_description") if data.get(k)]
    return ": ".join(parts)[:300]


__all__ = [
    "CDSE_AUTH_HOSTS",
    "CDSE_CLIENT_ID",
    "CDSE_CONN_ID",
    "CDSE_TOKEN_URL",
    "OidcTokenSource",
    "cached_token_count",
    "clear_token_cache",
    "may_receive_token",
]
