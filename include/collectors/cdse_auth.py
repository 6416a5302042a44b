"""The CDSE account of a driver: its bearer token and the requests that carry it.

Both CDSE modes (``cdse``, the OData API, and ``cdse_stac``, the STAC API) download the same
product zips from ``download.dataspace.copernicus.eu`` with a token from CDSE's identity service,
logged in with the Airflow Connection's login and password (``tokens.OidcTokenSource``, one login
per worker). ``CdseAuth`` is that one component:

- ``client`` adds ``Authorization: Bearer`` on every hop (redirects included) to CDSE hosts only
  (``may_receive_token``: the catalog's and the token endpoint's hosts and ``auth_hosts`` over
  HTTPS, plain HTTP on loopback) and strips it elsewhere;
- ``download`` and ``post`` log in again once when CDSE answers 401, and turn a final 401/403 into
  a ``ProviderError`` naming the Connection to check.

The Connection's password only ever goes to the token endpoint.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from include.collectors.base import Credentials, DownloadedFile
from include.collectors.download import download_file
from include.collectors.http import error_for_status, error_for_transport
from include.collectors.settings import CdseAuthSettings
from include.collectors.tokens import OidcTokenSource, may_receive_token
from include.common.errors import ProviderError
from include.common.progress import ProgressFn

log = logging.getLogger(__name__)


class CdseAuth:
    """A CDSE account's token source and the HTTP client that sends its token.

    Args:
        settings: the driver's settings (token endpoint, client id, Connection, allowed hosts).
        credentials: login and password from the Airflow Connection, if any.
        base_url: the catalog's url (its host may receive the token).
    """

    def __init__(
        self, settings: CdseAuthSettings, credentials: Credentials | None, *, base_url: str
    ) -> None:
        self.settings = settings
        self.credentials = credentials
        self.base_url = base_url
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._token_client: httpx.Client | None = None
        self._tokens: OidcTokenSource | None = None

    @property
    def client(self) -> httpx.Client:
        """The client for downloads and orders: adds the token for CDSE hosts on every hop."""
        with self._lock:
            if self._client is None:
                client = self.settings.http_client()
                client.event_hooks = {"request": [self._authorize], "response": []}
                self._client = client
            return self._client

    @property
    def tokens(self) -> OidcTokenSource:
        """The account's token source (cached in the process and the worker's token store)."""
        with self._lock:
            if self._token_client is None:
                self._token_client = self.settings.http_client()
            if self._tokens is None:
                self._tokens = OidcTokenSource(
                    token_url=self.settings.token_url,
                    client_id=self.settings.client_id,
                    credentials=self.credentials,
                    client=self._token_client,
                    catalog=self.settings.catalog,
                    conn_id=self.settings.conn_id,
                )
            return self._tokens

    def close(self) -> None:
        """Close the HTTP clients (idempotent)."""
        with self._lock:
            for client in (self._client, self._token_client):
                if client is not None:
                    client.close()
            self._client = self._token_client = None
            self._tokens = None

    def may_receive_token(self, url: httpx.URL | str) -> bool:
        """Return whether a request to ``url`` may carry the bearer token.

        Only CDSE hosts (the catalog's and the token endpoint's hosts, ``auth_hosts`` and their
        subdomains) over HTTPS; plain HTTP only to loopback.
        """
        return may_receive_token(
            url,
            own_urls=(self.base_url, self.settings.token_url),
            auth_hosts=self.settings.auth_hosts,
        )

    def _authorize(self, request: httpx.Request) -> None:
        if self.may_receive_token(request.url):
            request.headers["Authorization"] = "Bearer " + self.tokens.access_token()
        elif "Authorization" in request.headers:
            del request.headers["Authorization"]

    def credentials_error(self, err: ProviderError, action: str) -> ProviderError:
        """Return ``err`` (a 401/403) with the fix: check the account's Connection."""
        return ProviderError(
            f"{err}; CDSE refused the token for {action}: check the login and password of "
            f"Airflow Connection {self.settings.conn_id!r} and that the account may download",
            status_code=err.status_code,
            body=err.body,
        )

    def _log_in_again(self, action: str) -> None:
        log.info("%s.token_refused catalog=%s; logging in again", action, self.settings.catalog)
        self.tokens.invalidate()

    def post(self, url: str, *, action: str) -> httpx.Response:
        """POST an empty JSON object with the token; a 401 logs in again once.

        Returns:
            The answer (any status but a first 401).

        Raises:
            ProviderError: no credentials; a permanent transport failure.
            ProviderUnavailableError: a transient transport failure.
        """
        self.tokens.access_token()  # fail fast without credentials
        where = f"{self.settings.catalog} {action}"
        for attempt in (1, 2):
            try:
                response = self.client.post(url, json={}, headers={"Accept": "application/json"})
            except httpx.RequestError as err:
                raise error_for_transport(err, url=url, action=where) from err
            if response.status_code != 401 or attempt == 2:
                break
            self._log_in_again(action)
        return response

    def raise_for_status(self, response: httpx.Response, *, url: str, action: str) -> None:
        """Raise the mapped error of an error answer (401/403: check the Connection).

        Raises:
            ProviderError, ProviderUnavailableError, RateLimitedError: for a status >= 400.
        """
        if response.status_code < 400:
            return
        error = error_for_status(
            response.status_code,
            response.text,
            url=url,
            action=f"{self.settings.catalog} {action}",
            headers=response.headers,
        )
        if isinstance(error, ProviderError) and error.status_code in (401, 403):
            raise self.credentials_error(error, action)
        raise error

    def download(
        self,
        href: str,
        target: Path,
        *,
        expected_size: int | None,
        checksum: str | None,
        progress: ProgressFn | None,
        force: bool,
        sleep: Callable[[float], None],
    ) -> DownloadedFile:
        """Download ``href`` to ``target`` with the token (``download_file``), verified.

        A 401 logs in again once; the in-task retries are the settings' ``max_attempts`` from
        ``retry_base_delay_s``, waiting through ``sleep``.

        Raises:
            ProviderError: no credentials, 401/403 (check the Connection), 404.
            ChecksumMismatchError, ProviderUnavailableError, RateLimitedError, DiskFullError:
                as ``download_file``.
        """
        self.tokens.access_token()  # fail fast without credentials
        for attempt in (1, 2):
            try:
                return download_file(
                    self.client,
                    href,
                    target,
                    expected_size=expected_size,
                    checksum=checksum,
                    progress=progress,
                    force=force,
                    max_attempts=self.settings.max_attempts,
                    base_delay_s=self.settings.retry_base_delay_s,
                    sleep=sleep,
                )
            except ProviderError as err:
                if err.status_code == 401 and attempt == 1:
                    self._log_in_again("download")
                    continue
                if err.status_code in (401, 403):
                    raise self.credentials_error(err, "download") from err
                raise
        raise ProviderError(f"{target.name}: download did not finish")  # pragma: no cover


class CdseAccountMixin:
    """A CDSE driver's account names, read from its ``auth`` (both CDSE modes mix this in)."""

    auth: CdseAuth

    @property
    def auth_client(self) -> httpx.Client:
        """The client for downloads and orders: adds the token for CDSE hosts on every hop."""
        return self.auth.client

    @property
    def tokens(self) -> OidcTokenSource:
        """The account's token source (cached in the process and the worker's token store)."""
        return self.auth.tokens

    @property
    def conn_id(self) -> str:
        """The Airflow Connection holding the account (named in messages)."""
        return self.auth.settings.conn_id

    @property
    def token_url(self) -> str:
        """The identity service's token endpoint."""
        return self.auth.settings.token_url

    @property
    def client_id(self) -> str:
        """The public client the account logs in through."""
        return self.auth.settings.client_id

    @property
    def auth_hosts(self) -> tuple[str, ...]:
        """Host suffixes that may receive the token besides the catalog's and the endpoint's."""
        return self.auth.settings.auth_hosts

    def may_receive_token(self, url: httpx.URL | str) -> bool:
        """Return whether a request to ``url`` may carry the bearer token (``CdseAuth``)."""
        return self.auth.may_receive_token(url)


__all__ = ["CdseAccountMixin", "CdseAuth"]
