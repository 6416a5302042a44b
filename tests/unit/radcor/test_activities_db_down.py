"""An unreachable or restarting activities database: a retryable error naming it and the fix.

The restart test puts a loopback TCP proxy between the store and PostgreSQL and cuts it, so the
connections die as in a server restart; it needs PostgreSQL (``make test`` sets
``COLLECTION_BUILDER_DB_URL``).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import suppress

import pytest
import sqlalchemy as sa

from include.common.errors import TransientError
from include.radcor.activities import (
    ActivityKey,
    ActivityState,
    ActivityStore,
    DatabaseUnavailableError,
    database_location,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TcpProxy:
    """Forward 127.0.0.1:<port> to ``target``; ``stop()`` closes it and every connection."""

    def __init__(self, target: tuple[str, int], port: int | None = None) -> None:
        self.target = target
        self.port = port or _free_port()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._track(client)
            self._track(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()
        self._thread.join(timeout=5)


def _key(run_id: str) -> ActivityKey:
    return ActivityKey(
        "radcor",
        run_id,
        "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429",
        "0",
        "download",
        "S2_L1C-1",
    )


def test_activity_store_unreachable_database_raises_transient_error_naming_it() -> None:
    port = _free_port()  # nothing listens there
    with pytest.raises(DatabaseUnavailableError) as caught:
        ActivityStore(f"postgresql+psycopg2://cb:s3cret@127.0.0.1:{port}/cb_missing")
    message = str(caught.value)
    assert isinstance(caught.value, TransientError)  # the task is retried by Airflow
    assert message.startswith(f"database 127.0.0.1:{port}/cb_missing unreachable")
    assert "COLLECTION_BUILDER_DB_URL" in message and "PostgreSQL runs" in message
    assert "s3cret" not in message


def test_database_location_never_shows_credentials() -> None:
    assert database_location("postgresql+psycopg2://u:pw@db.example:6543/acts") == (
        "db.example:6543/acts"
    )
    assert database_location("sqlite:////tmp/a.sqlite") == "/tmp/a.sqlite"


@pytest.fixture
def proxied_url() -> Iterator[tuple[str, TcpProxy]]:
    url = os.environ.get("COLLECTION_BUILDER_DB_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("COLLECTION_BUILDER_DB_URL is not PostgreSQL (make test sets it)")
    real = sa.engine.make_url(url)
    proxy = TcpProxy((real.host or "127.0.0.1", real.port or 5432))
    try:
        yield real.set(host="127.0.0.1", port=proxy.port).render_as_string(False), proxy
    finally:
        proxy.stop()


def test_activity_store_database_restart_fails_retryably_then_recovers(
    proxied_url: tuple[str, TcpProxy],
) -> None:
    url, proxy = proxied_url
    store = ActivityStore(url)
    run_id = f"db-restart-{uuid.uuid4()}"
    store.record(_key(run_id), ActivityState.RUNNING)
    proxy.stop()  # the server "restarts": every connection drops, nothing listens
    with pytest.raises(DatabaseUnavailableError, match=r"unreachable"):
        store.record(_key(run_id), ActivityState.SUCCESS)
    restarted = TcpProxy(proxy.target, proxy.port)
    try:
        store.record(_key(run_id), ActivityState.SUCCESS)  # the pool reconnects by itself
        (activity,) = store.for_run(run_id)
        assert activity.status == ActivityState.SUCCESS
    finally:
        restarted.stop()
