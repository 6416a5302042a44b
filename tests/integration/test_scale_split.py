"""A run with more scenes than Airflow maps in one task is split over several mapped groups."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from include.radcor.activities import ActivityStore

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_map_limit_dag(monkeypatch: pytest.MonkeyPatch) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "10")
    monkeypatch.setenv("COLLECTION_BUILDER_SCENE_GROUPS", "4")
    bag = DagBag(dag_folder=str(REPO / "dags" / "radcor.py"))
    assert bag.import_errors == {}
    return bag.dags["radcor"]


@pytest.fixture(scope="module")
def catalog_35(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from include.demo.build import build_demo_catalog
    from include.demo.server import serve

    root = tmp_path_factory.mktemp("catalog-35")
    build_demo_catalog(root, scenes=35, size_px=32)
    with serve(root, port=0) as server:
        yield server.url


def _conf(url: str) -> dict[str, Any]:
    return {
        "w": -45.95, "s": -12.8, "e": -45.7, "n": -12.55,
        "catalog": "demo", "catalog_args": {"url": url}, "dataset": "S2MSI1C",
        "start": "2020-01-01T00:00:00", "end": "2020-12-31T23:59:59",
        "action": "start",
        "tasks": [{"type": "download", "collection": "S2_L1C-1"}],
    }


def test_radcor_35_scenes_with_map_limit_10_runs_each_scene_once(
    small_map_limit_dag: Any, catalog_35: str, data_dir: Path
) -> None:
    run = small_map_limit_dag.test(run_conf=_conf(catalog_35))
    assert str(run.state) == "success"
    tis = run.get_task_instances()
    downloads = [ti for ti in tis if ti.task_id.endswith(".download")]
    per_group = Counter(ti.task_id.split(".")[0] for ti in downloads)
    assert per_group == {"scene": 10, "scene_2": 10, "scene_3": 10, "scene_4": 5}
    assert all(str(ti.state) == "success" for ti in downloads)
    activities = ActivityStore().for_run(run.run_id)
    scenes = Counter(a.key.scene_id for a in activities if a.key.task_type == "download")
    assert len(scenes) == 35 and set(scenes.values()) == {1}
    report = next(ti for ti in tis if ti.task_id == "report")
    assert str(report.state) == "success"


def test_radcor_more_scenes_than_groups_hold_fails_in_search_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, catalog_35: str, data_dir: Path
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "10")
    monkeypatch.setenv("COLLECTION_BUILDER_SCENE_GROUPS", "2")
    dag = DagBag(dag_folder=str(REPO / "dags" / "radcor.py")).dags["radcor"]
    run = dag.test(run_conf=_conf(catalog_35))
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "failed"
    assert states[("search", -1)] == "failed"
    assert not (data_dir / "archive").exists()
