"""HTTP plumbing shared by catalog drivers and the download engine.

``build_http_client`` makes the one client of a driver (TLS verified by default, a CA bundle path
allowed, pooled, redirects followed, our User-Agent; given an ``OutboundPolicy``, every request
and redirect hop to a host outside it is refused before it is sent); ``error_for_status`` and
``error_for_transport`` map a failed exchange to the error tree of ``include.common.errors``
(status code and body excerpt kept); ``json_object`` reads a JSON object answer; ``redact_url``
strips user info and query strings (signed URLs carry credentials there: never log them), and a
filter on httpx's logger applies it to httpx's own request lines.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from include.common.errors import (
    CollectionBuilderError,
    FieldProblem,
    InvalidInputError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
)

if TYPE_CHECKING:
    from include.collectors.outbound import OutboundPolicy

log = logging.getLogger(__name__)

_BODY_EXCERPT_CHARS = 300


# --------------------------------------------------------------------------------------------
# URLs and logging


def redact_url(url: str | httpx.URL) -> str:
    """Return ``scheme://host[:port]/path`` of ``url``: no user info, query or fragment.

    Signed URLs (S3 presigned, Azure SAS) carry their credentials in the query string.
    """
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "<unparseable url>"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class _RedactUrlFilter(logging.Filter):
    """Rewrites URL arguments of httpx's own request log lines to ``redact_url`` form."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_url(arg) if isinstance(arg, httpx.URL) else arg for arg in record.args
            )
        return True


def _install_httpx_log_filter() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(existing, _RedactUrlFilter) for existing in logger.filters):
        logger.addFilter(_RedactUrlFilter())


_install_httpx_log_filter()


# --------------------------------------------------------------------------------------------
# HTTP client and error mapping


def user_agent() -> str:
    """Return ``collection-builder/<version>``."""
    try:
        return f"collection-builder/{version('collection-builder-airflow')}"
    except PackageNotFoundError:
        return "collection-builder/0+unknown"


def tls_verify_setting(verify_tls: bool | str) -> bool | ssl.SSLContext:
    """Turn the ``verify_tls`` setting (True, False or a CA bundle path) into httpx's ``verify``.

    Raises:
        InvalidInputError: when the CA bundle path cannot be loaded.
    """
    if isinstance(verify_tls, bool):
        return verify_tls
    try:
        return ssl.create_default_context(cafile=verify_tls)
    except (OSError, ssl.SSLError) as err:
        raise InvalidInputError(
            FieldProblem(
                "verify_tls",
                f"cannot load the CA bundle {verify_tls!r} ({err})",
                "give the path of a readable PEM CA bundle, or true to use the system CAs",
            )
        ) from err


def build_http_client(
    *,
    timeout_s: float = 60.0,
    verify_tls: bool | str = True,
    max_connections: int = 4,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    outbound: OutboundPolicy | None = None,
) -> httpx.Client:
    """Return the HTTP client of one driver: TLS verified by default, pooled, redirects followed.

    Args:
        timeout_s: per-request timeout.
        verify_tls: True, False or a CA bundle path.
        max_connections: pool size.
        headers: extra headers.
        auth: httpx auth.
        outbound: the hosts the client may reach; every request and redirect hop to another
            host raises ``ProviderError`` before it is sent. None: no check (tests, tools).

    Returns:
        The client.

    Raises:
        InvalidInputError: when ``verify_tls`` names a CA bundle that cannot be loaded.
    """
    if verify_tls is False:
        log.warning("http.tls_verify_off: TLS certificates will not be checked for this catalog")
    return httpx.Client(
        timeout=httpx.Timeout(timeout_s),
        verify=tls_verify_setting(verify_tls),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        headers={"User-Agent": user_agent(), **dict(headers or {})},
        auth=auth,
        follow_redirects=True,
        event_hooks={"request": [refuse_outside(outbound)]} if outbound is not None else None,
    )


def refuse_outside(policy: OutboundPolicy) -> Callable[[httpx.Request], None]:
    """Return an httpx request hook raising ``ProviderError`` for a host outside ``policy``.

    httpx calls request hooks for every hop of a redirect chain, so a redirect is checked too.
    """

    def check(request: httpx.Request) -> None:
        host = request.url.host
        reason = policy.host_problem(host)
        if reason is None:
            return
        log.warning(
            "http.outbound_refused catalog=%s host=%s reason=%s", policy.catalog, host, reason
        )
        raise ProviderError(
            f"catalog {policy.catalog!r}: refused a request or redirect to "
            f"{redact_url(request.url)}: host {host!r} {reason}; {policy.fix(reason)}"
        )

    return check


def _excerpt(text: str) -> str:
    """Return the error description of a body: JSON ``description``/``detail``, else its start."""
    text = text.strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("description", "detail", "message", "error", "title"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                text = value
                break
    collapsed = " ".join(text.split())
    return collapsed[:_BODY_EXCERPT_CHARS]


def parse_retry_after(value: str | None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait (delta seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def json_object(response: httpx.Response, *, where: str, url: str, hint: str) -> dict[str, Any]:
    """Return the response body as a JSON object.

    Raises:
        ProviderError: when the body is not JSON or not an object; ``hint`` says what to check.
    """
    try:
        data = response.json()
    except ValueError as err:
        raise ProviderError(
            f"{where} {redact_url(url)}: the answer is not JSON; {hint}",
            status_code=response.status_code,
            body=response.text[:2000],
        ) from err
    if not isinstance(data, dict):
        raise ProviderError(
            f"{where} {redact_url(url)}: the answer is not a JSON object; {hint}",
            status_code=response.status_code,
            body=response.text[:2000],
        )
    return data


def error_for_status(
    status: int,
    body: str,
    *,
    url: str | httpx.URL,
    action: str,
    headers: Mapping[str, str] | None = None,
) -> CollectionBuilderError:
    """Return the error for an HTTP error answer (keeps status code and body excerpt).

    5xx -> ``ProviderUnavailableError``; 429 -> ``RateLimitedError`` (``Retry-After`` kept);
    401/403 -> ``ProviderError`` about credentials; any other status -> ``ProviderError``.
    """
    where = f"{action} {redact_url(url)}"
    excerpt = _excerpt(body)
    detail = f": {excerpt}" if excerpt else ""
    if status == 429:
        retry_after = parse_retry_after((headers or {}).get("retry-after"))
        wait_text = f", retry after {retry_after:.0f} s" if retry_after is not None else ""
        return RateLimitedError(
            f"{where}: rate limited (HTTP 429{wait_text}){detail}; it is retried later, "
            "lower max_connections or the download pool size for this catalog if it persists",
            retry_after_s=retry_after,
        )
    if status >= 500:
        return ProviderUnavailableError(
            f"{where}: provider unavailable (HTTP {status}){detail}; it is retried later",
            status_code=status,
        )
    if status in (401, 403):
        fix = "check the credentials of the catalog's Airflow Connection and the account's access"
    elif status == 404:
        fix = "check that the item or file still exists at this catalog, or try another provider"
    else:
        fix = "check the request parameters against the catalog's documentation"
    return ProviderError(
        f"{where}: HTTP {status}{detail}; {fix}", status_code=status, body=body[:2000]
    )


def _is_tls_verify_failure(err: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def error_for_transport(
    err: httpx.RequestError, *, url: str | httpx.URL, action: str
) -> CollectionBuilderError:
    """Return the error for a failed exchange (no usable HTTP answer).

    A TLS verification failure, an unsupported URL scheme or a redirect loop is permanent
    (``ProviderError``); timeouts, refused or dropped connections are transient
    (``ProviderUnavailableError``).
    """
    where = f"{action} {redact_url(url)}"
    if isinstance(err, httpx.UnsupportedProtocol):
        return ProviderError(
            f"{where}: URL scheme is not HTTP(S); use a provider that serves files over HTTPS"
        )
    if not isinstance(err, httpx.TransportError):
        return ProviderError(
            f"{where}: {type(err).__name__} ({err}); check the URL or use another provider"
        )
    if _is_tls_verify_failure(err):
        return ProviderError(
            f"{where}: TLS certificate verification failed ({err}); set verify_tls to the "
            "path of the CA bundle that signs this server's certificate"
        )
    kind = type(err).__name__
    return ProviderUnavailableError(f"{where}: {kind} ({err or 'no detail'}); it is retried later")


def is_loopback_host(host: str | None) -> bool:
    """Return whether ``host`` is ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


__all__ = [
    "build_http_client",
    "error_for_status",
    "error_for_transport",
    "is_loopback_host",
    "json_object",
    "parse_retry_after",
    "redact_url",
    "refuse_outside",
    "tls_verify_setting",
    "user_agent",
]
