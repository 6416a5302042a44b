"""The wait_online step without Airflow: OnlineWait against a loopback CDSE, activities in SQLite.

The fallback provider is the demo STAC API; the download that follows is StepRunner's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from include.catalog.static_stac import StaticStacBackend
from include.collectors.base import CatalogDriver
from include.common.config import CatalogConfig
from include.common.storage import archive_dir
from include.radcor.activities import ActivityState, ActivityStore
from include.radcor.conf import TaskType
from include.radcor.context import RunContext
from include.radcor.plan import PlanNode, ScenePlan
from include.radcor.step_runner import StepRunner
from include.radcor.waiting import OnlineWait, preferred_provider, wait_node_id
from tests.helpers.cdse_server import CdseServer
from tests.helpers.offline import (
    DEMO_SCENE,
    FOOTPRINT,
    ZIP,
    cdse_scene,
    download_plan,
    two_providers,
)

RUN = "run-wait"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ActivityStore:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return ActivityStore(f"sqlite:///{tmp_path / 'activities.sqlite'}")


def _wait(
    plan: ScenePlan,
    store: ActivityStore,
    factory: Callable[[str], CatalogDriver],
    catalogs: dict[str, CatalogConfig],
    *,
    try_number: int = 1,
    force: bool = False,
) -> OnlineWait:
    context = RunContext("radcor", RUN, f"radcor/{RUN}/scene.wait_online/0/try{try_number}")
    return OnlineWait(
        plan,
        context,
        store=store,
        driver_factory=factory,
        collections={"S2_L1C-1": two_providers()},
        catalogs=catalogs,
        env={},
        sleep=lambda s: None,
        force=force,
    )


def _rows(store: ActivityStore) -> dict[str, object]:
    return {a.key.node_id: a for a in store.for_run(RUN)}


def test_online_wait_online_scene_succeeds_at_once_recording_nothing(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    catalogs: dict[str, CatalogConfig],
    store: ActivityStore,
) -> None:
    cdse.add_s2_product(DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT)
    start = _wait(download_plan(cdse_scene(factory)), store, factory, catalogs).start()
    assert start.outcome == "online" and not start.is_waiting
    assert store.for_run(RUN) == [] and cdse.orders == []


def test_online_wait_offline_orders_once_records_then_closes_when_online(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    catalogs: dict[str, CatalogConfig],
    store: ActivityStore,
) -> None:
    entity = cdse.add_s2_product(DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT, online=False)
    plan = download_plan(cdse_scene(factory), fallback_online=False, poll_interval_s=15)
    wait = _wait(plan, store, factory, catalogs)
    start = wait.start()
    assert start.is_waiting and start.started_at is not None
    assert start.settings.poll_interval_s == 15
    row = _rows(store)[wait_node_id("0")]
    assert row.status == ActivityState.RUNNING and row.key.task_type == "wait_online"
    assert row.outputs["order"]["order_id"] and row.outputs["order"]["catalog"] == "cdse"
    assert "ordered at cdse" in (row.message or "") and "poll every 15 s" in (row.message or "")
    assert cdse.orders == [entity["Id"]]

    before = len(cdse.requests)
    again = _wait(plan, store, factory, catalogs).start()  # a reschedule of the same try
    assert again.is_waiting and len(cdse.requests) == before

    assert not wait.check().is_online
    assert wait.check().is_online
    assert "online at cdse after" in wait.mark_online()
    row = _rows(store)[wait_node_id("0")]
    assert row.status == ActivityState.SUCCESS and row.outputs["provider"] == "cdse"
    assert row.outputs["order"]["order_id"] and "waited_s" in row.outputs
    assert [h["status"] for h in store.history(row.id)] == ["running", "success"]


def test_online_wait_new_try_orders_again_idempotently(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    catalogs: dict[str, CatalogConfig],
    store: ActivityStore,
) -> None:
    cdse.order_polls = 10
    entity = cdse.add_s2_product(DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT, online=False)
    plan = download_plan(cdse_scene(factory), fallback_online=False)
    first = _wait(plan, store, factory, catalogs).start()
    second = _wait(plan, store, factory, catalogs, try_number=2).start()
    assert first.is_waiting and second.is_waiting
    assert cdse.orders == [entity["Id"], entity["Id"]]  # CDSE answers the same order twice
    assert _rows(store)[wait_node_id("0")].attempts == 2


def test_online_wait_fallback_online_is_recorded_and_download_prefers_it(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    catalogs: dict[str, CatalogConfig],
    store: ActivityStore,
    tmp_path: Path,
) -> None:
    entity = cdse.add_s2_product(DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT, online=False)
    plan = download_plan(cdse_scene(factory))
    start = _wait(plan, store, factory, catalogs).start()
    assert start.outcome == "online" and "online at demo" in start.message
    row = _rows(store)[wait_node_id("0")]
    assert (row.status, row.provider, row.outputs["fallback"]) == (
        ActivityState.SUCCESS,
        "demo",
        True,
    )
    assert cdse.orders == []
    assert preferred_provider(store, RUN, DEMO_SCENE, "0") == "demo"

    cdse.set_online(str(entity["Id"]), True)  # without the preference CDSE would now serve it
    runner = StepRunner(
        plan,
        RunContext("radcor", RUN, "x"),
        store=store,
        backend=StaticStacBackend(tmp_path / "stac"),
        driver_factory=factory,
        collections={"S2_L1C-1": two_providers()},
    )
    outcome = runner.run(TaskType.DOWNLOAD)
    assert not outcome.errors, outcome.errors
    download = _rows(store)["0"]
    assert download.status == ActivityState.SUCCESS and download.provider == "demo"
    assert cdse.requests_to(cdse.value_path(str(entity["Id"]))) == []


def test_online_wait_archive_in_place_or_published_is_skipped(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    catalogs: dict[str, CatalogConfig],
    store: ActivityStore,
) -> None:

    cdse.add_s2_product(DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT, online=False)
    scene = cdse_scene(factory)
    folder = archive_dir("S2_L1C-1", scene.tile, scene.datetime, scene.scene_id)
    folder.mkdir(parents=True)
    (folder / f"{DEMO_SCENE}.zip").write_bytes(ZIP)
    start = _wait(download_plan(scene), store, factory, catalogs).start()
    assert start.outcome == "skipped" and "archive in place" in start.message
    published = ScenePlan(
        scene,
        (
            PlanNode(
                "0", TaskType.DOWNLOAD, "S2_L1C-1", skip_reason="already published in S2_L1C-1"
            ),
        ),
    )
    assert _wait(published, store, factory, catalogs).start().outcome == "skipped"
    no_download = ScenePlan(scene, ())
    assert _wait(no_download, store, factory, catalogs).start().message == (
        "no download node in this conf"
    )
    assert cdse.orders == [] and store.for_run(RUN) == []


def test_online_wait_with_force_waits_for_an_offline_scene_whose_archive_is_in_place(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    catalogs: dict[str, CatalogConfig],
    store: ActivityStore,
) -> None:
    entity = cdse.add_s2_product(DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT, online=False)
    scene = cdse_scene(factory)
    folder = archive_dir("S2_L1C-1", scene.tile, scene.datetime, scene.scene_id)
    folder.mkdir(parents=True)
    (folder / f"{DEMO_SCENE}.zip").write_bytes(ZIP)
    plan = download_plan(scene, fallback_online=False)
    start = _wait(plan, store, factory, catalogs, force=True).start()
    assert start.is_waiting  # force downloads again: the archive in place does not count
    assert cdse.orders == [entity["Id"]]


def test_online_wait_mark_failed_records_the_error(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    catalogs: dict[str, CatalogConfig],
    store: ActivityStore,
) -> None:
    cdse.add_s2_product(DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT, online=False)
    wait = _wait(
        download_plan(cdse_scene(factory), fallback_online=False), store, factory, catalogs
    )
    wait.start()
    wait.mark_failed("still offline after 60 s")
    row = _rows(store)[wait_node_id("0")]
    assert row.status == ActivityState.FAILED and row.error == "still offline after 60 s"
