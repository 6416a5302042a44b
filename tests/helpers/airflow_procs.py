"""Start a real Airflow (api-server, scheduler, dag-processor, Celery workers) for e2e tests.

Used by the pipeline backfill and Celery queue tests. ``running_stack`` creates a throwaway
PostgreSQL database (metadata DB and activities), migrates it, and yields a stack whose DAGs
folder, AIRFLOW_HOME, task logs and DATA_DIR are its own. Every process binds 127.0.0.1 (free
ports), logs to ``<root>/<name>.log`` and is stopped by its own process group id (SIGTERM, then
SIGKILL); the database is dropped at the end.
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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
REPO = Path(__file__).resolve().parents[2]
ADMIN = ("admin", "admin")
PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qAt"]


def postgres_ready() -> bool:
    """Return True when ``psql`` exists and PostgreSQL answers on 127.0.0.1:5432."""
    if shutil.which("psql") is None:
        return False
    done = subprocess.run([*PSQL, "-c", "select 1"], capture_output=True, timeout=10, check=False)
    return done.returncode == 0


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AirflowStack:
    """A started Airflow; ``client`` is an authenticated REST client on its api-server."""

    root: Path
    env: dict[str, str]
    port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    client: httpx.Client | None = None

    @property
    def url(self) -> str:
        """The api-server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, name: str, argv: list[str], extra_env: Mapping[str, str] | None = None) -> None:
        """Start one process (its own session, so it can be stopped as a group)."""
        log = (self.root / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(  # noqa: S603 - fixed argv
            argv,
            env={**self.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.root,
        )
        log.close()

    def log_text(self, name: str) -> str:
        """Return what process ``name`` has logged so far."""
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def airflow(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        """Run an ``airflow`` CLI command with the stack's environment."""
        return subprocess.run(  # noqa: S603 - fixed argv
            [AIRFLOW, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=self.root,
            check=False,
        )

    def wait_ready(self, timeout_s: float = 120) -> httpx.Client:
        """Wait for the api-server, log in as admin and return the REST client."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                token = httpx.post(
                    f"{self.url}/auth/token",
                    json={"username": ADMIN[0], "password": ADMIN[1]},
                    timeout=5,
                )
                if token.status_code in (200, 201):
                    self.client = httpx.Client(
                        base_url=self.url,
                        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                        timeout=30,
                    )
                    return self.client
            except httpx.TransportError:
                pass
            time.sleep(1)
        raise AssertionError(f"api-server not ready in {timeout_s} s:\n{self.tail('api-server')}")

    def wait_dag(self, dag_id: str, timeout_s: float = 90) -> dict[str, Any]:
        """Wait until the dag-processor has registered ``dag_id``; return it from REST."""
        assert self.client is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            response = self.client.get(f"/api/v2/dags/{dag_id}")
            if response.status_code == 200:
                return dict(response.json())
            time.sleep(1)
        errors = self.client.get("/api/v2/importErrors").json()
        raise AssertionError(f"{dag_id} not registered in {timeout_s} s; import errors: {errors}")

    def unpause(self, dag_id: str) -> None:
        """Unpause ``dag_id`` (DAGs start paused; a paused DAG's tasks are never scheduled)."""
        assert self.client is not None
        self.client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Return the run's task instances from REST."""
        assert self.client is not None
        response = self.client.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000}
        )
        response.raise_for_status()
        return list(response.json()["task_instances"])

    def wait_run(self, dag_id: str, run_id: str, timeout_s: float = 150) -> str:
        """Wait until the run ends; return its state."""
        assert self.client is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            run = self.client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
            if run.get("state") in ("success", "failed"):
                return str(run["state"])
            time.sleep(2)
        states = {t["task_id"]: t["state"] for t in self.task_instances(dag_id, run_id)}
        raise AssertionError(
            f"{run_id} not done in {timeout_s} s: {states}\n{self.tail('scheduler')}"
        )

    def tail(self, name: str, lines: int = 40) -> str:
        """Return the last lines of a process log (for assertion messages)."""
        return "\n".join(self.log_text(name).splitlines()[-lines:])

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def stop(self) -> None:
        """Stop every process of the stack by its process group: SIGTERM, SIGKILL after 15 s."""
        if self.client is not None:
            self.client.close()
        for proc in self.procs.values():
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@contextmanager
def running_stack(
    root: Path, dags_folder: Path, data_dir: Path, *, celery: bool = False, **env: str
) -> Iterator[AirflowStack]:
    """Yield a stack (processes not started yet) on its own migrated database; clean up after.

    Args:
        root: the stack's own folder (AIRFLOW_HOME, logs, process logs).
        dags_folder: the DAGs folder the dag-processor parses.
        data_dir: DATA_DIR of the tasks.
        celery: use the CeleryExecutor with the local Redis as broker (keys prefixed with the
            database name, so parallel stacks never share queues) and the stack's PostgreSQL
            database as result backend.
        **env: more environment.
    """
    db = f"cb_e2e_{root.name[:20].lower()}_{os.getpid()}_{int(time.time())}".replace("-", "_")
    subprocess.run([*PSQL, "-c", f'create database "{db}"'], check=True, timeout=60)
    db_url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
    if celery:
        env = {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://postgres@127.0.0.1:5432/{db}",
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": f"{db}:",
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "3600",
            **env,
        }
    stack = _make_stack(root, dags_folder, data_dir, db_url=db_url, **env)
    try:
        migrate = stack.airflow("db", "migrate", timeout_s=300)
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
        # no download pools made here: the plugin's listener makes them as each run starts
        yield stack
    finally:
        stack.stop()
        subprocess.run(
            [*PSQL, "-c", f'drop database if exists "{db}" with (force)'],
            timeout=60,
            check=False,
            capture_output=True,
        )
        if celery:
            _drop_redis_keys(f"{db}:")


def _drop_redis_keys(prefix: str) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _make_stack(
    root: Path, dags_folder: Path, data_dir: Path, *, db_url: str, **env: str
) -> AirflowStack:
    port = free_port()
    home = root / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "simple_auth_manager_passwords.json.generated"
    passwords.write_text(json.dumps({ADMIN[0]: ADMIN[1]}))
    base = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(REPO / "airflow.cfg"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "COLLECTION_BUILDER_DB_URL": db_url,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "collection-builder-e2e-secret",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(root / "task-logs"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "DATA_DIR": str(data_dir),
        "COLLECTION_BUILDER_TOKEN_CACHE_DIR": str(root / "tokens"),  # the stack's own logins
        "PYTHONPATH": os.pathsep.join(
            [str(REPO), str(REPO / "plugins"), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        "NO_PROXY": "127.0.0.1,localhost",
        **env,
    }
    return AirflowStack(root=root, env=base, port=port)


def start_core(stack: AirflowStack) -> None:
    """Start api-server, scheduler and dag-processor (no triggerer: nothing here defers)."""
    stack.start(
        "api-server",
        [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(stack.port), "--workers", "1"],
    )
    stack.start("scheduler", [AIRFLOW, "scheduler", "--skip-serve-logs"])
    stack.start("dag-processor", [AIRFLOW, "dag-processor"])


def start_celery_worker(stack: AirflowStack, queue: str, *, concurrency: int = 2) -> None:
    """Start ``airflow celery worker -q <queue>``, Celery node ``<queue>@<host>``.

    Its task instances record the hostname ``worker-<queue>`` (``[core] hostname_callable``).
    """
    stack.start(
        f"worker-{queue}",
        [
            AIRFLOW,
            "celery",
            "worker",
            "--queues",
            queue,
            "--concurrency",
            str(concurrency),
            "--celery-hostname",
            f"{queue}@%h",
            "--skip-serve-logs",
            "--without-gossip",
            "--without-mingle",
        ],
        extra_env={
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.helpers.worker_name.worker_hostname",
            "CB_WORKER_NAME": f"worker-{queue}",
        },
    )
