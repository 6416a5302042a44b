"""Start and stop the local Airflow processes and the demo STAC catalog (all bound to 127.0.0.1).

Usage: python scripts/services.py start|stop|status. Environment comes from scripts/env.sh.
Processes are started separately (api-server, scheduler, dag-processor, triggerer) rather than
`airflow standalone`, which opens log servers on 0.0.0.0 (DESIGN 3.1). Each has a PID file and a
log under $VAR_DIR/run; `stop` sends SIGTERM and falls back to SIGKILL.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VAR_DIR = Path(os.environ.get("VAR_DIR", "var")).resolve()
RUN_DIR = VAR_DIR / "run"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
API_PORT = int(os.environ.get("CB_API_PORT", "8080"))
CATALOG_PORT = int(os.environ.get("CB_CATALOG_PORT", "8089"))

PROCESSES: dict[str, list[str]] = {
    "catalog": [
        sys.executable,
        "-m",
        "include.demo.server",
        "--build",
        "--port",
        str(CATALOG_PORT),
        "--root",
        str(Path(os.environ.get("DATA_DIR", VAR_DIR / "data")) / "demo-catalog"),
    ],
    "api-server": [AIRFLOW, "api-server", "--port", str(API_PORT), "--workers", "1"],
    "scheduler": [AIRFLOW, "scheduler", "--skip-serve-logs"],
    "dag-processor": [AIRFLOW, "dag-processor"],
    "triggerer": [AIRFLOW, "triggerer", "--skip-serve-logs"],
}


def _pid_file(name: str) -> Path:
    return RUN_DIR / f"{name}.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running(name: str) -> int | None:
    path = _pid_file(name)
    if not path.exists():
        return None
    pid = int(path.read_text().strip() or 0)
    return pid if pid and _alive(pid) else None


def _wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback only
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {timeout_s:.0f} s; see logs in {RUN_DIR}")


def write_password_file() -> None:
    """Fix the demo login (admin/admin) before the API server first starts."""
    path = Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"admin": os.environ.get("CB_ADMIN_PASSWORD", "admin")}))


def compile_project() -> None:
    """Write the bytecode of the project's modules once, before Airflow starts.

    Every Airflow task process imports the DAG file and, inside the task, the modules it needs.
    Where ``PYTHONDONTWRITEBYTECODE`` is set (as on this machine kind) nothing caches the
    compiled modules, so each task process compiled ``include/`` and ``plugins/`` again: about
    0.1 CPU s per task (bench/dag_overhead.py). Python reads these files even with that
    variable set, and ignores them once a source file changes.
    """
    for folder in ("include", "plugins", "dags"):
        compileall.compile_dir(str(REPO / folder), quiet=1, workers=1)


def start(names: list[str]) -> None:
    """Start the named processes unless already running, then wait until they answer."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    write_password_file()
    compile_project()
    for name in names:
        if _running(name):
            print(f"{name}: already running (pid {_running(name)})")
            continue
        log_path = RUN_DIR / f"{name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(  # noqa: S603 - fixed argv
                PROCESSES[name], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        _pid_file(name).write_text(str(proc.pid))
        print(f"{name}: started (pid {proc.pid}, log {log_path})")
    if "catalog" in names:
        _wait_http(f"http://127.0.0.1:{CATALOG_PORT}/", 60)
    if "api-server" in names:
        _wait_http(f"http://127.0.0.1:{API_PORT}/api/v2/version", 120)


def stop(names: list[str]) -> None:
    """Stop the named processes: SIGTERM to every process group, SIGKILL after 20 s."""
    running = {name: pid for name in names if (pid := _running(name)) is not None}
    for name in names:
        if name not in running:
            _pid_file(name).unlink(missing_ok=True)
    for pid in running.values():
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in running.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    for name, pid in running.items():
        if _alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _pid_file(name).unlink(missing_ok=True)
        print(f"{name}: stopped")


def main() -> None:
    """Parse the command line and act."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("names", nargs="*", default=list(PROCESSES))
    args = parser.parse_args()
    if args.action == "start":
        start(args.names)
    elif args.action == "stop":
        stop(args.names)
    else:
        for name in args.names:
            pid = _running(name)
            print(f"{name}: running (pid {pid})" if pid else f"{name}: stopped")


if __name__ == "__main__":
    main()
