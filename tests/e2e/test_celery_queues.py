"""A radcor run through the CeleryExecutor and two workers, one per queue.

Broker: the machine's Redis (keys prefixed per stack); result backend: the stack's PostgreSQL
database (``db+postgresql://``). Worker ``download`` serves only queue ``download``, worker
``processing`` only ``processing``; each task instance records which worker ran it (its
``hostname``), so the test reads from the metadata DB, through REST, who ran what.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from include.demo.server import DemoStacHandler
from tests.helpers.airflow_procs import (
    AirflowStack,
    postgres_ready,
    running_stack,
    start_celery_worker,
    start_core,
)

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
SCENES = {
    "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429",
    "S2B_MSIL1C_20200110T131239_N0208_R138_T23LLF_20200110T150351",
}


def _redis_ready() -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2).ping())
    except redis.RedisError:
        return False


class _SlowFiles(DemoStacHandler):
    """The demo catalog, answering file downloads after ``delay`` seconds (0: at once)."""

    delay = 0.0

    def do_GET(self) -> None:
        if self.path.startswith("/files/"):
            time.sleep(self.delay)
        super().do_GET()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AirflowStack, str]]:
    """A started Airflow on Celery with one worker per queue; yields (stack, catalog url)."""
    if not postgres_ready() or not _redis_ready():
        pytest.skip("needs PostgreSQL on 127.0.0.1:5432 (psql) and Redis on 127.0.0.1:6379")
    from include.demo.build import build_demo_catalog
    from include.demo.server import DemoStacServer

    root = tmp_path_factory.mktemp("celery")
    build_demo_catalog(root / "catalog", scenes=4, size_px=96)
    dags = root / "dags"
    dags.mkdir()
    shutil.copy(REPO / "dags" / "radcor.py", dags / "radcor.py")
    server = DemoStacServer(root / "catalog", port=0)
    server.RequestHandlerClass = _SlowFiles
    with server.start(), running_stack(root / "stack", dags, root / "data", celery=True) as airflow:
        start_core(airflow)
        start_celery_worker(airflow, "download")
        start_celery_worker(airflow, "processing")
        airflow.wait_ready()
        airflow.wait_dag("radcor")
        airflow.unpause("radcor")
        yield airflow, server.url


def test_celery_run_sends_downloads_to_download_worker_and_the_rest_to_processing(
    stack: tuple[AirflowStack, str],
) -> None:
    airflow, catalog_url = stack
    assert airflow.client is not None
    conf = json.loads((REPO / "examples" / "demo_conf.json").read_text())
    conf.update(catalog_args={"url": catalog_url}, start="2020-01-09", end="2020-01-10")
    response = airflow.client.post(
        "/api/v2/dags/radcor/dagRuns", json={"logical_date": None, "conf": conf}
    )
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    assert airflow.wait_run("radcor", run_id) == "success", airflow.tail(
        "worker-download"
    ) + airflow.tail("worker-processing")

    ran = [t for t in airflow.task_instances("radcor", run_id) if t["hostname"]]
    network = ("download_demo", "wait_online")  # the download step and the wait for online scenes
    workers: dict[str, set[tuple[str, str]]] = {"download": set(), "processing": set()}
    for ti in ran:
        side = "download" if ti["task_id"].split(".")[-1] in network else "processing"
        workers[side].add((ti["queue"], ti["hostname"]))
    assert workers == {
        "download": {("download", "worker-download")},
        "processing": {("processing", "worker-processing")},
    }
    assert {"validate", "search", "scene.download_demo", "scene.publish", "report"} <= {
        t["task_id"] for t in ran
    }
    downloads = [t for t in ran if t["task_id"] == "scene.download_demo"]
    assert {t["rendered_map_index"] for t in downloads} == SCENES
    assert all(t["state"] == "success" for t in downloads)
    # the demo provider's own pool, which the plugin's listener made as the run started
    assert {t["pool"] for t in downloads} == {"download_demo"}
    pool = airflow.client.get("/api/v2/pools/download_demo")
    assert pool.status_code == 200, pool.text
    assert pool.json()["slots"] == 4

    # every try went through Celery: one SUCCESS row each in the PostgreSQL result backend
    # (a worker stores the last result just after the run ends: wait a little for it)
    tries = {(t["task_id"], t["map_index"]): t["try_number"] for t in ran}
    engine = sa.create_engine(airflow.env["COLLECTION_BUILDER_DB_URL"])
    try:
        deadline = time.monotonic() + 20
        while True:
            with engine.connect() as connection:
                done = connection.execute(
                    sa.text("select count(*) from celery_taskmeta where status = 'SUCCESS'")
                ).scalar_one()
            if done >= sum(tries.values()) or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        engine.dispose()
    assert done == sum(tries.values()), tries
    assert "received" in airflow.log_text("worker-download")
    items = (airflow.root.parent / "data" / "stac" / "S2_L1C-1" / "items").glob("*.json")
    assert {p.stem for p in items} == SCENES


def _resize(airflow: AirflowStack, pool: str, slots: int) -> Any:
    """Set a pool's size through REST, as the UI's Admin -> Pools does (making it if missing)."""
    assert airflow.client is not None
    body = {"pool": pool, "slots": slots, "include_deferred": False}
    response = airflow.client.patch(
        f"/api/v2/pools/{pool}", params={"update_mask": "slots"}, json=body
    )
    if response.status_code == 404:  # this test runs alone: no run has made the pool yet
        response = airflow.client.post("/api/v2/pools", json=body)
    return response


def test_a_provider_pool_of_one_slot_runs_its_downloads_one_at_a_time(
    stack: tuple[AirflowStack, str],
) -> None:
    from datetime import datetime

    airflow, catalog_url = stack
    assert airflow.client is not None
    # the download worker takes 2 tasks at once; the provider's pool, resized as in the UI, 1
    resized = _resize(airflow, "download_demo", 1)
    assert resized.status_code in (200, 201), resized.text
    _SlowFiles.delay = 1.5  # long enough that two downloads in two slots would overlap
    try:
        conf = {
            "w": -45.95,
            "s": -12.8,
            "e": -45.7,
            "n": -12.55,
            "catalog": "demo",
            "catalog_args": {"url": catalog_url},
            "dataset": "S2MSI1C",
            "start": "2020-01-01",
            "end": "2020-12-31",
            "action": "start",
            "force": True,
            "tasks": [{"type": "download", "collection": "S2_L1C-1", "args": {}}],
        }
        response = airflow.client.post(
            "/api/v2/dags/radcor/dagRuns", json={"logical_date": None, "conf": conf}
        )
        assert response.status_code == 200, response.text
        run_id = response.json()["dag_run_id"]
        assert airflow.wait_run("radcor", run_id) == "success", airflow.tail("worker-download")
        downloads = sorted(
            (datetime.fromisoformat(t["start_date"]), datetime.fromisoformat(t["end_date"]))
            for t in airflow.task_instances("radcor", run_id)
            if t["task_id"] == "scene.download_demo"
        )
        assert len(downloads) == 4
        for (_, ended), (started, _) in zip(downloads, downloads[1:], strict=False):
            assert started >= ended, downloads  # never two at once
        # the run's start left the size alone: the listener only makes missing pools
        assert airflow.client.get("/api/v2/pools/download_demo").json()["slots"] == 1
    finally:
        _SlowFiles.delay = 0.0
        _resize(airflow, "download_demo", 4)
