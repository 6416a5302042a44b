"""Activity listings: filters, pagination, scene facts, and the task instance string format."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from include.collectors.base import Scene
from include.radcor.activities import (
    ActivityKey,
    ActivityQuery,
    ActivityState,
    ActivityStore,
    parse_task_instance,
)

SCENE_IDS = (
    "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429",
    "S2B_MSIL1C_20200114T132229_N0208_R038_T23LLF_20200114T150103",
)
FOOTPRINT = {"type": "Polygon", "coordinates": [[[-46, -13], [-45, -13], [-45, -12], [-46, -13]]]}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> ActivityStore:
    if request.param == "sqlite":
        return ActivityStore(f"sqlite:///{tmp_path / 'activities.sqlite'}")
    url = os.environ.get("COLLECTION_BUILDER_DB_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("COLLECTION_BUILDER_DB_URL is not PostgreSQL (make test sets it)")
    return ActivityStore(url)


def _scene(scene_id: str, day: int) -> Scene:
    return Scene(
        scene_id=scene_id,
        catalog="demo",
        dataset="S2MSI1C",
        datetime=datetime(2020, 1, day, 13, 22, 31, tzinfo=UTC),
        cloud_pct=10.0,
        tile="23LLF",
        footprint=FOOTPRINT,
    )


def _key(run_id: str, scene_id: str, node_id: str, task_type: str) -> ActivityKey:
    return ActivityKey("radcor", run_id, scene_id, node_id, task_type, "S2_L1C-1")


def _fill(store: ActivityStore) -> str:
    """Two scenes x (download 0, publish 0.0); the second scene's download failed."""
    run_id = f"run-{uuid.uuid4()}"
    for index, (scene_id, day) in enumerate(zip(SCENE_IDS, (9, 14), strict=True)):
        store.describe_scene(run_id, _scene(scene_id, day))
        store.describe_scene(run_id, _scene(scene_id, day))  # every step calls it: one row
        ti = f"radcor/{run_id}/scene.download_demo/{index}/try1"
        failed = index == 1
        store.record(
            _key(run_id, scene_id, "0", "download"),
            ActivityState.FAILED if failed else ActivityState.SUCCESS,
            task_instance=ti,
        )
        store.record(
            _key(run_id, scene_id, "0.0", "publish"),
            ActivityState.UPSTREAM_FAILED if failed else ActivityState.SUCCESS,
            task_instance=f"radcor/{run_id}/scene.publish/{index}/try1",
        )
    return run_id


def test_query_by_run_returns_every_activity_with_scene_facts(store: ActivityStore) -> None:
    run_id = _fill(store)
    page = store.query(ActivityQuery(run_id=run_id))
    assert page.total == 4
    assert {a.key.scene_id for a in page.activities} == set(SCENE_IDS)
    facts = page.activities[0].scene
    assert facts is not None and facts.tile == "23LLF" and facts.footprint == FOOTPRINT
    assert facts.acquired_at is not None and facts.acquired_at.tzinfo is not None
    assert page.activities[0].to_dict()["scene"]["date"].startswith("2020-01-")


def test_query_filters_combine_and_count_all_matches(store: ActivityStore) -> None:
    run_id = _fill(store)
    failed = store.query(ActivityQuery(run_id=run_id, statuses=("failed", "upstream_failed")))
    assert {(a.key.task_type, str(a.status)) for a in failed.activities} == {
        ("download", "failed"),
        ("publish", "upstream_failed"),
    }
    published = store.query(
        ActivityQuery(run_id=run_id, task_type="publish", statuses=("success",))
    )
    assert [a.key.scene_id for a in published.activities] == [SCENE_IDS[0]]
    assert store.query(ActivityQuery(run_id=run_id, collection="nope")).total == 0
    assert store.query(ActivityQuery(run_id=run_id, dag_ids=frozenset())).total == 0
    assert store.query(ActivityQuery(run_id=run_id, dag_ids=frozenset({"radcor"}))).total == 4


def test_query_date_range_bounds_the_scene_acquisition(store: ActivityStore) -> None:
    run_id = _fill(store)
    early = store.query(ActivityQuery(run_id=run_id, end=datetime(2020, 1, 10, tzinfo=UTC)))
    assert {a.key.scene_id for a in early.activities} == {SCENE_IDS[0]}
    late = store.query(ActivityQuery(run_id=run_id, start=datetime(2020, 1, 10, tzinfo=UTC)))
    assert {a.key.scene_id for a in late.activities} == {SCENE_IDS[1]}
    now = datetime.now(UTC)
    recent = store.query(ActivityQuery(run_id=run_id, since=now - timedelta(hours=1)))
    assert recent.total == 4
    assert store.query(ActivityQuery(run_id=run_id, until=now - timedelta(hours=1))).total == 0


def test_query_pages_newest_first_without_overlap(store: ActivityStore) -> None:
    run_id = _fill(store)
    first = store.query(ActivityQuery(run_id=run_id), limit=3)
    second = store.query(ActivityQuery(run_id=run_id), limit=3, offset=3)
    assert (first.total, len(first.activities), len(second.activities)) == (4, 3, 1)
    ids = [a.id for a in first.activities + second.activities]
    assert len(set(ids)) == 4
    stamps = [a.updated_at for a in first.activities + second.activities]
    assert stamps == sorted(stamps, reverse=True)


def test_query_by_ids_and_empty_query_detection(store: ActivityStore) -> None:
    run_id = _fill(store)
    some = store.query(ActivityQuery(run_id=run_id), limit=2).activities
    by_ids = store.query(ActivityQuery(ids=tuple(a.id for a in some)))
    assert {a.id for a in by_ids.activities} == {a.id for a in some}
    assert ActivityQuery(dag_ids=frozenset({"radcor"})).is_empty()
    assert not ActivityQuery(statuses=("failed",)).is_empty()


def test_activities_recorded_without_scene_facts_have_none(store: ActivityStore) -> None:
    run_id = f"run-{uuid.uuid4()}"
    store.record(_key(run_id, SCENE_IDS[0], "0", "download"), ActivityState.SUCCESS)
    (activity,) = store.query(ActivityQuery(run_id=run_id)).activities
    assert activity.scene is None
    assert activity.to_dict()["scene"] is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "radcor/manual__2020-01-01T00:00:00+00:00/scene.download_demo/3/try2",
            ("radcor", "manual__2020-01-01T00:00:00+00:00", "scene.download_demo", 3, 2),
        ),
        ("pipeline_x/odd/run/id/report/-1/try1", ("pipeline_x", "odd/run/id", "report", -1, 1)),
    ],
)
def test_parse_task_instance_reads_the_recorded_format(
    text: str, expected: tuple[object, ...]
) -> None:
    ref = parse_task_instance(text)
    assert (ref.dag_id, ref.run_id, ref.task_id, ref.map_index, ref.try_number) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "radcor",
        "radcor/run/task/0",
        "radcor/run/task/x/try1",
        "radcor/run/task/0/attempt1",
        "/run/task/0/try1",
    ],
)
def test_parse_task_instance_malformed_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="task instance"):
        parse_task_instance(text)


def test_query_lists_each_activity_with_its_run_tags_upstream_style(store: ActivityStore) -> None:
    run_id = _fill(store)
    untagged = _fill(store)
    store.tag_run("radcor", run_id, ["bdc", "test"])
    store.tag_run("radcor", run_id, ["bdc", "campaign-2020"])  # a retried search replaces them
    store.tag_run("other_dag", run_id, ["not-this-dag"])
    page = store.query(ActivityQuery(run_id=run_id))
    assert page.total == 4
    assert {a.tags for a in page.activities} == {("bdc", "campaign-2020")}
    assert all(a.to_dict()["tags"] == ["bdc", "campaign-2020"] for a in page.activities)
    assert all(a.tags == () for a in store.query(ActivityQuery(run_id=untagged)).activities)
    store.tag_run("radcor", run_id, [])
    assert all(a.tags == () for a in store.query(ActivityQuery(run_id=run_id)).activities)
