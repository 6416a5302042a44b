"""The download engine (DESIGN 1.2): streamed, resumable, verified, atomic downloads over HTTP.

``download_file`` streams to ``<dest>.part``, resumes it with ``Range`` only when the server
answers 206 with a matching ``Content-Range`` (and ``If-Range`` with the validator, strong ETag or
Last-Modified, of the answer the partial came from, kept in ``<dest>.part.validator``: a file that
changed in between is downloaded again from the start, never spliced), verifies size and checksum,
and renames the verified file to ``dest``; ``<dest>.lock`` (fcntl) serialises callers asking for
the same file. A valid file already at ``dest`` is reused without touching the network, unless
``force``: then the file is fetched again into ``<dest>.part`` and replaces the old one only once
verified, so a failed forced download leaves the old valid file in place. Transient
failures (5xx, timeouts, dropped connections, 429) are retried in the task with exponential
backoff and jitter, resuming from the partial; permanent ones (other 4xx) raise
``ProviderError`` at once.

The HTTP client, TLS settings and the mapping of HTTP failures to errors are in
``include.collectors.http``; this module is the engine only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import random
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import urlsplit

import h11
import httpcore
import httpx
from httpcore._backends.sync import SyncStream

from include.collectors.base import Asset, DownloadedFile
from include.collectors.checksums import (
    Checksum,
    Hasher,
    UnsupportedChecksumError,
    hash_file,
    is_available,
    new_hasher,
    parse_checksum,
    update_from_file,
)
from include.collectors.http import error_for_status, error_for_transport, redact_url
from include.common.errors import (
    ChecksumMismatchError,
    CollectionBuilderError,
    FieldProblem,
    InvalidInputError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    TransientError,
)
from include.common.progress import ProgressFn
from include.common.storage import safe_component

log = logging.getLogger(__name__)

DEFAULT_RECORD_ALGORITHM = "blake3" if is_available("blake3") else "sha256"
"""Algorithm of ``DownloadedFile.checksum`` when the catalog gives no checksum: BLAKE3 (a
pinned dependency; ~8 GB/s against SHA-256's ~2 GB/s here, see docs/download-bench.md), else
SHA-256."""

FSYNC_ENV = "COLLECTION_BUILDER_DOWNLOAD_FSYNC"
"""Set to ``0`` (or ``false``/``no``/``off``) to leave downloads to the kernel's writeback."""

SOCKET_READ_BYTES = 1 << 20
"""Bytes httpcore asks the socket for per read (its default is 64 KiB): larger reads cut the
per-read Python work of a body by 16x (bench/download.py: about -0.5 CPU s/GiB)."""


def _raise_socket_read_size() -> None:
    """Make httpcore's HTTP/1.1 connections read ``SOCKET_READ_BYTES`` at a time.

    httpcore has no per-client setting for it; its class attribute is read per receive, and a
    larger read only changes how much one ``recv`` may return (small answers are unaffected).
    """
    connection = httpcore._sync.http11.HTTP11Connection
    connection.READ_NUM_BYTES = max(connection.READ_NUM_BYTES, SOCKET_READ_BYTES)


_raise_socket_read_size()


def fsync_enabled() -> bool:
    """Return whether downloads are flushed to disk before their rename (``FSYNC_ENV``, default on).

    On, a file is on disk when it gets its final name, so even a machine crash cannot leave a
    renamed but incomplete archive; the data is flushed in the background while it arrives,
    which on the development VM is also faster than leaving gigabytes of dirty pages to the
    kernel (docs/download-bench.md). Off, as with curl or wget, a killed task still loses
    nothing the kernel accepted, and after a machine crash the reuse check (size, checksum)
    re-downloads a file whose data did not reach the disk.
    """
    return os.environ.get(FSYNC_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.IGNORECASE)
_EXTENSION = re.compile(r"^\.[A-Za-z0-9]{1,10}$")


class DiskFullError(CollectionBuilderError):
    """The disk filled up while writing a download; the partial is kept for a later resume."""

    def __init__(self, folder: Path, free_bytes: int, needed_bytes: int | None) -> None:
        self.folder = folder
        self.free_bytes = free_bytes
        self.needed_bytes = needed_bytes
        need = f"about {needed_bytes / 1e6:.1f} MB more" if needed_bytes else "more space"
        super().__init__(
            f"{folder}: disk full while downloading (free {free_bytes / 1e6:.1f} MB, "
            f"need {need}); free space there or point DATA_DIR at a larger disk, then retry"
        )


# --------------------------------------------------------------------------------------------
# Locking, reuse and verification


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path``; the file is removed when released.

    Removing a lock file is safe because a waiter that wakes up on an unlinked (or replaced)
    file notices that the path no longer names its inode and locks the new file instead.
    """
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                on_disk = os.stat(lock_path)
            except FileNotFoundError:
                on_disk = None
            held = os.fstat(fd)
            if on_disk is not None and (on_disk.st_ino, on_disk.st_dev) == (
                held.st_ino,
                held.st_dev,
            ):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        os.close(fd)


@dataclass(frozen=True, slots=True)
class _Expected:
    size_bytes: int | None
    checksum: Checksum | None
    """None when the catalog gave none, or when its algorithm cannot be computed here."""


def _expected(url: str, expected_size: int | None, checksum: str | None) -> _Expected:
    parsed: Checksum | None = None
    if checksum:
        try:
            parsed = parse_checksum(checksum)
            new_hasher(parsed.algorithm, parsed.digest_bytes)
        except UnsupportedChecksumError as err:
            log.warning(
                "download.checksum_skipped url=%s reason=%s; the size is verified only",
                redact_url(url),
                err,
            )
            parsed = None
        except ValueError as err:
            raise ProviderError(
                f"download {redact_url(url)}: the catalog's checksum {checksum!r} is malformed "
                f"({err}); report it to the provider or use another provider"
            ) from err
    return _Expected(expected_size, parsed)


def _record_algorithm(expected: _Expected) -> tuple[str, int | None]:
    if expected.checksum is not None:
        return expected.checksum.algorithm, expected.checksum.digest_bytes
    return DEFAULT_RECORD_ALGORITHM, None


def _reusable(dest: Path, expected: _Expected, *, chunk_bytes: int) -> Checksum | None:
    """Return the checksum of ``dest`` when it is a valid copy, else None."""
    try:
        size = dest.stat().st_size
    except FileNotFoundError:
        return None
    if expected.size_bytes is not None and size != expected.size_bytes:
        log.info(
            "download.stale dest=%s size_bytes=%d expected=%d", dest, size, expected.size_bytes
        )
        return None
    if expected.size_bytes is None and size == 0:
        return None
    algorithm, digest_bytes = _record_algorithm(expected)
    actual = hash_file(dest, algorithm, digest_bytes=digest_bytes, chunk_bytes=chunk_bytes)
    if expected.checksum is not None and not expected.checksum.matches(actual):
        log.info("download.stale dest=%s checksum=%s expected=%s", dest, actual, expected.checksum)
        return None
    return actual


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(handle: IO[bytes], data: bytes | memoryview) -> None:
    """Write one chunk (a seam for tests simulating a full disk)."""
    handle.write(data)


_SYNC_EVERY_BYTES = 64 << 20
"""With fsync on, the disk is asked to catch up every this many bytes, in the background, so
the final fsync finds little left (bench/download.py)."""


class _BackgroundSync:
    """Flushes a file's written data to disk in a thread while the download goes on.

    ``written`` counts bytes and, every ``_SYNC_EVERY_BYTES``, wakes the thread, which calls
    ``fdatasync`` (it releases the GIL: the network loop keeps receiving). ``close`` stops the
    thread and raises its error, if any (a disk that cannot write fails the download).
    """

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._unsynced = 0
        self._wake = threading.Event()
        self._closing = False
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="download-fsync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
                getattr(os, "fdatasync", os.fsync)(self._handle.fileno())
            except OSError as err:
                self.error = err
                return

    def written(self, nbytes: int) -> None:
        """Count ``nbytes`` more written (and flushed to the kernel) bytes."""
        if self.error is not None:
            raise self.error
        self._unsynced += nbytes
        if self._unsynced >= _SYNC_EVERY_BYTES:
            self._handle.flush()
            self._unsynced = 0
            self._wake.set()

    def close(self) -> None:
        """Stop the thread; raise the error of a background flush, if any."""
        self._closing = True
        self._wake.set()
        self._thread.join()
        if self.error is not None:
            raise self.error


# --------------------------------------------------------------------------------------------
# One HTTP exchange


def _socket_body(response: httpx.Response, buffer: bytearray) -> Iterator[memoryview] | None:
    """Return the rest of an identity HTTP/1.1 body read straight from its socket, or None.

    httpx's body path copies every byte four times in user space (httpcore's socket read, then
    h11's buffer, slice and extraction), which costs about as much CPU as the kernel's own
    work: with four downloads on two CPUs that made the engine CPU-bound at 0.8 of curl
    (docs/download-bench.md). Here the socket fills one reused ``buffer`` (``recv_into``) and
    only the bytes h11 had already buffered are taken from it (``h11.Connection.trailing_data``).
    The connection is then closed, not reused, when the response closes (h11 never saw the
    body end). Anything unexpected (HTTP/2, chunked, a proxy tunnel in TLS, other httpcore
    internals) returns None and the download takes httpx's path; a test pins that this path
    is taken with the pinned httpx/httpcore.
    """
    length = response.headers.get("content-length", "")
    if response.http_version != "HTTP/1.1" or not length.isdigit():
        return None
    if "transfer-encoding" in response.headers:
        return None
    stream: Any = response.extensions.get("network_stream")
    if type(stream) is not SyncStream:  # not a TLS-in-TLS tunnel, not another backend
        return None
    sock = stream.get_extra_info("socket")
    body: Any = response.stream
    try:  # httpx -> httpcore pool -> HTTP/1.1 connection -> its h11 state (private attributes)
        h11_state = body._stream._httpcore_stream._stream._connection._h11_state
    except AttributeError:
        return None
    if not isinstance(sock, socket.socket) or h11_state.their_state is not h11.SEND_BODY:
        return None
    buffered, _ = h11_state.trailing_data
    remaining = int(length) - len(buffered)
    if remaining < 0:
        return None
    timeout = response.request.extensions.get("timeout", {}).get("read")
    return _read_socket(response.request, sock, bytes(buffered), remaining, buffer, timeout)


def _read_socket(
    request: httpx.Request,
    sock: socket.socket,
    buffered: bytes,
    remaining: int,
    buffer: bytearray,
    timeout: float | None,
) -> Iterator[memoryview]:
    """Yield ``buffered``, then up to ``remaining`` bytes of ``sock``, in ``buffer``-sized views.

    Stops early when the peer closes (the caller reports the short read); socket errors are
    raised as httpx's, so they map like any other transport failure.
    """
    if buffered:
        yield memoryview(buffered)
    view = memoryview(buffer)
    sock.settimeout(timeout)
    while remaining > 0:
        try:
            received = sock.recv_into(view, min(len(view), remaining))
        except TimeoutError as err:
            raise httpx.ReadTimeout(str(err) or "read timed out", request=request) from err
        except OSError as err:
            raise httpx.ReadError(str(err) or type(err).__name__, request=request) from err
        if received == 0:
            return
        remaining -= received
        yield view[:received]


class _RestartFromZero(Exception):
    """The server's answer to a Range request cannot be trusted: drop the partial and retry."""


def _validator_path(part: Path) -> Path:
    return part.with_name(part.name + ".validator")


def _response_validator(response: httpx.Response) -> str | None:
    """Return the answer's validator for ``If-Range``: a strong ETag, else a strong Last-Modified.

    RFC 9110 13.1.5 and 8.8.2.2: never a weak ETag; a date only without an ETag, and only when
    it is at least 60 s before the answer's ``Date`` (a file generated on the fly, dated "now",
    would otherwise make every resume start again).
    """
    etag = str(response.headers.get("etag", "")).strip()
    if etag:
        return None if etag.startswith("W/") else etag
    modified = str(response.headers.get("last-modified", "")).strip()
    try:
        age_s = (
            parsedate_to_datetime(str(response.headers.get("date", "")))
            - parsedate_to_datetime(modified)
        ).total_seconds()
    except (TypeError, ValueError):
        return None
    return modified if age_s >= 60 else None


def _drop_partial(part: Path) -> None:
    part.unlink(missing_ok=True)
    _validator_path(part).unlink(missing_ok=True)


def _parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        return None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), int(match.group(2)), total


def _read_excerpt(response: httpx.Response) -> str:
    data = bytearray()
    for chunk in response.iter_bytes():
        data.extend(chunk)
        if len(data) >= 4096:
            break
    return bytes(data[:4096]).decode("utf-8", errors="replace")


@dataclass(slots=True)
class _Fetched:
    size_bytes: int
    checksum: Checksum


@dataclass(frozen=True, slots=True)
class _Resume:
    """Where one GET starts: the partial's size, the request headers, the partial's validator."""

    offset: int
    headers: dict[str, str]
    validator: str | None


def _plan_request(
    part: Path, *, expected: _Expected, headers: Mapping[str, str], allow_resume: bool
) -> _Resume:
    """Return the request for ``part``: ``Range`` (and ``If-Range``) when resuming it."""
    offset = part.stat().st_size if part.exists() else 0
    if not allow_resume or (expected.size_bytes is not None and offset > expected.size_bytes):
        offset = 0
    request_headers = {"Accept-Encoding": "identity", **dict(headers)}
    validator: str | None = None
    if offset:
        request_headers["Range"] = f"bytes={offset}-"
        with contextlib.suppress(OSError):
            validator = _validator_path(part).read_text(encoding="utf-8").strip() or None
        if validator is not None:
            request_headers["If-Range"] = validator
    return _Resume(offset, request_headers, validator)


def _is_whole_partial(response: httpx.Response, part: Path, offset: int) -> bool:
    """Return True when a 416 answer to a resume says the partial holds the whole file.

    Raises:
        _RestartFromZero: otherwise (the partial is dropped).
    """
    match = _UNSATISFIED_RANGE.match(response.headers.get("content-range", ""))
    if match and int(match.group(1)) == offset:
        return True
    _drop_partial(part)
    raise _RestartFromZero("416 without a matching size")


def _accept_partial_content(
    response: httpx.Response, part: Path, *, url: str, resume: _Resume, total: int | None
) -> int | None:
    """Check that a 206 answer continues the partial; return the file's total size.

    Raises:
        _RestartFromZero: the range or the file's version does not match (partial dropped).
    """
    content_range = _parse_content_range(response.headers.get("content-range"))
    if content_range is None or content_range[0] != resume.offset:
        log.warning(
            "download.range_mismatch url=%s asked=%d content_range=%r; restarting",
            redact_url(url),
            resume.offset,
            response.headers.get("content-range"),
        )
        _drop_partial(part)
        raise _RestartFromZero("Content-Range does not match the partial")
    answered = _response_validator(response)
    if resume.validator is not None and answered is not None and answered != resume.validator:
        # a server that ignores If-Range: the partial is of another version
        log.warning(
            "download.changed url=%s; the file changed since the partial was written, restarting",
            redact_url(url),
        )
        _drop_partial(part)
        raise _RestartFromZero("the file changed since the partial was written")
    total = content_range[2] if content_range[2] is not None else total
    log.info(
        "download.resume url=%s from_bytes=%d total_bytes=%s", redact_url(url), resume.offset, total
    )
    return total


def _accept_full_content(
    response: httpx.Response, part: Path, *, url: str, resume: _Resume, total: int | None
) -> int | None:
    """Start over on a 200 answer: keep its validator beside the partial; return the size."""
    if resume.offset:
        log.info(
            "download.restart url=%s reason=%s",
            redact_url(url),
            "the file changed (If-Range)" if resume.validator else "server ignored Range",
        )
    answered = _response_validator(response)
    if answered is None:
        _validator_path(part).unlink(missing_ok=True)
    else:  # written before the data, so any partial has its version beside it
        _validator_path(part).write_text(answered, encoding="utf-8")
    encoded = response.headers.get("content-encoding", "identity").lower()
    length = response.headers.get("content-length")
    if length is not None and length.isdigit() and encoded in ("", "identity"):
        return int(length)
    return total


def _body_chunks(response: httpx.Response, chunk_bytes: int) -> Iterable[bytes | memoryview]:
    """Return the body's chunks: straight from the socket for identity bodies when possible."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    # identity bodies skip httpx's decoder layers (~15 % faster, bench)
    plain = encoding in ("", "identity")
    chunks: Iterable[bytes | memoryview] | None = None
    if plain:
        chunks = _socket_body(response, bytearray(chunk_bytes))
    if chunks is None:
        chunks = response.iter_raw() if plain else response.iter_bytes()
    return chunks


def _write_body(
    response: httpx.Response,
    part: Path,
    *,
    append: bool,
    hasher: Hasher,
    done: int,
    total: int | None,
    progress: ProgressFn | None,
    chunk_bytes: int,
    fsync: bool,
) -> int:
    """Write the body to ``part`` (after its ``done`` bytes when ``append``), hashing it.

    Returns:
        The bytes in ``part`` afterwards.

    Raises:
        DiskFullError: when the disk fills up (the partial is kept).
    """
    if progress is not None:
        progress(done, total)
    try:
        with part.open("ab" if append else "wb", buffering=chunk_bytes) as handle:
            # One loop receives, writes and hashes: with 1 MiB socket reads this costs
            # less CPU than handing chunks to writer/hasher threads (bench/download.py).
            # A chunk is written as soon as it arrives, so a dropped link keeps it.
            syncer = _BackgroundSync(handle) if fsync else None
            reported = done
            try:
                for chunk in _body_chunks(response, chunk_bytes):
                    _write(handle, chunk)
                    hasher.update(chunk)
                    done += len(chunk)
                    if syncer is not None:
                        syncer.written(len(chunk))
                    if progress is not None and done - reported >= chunk_bytes:
                        progress(done, total)
                        reported = done
            finally:
                if syncer is not None:
                    syncer.close()
            if progress is not None:
                progress(done, total)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        free = shutil.disk_usage(part.parent).free
        needed = total - done if total is not None else None
        raise DiskFullError(part.parent, free, needed) from err
    return done


@dataclass(frozen=True, slots=True)
class _Transfer:
    """One file's transfer: where from, into which partial, what to expect, how to write."""

    client: httpx.Client
    url: str
    part: Path
    expected: _Expected
    headers: Mapping[str, str]
    progress: ProgressFn | None
    chunk_bytes: int
    fsync: bool


def _fetch_once(transfer: _Transfer, *, allow_resume: bool) -> _Fetched:
    """Make one GET, resuming ``part`` when allowed and honoured; return what was written.

    Raises:
        _RestartFromZero: when a Range answer does not match the partial (partial truncated).
        ProviderUnavailableError, RateLimitedError, ProviderError: mapped HTTP failures.
        DiskFullError: when the disk fills up.
    """
    client, url, part, expected = transfer.client, transfer.url, transfer.part, transfer.expected
    headers, progress, chunk_bytes = transfer.headers, transfer.progress, transfer.chunk_bytes
    fsync = transfer.fsync
    algorithm, digest_bytes = _record_algorithm(expected)
    resume = _plan_request(part, expected=expected, headers=headers, allow_resume=allow_resume)
    hasher: Hasher = new_hasher(algorithm, digest_bytes)
    total: int | None = expected.size_bytes
    try:
        with client.stream("GET", url, headers=resume.headers, follow_redirects=True) as response:
            status = response.status_code
            if resume.offset and status == 416 and _is_whole_partial(response, part, resume.offset):
                # The partial already holds the whole file (killed before the rename).
                update_from_file(hasher, part, chunk_bytes=chunk_bytes)
                if progress is not None:
                    progress(resume.offset, resume.offset)
                return _Fetched(resume.offset, Checksum(algorithm, hasher.hexdigest()))
            if status >= 400:
                raise error_for_status(
                    status,
                    _read_excerpt(response),
                    url=url,
                    action="download",
                    headers=response.headers,
                )
            if resume.offset and status == 206:
                total = _accept_partial_content(response, part, url=url, resume=resume, total=total)
                done = update_from_file(hasher, part, chunk_bytes=chunk_bytes)
            elif status == 200:
                total = _accept_full_content(response, part, url=url, resume=resume, total=total)
                done = 0
            else:
                raise ProviderError(
                    f"download {redact_url(url)}: unexpected HTTP {status}; "
                    "the server must answer 200 or 206 to a file request",
                    status_code=status,
                )
            done = _write_body(
                response,
                part,
                append=status == 206,
                hasher=hasher,
                done=done,
                total=total,
                progress=progress,
                chunk_bytes=chunk_bytes,
                fsync=fsync,
            )
    except httpx.RequestError as err:
        raise error_for_transport(err, url=url, action="download") from err
    if total is not None and done < total:
        raise ProviderUnavailableError(
            f"download {redact_url(url)}: short read ({done} of {total} bytes); "
            "the partial is kept and resumed on retry"
        )
    return _Fetched(done, Checksum(algorithm, hasher.hexdigest()))


# --------------------------------------------------------------------------------------------
# Public engine


def retry_delay_s(
    err: TransientError, attempt: int, *, base_delay_s: float, max_delay_s: float
) -> float | None:
    """Return how long to wait before attempt ``attempt + 1``, or None to give up now.

    ``Retry-After`` is honoured when it fits in ``max_delay_s``; a longer one is left to the
    orchestrator's own retry. Otherwise exponential backoff with +-50 % jitter.
    """
    if isinstance(err, RateLimitedError) and err.retry_after_s is not None:
        retry_after_s = float(err.retry_after_s)
        return retry_after_s if retry_after_s <= max_delay_s else None
    backoff = min(max_delay_s, base_delay_s * 2.0 ** max(0, attempt - 1))
    return backoff * (0.5 + random.random())  # noqa: S311 - jitter, not cryptography


@dataclass(frozen=True, slots=True)
class _RetryPolicy:
    """In-task retries of transient failures: attempts, backoff bounds, the wait function."""

    max_attempts: int
    base_delay_s: float
    max_delay_s: float
    sleep: Callable[[float], None]


def _fetch_with_retries(transfer: _Transfer, retry: _RetryPolicy) -> _Fetched:
    """Fetch ``url`` into ``part``, resuming after transient failures, restarting on a mismatch.

    Raises:
        ProviderError: the server's ranges stay inconsistent after a restart from zero.
        TransientError: the last transient failure after ``retry.max_attempts``.
    """
    attempt = 0
    allow_resume = True
    while True:
        attempt += 1
        try:
            return _fetch_once(transfer, allow_resume=allow_resume)
        except _RestartFromZero:
            if not allow_resume:
                raise ProviderError(
                    f"download {redact_url(transfer.url)}: the server's ranges are inconsistent; "
                    "try another provider"
                ) from None
            allow_resume = False
            attempt -= 1
        except TransientError as err:
            delay = retry_delay_s(
                err, attempt, base_delay_s=retry.base_delay_s, max_delay_s=retry.max_delay_s
            )
            if attempt >= retry.max_attempts or delay is None:
                log.warning(
                    "download.failed url=%s attempts=%d error=%s",
                    redact_url(transfer.url),
                    attempt,
                    err,
                )
                raise
            log.warning(
                "download.retry url=%s attempt=%d/%d delay_s=%.2f error=%s",
                redact_url(transfer.url),
                attempt,
                retry.max_attempts,
                delay,
                err,
            )
            retry.sleep(delay)
            allow_resume = True


def download_file(
    client: httpx.Client,
    url: str,
    dest: Path,
    *,
    expected_size: int | None = None,
    checksum: str | None = None,
    progress: ProgressFn | None = None,
    headers: Mapping[str, str] | None = None,
    chunk_bytes: int = 1 << 20,
    max_attempts: int = 3,
    base_delay_s: float = 0.5,
    max_delay_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    fsync: bool | None = None,
    force: bool = False,
) -> DownloadedFile:
    """Download ``url`` to ``dest`` (streamed, resumable, verified, renamed into place atomically).

    Args:
        client: the driver's HTTP client (its TLS, timeout and auth settings apply).
        url: the file's URL; only ``scheme://host/path`` of it is ever logged.
        dest: the final path; ``<dest>.part`` (with ``<dest>.part.validator``) and
            ``<dest>.lock`` are used beside it.
        expected_size: the size the catalog gives, verified when known.
        checksum: a STAC ``file:checksum`` multihash or ``<algo>:<hex>``, verified when given.
        progress: called as ``progress(done_bytes, total_bytes)``.
        headers: extra request headers (never logged).
        chunk_bytes: write buffer and hashing block size.
        max_attempts: attempts for transient failures, each resuming the partial.
        base_delay_s: first backoff delay; doubled per attempt, with jitter.
        max_delay_s: longest in-task wait; a longer ``Retry-After`` is not waited for here.
        sleep: the wait function (injected by tests).
        fsync: flush the file and its folder to disk before returning; None reads
            ``fsync_enabled()``.
        force: download again even when a valid copy is at ``dest`` (the conf's ``force``).
            The new copy is written to ``<dest>.part`` and replaces the old one atomically
            only after it is verified: until then, and when it fails, ``dest`` is untouched.

    Returns:
        The verified file; ``reused`` when a valid copy was already in place (no request made).

    Raises:
        ChecksumMismatchError: size or checksum differ; the partial is deleted and ``dest`` is
            left as it was (a forced download keeps the old file).
        ProviderUnavailableError: 5xx, timeouts, dropped connections after ``max_attempts``.
        RateLimitedError: HTTP 429 after ``max_attempts`` (or a long ``Retry-After``).
        ProviderError: other 4xx (no retry), TLS verification failure, non-HTTP URL.
        DiskFullError: the disk filled up (the partial is kept for a later resume).
    """
    dest = Path(dest)
    expected = _expected(url, expected_size, checksum)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with _exclusive_lock(dest.with_name(dest.name + ".lock")):
        existing = None if force else _reusable(dest, expected, chunk_bytes=chunk_bytes)
        if force and dest.exists():
            log.info("download.forced dest=%s; replaced only once the new copy is verified", dest)
        if existing is not None:
            size = dest.stat().st_size
            if progress is not None:
                progress(size, size)
            log.info("download.reused dest=%s size_bytes=%d", dest, size)
            return DownloadedFile(
                path=dest, size_bytes=size, checksum=str(existing), reused=True, files=(dest,)
            )
        started = time.monotonic()
        durable = fsync_enabled() if fsync is None else fsync
        log.info("download.start url=%s dest=%s", redact_url(url), dest)
        fetched = _fetch_with_retries(
            _Transfer(client, url, part, expected, headers or {}, progress, chunk_bytes, durable),
            _RetryPolicy(max_attempts, base_delay_s, max_delay_s, sleep),
        )
        _verify(part, fetched, expected)
        os.replace(part, dest)
        _validator_path(part).unlink(missing_ok=True)
        if durable:
            _fsync_dir(dest.parent)
        elapsed_s = max(time.monotonic() - started, 1e-9)
        log.info(
            "download.done url=%s dest=%s size_bytes=%d mb_s=%.2f elapsed_s=%.2f checksum=%s",
            redact_url(url),
            dest,
            fetched.size_bytes,
            fetched.size_bytes / 1e6 / elapsed_s,
            elapsed_s,
            fetched.checksum,
        )
        return DownloadedFile(
            path=dest,
            size_bytes=fetched.size_bytes,
            checksum=str(fetched.checksum),
            reused=False,
            files=(dest,),
        )


def reuse_existing(
    dest: Path,
    *,
    expected_size: int | None = None,
    checksum: str | None = None,
    chunk_bytes: int = 1 << 20,
    progress: ProgressFn | None = None,
) -> DownloadedFile | None:
    """Return ``dest`` as a reused ``DownloadedFile`` when a valid copy is in place, else None.

    For drivers that must make API calls before they know a file's URL: checking first keeps a
    rerun off the provider entirely. The same rules as ``download_file``'s reuse apply (size and
    checksum when given; a non-empty file otherwise), under the same lock. A reused file is
    reported to ``progress`` as complete.

    Raises:
        ProviderError: when ``checksum`` is malformed.
    """
    dest = Path(dest)
    if not dest.exists():
        return None
    expected = _expected(str(dest), expected_size, checksum)
    with _exclusive_lock(dest.with_name(dest.name + ".lock")):
        existing = _reusable(dest, expected, chunk_bytes=chunk_bytes)
        if existing is None:
            return None
        size = dest.stat().st_size
    log.info("download.reused dest=%s size_bytes=%d", dest, size)
    if progress is not None:
        progress(size, size)
    return DownloadedFile(
        path=dest, size_bytes=size, checksum=str(existing), reused=True, files=(dest,)
    )


def _verify(part: Path, fetched: _Fetched, expected: _Expected) -> None:
    """Raise ``ChecksumMismatchError`` (after deleting ``part``) when it is not the right file."""
    if expected.size_bytes is not None and fetched.size_bytes != expected.size_bytes:
        _drop_partial(part)
        raise ChecksumMismatchError(
            str(part), f"size_bytes:{expected.size_bytes}", f"size_bytes:{fetched.size_bytes}"
        )
    if expected.checksum is not None and not expected.checksum.matches(fetched.checksum):
        _drop_partial(part)
        raise ChecksumMismatchError(str(part), str(expected.checksum), str(fetched.checksum))


# --------------------------------------------------------------------------------------------
# Several assets of a scene


def asset_filename(asset: Asset) -> str:
    """Return ``<asset key><extension of the href path>`` (the key alone when it has it already).

    Raises:
        InvalidInputError: when the asset key cannot be a file name.
    """
    key = safe_component(asset.key, f"assets.{asset.key}")
    suffix = PurePosixPath(urlsplit(asset.href).path).suffix
    if not _EXTENSION.match(suffix) or key.lower().endswith(suffix.lower()):
        return key
    return key + suffix


class _AggregateProgress:
    """Sums per-asset progress into one ``progress(done, total)`` (total once all are known)."""

    def __init__(self, assets: Sequence[Asset], progress: ProgressFn | None) -> None:
        self._progress = progress
        self._lock = threading.Lock()
        self._done = dict.fromkeys((a.key for a in assets), 0)
        self._total: dict[str, int | None] = {a.key: a.size_bytes for a in assets}

    def for_asset(self, key: str) -> ProgressFn:
        def report(done_bytes: int, total_bytes: int | None) -> None:
            with self._lock:
                self._done[key] = done_bytes
                if total_bytes is not None:
                    self._total[key] = total_bytes
                done = sum(self._done.values())
                totals = list(self._total.values())
                total = None if any(t is None for t in totals) else sum(t or 0 for t in totals)
            if self._progress is not None:
                self._progress(done, total)

        return report


def download_assets_detailed(
    client: httpx.Client,
    assets: Sequence[Asset],
    folder: Path,
    *,
    max_workers: int,
    progress: ProgressFn | None = None,
    headers_for: Callable[[str], Mapping[str, str]] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    force: bool = False,
) -> dict[str, DownloadedFile]:
    """Download every asset into ``folder`` in parallel; return key -> ``DownloadedFile``.

    At most ``max_workers`` downloads run at once; on the first failure no new download starts,
    the running ones finish, and the first error is raised. ``headers_for(href)`` gives each
    request's extra headers (a driver sends its credentials only to its own host). ``force``
    downloads every asset again, as ``download_file`` does.

    Raises:
        InvalidInputError: two assets would share a file name, or a key is not a safe name.
        ChecksumMismatchError, ProviderUnavailableError, RateLimitedError, ProviderError,
        DiskFullError: as ``download_file``.
    """
    names: dict[str, str] = {}
    for asset in assets:
        name = asset_filename(asset)
        if name in names.values():
            raise InvalidInputError(
                FieldProblem(
                    f"assets.{asset.key}",
                    f"file name {name!r} is used by another asset",
                    "rename one of the assets in the catalog mapping",
                )
            )
        names[asset.key] = name
    folder.mkdir(parents=True, exist_ok=True)
    aggregate = _AggregateProgress(assets, progress)
    results: dict[str, DownloadedFile] = {}
    if not assets:
        return results
    with ThreadPoolExecutor(
        max_workers=max(1, min(max_workers, len(assets))), thread_name_prefix="download"
    ) as pool:
        futures: dict[Future[DownloadedFile], str] = {
            pool.submit(
                download_file,
                client,
                asset.href,
                folder / names[asset.key],
                expected_size=asset.size_bytes,
                checksum=asset.checksum,
                progress=aggregate.for_asset(asset.key),
                headers=headers_for(asset.href) if headers_for is not None else None,
                sleep=sleep,
                force=force,
            ): asset.key
            for asset in assets
        }
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        errors = [err for future in done if (err := future.exception()) is not None]
        if errors:
            for future in pending:
                future.cancel()
            wait(pending)
            raise errors[0]
    for future, key in futures.items():
        results[key] = future.result()
    return {asset.key: results[asset.key] for asset in assets}


def download_assets(
    client: httpx.Client,
    assets: Sequence[Asset],
    folder: Path,
    *,
    max_workers: int,
    progress: ProgressFn | None = None,
) -> dict[str, Path]:
    """Download every asset to ``folder/<key><ext>`` in parallel; return key -> path.

    Raises:
        InvalidInputError, ChecksumMismatchError, ProviderUnavailableError, RateLimitedError,
        ProviderError, DiskFullError: as ``download_assets_detailed``.
    """
    detailed = download_assets_detailed(
        client, assets, folder, max_workers=max_workers, progress=progress
    )
    return {key: result.path for key, result in detailed.items()}


__all__ = [
    "DiskFullError",
    "asset_filename",
    "download_assets",
    "download_assets_detailed",
    "download_file",
    "retry_delay_s",
    "reuse_existing",
]
