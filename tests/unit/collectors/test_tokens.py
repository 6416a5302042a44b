"""OpenID Connect tokens against the loopback CDSE identity service, with a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from include.collectors.base import Credentials
from include.collectors.tokens import OidcTokenSource, cached_token_count, clear_token_cache
from include.common.errors import ProviderError, ProviderUnavailableError, RateLimitedError
from tests.helpers.cdse_server import CdseServer

PASSWORD = "s3cret"  # noqa: S105 - the loopback server's test account


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def identity(clock: FakeClock) -> Iterator[CdseServer]:
    clear_token_cache()
    server = CdseServer(access_ttl_s=600, refresh_ttl_s=3600, clock=clock)
    try:
        yield server
    finally:
        server.close()
        clear_token_cache()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


def source(server: CdseServer, client: httpx.Client, clock: FakeClock,
           password: str = PASSWORD) -> OidcTokenSource:
    return OidcTokenSource(
        token_url=server.token_url,
        client_id="cdse-public",
        credentials=Credentials(username="alice", password=password),
        client=client,
        catalog="cdse",
        conn_id="cdse_default",
        clock=clock,
    )


def test_token_source_reuses_token_until_margin_then_refreshes(
    identity: CdseServer, http: httpx.Client, clock: FakeClock
) -> None:
    tokens = source(identity, http, clock)
    first = tokens.access_token()
    clock.now += 500  # 100 s left: more than the 60 s margin
    assert tokens.access_token() == first
    clock.now += 50  # 50 s left: refresh before expiry
    second = tokens.access_token()
    assert second != first
    assert identity.grants == ["password", "refresh_token"]


def test_token_cache_is_shared_by_sources_of_the_same_login(
    identity: CdseServer, http: httpx.Client, clock: FakeClock
) -> None:
    first = source(identity, http, clock).access_token()
    assert source(identity, http, clock).access_token() == first
    assert identity.grants == ["password"]
    assert cached_token_count() == 1


def test_token_cache_keeps_a_different_password_apart(
    identity: CdseServer, http: httpx.Client, clock: FakeClock
) -> None:
    source(identity, http, clock).access_token()
    with pytest.raises(ProviderError):
        source(identity, http, clock, password="wrong").access_token()  # noqa: S106
    assert identity.grants == ["password", "password"]


def test_token_expired_refresh_token_logs_in_with_password_again(
    identity: CdseServer, http: httpx.Client, clock: FakeClock
) -> None:
    tokens = source(identity, http, clock)
    tokens.access_token()
    clock.now += 7200  # access and refresh tokens both expired
    tokens.access_token()
    assert identity.grants == ["password", "password"]


def test_token_refresh_refused_by_server_falls_back_to_password(
    identity: CdseServer, http: httpx.Client, clock: FakeClock
) -> None:
    tokens = source(identity, http, clock)
    tokens.access_token()
    clock.now += 580
    identity.fail("token", 400, {"error": "invalid_grant", "error_description": "Session not "
                                 "active"})
    tokens.access_token()
    assert identity.grants == ["password"] + ["password"]  # the refused refresh is not recorded
    assert len(identity.requests_to("/auth/realms/CDSE/protocol/openid-connect/token")) == 3


def test_token_wrong_password_raises_provider_error_without_secrets(
    identity: CdseServer, http: httpx.Client, clock: FakeClock
) -> None:
    with pytest.raises(ProviderError) as caught:
        source(identity, http, clock, password="hunter2").access_token()  # noqa: S106
    message = str(caught.value)
    assert "invalid_grant: Invalid user credentials" in message
    assert "Airflow Connection 'cdse_default'" in message
    assert "hunter2" not in message
    assert caught.value.status_code == 401


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [(503, {}, ProviderUnavailableError), (429, {"Retry-After": "30"}, RateLimitedError)],
)
def test_token_endpoint_transient_failures_map_to_transient_errors(
    identity: CdseServer, http: httpx.Client, clock: FakeClock,
    status: int, headers: dict[str, str], error: type[Exception],
) -> None:
    identity.fail("token", status, b"busy", headers)
    with pytest.raises(error):
        source(identity, http, clock).access_token()


def test_token_answer_without_access_token_raises_provider_error(
    identity: CdseServer, http: httpx.Client, clock: FakeClock
) -> None:
    identity.fail("token", 200, {"token_type": "Bearer"})
    with pytest.raises(ProviderError, match="no access_token"):
        source(identity, http, clock).access_token()


def test_token_without_credentials_raises_provider_error_naming_connection(
    http: httpx.Client, clock: FakeClock
) -> None:
    tokens = OidcTokenSource(
        token_url="http://127.0.0.1:9/token",  # noqa: S106 - a URL
        client_id="cdse-public",
        credentials=None,
        client=http, catalog="cdse", conn_id="cdse_default", clock=clock,
    )
    with pytest.raises(ProviderError, match="airflow connections add cdse_default"):
        tokens.access_token()


def test_token_invalidate_forces_a_new_login(
    identity: CdseServer, http: httpx.Client, clock: FakeClock
) -> None:
    tokens = source(identity, http, clock)
    first = tokens.access_token()
    tokens.invalidate()
    assert tokens.access_token() != first
    assert identity.grants == ["password", "password"]
