"""Cross-process download slots per provider (DESIGN 3: CDSE allows 4 connections per account).

Airflow ignores a pool given per mapped task instance (DESIGN 3.1), and one mapped ``download``
task serves every provider, so the per-provider limit is ours: ``ProviderLimiter.slot(provider,
max_slots)`` blocks until one of the provider's ``max_slots`` slots is free and holds it for the
duration of the ``with`` block, across every process and machine that shares the backend:

- PostgreSQL (``COLLECTION_BUILDER_DB_URL`` is a ``postgresql`` URL): slot ``i`` of provider ``p``
  is the session advisory lock ``pg_try_advisory_lock(hash(p, i))``, held by a dedicated
  connection (autocommit, so no transaction stays open) until the block ends. A killed process
  loses its session and with it the lock.
- Otherwise: ``fcntl`` locks on ``DATA_DIR/locks/download-<provider>.<i>.lock``, released by the
  kernel when the process dies. Good for one machine (LocalExecutor, tests), not for several.

A waiter logs once (``limiter.waiting``) and polls every ``poll_interval_s``; after ``timeout_s``
it raises ``SlotWaitTimeoutError`` (a ``TransientError``: Airflow retries the task later).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from include.common.config import data_dir
from include.common.errors import TransientError

log = logging.getLogger(__name__)

DB_URL_ENV = "COLLECTION_BUILDER_DB_URL"
DEFAULT_POLL_INTERVAL_S = 1.0
DEFAULT_TIMEOUT_S = 3600.0
_SAFE_NAME = re.compile(r"[^a-z0-9_.-]+")


class SlotWaitTimeoutError(TransientError):
    """No download slot of a provider became free in time; the task is retried later."""

    def __init__(self, provider: str, max_slots: int, waited_s: float) -> None:
        self.provider = provider
        self.max_slots = max_slots
        self.waited_s = waited_s
        super().__init__(
            f"download slots of provider {provider!r}: all {max_slots} busy for "
            f"{waited_s:.0f} s; it is retried later (raise max_connections in "
            "config/catalogs.yaml only if the provider allows it)"
        )


def advisory_key(provider: str, slot: int) -> int:
    """Return the signed 64-bit PostgreSQL advisory lock key of ``provider``'s slot ``slot``."""
    digest = hashlib.blake2b(
        f"collection-builder/download-slot/{provider.lower()}/{slot}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


class _Slots(Protocol):
    """A backend holding slots: try one without waiting, release it."""

    def try_acquire(self, provider: str, slot: int) -> Any | None:
        """Return a handle when slot ``slot`` was free (and is now held), else None."""

    def release(self, handle: Any) -> None:
        """Free a slot taken by ``try_acquire``."""

    def close(self) -> None:
        """Release what the backend holds for itself (connections)."""


class FileSlots:
    """Slots as ``fcntl`` locks on files under ``lock_dir`` (one machine)."""

    def __init__(self, lock_dir: Path) -> None:
        self.lock_dir = Path(lock_dir)

    def _path(self, provider: str, slot: int) -> Path:
        name = _SAFE_NAME.sub("_", provider.lower()) or "provider"
        return self.lock_dir / f"download-{name}.{slot}.lock"

    def try_acquire(self, provider: str, slot: int) -> int | None:
        """Return the open descriptor holding the slot's lock, or None when it is taken."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(provider, slot), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def release(self, handle: Any) -> None:
        """Unlock and close (the file stays: removing it would race with other waiters)."""
        fd = int(handle)
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Nothing to close."""
        return None


class PostgresSlots:
    """Slots as session advisory locks in PostgreSQL (every machine sharing the database).

    One connection (autocommit) is opened per ``slot()`` block, used to try the slots while
    waiting and to hold the lock until the block ends.
    """

    def __init__(self, db_url: str) -> None:
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        self._sa = sa
        self._engine = sa.create_engine(db_url, poolclass=NullPool, future=True)
        self._connection: Any | None = None

    def _conn(self) -> Any:
        if self._connection is None:
            self._connection = self._engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            )
        return self._connection

    def try_acquire(self, provider: str, slot: int) -> int | None:
        """Return the advisory key when ``pg_try_advisory_lock`` took it, else None."""
        key = advisory_key(provider, slot)
        taken = (
            self._conn()
            .execute(self._sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
            .scalar()
        )
        return key if taken else None

    def release(self, handle: Any) -> None:
        """``pg_advisory_unlock`` the key, then close the session (which would release it too)."""
        try:
            if self._connection is not None:
                self._connection.execute(
                    self._sa.text("SELECT pg_advisory_unlock(:key)"), {"key": int(handle)}
                )
        finally:
            self.close()

    def close(self) -> None:
        """Close the session (releasing any lock it still holds)."""
        if self._connection is not None:
            with contextlib.suppress(Exception):  # the session may already be gone
                self._connection.close()
            self._connection = None


class ProviderLimiter:
    """At most ``max_slots`` concurrent holders per provider, across processes.

    Args:
        db_url: a PostgreSQL URL for advisory locks; None (or another database) uses files.
        lock_dir: the folder of lock files (default ``DATA_DIR/locks``).
        poll_interval_s: how often a waiter tries again (with +-25 % jitter).
        timeout_s: how long to wait before ``SlotWaitTimeoutError``.
        sleep: the wait function (injected by tests).
        clock: monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        *,
        db_url: str | None = None,
        lock_dir: Path | None = None,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db_url = db_url if db_url and db_url.startswith("postgresql") else None
        self.lock_dir = Path(lock_dir) if lock_dir is not None else data_dir() / "locks"
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self._sleep = sleep
        self._clock = clock

    @property
    def backend_name(self) -> str:
        """``postgres`` or ``files``."""
        return "postgres" if self.db_url else "files"

    @classmethod
    def from_environment(cls) -> ProviderLimiter:
        """Return the limiter for ``$COLLECTION_BUILDER_DB_URL`` (PostgreSQL) or ``DATA_DIR``."""
        return cls(db_url=os.environ.get(DB_URL_ENV))

    def _backend(self) -> _Slots:
        if self.db_url:
            return PostgresSlots(self.db_url)
        return FileSlots(self.lock_dir)

    @contextlib.contextmanager
    def slot(self, provider: str, max_slots: int) -> Iterator[int]:
        """Hold one of ``provider``'s ``max_slots`` slots for the ``with`` block; yield its index.

        Raises:
            SlotWaitTimeoutError: when no slot became free within ``timeout_s``.
            ValueError: when ``max_slots`` is below 1.
        """
        if max_slots < 1:
            raise ValueError(f"max_slots must be at least 1, not {max_slots}")
        backend = self._backend()
        started = self._clock()
        logged = False
        order = list(range(max_slots))
        try:
            while True:
                random.shuffle(order)  # spread holders over the slots
                for index in order:
                    handle = backend.try_acquire(provider, index)
                    if handle is None:
                        continue
                    waited_s = self._clock() - started
                    if logged:
                        log.info(
                            "limiter.acquired provider=%s slot=%d/%d waited_s=%.1f",
                            provider,
                            index + 1,
                            max_slots,
                            waited_s,
                        )
                    try:
                        yield index
                    finally:
                        backend.release(handle)
                    return
                waited_s = self._clock() - started
                if waited_s >= self.timeout_s:
                    raise SlotWaitTimeoutError(provider, max_slots, waited_s)
                if not logged:
                    log.info(
                        "limiter.waiting provider=%s slots=%d backend=%s: all busy, polling "
                        "every %.1f s",
                        provider,
                        max_slots,
                        self.backend_name,
                        self.poll_interval_s,
                    )
                    logged = True
                self._sleep(self.poll_interval_s * (0.75 + random.random() / 2))  # noqa: S311
        finally:
            backend.close()


__all__ = [
    "FileSlots",
    "PostgresSlots",
    "ProviderLimiter",
    "SlotWaitTimeoutError",
    "advisory_key",
]
