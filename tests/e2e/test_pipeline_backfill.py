"""A pipeline YAML's DAG backfilled for real: CLI then REST, through a started scheduler.

The demo catalog has one scene on 2020-01-09, one on 2020-01-10 and none on 2020-01-11 (tile
23LLF). A daily pipeline backfilled over those three days must make three runs, each collecting
exactly its own day; reprocessing one day through ``POST /api/v2/backfills`` must leave the
published catalog as it was. A malformed YAML beside it is reported as an import error naming
the file and the field (by ``pipeline_check.py``) while the good pipeline loads and runs.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from include.radcor.activities import ActivityStore
from tests.helpers.airflow_procs import AirflowStack, postgres_ready, running_stack, start_core

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "pipeline_demo_daily"
DAY_SCENES = {
    "2020-01-09": {"S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429"},
    "2020-01-10": {"S2B_MSIL1C_20200110T131239_N0208_R138_T23LLF_20200110T150351"},
    "2020-01-11": set(),
}
PIPELINE = """\
description: Demo tile 23LLF every day (e2e backfill test)
schedule: "@daily"
start_date: 2020-01-01
end_date: 2020-01-31
catchup: false
tags: [demo, e2e]
retries: 2
retry_delay_s: 5
conf:
  tiles: [23LLF]
  catalog: demo
  catalog_args: {{url: "{url}"}}
  dataset: S2MSI1C
  tasks:
    - type: download
      collection: S2_L1C-1
      tasks: [{{type: publish, collection: S2_L1C-1}}]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AirflowStack, Path]]:
    """A started Airflow (LocalExecutor) whose DAGs folder holds the pipeline factory + YAMLs."""
    if not postgres_ready():
        pytest.skip("e2e tests need PostgreSQL on 127.0.0.1:5432 and psql (make test has both)")
    from include.demo.build import build_demo_catalog
    from include.demo.server import serve

    root = tmp_path_factory.mktemp("backfill")
    build_demo_catalog(root / "catalog", scenes=4, size_px=96)
    dags = root / "dags"
    (dags / "pipelines").mkdir(parents=True)
    for name in ("pipelines.py", "pipeline_check.py"):
        shutil.copy(REPO / "dags" / name, dags / name)
    with serve(root / "catalog", port=0) as server:
        (dags / "pipelines" / "demo_daily.yaml").write_text(PIPELINE.format(url=server.url))
        broken = PIPELINE.format(url=server.url).replace(
            "dataset: S2MSI1C", "dataset: S2MSI1C\n  cloud: 150"
        )
        (dags / "pipelines" / "broken.yaml").write_text(broken)
        with running_stack(root / "stack", dags, root / "data") as airflow:
            start_core(airflow)
            airflow.wait_ready()
            airflow.wait_dag(DAG_ID)
            airflow.unpause(DAG_ID)  # end_date is past: unpausing schedules nothing new
            yield airflow, root / "data"


def _runs(airflow: AirflowStack) -> dict[str, dict[str, Any]]:
    assert airflow.client is not None
    runs = airflow.client.get(f"/api/v2/dags/{DAG_ID}/dagRuns", params={"limit": 100}).json()
    return {r["data_interval_start"][:10]: r for r in runs["dag_runs"]}


def _wait_backfills_done(airflow: AirflowStack, timeout_s: float = 180) -> list[dict[str, Any]]:
    assert airflow.client is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        backfills = airflow.client.get("/api/v2/backfills", params={"dag_id": DAG_ID}).json()
        items = backfills["backfills"]
        if items and all(b["completed_at"] for b in items):
            return list(items)
        time.sleep(2)
    raise AssertionError(
        f"backfill not done in {timeout_s} s: {_runs(airflow)}\n{airflow.tail('scheduler')}"
    )


def _items(data_dir: Path) -> dict[str, dict[str, Any]]:
    paths = (data_dir / "stac" / "S2_L1C-1" / "items").glob("*.json")
    return {p.stem: json.loads(p.read_text()) for p in paths}


def _collected(airflow: AirflowStack, run_id: str) -> set[str]:
    store = ActivityStore(airflow.env["COLLECTION_BUILDER_DB_URL"])
    return {a.key.scene_id for a in store.for_run(run_id) if a.key.task_type == "download"}


def test_pipeline_bad_yaml_is_an_import_error_while_the_good_one_loads(
    stack: tuple[AirflowStack, Path],
) -> None:
    airflow, _ = stack
    assert airflow.client is not None
    errors = airflow.client.get("/api/v2/importErrors").json()["import_errors"]
    (error,) = errors
    assert error["filename"] == "pipeline_check.py"
    assert "broken.yaml: conf.cloud:" in error["stack_trace"]
    dag = airflow.client.get(f"/api/v2/dags/{DAG_ID}").json()
    assert dag["has_import_errors"] is False and dag["is_stale"] is False
    assert dag["timetable_summary"] == "0 0 * * *"
    assert "pipeline" in {t["name"] for t in dag["tags"]}


def test_pipeline_backfill_cli_then_rest_collects_each_interval_once(
    stack: tuple[AirflowStack, Path],
) -> None:
    airflow, data_dir = stack
    assert airflow.client is not None
    created = airflow.airflow(
        "backfill",
        "create",
        "--dag-id",
        DAG_ID,
        "--from-date",
        "2020-01-09",
        "--to-date",
        "2020-01-11",
    )
    assert created.returncode == 0, created.stdout + created.stderr
    _wait_backfills_done(airflow)

    runs = _runs(airflow)
    assert set(runs) == set(DAY_SCENES), runs
    for day, run in runs.items():
        assert run["run_type"] == "backfill" and run["state"] == "success", run
        start = datetime.fromisoformat(run["data_interval_start"])
        end = datetime.fromisoformat(run["data_interval_end"])
        assert end - start == timedelta(days=1)
        xcom = airflow.client.get(
            f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/validate/"
            "xcomEntries/return_value"
        ).json()["value"]
        assert datetime.fromisoformat(xcom["start"]) == start
        assert datetime.fromisoformat(xcom["end"]) == end - timedelta(microseconds=1)
        assert _collected(airflow, run["dag_run_id"]) == DAY_SCENES[day], day
    items = _items(data_dir)
    assert set(items) == set().union(*DAY_SCENES.values())
    collection = json.loads((data_dir / "stac" / "S2_L1C-1" / "collection.json").read_text())
    item_links = [link["href"] for link in collection["links"] if link["rel"] == "item"]
    assert len(item_links) == len(set(item_links)) == 2

    rerun_day = "2020-01-10"
    first_end = runs[rerun_day]["end_date"]
    response = airflow.client.post(
        "/api/v2/backfills",
        json={
            "dag_id": DAG_ID,
            "from_date": f"{rerun_day}T00:00:00Z",
            "to_date": f"{rerun_day}T00:00:00Z",
            "reprocess_behavior": "completed",
            "max_active_runs": 1,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["reprocess_behavior"] == "completed"
    _wait_backfills_done(airflow)

    after = _runs(airflow)
    assert set(after) == set(DAY_SCENES)
    rerun = after[rerun_day]
    assert rerun["state"] == "success"
    assert rerun["end_date"] > first_end, "the interval was not run again"
    assert _collected(airflow, rerun["dag_run_id"]) == DAY_SCENES[rerun_day]
    assert _items(data_dir).keys() == items.keys()
    collection = json.loads((data_dir / "stac" / "S2_L1C-1" / "collection.json").read_text())
    assert len([link for link in collection["links"] if link["rel"] == "item"]) == 2
