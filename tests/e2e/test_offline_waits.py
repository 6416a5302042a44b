"""Offline scenes through a started Airflow: a reschedule sensor and a deferrable trigger.

Two runs at once against the loopback CDSE (tests/helpers/cdse_server), each for one scene in the
long-term archive; the server puts a product online on the 2nd availability read after its order.
Run R waits in ``reschedule`` mode: its ``wait_online`` task is seen ``up_for_reschedule`` (the
scheduler's ``task_reschedule`` table has its row) while no pool slot is running it. Run D waits in
``deferrable`` mode: its task is seen ``deferred`` with a ``SceneOnlineTrigger`` row run by the
triggerer. Both then download and succeed; each scene was ordered once. Polls every 10 s (DESIGN
3.1: shorter waits can hit Airflow bug 71172 under LocalExecutor); the module takes about a minute
once the stack is up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from include.radcor.activities import ActivityStore
from tests.helpers.airflow_stack import AirflowStack
from tests.helpers.cdse_server import CdseServer
from tests.helpers.offline import DEMO_SCENE, FOOTPRINT, ONLY_CDSE, ZIP

POLL_S = 10
TI = "/api/v2/dags/radcor/dagRuns/{run}/taskInstances/scene.wait_online/0"


@pytest.fixture(scope="module")
def cdse(airflow_stack: AirflowStack) -> Iterator[CdseServer]:
    server = CdseServer(order_polls=2)
    with airflow_stack.client() as client:
        client.delete("/api/v2/connections/cdse_default")
        created = client.post(
            "/api/v2/connections",
            json={
                "connection_id": "cdse_default",
                "conn_type": "http",
                "login": "alice",
                "password": "s3cret",
            },
        )
        assert created.status_code in (200, 201), created.text
    try:
        yield server
    finally:
        server.close()


def _trigger(stack: AirflowStack, server: CdseServer, scene_id: str, mode: str) -> str:
    conf = {
        "scenes": [scene_id],
        "catalog": "CDSE",
        "dataset": "S2MSI1C",
        "action": "start",
        "catalog_args": {"url": server.odata_url, "token_url": server.token_url},
        "tasks": [
            {
                "type": "download",
                "collection": "S2_L1C-1",
                "args": {
                    "wait_mode": mode,
                    "poll_interval_s": POLL_S,
                    "wait_timeout_s": 600,
                    "fallback_online": False,
                },
            }
        ],
    }
    with stack.client() as client:
        response = client.post(
            "/api/v2/dags/radcor/dagRuns", json={"logical_date": None, "conf": conf}
        )
    assert response.status_code == 200, response.text
    return str(response.json()["dag_run_id"])


def _watch(stack: AirflowStack, runs: dict[str, str], timeout_s: float = 180) -> dict[str, Any]:
    """Poll both wait_online tasks and the default pool until both runs end."""
    seen: dict[str, list[str]] = {name: [] for name in runs}
    idle_while_rescheduled: list[int] = []
    triggers: set[str] = set()
    deadline = time.monotonic() + timeout_s
    finished: dict[str, str] = {}
    with stack.client() as client:
        while time.monotonic() < deadline and len(finished) < len(runs):
            for name, run_id in runs.items():
                ti = client.get(TI.format(run=run_id))
                if ti.status_code == 200:
                    body = ti.json()
                    state = str(body.get("state"))
                    if not seen[name] or seen[name][-1] != state:
                        seen[name].append(state)
                    if body.get("trigger"):
                        triggers.add(body["trigger"]["classpath"])
                    if name == "reschedule" and state == "up_for_reschedule":
                        pool = client.get("/api/v2/pools/default_pool").json()
                        idle_while_rescheduled.append(int(pool["running_slots"]))
                run = client.get(f"/api/v2/dags/radcor/dagRuns/{run_id}").json()
                if run.get("state") in ("success", "failed"):
                    finished[name] = str(run["state"])
            time.sleep(0.5)
    assert len(finished) == len(runs), f"runs not finished: {seen}\n{stack.logs()}"
    return {
        "states": seen,
        "finished": finished,
        "idle": idle_while_rescheduled,
        "triggers": triggers,
    }


def _db_url(stack: AirflowStack) -> str:
    """The stack's database (metadata and activities; scripts/env.sh names it after CB_PG_DB)."""
    return stack.env.get("CB_PG_URL") or (
        f"postgresql+psycopg2://postgres@127.0.0.1:5432/{stack.env['CB_PG_DB']}"
    )


def _reschedule_rows(stack: AirflowStack, run_id: str) -> int:
    engine = sa.create_engine(_db_url(stack))
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "select count(*) from task_reschedule r "
                        "join task_instance t on t.id = r.ti_id "
                        "where t.run_id = :run and t.task_id = 'scene.wait_online'"
                    ),
                    {"run": run_id},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_offline_scenes_wait_in_reschedule_and_deferrable_modes_then_download(
    airflow_stack: AirflowStack,
    cdse: CdseServer,
) -> None:
    rescheduled_id = cdse.add_s2_product(
        DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT, online=False
    )["Id"]
    deferred_id = cdse.add_s2_product(ONLY_CDSE + ".SAFE", ZIP, footprint=FOOTPRINT, online=False)[
        "Id"
    ]
    runs = {
        "reschedule": _trigger(airflow_stack, cdse, DEMO_SCENE, "reschedule"),
        "deferrable": _trigger(airflow_stack, cdse, ONLY_CDSE, "deferrable"),
    }
    started = time.monotonic()
    watched = _watch(airflow_stack, runs)
    elapsed_s = time.monotonic() - started

    assert watched["finished"] == {"reschedule": "success", "deferrable": "success"}, (
        watched,
        airflow_stack.logs(),
    )
    assert "up_for_reschedule" in watched["states"]["reschedule"], watched
    assert "deferred" not in watched["states"]["reschedule"]
    assert 0 in watched["idle"], watched  # waiting, and no task running in the pool
    assert _reschedule_rows(airflow_stack, runs["reschedule"]) >= 1
    assert "deferred" in watched["states"]["deferrable"], watched
    assert "up_for_reschedule" not in watched["states"]["deferrable"]
    assert watched["triggers"] == {"radcor_api.triggers.SceneOnlineTrigger"}
    assert sorted(cdse.orders) == sorted([rescheduled_id, deferred_id])  # each ordered once
    assert elapsed_s >= POLL_S  # both really waited a poll interval

    store = ActivityStore(_db_url(airflow_stack))
    for run_id in runs.values():
        acts = {a.key.task_type: a for a in store.for_run(run_id)}
        assert str(acts["wait_online"].status) == "success", acts
        assert acts["wait_online"].outputs["order"]["order_id"]
        assert str(acts["download"].status) == "success"
    for scene_id in (DEMO_SCENE, ONLY_CDSE):
        archive = (
            airflow_stack.data_dir
            / "archive"
            / "S2_L1C-1"
            / "23LLF"
            / "2020"
            / "01"
            / scene_id
            / f"{scene_id}.zip"
        )
        assert archive.read_bytes() == ZIP
