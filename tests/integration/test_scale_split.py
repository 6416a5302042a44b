"""A run with more scenes than child runs can hold fails in ``search``, before any work.

The split itself (35 scenes in child runs of 10) needs a scheduler and a triggerer:
tests/e2e/test_scale_child_runs.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers.demo_confs import year_download_conf

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def catalog_35(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from include.demo.build import build_demo_catalog
    from include.demo.server import serve

    root = tmp_path_factory.mktemp("catalog-35")
    build_demo_catalog(root, scenes=35, size_px=32)
    with serve(root, port=0) as server:
        yield server.url


def test_radcor_more_scenes_than_child_runs_hold_fails_in_search_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
    catalog_35: str,
    data_dir: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "5")  # 5 child runs of 5: 25 < 35
    monkeypatch.setenv("AIRFLOW__COLLECTION_BUILDER__SCENES_PER_RUN", "10")  # at most 5
    dag = DagBag(dag_folder=str(REPO / "dags" / "radcor.py")).dags["radcor"]
    run = dag.test(run_conf=year_download_conf(catalog_35))
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "failed"
    assert states[("search", -1)] == "failed"
    output = "".join(capfd.readouterr())
    assert "35 scenes exceed the 25 one run can hold (5 child runs x 5 scenes)" in output
    assert "raise [collection_builder] scenes_per_run" in output
    assert not (data_dir / "archive").exists()


def test_radcor_start_run_with_a_stored_preview_stores_its_plans_too(
    monkeypatch: pytest.MonkeyPatch, catalog_35: str, data_dir: Path
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from include.radcor import preview as preview_module
    from include.radcor.run_scenes import RunScenes

    # a preview of more than INLINE_PREVIEW_SCENES (1,000) goes to the run-scenes table, as the
    # plans do: both for the same run and indexes (a start run of 10,000 scenes failed so)
    monkeypatch.setattr(preview_module, "INLINE_PREVIEW_SCENES", 10)
    dag = DagBag(dag_folder=str(REPO / "dags" / "radcor.py")).dags["radcor"]
    run = dag.test(run_conf=year_download_conf(catalog_35))
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    preview = run.get_task_instance("search").xcom_pull(task_ids="search", key="preview")
    assert preview["Results"] == 35 and preview["table"] == "radcor_run_scenes"
    assert RunScenes().count(run.run_id, "preview") == RunScenes().count(run.run_id, "plan") == 35
    downloads = [s for (task_id, _), s in states.items() if task_id == "scene.download_demo"]
    assert downloads == ["success"] * 35
