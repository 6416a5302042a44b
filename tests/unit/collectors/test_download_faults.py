"""Faults done for real to the download engine (docs/faults.md lists what each test asserts).

A loopback server (tests/helpers/fault_server.py) drops, stalls, corrupts and rate-limits; the
"task" is a separate Python process running ``download_file`` (as an Airflow task process does),
so a kill is a real SIGKILL and two concurrent runs are two processes sharing the file system.
The file is 64 MiB of random bytes, so the bytes lost by a kill (what sat in the engine's write
buffers) stay a few percent of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from include.collectors.download import DiskFullError, download_file
from include.common.errors import ChecksumMismatchError
from tests.helpers.fault_server import FileServer

REPO = Path(__file__).resolve().parents[3]
SIZE = 64 * 1024 * 1024
HALF = SIZE // 2
CHILD = """
import json, sys
from pathlib import Path
from include.collectors.download import download_file
from include.collectors.http import build_http_client
url, dest, size, checksum = sys.argv[1:5]
print("started", flush=True)
with build_http_client(timeout_s=60) as client:
    result = download_file(client, url, Path(dest), expected_size=int(size), checksum=checksum,
                           max_attempts=1)
print(json.dumps({"reused": result.reused, "size": result.size_bytes}), flush=True)
"""


@pytest.fixture(scope="module")
def data() -> bytes:
    return random.Random(10).randbytes(SIZE)  # noqa: S311 - test data, not cryptography


@pytest.fixture(scope="module")
def checksum(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()  # noqa: S324 - the catalogs' algorithm


@pytest.fixture
def server(data: bytes) -> Iterator[FileServer]:
    running = FileServer(data)
    try:
        yield running
    finally:
        running.close()


def _task(url: str, dest: Path, checksum: str) -> subprocess.Popen[str]:
    """Start a "task" process downloading ``url`` to ``dest``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(dest), str(SIZE), checksum],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )


def _finish(task: subprocess.Popen[str]) -> dict[str, object]:
    out, err = task.communicate(timeout=60)
    assert task.returncode == 0, err[-2000:]
    return dict(json.loads(out.strip().splitlines()[-1]))


def _wait_until_stable(path: Path, timeout_s: float = 30) -> int:
    """Wait until ``path`` exists and its size stops growing; return the size."""
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else -1
        if size != last:
            last, since = size, time.monotonic()
        elif size > 0 and time.monotonic() - since > 0.4:
            return size
        time.sleep(0.05)
    raise AssertionError(f"{path} did not settle (size {last})")


def test_fault_connection_dropped_at_half_resumes_and_sends_each_byte_once(
    server: FileServer,
    data: bytes,
    checksum: str,
    tmp_path: Path,
) -> None:
    server.drop_at(HALF)
    dest = tmp_path / "scene.zip"
    sleeps: list[float] = []
    with httpx.Client(timeout=30) as client:
        download_file(
            client, server.url, dest, expected_size=SIZE, checksum=checksum, sleep=sleeps.append
        )
    assert dest.read_bytes() == data
    first, resumed = server.requests
    assert first is None and resumed is not None
    assert 0 < int(resumed.removeprefix("bytes=").rstrip("-")) <= HALF
    assert server.bytes_sent <= SIZE * 1.05
    assert len(sleeps) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.zip"]


def test_fault_connection_dropped_without_range_support_restarts_from_zero(
    data: bytes,
    checksum: str,
    tmp_path: Path,
) -> None:
    server = FileServer(data, ranges=False)
    try:
        server.drop_at(HALF)
        dest = tmp_path / "scene.zip"
        with httpx.Client(timeout=30) as client:
            download_file(
                client,
                server.url,
                dest,
                expected_size=SIZE,
                checksum=checksum,
                sleep=lambda s: None,
            )
        assert dest.read_bytes() == data
        assert server.requests[1] is not None  # asked to resume, got 200: started over
        assert server.bytes_sent == HALF + SIZE
    finally:
        server.close()


def test_fault_task_killed_mid_download_rerun_resumes_from_the_partial(
    server: FileServer,
    data: bytes,
    checksum: str,
    tmp_path: Path,
) -> None:
    dest = tmp_path / "scene.zip"
    part = tmp_path / "scene.zip.part"
    server.stall_at(HALF)
    task = _task(server.url, dest, checksum)
    try:
        assert server.stalled.wait(30)
        partial = _wait_until_stable(part)
        os.kill(task.pid, signal.SIGKILL)
    finally:
        if task.poll() is None:
            task.kill()
        task.communicate(timeout=10)
        server.release()
    assert task.returncode == -signal.SIGKILL
    assert 0 < partial <= HALF
    assert not dest.exists()  # nothing half-written is ever renamed into place

    result = _finish(_task(server.url, dest, checksum))
    assert result == {"reused": False, "size": SIZE}
    assert server.requests[1] == f"bytes={partial}-"  # resumed where the partial ended
    assert dest.read_bytes() == data
    assert server.bytes_sent <= SIZE * 1.05
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.zip"]  # no .part, no .lock


def test_fault_two_concurrent_tasks_same_file_one_downloads_the_other_reuses(
    server: FileServer,
    data: bytes,
    checksum: str,
    tmp_path: Path,
) -> None:
    dest = tmp_path / "scene.zip"
    server.stall_at(HALF)
    first = _task(server.url, dest, checksum)
    second: subprocess.Popen[str] | None = None
    try:
        assert server.stalled.wait(30)
        second = _task(server.url, dest, checksum)
        assert second.stdout is not None and second.stdout.readline().strip() == "started"
        time.sleep(0.5)
        assert second.poll() is None  # waiting for the first one's lock, not downloading
        assert len(server.requests) == 1
    finally:
        server.release()
    results = [_finish(first), _finish(second)]
    assert sorted(r["reused"] for r in results) == [False, True]
    assert len(server.requests) == 1 and server.bytes_sent == SIZE
    assert dest.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.zip"]


def test_fault_429_with_retry_after_is_waited_then_the_download_succeeds(
    server: FileServer,
    data: bytes,
    checksum: str,
    tmp_path: Path,
) -> None:
    server.status(429, {"Retry-After": "1"})
    dest = tmp_path / "scene.zip"
    with httpx.Client(timeout=30) as client:
        download_file(client, server.url, dest, expected_size=SIZE, checksum=checksum)
    assert dest.read_bytes() == data
    assert len(server.requests) == 2
    assert server.request_times[1] - server.request_times[0] >= 1.0


def test_fault_checksum_mismatch_deletes_the_partial_and_a_retry_gets_the_right_file(
    server: FileServer,
    data: bytes,
    checksum: str,
    tmp_path: Path,
) -> None:
    server.corrupt()
    dest = tmp_path / "scene.zip"
    with httpx.Client(timeout=30) as client:
        with pytest.raises(ChecksumMismatchError) as caught:
            download_file(client, server.url, dest, expected_size=SIZE, checksum=checksum)
        assert list(tmp_path.iterdir()) == []  # neither the file nor its partial
        assert "download it again" in str(caught.value)
        download_file(client, server.url, dest, expected_size=SIZE, checksum=checksum)
    assert dest.read_bytes() == data
    assert server.requests == [None, None]  # the retry starts from zero


def test_fault_disk_full_is_reported_with_the_folder_and_nothing_renamed(
    server: FileServer,
    checksum: str,
    tmp_path: Path,
) -> None:
    dest = tmp_path / "scene.zip"
    (tmp_path / "scene.zip.part").symlink_to("/dev/full")  # every write answers ENOSPC
    with httpx.Client(timeout=30) as client:
        with pytest.raises(DiskFullError) as caught:
            download_file(client, server.url, dest, expected_size=SIZE, checksum=checksum)
    message = str(caught.value)
    assert str(tmp_path) in message and "free space there or point DATA_DIR" in message
    assert not dest.exists()
