"""OpenID Connect tokens against the loopback CDSE identity service, with a fake clock.

The worker cache (include/collectors/token_store.py) is shared by processes: those tests start
real child processes (``CHILD``), which run on the real clock, so they use an identity server on
the real clock too (``live``) and a parent source without the fake clock.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from include.collectors import token_store
from include.collectors.base import Credentials
from include.collectors.token_store import STORE_DIR_ENV, TokenRecord, open_token_store
from include.collectors.tokens import OidcTokenSource, cached_token_count, clear_token_cache
from include.common.errors import ProviderError, ProviderUnavailableError, RateLimitedError
from tests.helpers.cdse_server import CdseServer
from tests.helpers.http_server import Reply, Request

REPO = Path(__file__).resolve().parents[3]
PASSWORD = "s3cret"  # noqa: S105 - the loopback server's test account
CHILD = """
import json, logging, pathlib, sys, time
import httpx
from include.collectors.base import Credentials
from include.collectors.tokens import OidcTokenSource
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
token_url, password, action, barrier = sys.argv[1:5]
if barrier:  # start together: say ready, wait for the go
    folder = pathlib.Path(barrier)
    (folder / f"ready-{__import__('os').getpid()}").touch()
    deadline = time.monotonic() + 30
    while not (folder / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.002)
with httpx.Client(timeout=10) as client:
    tokens = OidcTokenSource(
        token_url=token_url, client_id="cdse-public",
        credentials=Credentials(username="alice", password=password),
        client=client, catalog="cdse", conn_id="cdse_default",
    )
    token = tokens.access_token()
    if action == "invalidate":
        tokens.invalidate()
        token = tokens.access_token()
print(json.dumps({"token": token}), flush=True)
"""


@pytest.fixture(autouse=True)
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A worker token cache of this test only (the child processes inherit it)."""
    path = tmp_path / "tokens"
    monkeypatch.setenv(STORE_DIR_ENV, str(path))
    return path


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


@pytest.fixture
def live() -> Iterator[CdseServer]:
    """An identity service on the real clock, for tests with child processes."""
    clear_token_cache()
    server = CdseServer(access_ttl_s=600, refresh_ttl_s=3600)
    try:
        yield server
    finally:
        server.close()
        clear_token_cache()


def source(
    server: CdseServer,
    client: httpx.Client,
    clock: FakeClock | None = None,
    password: str = PASSWORD,
) -> OidcTokenSource:
    return OidcTokenSource(
        token_url=server.token_url,
        client_id="cdse-public",
        credentials=Credentials(username="alice", password=password),
        client=client,
        catalog="cdse",
        conn_id="cdse_default",
        clock=clock or time.time,
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
    identity.fail(
        "token", 400, {"error": "invalid_grant", "error_description": "Session not active"}
    )
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
    identity: CdseServer,
    http: httpx.Client,
    clock: FakeClock,
    status: int,
    headers: dict[str, str],
    error: type[Exception],
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
        client=http,
        catalog="cdse",
        conn_id="cdse_default",
        clock=clock,
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


# -- the worker cache: shared by the processes of one machine and user -------------------------


class SlowIdentity(CdseServer):
    """Answers token requests after 0.3 s, so logins of processes started together overlap."""

    def _token(self, request: Request) -> Reply:
        time.sleep(0.3)
        return super()._token(request)


def start_child(
    server: CdseServer,
    *,
    password: str = PASSWORD,
    action: str = "get",
    barrier: Path | None = None,
) -> subprocess.Popen[str]:
    """Start a "task" process asking for a token (as an Airflow task process does)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            server.token_url,
            password,
            action,
            str(barrier) if barrier else "",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )


def finish_child(child: subprocess.Popen[str]) -> tuple[str, str]:
    """Wait for a child; return (its token, its log)."""
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err[-2000:]
    return str(json.loads(out.strip().splitlines()[-1])["token"]), err


def child_token(server: CdseServer, **kwargs: str) -> tuple[str, str]:
    return finish_child(start_child(server, **kwargs))


def stored(server: CdseServer, password: str = PASSWORD) -> TokenRecord | None:
    """The worker cache's token of alice's login at ``server``."""
    store = open_token_store(
        token_url=server.token_url, client_id="cdse-public", username="alice", password=password
    )
    assert store is not None
    return store.read()


def token_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.token"))


def test_token_second_process_reuses_the_stored_token_without_a_grant(
    live: CdseServer, http: httpx.Client
) -> None:
    first = source(live, http).access_token()
    token, logs = child_token(live)
    assert token == first
    assert live.grants == ["password"]
    assert "token.reused catalog=cdse source=worker-cache expires_in_s=" in logs
    assert first not in logs
    assert PASSWORD not in logs


def test_token_near_expiry_in_store_is_refreshed_by_the_next_process(
    http: httpx.Client,
) -> None:
    clear_token_cache()
    with CdseServer(access_ttl_s=30, refresh_ttl_s=3600) as server:  # 30 s: inside the margin
        first = source(server, http).access_token()
        token, logs = child_token(server)
        assert server.grants == ["password", "refresh_token"]
        assert token != first
        assert "token.obtained catalog=cdse grant=refresh_token" in logs
        record = stored(server)
        assert record is not None
        assert record.access_token == token
    clear_token_cache()


def test_token_store_refreshed_token_is_stored_for_the_next_process(
    identity: CdseServer, http: httpx.Client, clock: FakeClock
) -> None:
    first = source(identity, http, clock).access_token()
    clear_token_cache()  # as a new process
    clock.now += 550  # 50 s left: inside the margin
    second = source(identity, http, clock).access_token()
    assert identity.grants == ["password", "refresh_token"]
    record = stored(identity)
    assert record is not None
    assert (record.access_token, record.expires_at) == (second, clock.now + 600)
    assert second != first


def test_token_four_processes_started_together_log_in_once(tmp_path: Path) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    with SlowIdentity() as server:
        children = [start_child(server, barrier=barrier) for _ in range(4)]
        deadline = time.monotonic() + 30
        while len(list(barrier.glob("ready-*"))) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        (barrier / "go").touch()
        tokens = {finish_child(child)[0] for child in children}
        assert server.grants == ["password"]
        assert len(tokens) == 1


def test_token_store_changed_password_does_not_read_the_other_logins_file(
    identity: CdseServer, http: httpx.Client, clock: FakeClock, store_dir: Path
) -> None:
    first = source(identity, http, clock).access_token()
    identity.password = "n3w-secret"  # noqa: S105 - the account's password changed
    clear_token_cache()  # as a new process, with the changed Connection
    second = source(identity, http, clock, password="n3w-secret").access_token()  # noqa: S106
    assert identity.grants == ["password", "password"]
    assert second != first
    assert len(token_files(store_dir)) == 2
    old, new = stored(identity), stored(identity, password="n3w-secret")  # noqa: S106
    assert old is not None and old.access_token == first
    assert new is not None and new.access_token == second


@pytest.mark.parametrize("garbage", [b"", b"not a token", b"gAAAAABn" + b"A" * 120])
def test_token_store_corrupt_file_logs_in_again_without_error(
    identity: CdseServer, http: httpx.Client, clock: FakeClock, store_dir: Path, garbage: bytes
) -> None:
    first = source(identity, http, clock).access_token()
    [path] = token_files(store_dir)
    path.write_bytes(garbage)
    clear_token_cache()  # as a new process
    second = source(identity, http, clock).access_token()
    assert identity.grants == ["password", "password"]
    record = stored(identity)
    assert record is not None and record.access_token == second != first


def test_token_store_file_is_private_and_holds_no_secret_in_clear(
    identity: CdseServer, http: httpx.Client, clock: FakeClock, store_dir: Path
) -> None:
    access = source(identity, http, clock).access_token()
    record = stored(identity)
    assert record is not None and record.refresh_token
    [path] = token_files(store_dir)
    assert stat.S_IMODE(store_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in store_dir.iterdir())
    content = path.read_bytes()
    for secret in (access, record.refresh_token, PASSWORD, "alice"):
        assert secret.encode() not in content
        assert all(secret not in p.name for p in store_dir.iterdir())


@pytest.mark.parametrize("mode", [0o750, 0o705, 0o777], ids=oct)
def test_token_store_refuses_a_dir_others_can_access(
    live: CdseServer,
    http: httpx.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    mode: int,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    monkeypatch.setenv(STORE_DIR_ENV, str(shared))
    with caplog.at_level(logging.WARNING, logger="include.collectors.token_store"):
        first = source(live, http).access_token()
    token, logs = child_token(live)
    assert token != first
    assert live.grants == ["password", "password"]  # each process logged in
    assert list(shared.iterdir()) == []
    assert "token.store_refused" in caplog.text
    assert "accessible by group or others" in caplog.text
    assert "token.store_refused" in logs


def test_token_store_refuses_a_dir_of_another_user(
    identity: CdseServer,
    http: httpx.Client,
    clock: FakeClock,
    store_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store_dir.mkdir(mode=0o700)
    monkeypatch.setattr(token_store.os, "getuid", lambda: store_dir.stat().st_uid + 1)
    with caplog.at_level(logging.WARNING, logger="include.collectors.token_store"):
        source(identity, http, clock).access_token()
    assert list(store_dir.iterdir()) == []
    assert "not by this user" in caplog.text


def test_token_store_off_caches_per_process_only(
    live: CdseServer,
    http: httpx.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(STORE_DIR_ENV, "off")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    tokens = source(live, http)
    with caplog.at_level(logging.INFO, logger="include.collectors"):
        first = tokens.access_token()
        assert tokens.access_token() == first  # the process cache still works
    token, _ = child_token(live)
    assert token != first
    assert live.grants == ["password", "password"]
    assert list(tmp_path.iterdir()) == []
    assert "token.store_refused" not in caplog.text


def test_token_store_default_dir_is_private_under_xdg_runtime_dir_or_tempdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(STORE_DIR_ENV)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run").mkdir(mode=0o700)
    assert token_store.token_cache_dir() == tmp_path / "run" / "collection-builder" / "tokens"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    expected = tmp_path / "tmp" / f"collection-builder-{os.getuid()}" / "tokens"
    assert token_store.token_cache_dir() == expected
    for folder in (expected.parent, expected):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_token_invalidate_removes_the_refused_stored_token(
    identity: CdseServer, http: httpx.Client, clock: FakeClock
) -> None:
    tokens = source(identity, http, clock)
    first = tokens.access_token()
    tokens.invalidate("some-older-token")  # a late 401 to a token no longer held
    assert cached_token_count() == 1
    record = stored(identity)
    assert record is not None and record.access_token == first
    tokens.invalidate()  # 401 to this process's token
    assert cached_token_count() == 0
    assert stored(identity) is None


def test_token_invalidate_keeps_a_newer_token_stored_by_another_process(
    live: CdseServer, http: httpx.Client
) -> None:
    tokens = source(live, http)
    first = tokens.access_token()
    newer, _ = child_token(live, action="invalidate")  # refused `first`, logged in again
    assert newer != first
    tokens.invalidate()  # this process's `first` is refused too, later
    record = stored(live)
    assert record is not None and record.access_token == newer
    assert tokens.access_token() == newer
    assert live.grants == ["password", "password"]
