"""Real `dag.test()` runs of the radcor DAG on PostgreSQL against the demo STAC API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from include.radcor.activities import ActivityStore
from tests.helpers.dag_runs import task_states


def _conf(catalog_url: str, **overrides: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "w": -45.95,
        "s": -12.8,
        "e": -45.7,
        "n": -12.55,
        "catalog": "demo",
        "catalog_args": {"url": catalog_url},
        "dataset": "S2MSI1C",
        "start": "2020-01-01T00:00:00",
        "end": "2020-12-31T23:59:59",
        "cloud": 100,
        "action": "start",
        "force": False,
        "tasks": [
            {
                "type": "download",
                "collection": "S2_L1C-1",
                "args": {},
                "tasks": [{"type": "publish", "collection": "S2_L1C-1", "args": {}}],
            }
        ],
    }
    conf.update(overrides)
    return conf


def _items(data_dir: Path) -> dict[str, dict[str, Any]]:
    paths = (data_dir / "stac" / "S2_L1C-1" / "items").glob("*.json")
    return {p.stem: json.loads(p.read_text()) for p in paths}


def test_radcor_run_publishes_every_scene_and_rerun_publishes_nothing_twice(
    radcor_dag: Any, demo_catalog: tuple[str, Path], data_dir: Path
) -> None:
    url, _ = demo_catalog
    first = radcor_dag.test(run_conf=_conf(url))
    assert str(first.state) == "success", task_states(first)
    items = _items(data_dir)
    assert len(items) == 4
    for item in items.values():
        for asset in item["assets"].values():
            assert Path(asset["href"]).exists() or not asset["href"].startswith("/")
    activities = ActivityStore().for_run(first.run_id)
    assert {a.status for a in activities} == {"success"}
    assert {a.key.task_type for a in activities} == {"download", "publish"}

    second = radcor_dag.test(run_conf=_conf(url))
    assert str(second.state) == "success", task_states(second)
    assert _items(data_dir).keys() == items.keys()
    rerun = ActivityStore().for_run(second.run_id)
    assert {a.status for a in rerun} == {"skipped"}


def test_steps_the_conf_does_not_ask_for_are_skipped_without_running(
    radcor_dag: Any, demo_catalog: tuple[str, Path], data_dir: Path
) -> None:
    url, _ = demo_catalog
    run = radcor_dag.test(run_conf=_conf(url))  # download and publish
    assert str(run.state) == "success", task_states(run)
    scene_tis = [ti for ti in run.get_task_instances() if ti.task_id.startswith("scene.")]
    by_step: dict[str, list[Any]] = {}
    for ti in scene_tis:
        by_step.setdefault(ti.task_id.split(".", 1)[1], []).append(ti)
    for step in ("wait_online", "download_demo", "publish"):
        assert {(str(ti.state), ti.try_number) for ti in by_step[step]} == {("success", 1)}
    assert {ti.pool for ti in by_step["download_demo"]} == {"download_demo"}
    other_providers = (
        "download_cdse",
        "download_usgs",
        "download_earthsearch",
        "download_planetarycomputer",
    )
    for step in ("correction", "harmonization", "post", *other_providers):
        # skipped by the scheduler on search's word: never queued, so no try and no process
        assert {(str(ti.state), ti.try_number) for ti in by_step[step]} == {("skipped", 0)}
        assert len(by_step[step]) == 1  # skipped before expansion: one instance, not one a scene
    assert len(by_step["publish"]) == 4


def test_radcor_one_failing_scene_fails_only_itself_and_the_run(
    radcor_dag: Any, demo_catalog: tuple[str, Path], data_dir: Path, tmp_path: Path
) -> None:
    url, root = demo_catalog
    band_files = sorted(root.glob("files/*/B04.tif"))
    broken = band_files[0]
    hidden = tmp_path / "hidden.tif"
    broken.rename(hidden)
    try:
        run = radcor_dag.test(run_conf=_conf(url))
    finally:
        hidden.rename(broken)
    assert str(run.state) == "failed"
    broken_scene = broken.parent.name
    activities = ActivityStore().for_run(run.run_id)
    by_scene: dict[str, set[str]] = {}
    for activity in activities:
        by_scene.setdefault(activity.key.scene_id, set()).add(str(activity.status))
    assert by_scene.pop(broken_scene) == {"failed", "upstream_failed"}
    assert all(states == {"success"} for states in by_scene.values())
    assert broken_scene not in _items(data_dir)
    assert len(_items(data_dir)) == 3
    assert task_states(run)[("report", -1)] == "failed"


def test_radcor_preview_lists_scenes_and_does_no_work(
    radcor_dag: Any, demo_catalog: tuple[str, Path], data_dir: Path
) -> None:
    url, _ = demo_catalog
    run = radcor_dag.test(run_conf=_conf(url, action="preview"))
    assert str(run.state) == "success", task_states(run)
    report = run.get_task_instance("report")
    assert str(report.state) == "success"
    assert not (data_dir / "archive").exists()
    assert ActivityStore().for_run(run.run_id) == []


def test_radcor_invalid_conf_fails_in_validate_before_any_work(
    radcor_dag: Any, demo_catalog: tuple[str, Path], data_dir: Path
) -> None:
    url, _ = demo_catalog
    conf = _conf(url, tiles=["23LLF"], tasks=[{"type": "download", "collection": "S2_XX-1"}])
    run = radcor_dag.test(run_conf=conf)
    states = task_states(run)
    assert str(run.state) == "failed"
    assert states[("validate", -1)] == "failed"
    assert states[("search", -1)] == "upstream_failed"
    assert not (data_dir / "archive").exists()
    assert ActivityStore().for_run(run.run_id) == []


def test_radcor_param_violation_is_refused_at_trigger(
    radcor_dag: Any, demo_catalog: tuple[str, Path]
) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    url, _ = demo_catalog
    with pytest.raises(ParamValidationError):
        radcor_dag.test(run_conf=_conf(url, cloud=250))
