"""A started Airflow for the REST plugin's e2e tests (``tests/e2e/conftest.py``).

NOTE: the original version of this file (written by the REST-plugin session) was overwritten by
mistake by the issue #8 session; this is a reconstruction from its callers
(``tests/e2e/conftest.py``, ``tests/e2e/test_radcor_api.py``). Its owner should compare it with
their version and restore theirs if it differs.

``started_stack`` creates a throwaway PostgreSQL database, migrates Airflow into it, builds and
serves the demo catalog, starts api-server, scheduler, dag-processor and triggerer on free
loopback ports (own AIRFLOW_HOME, logs and DATA_DIR), waits for the ``radcor`` DAG and unpauses
it; on exit it stops every process by its process group and drops the database.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
SEARCH_TIMEOUT_S = 8
"""The plugin's synchronous search budget in the stack ($RADCOR_API_SEARCH_TIMEOUT_S)."""
ADMIN = ("admin", "admin")
PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qAt"]


def postgres_ready() -> bool:
    """Return True when ``psql`` exists and PostgreSQL answers on 127.0.0.1:5432."""
    if shutil.which("psql") is None:
        return False
    done = subprocess.run([*PSQL, "-c", "select 1"], capture_output=True, timeout=10, check=False)  # noqa: S603
    return done.returncode == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AirflowStack:
    """The started processes and what tests need to reach them."""

    root: Path
    env: dict[str, str]
    port: int
    catalog_url: str
    demo_root: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    token: str = ""

    @property
    def api(self) -> str:
        """The api-server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def radcor_api(self) -> str:
        """The radcor plugin's base URL."""
        return f"{self.api}/radcor-api"

    def client(self, *, authenticated: bool = True) -> httpx.Client:
        """Return an HTTP client on the api-server (with the admin's token by default)."""
        headers = {"Authorization": f"Bearer {self.token}"} if authenticated else {}
        return httpx.Client(base_url=self.api, headers=headers, timeout=60)

    def wait_for_run(
        self, run_id: str, dag_id: str = "radcor", timeout_s: float = 240
    ) -> dict[str, Any]:
        """Poll the run until it succeeds or fails; return it."""
        deadline = time.monotonic() + timeout_s
        with self.client() as client:
            while time.monotonic() < deadline:
                self._check_alive()
                run = client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
                if run.get("state") in ("success", "failed"):
                    return dict(run)
                time.sleep(2)
        raise AssertionError(f"run {run_id} not finished in {timeout_s} s\n{self.logs()}")

    def logs(self, lines: int = 30) -> str:
        """Return the last lines of every process log (for assertion messages)."""
        parts = []
        for name in self.procs:
            path = self.root / f"{name}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {name}\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts)

    def start(self, name: str, argv: list[str]) -> None:
        """Start one process in its own session, logging to ``<root>/<name>.log``."""
        with (self.root / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(  # noqa: S603 - fixed argv
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.root,
            )

    def stop(self) -> None:
        """SIGTERM every process group, SIGKILL what is left after 20 s."""
        for proc in self.procs.values():
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited ({proc.returncode})\n{self.logs()}")


def _login(stack: AirflowStack, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stack._check_alive()
        with suppress(httpx.TransportError):
            response = httpx.post(f"{stack.api}/auth/token", timeout=5,
                                  json={"username": ADMIN[0], "password": ADMIN[1]})
            if response.status_code in (200, 201):
                stack.token = str(response.json()["access_token"])
                return
        time.sleep(1)
    raise AssertionError(f"api-server not ready in {timeout_s} s\n{stack.logs()}")


def _wait_radcor(stack: AirflowStack, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    with stack.client() as client:
        while time.monotonic() < deadline:
            stack._check_alive()
            if client.get("/api/v2/dags/radcor").status_code == 200:
                client.patch("/api/v2/dags/radcor", json={"is_paused": False}).raise_for_status()
                return
            time.sleep(1)
        errors = client.get("/api/v2/importErrors").json()
    raise AssertionError(f"radcor not registered in {timeout_s} s: {errors}\n{stack.logs()}")


@contextmanager
def started_stack(var_dir: Path) -> Iterator[AirflowStack]:
    """Start the stack under ``var_dir``; stop it and drop its database on exit."""
    from include.demo.build import build_demo_catalog
    from include.demo.server import serve

    db = f"cb_e2e_{os.getpid()}_{int(time.time())}"
    subprocess.run([*PSQL, "-c", f'create database "{db}"'], check=True, timeout=60)  # noqa: S603
    db_url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
    port = _free_port()
    home = var_dir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "simple_auth_manager_passwords.json.generated"
    passwords.write_text(json.dumps({ADMIN[0]: ADMIN[1]}))
    demo_root = var_dir / "demo-catalog"
    build_demo_catalog(demo_root, scenes=4, size_px=96)
    server = serve(demo_root, port=0)
    server.__enter__()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(REPO / "airflow.cfg"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "COLLECTION_BUILDER_DB_URL": db_url,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "collection-builder-e2e-secret",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
        "DATA_DIR": str(var_dir / "data"),
        "RADCOR_API_SEARCH_TIMEOUT_S": str(SEARCH_TIMEOUT_S),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")]),
        "NO_PROXY": "127.0.0.1,localhost",
    }
    stack = AirflowStack(root=var_dir, env=env, port=port, catalog_url=server.url,
                         demo_root=demo_root)
    try:
        migrate = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True,  # noqa: S603
                                 text=True, timeout=300, check=False)
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
        stack.start("api-server", [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port",
                                   str(port), "--workers", "1"])
        stack.start("scheduler", [AIRFLOW, "scheduler", "--skip-serve-logs"])
        stack.start("dag-processor", [AIRFLOW, "dag-processor"])
        stack.start("triggerer", [AIRFLOW, "triggerer", "--skip-serve-logs"])
        _login(stack)
        _wait_radcor(stack)
        yield stack
    finally:
        stack.stop()
        server.__exit__(None, None, None)
        subprocess.run([*PSQL, "-c", f'drop database if exists "{db}" with (force)'],  # noqa: S603
                       timeout=60, check=False)
