"""Start and stop a real Airflow stack for end-to-end tests (see tests/e2e/conftest.py).

The stack gets its own throwaway PostgreSQL database, folder and free loopback ports, and is
started with ``scripts/prepare_db.sh`` and ``scripts/services.py`` exactly as ``make demo`` does
(api-server, scheduler, dag-processor, triggerer and the demo STAC catalog); on exit it is stopped
the same way and its database dropped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 240
SEARCH_TIMEOUT_S = 5
"""The radcor API's synchronous search budget in this stack (``RADCOR_API_SEARCH_TIMEOUT_S``)."""
ADMIN = ("admin", "admin")
_DROPPED_PREFIXES = ("AIRFLOW__", "AIRFLOW_HOME", "AIRFLOW_CONFIG", "CB_", "COLLECTION_BUILDER_")
_DROPPED = ("VAR_DIR", "DATA_DIR", "REPO_DIR")
"""Inherited settings (``make test`` exports its own) that ``scripts/env.sh`` must recompute."""

SCENES_PER_RUN = 10
"""The stack's ``[collection_builder] scenes_per_run``."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_ready() -> bool:
    """Return True when ``psql`` exists and PostgreSQL listens on 127.0.0.1:5432."""
    if shutil.which("psql") is None:
        return False
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            return True
    except OSError:
        return False


@dataclass
class AirflowStack:
    """A started Airflow: its URLs, folders, environment and an admin token."""

    api: str
    catalog_url: str
    var_dir: Path
    data_dir: Path
    env: dict[str, str]
    token: str

    @property
    def radcor_api(self) -> str:
        """The radcor plugin's base URL."""
        return f"{self.api}/radcor-api"

    @property
    def demo_root(self) -> Path:
        """The demo catalog's folder (``scripts/services.py`` builds it under DATA_DIR)."""
        return self.data_dir / "demo-catalog"

    def client(self, *, authenticated: bool = True) -> httpx.Client:
        """Return an HTTP client on the api-server (with the admin's token by default)."""
        headers = {"Authorization": f"Bearer {self.token}"} if authenticated else {}
        return httpx.Client(base_url=self.api, headers=headers, timeout=60)

    def logs(self, lines: int = 25) -> str:
        """Return the last lines of every service log, for assertion messages."""
        parts = []
        for path in sorted((self.var_dir / "run").glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(parts) + f"\n(task logs under {self.var_dir / 'airflow' / 'logs'})"

    def wait_for_run(
        self, run_id: str, dag_id: str = "radcor", timeout_s: float = 300
    ) -> dict[str, Any]:
        """Poll the run until it succeeds or fails; return it."""
        deadline = time.monotonic() + timeout_s
        with self.client() as client:
            while time.monotonic() < deadline:
                run = client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
                if run.get("state") in ("success", "failed"):
                    return dict(run)
                time.sleep(1)
        raise AssertionError(f"run {run_id} did not finish in {timeout_s:.0f} s\n{self.logs()}")


def _services(env: dict[str, str], action: str) -> subprocess.CompletedProcess[str]:
    prepare = "scripts/prepare_db.sh && " if action == "start" else ""
    script = f"source scripts/env.sh && {prepare}{sys.executable} scripts/services.py {action}"
    return subprocess.run(
        ["bash", "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )


def _token(api: str) -> str:
    response = httpx.post(
        f"{api}/auth/token", timeout=30, json={"username": ADMIN[0], "password": ADMIN[1]}
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def _wait_for_dag(stack: AirflowStack, dag_id: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    with stack.client() as client:
        while time.monotonic() < deadline:
            if client.get(f"/api/v2/dags/{dag_id}").status_code == 200:
                client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
                return
            time.sleep(1)
        errors = client.get("/api/v2/importErrors").json()
    raise AssertionError(
        f"DAG {dag_id} did not appear in {timeout_s:.0f} s; import errors: {errors}\n{stack.logs()}"
    )


@contextmanager
def started_stack(var_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[AirflowStack]:
    """Start Airflow and the demo catalog with their own database under ``var_dir``; stop after.

    ``extra_env`` is added to the services' environment last (a test's config folder, the
    Connections of loopback catalogs).

    Raises:
        AssertionError: when the services do not start or the radcor DAG does not appear.
    """
    api_port, catalog_port = _free_port(), _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_DROPPED_PREFIXES) and key not in _DROPPED
    }
    env.update(
        REPO_DIR=str(REPO),
        CB_PG_DB=f"cb_e2e_{os.getpid()}_{int(time.time())}",
        CB_ADMIN_PASSWORD=ADMIN[1],
        VAR_DIR=str(var_dir),
        DATA_DIR=str(var_dir / "data"),
        COLLECTION_BUILDER_TOKEN_CACHE_DIR=str(var_dir / "tokens"),  # the stack's own logins
        CB_API_PORT=str(api_port),
        CB_CATALOG_PORT=str(catalog_port),
        RADCOR_API_SEARCH_TIMEOUT_S=str(SEARCH_TIMEOUT_S),
        NO_PROXY="127.0.0.1,localhost",
        # runs of more than 10 scenes use child runs (docs/scale.md): e2e tests cover both shapes
        AIRFLOW__COLLECTION_BUILDER__SCENES_PER_RUN=str(SCENES_PER_RUN),
    )
    env.update(extra_env or {})
    api = f"http://127.0.0.1:{api_port}"
    try:
        started = _services(env, "start")
        assert started.returncode == 0, (
            f"services did not start:\n{started.stdout}\n{started.stderr}\nlogs: {var_dir / 'run'}"
        )
        stack = AirflowStack(
            api=api,
            catalog_url=f"http://127.0.0.1:{catalog_port}",
            var_dir=var_dir,
            data_dir=var_dir / "data",
            env=env,
            token=_token(api),
        )
        _wait_for_dag(stack, "radcor")
        yield stack
    finally:
        _services(env, "stop")
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-qc",
                f'drop database if exists "{env["CB_PG_DB"]}" with (force)',
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
