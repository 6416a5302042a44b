"""Per-provider download slots across real processes: lock files, and PostgreSQL advisory locks.

The PostgreSQL cases run when ``COLLECTION_BUILDER_DB_URL`` is a PostgreSQL URL (``make test``
sets it) and are skipped otherwise.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.collectors.limiter import ProviderLimiter, SlotWaitTimeoutError, advisory_key

HOLD_S = 0.15
WORKERS = 5
SLOTS = 2


def _pg_url() -> str:
    url = os.environ.get("COLLECTION_BUILDER_DB_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("COLLECTION_BUILDER_DB_URL is not PostgreSQL (make test sets it)")
    return url


@pytest.fixture(params=["files", "postgres"])
def limiter_args(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "postgres":
        return {"db_url": _pg_url(), "lock_dir": tmp_path / "unused"}
    return {"db_url": None, "lock_dir": tmp_path / "locks"}


@pytest.fixture
def provider() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"  # fresh keys: runs never see each other's locks


def _hold(args: dict[str, Any], provider: str, hold_s: float, out: Any) -> None:
    limiter = ProviderLimiter(**args, poll_interval_s=0.01, timeout_s=30)
    with limiter.slot(provider, SLOTS) as slot:
        started = time.monotonic()
        time.sleep(hold_s)
        out.put((slot, started, time.monotonic()))


def _hold_forever(args: dict[str, Any], provider: str, ready: Any) -> None:
    limiter = ProviderLimiter(**args, poll_interval_s=0.01, timeout_s=30)
    with limiter.slot(provider, 1):
        ready.set()
        time.sleep(60)


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


@pytest.fixture
def fork() -> Any:
    return multiprocessing.get_context("fork")


def test_limiter_processes_never_exceed_the_slots(
    limiter_args: dict[str, Any], provider: str, fork: Any
) -> None:
    out = fork.Queue()
    workers = [
        fork.Process(target=_hold, args=(limiter_args, provider, HOLD_S, out))
        for _ in range(WORKERS)
    ]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    results = [out.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
        assert worker.exitcode == 0
    elapsed_s = time.monotonic() - started
    intervals = [(begin, end) for _, begin, end in results]
    assert _max_overlap(intervals) == SLOTS
    assert {slot for slot, _, _ in results} <= set(range(SLOTS))
    assert elapsed_s >= HOLD_S * ((WORKERS + SLOTS - 1) // SLOTS) * 0.9


def test_limiter_killed_holder_frees_its_slot(
    limiter_args: dict[str, Any], provider: str, fork: Any
) -> None:
    ready = fork.Event()
    holder = fork.Process(target=_hold_forever, args=(limiter_args, provider, ready))
    holder.start()
    try:
        assert ready.wait(timeout=20)
        busy = ProviderLimiter(**limiter_args, poll_interval_s=0.01, timeout_s=0.1)
        with pytest.raises(SlotWaitTimeoutError):
            with busy.slot(provider, 1):
                pass
        os.kill(holder.pid or 0, signal.SIGKILL)
        holder.join(timeout=10)
        free = ProviderLimiter(**limiter_args, poll_interval_s=0.02, timeout_s=10)
        with free.slot(provider, 1) as slot:
            assert slot == 0
    finally:
        if holder.is_alive():
            holder.kill()
            holder.join(timeout=10)


def test_limiter_waiting_logs_once_then_acquires(
    limiter_args: dict[str, Any], provider: str, caplog: pytest.LogCaptureFixture
) -> None:
    holder = ProviderLimiter(**limiter_args)
    sleeps: list[float] = []
    slots = holder.slot(provider, 1)
    slots.__enter__()

    def release_after_three(delay: float) -> None:
        sleeps.append(delay)
        if len(sleeps) == 3:
            slots.__exit__(None, None, None)

    waiter = ProviderLimiter(**limiter_args, poll_interval_s=0.5, sleep=release_after_three)
    with caplog.at_level(logging.INFO, logger="include.collectors.limiter"):
        with waiter.slot(provider, 1) as slot:
            assert slot == 0
    assert len(sleeps) == 3
    assert all(0.375 <= s <= 0.625 for s in sleeps)
    assert caplog.text.count("limiter.waiting") == 1
    assert "limiter.acquired" in caplog.text


def test_limiter_slots_are_per_provider(limiter_args: dict[str, Any], provider: str) -> None:
    limiter = ProviderLimiter(**limiter_args, timeout_s=0.05, poll_interval_s=0.01)
    with limiter.slot(provider, 1):
        with limiter.slot(provider + "-other", 1) as slot:
            assert slot == 0


def test_limiter_timeout_raises_transient_error_naming_provider(
    limiter_args: dict[str, Any], provider: str
) -> None:
    limiter = ProviderLimiter(**limiter_args, timeout_s=0.05, poll_interval_s=0.01)
    with limiter.slot(provider, 1):
        with pytest.raises(SlotWaitTimeoutError) as caught:
            with limiter.slot(provider, 1):
                pass
    assert caught.value.provider == provider
    assert "max_connections" in str(caught.value)


def test_limiter_backend_follows_the_database_url(tmp_path: Path) -> None:
    assert ProviderLimiter(db_url="sqlite:///x.db", lock_dir=tmp_path).backend_name == "files"
    assert ProviderLimiter(db_url="postgresql://u@h/db", lock_dir=tmp_path).backend_name == (
        "postgres"
    )
    with pytest.raises(ValueError, match="at least 1"):
        with ProviderLimiter(lock_dir=tmp_path).slot("cdse", 0):
            pass


def test_advisory_key_is_stable_signed_64_bit_and_distinct() -> None:
    keys = {advisory_key("cdse", slot) for slot in range(4)} | {advisory_key("usgs", 0)}
    assert len(keys) == 5
    assert all(-(2**63) <= key < 2**63 for key in keys)
    assert advisory_key("CDSE", 1) == advisory_key("cdse", 1)


@pytest.fixture(autouse=True)
def _no_leftover_children() -> Iterator[None]:
    yield
    for child in multiprocessing.active_children():
        child.kill()
        child.join(timeout=5)
