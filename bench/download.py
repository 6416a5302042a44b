"""Benchmark: our download engine vs ``curl`` on a 1 GiB file served on 127.0.0.1, same run.

Usage: ``.venv/bin/python bench/download.py [--size-mib 1024] [--parallel 4] [--repeat 5]``

A file of ``--size-mib`` MiB (incompressible bytes) is written to a temporary folder and served
by a stdlib ``ThreadingHTTPServer`` in its own process (HTTP/1.1, ``Content-Length``, single
``Range`` requests answered 206, the body sent with ``sendfile``; it counts the body bytes it
sends). Clients run in their own processes so neither shares a GIL with the server:

- ``curl -s -o <file> <url>``;
- ``curl`` then ``sync <file>``: the durable baseline;
- ours: ``include.collectors.download.download_file`` with its defaults (streamed to ``.part``
  with the body read straight from the socket, BLAKE3 of the bytes, flushed to disk in the
  background, fsync, atomic rename) in a worker process that has imported everything and
  waits for a "go" line, so Python's start-up is not timed (a worker is a long-running
  process);
- ours-nofsync: the same with ``fsync=False`` (``COLLECTION_BUILDER_DOWNLOAD_FSYNC=0``): the
  data left to the kernel, as curl does.

Measured ``--repeat`` times, the runners taking turns within each round (in reverse order
every other round, so a drift of the shared host hits both sides of a comparison alike). Each
timed run follows an untimed run of the same runner (``--no-warmup`` turns that off): on the
development VM a run's kernel time depends on what ran just before it (ours after curl or after
a few seconds idle: 1.1-1.6 system CPU s/GiB; ours after ours: 0.6-0.7; curl 1.2-1.5 whatever
ran before), so without it the interleaving measured the order, not the engines:

1. one download: MB/s of each and the ratios of each round, ours-nofsync / curl and
   ours / (curl+sync) (like for like, target >= 0.95), and ours / curl; the median over rounds
   is reported with its range, and the CPU seconds per GiB of each;
2. ``--parallel`` downloads of the same file at once (as parallel scenes run in separate
   worker processes): aggregate MB/s and the same ratios;
3. resume: a worker is killed (SIGKILL) when its ``.part`` holds half the file, a new worker
   resumes it; the server's body bytes for both / file size (target <= 1.05).

Benchmarks are not tests: nothing here asserts; it prints the figures and whether each target is
met. See docs/download-bench.md for figures measured on the development machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


# --------------------------------------------------------------------------------------------
# The file server (run as ``download.py --serve FILE``)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _FileServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.path == "/stats":
            body = json.dumps({"sent_bytes": self.server.sent_bytes}).encode()
            self._headers(200, len(body), "application/json")
            self.wfile.write(body)
            return
        if self.path == "/reset":
            with self.server.lock:
                self.server.sent_bytes = 0
            self._headers(204, 0, "text/plain")
            return
        size = self.server.size
        start, end, status = 0, size - 1, 200
        match = _RANGE.match(self.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        self.wfile.flush()
        with self.server.path.open("rb") as handle:
            sent = 0
            try:
                while sent < length:
                    count = os.sendfile(
                        self.connection.fileno(), handle.fileno(), start + sent, length - sent
                    )
                    if count == 0:
                        break
                    sent += count
            except OSError:
                self.close_connection = True
            finally:
                with self.server.lock:
                    self.server.sent_bytes += sent

    def _headers(self, status: int, length: int, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.end_headers()


class _FileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, path: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.path = path
        self.size = path.stat().st_size
        self.sent_bytes = 0
        self.lock = threading.Lock()


def serve(path: Path) -> None:
    """Serve ``path`` until stdin closes; print the URL first."""
    server = _FileServer(path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"http://127.0.0.1:{server.server_address[1]}/file.bin", flush=True)
    sys.stdin.read()
    server.shutdown()


# --------------------------------------------------------------------------------------------
# Our engine in a worker (run as ``download.py --worker``): waits for "go URL DEST" lines


def worker() -> None:
    """Read ``URL DEST FSYNC`` lines; download each with ``download_file``; print the time."""
    sys.path.insert(0, str(REPO))
    from include.collectors.download import download_file
    from include.collectors.http import build_http_client

    client = build_http_client(timeout_s=120, max_connections=1)
    print("ready", flush=True)
    for line in sys.stdin:
        url, dest, fsync = line.split()
        started, cpu_before = time.perf_counter(), os.times()
        result = download_file(client, url, Path(dest), max_attempts=1, fsync=fsync == "1")
        elapsed, cpu_after = time.perf_counter() - started, os.times()
        cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
        answer = {"elapsed_s": elapsed, "cpu_s": cpu_s, "size_bytes": result.size_bytes}
        print(json.dumps(answer), flush=True)


def _start_worker() -> subprocess.Popen[str]:
    process = subprocess.Popen(  # noqa: S603 - our own script
        [sys.executable, __file__, "--worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


# --------------------------------------------------------------------------------------------
# Runs


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our loopback server
        body = response.read()
    return json.loads(body) if body else {}


def run_curl(url: str, dests: list[Path], *, sync: bool = False) -> tuple[float, float]:
    """Run one curl per destination at once; return (wall time until all are done, CPU s).

    With ``sync`` each file is flushed to disk after its download (``sync FILE``), as our
    engine does before its rename: the durable baseline.
    """
    started = time.perf_counter()
    command = 'curl -s -o "$1" "$2"' + (' && sync "$1"' if sync else "")
    processes = [
        subprocess.Popen(["sh", "-c", command, "sh", str(dest), url])  # noqa: S603, S607
        for dest in dests
    ]
    cpu_s = 0.0
    for process in processes:
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        cpu_s += usage.ru_utime + usage.ru_stime
        if process.returncode != 0:
            raise RuntimeError(f"curl failed with exit code {process.returncode}")
    return time.perf_counter() - started, cpu_s


def run_ours(
    url: str, dests: list[Path], workers: list[subprocess.Popen[str]], *, fsync: bool = True
) -> tuple[float, float]:
    """Give each ready worker one destination at once; return (wall time, CPU s of the work)."""
    started = time.perf_counter()
    for process, dest in zip(workers, dests, strict=False):
        assert process.stdin is not None
        process.stdin.write(f"{url} {dest} {int(fsync)}\n")
        process.stdin.flush()
    cpu_s = 0.0
    for process in workers[: len(dests)]:
        assert process.stdout is not None
        cpu_s += float(json.loads(process.stdout.readline())["cpu_s"])
    return time.perf_counter() - started, cpu_s


def _clean(folder: Path) -> None:
    """Delete a run's files and wait for the disk, so the next run starts from the same state."""
    for path in folder.iterdir():
        path.unlink()
    os.sync()


PAIRS = (("ours-nofsync", "curl"), ("ours", "curl+sync"), ("ours", "curl"))
"""(ours, baseline) pairs whose ratio is reported; the first two compare like with like (the
same durability), the last compares our default with plain curl."""


def measure(
    label: str,
    size: int,
    count: int,
    repeat: int,
    out: Path,
    runners: dict[str, Callable[[list[Path]], tuple[float, float]]],
    *,
    warmup: bool = True,
) -> dict[str, float]:
    """Run every runner ``repeat`` times; return the median per-round ratio of each pair.

    The runners take turns within a round, in reverse order every other round, so a slow
    drift of the host (other tenants of its CPUs and disk) hits both sides of a pair alike;
    each pair's ratio is taken within a round and the median over rounds is reported, with
    its range. With ``warmup`` each timed run follows an untimed run of the same runner (see
    the module docstring). Also prints each runner's median MB/s and CPU seconds per GiB
    (user + system): unlike MB/s, CPU per GiB hardly moves when other processes compete for
    the CPUs, and when the CPUs are the limit (several downloads on 2 vCPUs) throughput
    follows it.
    """
    rates: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners)
    for round_index in range(repeat):
        for name in order if round_index % 2 == 0 else reversed(order):
            dests = [out / f"{name.replace('+', '-')}-{index}.bin" for index in range(count)]
            if warmup:
                runners[name](dests)
                _clean(out)
            elapsed, cpu_s = runners[name](dests)
            for dest in dests:
                if dest.stat().st_size != size:
                    raise RuntimeError(f"{name}: {dest} has {dest.stat().st_size} bytes")
            rates[name].append(count * size / 1e6 / elapsed)
            cpu[name].append(cpu_s / (count * size / (1 << 30)))
            _clean(out)
    print(
        f"{label}: MB/s (median) "
        + ", ".join(f"{name} {statistics.median(rates[name]):.0f}" for name in runners)
    )
    print(
        "    CPU s/GiB (median) "
        + ", ".join(f"{name} {statistics.median(cpu[name]):.2f}" for name in runners)
    )
    print(
        "    runs MB/s "
        + "; ".join(f"{name} " + " ".join(f"{r:.0f}" for r in rates[name]) for name in runners)
    )
    ratios: dict[str, float] = {}
    for ours, baseline in PAIRS:
        per_round = [a / b for a, b in zip(rates[ours], rates[baseline], strict=True)]
        cpu_ratio = statistics.median(cpu[baseline]) / statistics.median(cpu[ours])
        ratios[f"{ours}/{baseline}"] = statistics.median(per_round)
        print(
            f"    {ours}/{baseline}: median of rounds {statistics.median(per_round):.2f} "
            f"(range {min(per_round):.2f}-{max(per_round):.2f}); CPU per GiB "
            f"{baseline}/{ours} {cpu_ratio:.2f}"
        )
    return ratios


def measure_resume(url: str, size: int, out: Path) -> float:
    """Kill a worker at half the file, resume with another; return server bytes / size."""
    base = url.rsplit("/", 1)[0]
    _get(base + "/reset")
    dest = out / "resumed.bin"
    part = dest.with_name(dest.name + ".part")
    first = _start_worker()
    assert first.stdin is not None
    first.stdin.write(f"{url} {dest} 1\n")
    first.stdin.flush()
    while True:
        try:
            if part.stat().st_size >= size // 2:
                break
        except FileNotFoundError:
            pass
        if first.poll() is not None:
            raise RuntimeError("the worker finished before it could be killed; use a bigger file")
        time.sleep(0.002)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = part.stat().st_size
    (dest.with_name(dest.name + ".lock")).unlink(missing_ok=True)
    second = _start_worker()
    run_ours(url, [dest], [second])
    second.stdin.close()  # type: ignore[union-attr]
    second.wait()
    sent = int(_get(base + "/stats")["sent_bytes"])
    if dest.stat().st_size != size:
        raise RuntimeError("the resumed file has the wrong size")
    ratio = sent / size
    print(
        f"resume after kill: killed with .part at {killed_at / size:.0%}; server sent "
        f"{sent / MIB:.1f} MiB for a {size / MIB:.0f} MiB file: total / size {ratio:.3f}"
    )
    _clean(out)
    return ratio


def write_source(path: Path, size: int) -> None:
    """Write ``size`` incompressible bytes (a 16 MiB random block repeated)."""
    block = os.urandom(16 * MIB)
    with path.open("wb") as handle:
        left = size
        while left:
            handle.write(block[: min(left, len(block))])
            left -= min(left, len(block))


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the temporary files")
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="time each run without an untimed run of the same runner just before it",
    )
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.worker:
        worker()
        return
    if shutil.which("curl") is None:
        raise SystemExit("curl is not installed: apt-get install -y curl")
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="bench-download-", dir=args.tmp) as tmp:
        root = Path(tmp)
        source, out = root / "file.bin", root / "out"
        out.mkdir()
        write_source(source, size)
        server = subprocess.Popen(  # noqa: S603 - our own script
            [sys.executable, __file__, "--serve", str(source)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        workers: list[subprocess.Popen[str]] = []
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            workers = [_start_worker() for _ in range(max(1, args.parallel))]
            print(
                f"file {args.size_mib} MiB on {url}; {os.cpu_count()} CPUs; load average "
                f"{os.getloadavg()[0]:.1f}; median of {args.repeat} interleaved runs"
                + ("" if args.warmup else " (no warm-up)")
            )
            runners: dict[str, Callable[[list[Path]], tuple[float, float]]] = {
                "curl": lambda dests: run_curl(url, dests),
                "ours-nofsync": lambda dests: run_ours(url, dests, workers, fsync=False),
                "curl+sync": lambda dests: run_curl(url, dests, sync=True),
                "ours": lambda dests: run_ours(url, dests, workers),
            }
            single = measure(
                "single download", size, 1, args.repeat, out, runners, warmup=args.warmup
            )
            parallel = measure(
                f"{args.parallel} parallel downloads",
                size,
                args.parallel,
                args.repeat,
                out,
                runners,
                warmup=args.warmup,
            )
            resume = measure_resume(url, size, out)
        finally:
            for process in [*workers, server]:
                if process.stdin is not None:
                    process.stdin.close()
                process.wait(timeout=30)
    print("targets, ours >= 0.95 x curl doing the same work (median of per-round ratios):")
    for name, ratios in (("single", single), ("parallel", parallel)):
        for label, ratio in ratios.items():
            if label == "ours/curl":
                note = "for information: ours syncs to disk, plain curl does not"
                print(f"  {name:<9} {label:<18} {ratio:.2f} ({note})")
                continue
            verdict = "met" if ratio >= 0.95 else "NOT met"
            print(f"  {name:<9} {label:<18} {ratio:.2f} (target >= 0.95): {verdict}")
    verdict = "met" if resume <= 1.05 else "NOT met"
    print(f"  resume    total/size {resume:.3f} (target <= 1.05): {verdict}")


if __name__ == "__main__":
    main()
