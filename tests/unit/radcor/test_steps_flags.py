"""StepRunner without Airflow: a flagged step (sun too low) succeeds and its subtree is skipped.

Real HTTP to the demo STAC API, real toa processing, activities in SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.catalog.static_stac import StaticStacBackend
from include.collectors.registry import make_driver
from include.demo.build import build_demo_catalog
from include.demo.server import DemoStacServer, serve
from include.radcor.activities import ActivityStore
from include.radcor.conf import TaskType
from include.radcor.context import RunContext
from include.radcor.plan import plan_scene
from include.radcor.search import search_scenes
from include.radcor.step_runner import StepRunner
from include.radcor.validation import validate_request


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStacServer]:
    root = tmp_path_factory.mktemp("demo")
    build_demo_catalog(root, scenes=1, size_px=64, product_metadata=True)
    with serve(root, port=0) as running:
        yield running


def _conf(url: str, min_sun_elevation_deg: float) -> dict[str, Any]:
    return {
        "tiles": ["23LLF"], "catalog": "demo", "catalog_args": {"url": url},
        "dataset": "S2MSI1C", "start": "2020-01-01", "end": "2020-01-31", "action": "start",
        "tasks": [
            {"type": "download", "collection": "S2_L1C-1", "tasks": [
                {"type": "correction", "collection": "S2_TOA-1",
                 "args": {"min_sun_elevation_deg": min_sun_elevation_deg}, "tasks": [
                    {"type": "post", "collection": "S2_TOA-1", "tasks": [
                        {"type": "publish", "collection": "S2_TOA-1"}]}]}]}],
    }  # fmt: skip


def _run_all(server: DemoStacServer, tmp_path: Path, min_sun: float) -> dict[str, Any]:
    conf = validate_request(_conf(server.url, min_sun))
    driver = make_driver("demo", catalog_args={"url": server.url})
    with driver:
        scenes = search_scenes(conf, driver)
    assert len(scenes) == 1
    backend = StaticStacBackend(tmp_path / "stac")
    plan = plan_scene(conf, scenes[0], is_published=backend.exists)
    store = ActivityStore(f"sqlite:///{tmp_path / 'activities.sqlite'}")
    context = RunContext(dag_id="radcor", run_id="run-1")
    for task_type in (TaskType.DOWNLOAD, TaskType.CORRECTION, TaskType.POST, TaskType.PUBLISH):
        runner = StepRunner(
            plan,
            context,
            store=store,
            backend=backend,
            driver_factory=lambda name: make_driver(name, catalog_args={"url": server.url}),
        )
        outcome = runner.run(task_type)
        assert not outcome.errors, outcome.errors
    return {a.key.task_type: a for a in store.for_run("run-1")}


def test_step_runner_flagged_correction_succeeds_and_skips_its_subtree(
    server: DemoStacServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    activities = _run_all(server, tmp_path, min_sun=70.0)  # the demo sun is at 63.8 degrees
    correction = activities["correction"]
    assert str(correction.status) == "success"
    assert correction.outputs["metadata"]["flags"] == ["sun_too_low"]
    assert correction.message == "flagged: sun_too_low"
    for task_type in ("post", "publish"):
        assert str(activities[task_type].status) == "skipped"
        assert "flagged sun_too_low" in (activities[task_type].message or "")


def test_step_runner_unflagged_chain_publishes_with_recomputed_cloud_cover(
    server: DemoStacServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    activities = _run_all(server, tmp_path, min_sun=5.0)
    assert {k: str(a.status) for k, a in activities.items()} == {
        "download": "success", "correction": "success", "post": "success", "publish": "success",
    }  # fmt: skip
    item_id = activities["publish"].outputs["item_id"]
    item = StaticStacBackend(tmp_path / "stac").get("S2_TOA-1", item_id)
    assert item is not None
    assert (
        item["properties"]["eo:cloud_cover"]
        == (activities["post"].outputs["metadata"]["cloud_cover"])
    )
