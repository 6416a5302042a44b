"""Scene plans: pre-order node ids, parent-before-child, sibling independence, skip rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from include.collectors.base import Asset, Scene
from include.radcor.conf import RadcorConf, TaskType, validate_conf
from include.radcor.plan import (
    PlanNode,
    ScenePlan,
    is_runnable,
    nodes_of_type,
    plan_scene,
)

SCENE = Scene(
    scene_id="S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429",
    catalog="cdse",
    dataset="S2MSI1C",
    datetime=datetime(2020, 1, 9, 13, 22, 31, tzinfo=UTC),
    cloud_pct=12.5,
    tile="23LLF",
    footprint={
        "type": "Polygon",
        "coordinates": [[[-46, -13], [-45, -13], [-45, -12], [-46, -13]]],
    },
    size_bytes=812_300_000,
    link="https://example.org/products/1/$value",
    online=False,
    platform="sentinel-2a",
    assets=(
        Asset(
            key="archive",
            href="https://example.org/1.zip",
            size_bytes=1,
            checksum="md5:00",
            media_type="application/zip",
            roles=("data",),
        ),
    ),
    properties={"product_type": "S2MSI1C"},
)


def node(kind: str, collection: str, *children: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "collection": collection, "args": {"k": kind}, "tasks": list(children)}


# download(0) -> correction S2_L2A(0.0) -> publish S2_L2A(0.0.0)
#                                       -> harmonization S2_NBAR(0.0.1) -> publish S2_NBAR(0.0.1.0)
#             -> publish S2_L1C(0.1)
TREE = [
    node(
        "download",
        "S2_L1C-1",
        node(
            "correction",
            "S2_L2A-1",
            node("publish", "S2_L2A-1"),
            node("harmonization", "S2_NBAR-1", node("publish", "S2_NBAR-1")),
        ),
        node("publish", "S2_L1C-1"),
    ),
]


def conf(force: bool = False, tasks: list[dict[str, Any]] | None = None) -> RadcorConf:
    return validate_conf(
        {
            "scenes": [SCENE.scene_id],
            "catalog": "cdse",
            "dataset": "S2MSI1C",
            "force": force,
            "tasks": TREE if tasks is None else tasks,
        }
    )


def published_in(*collections: str) -> Any:
    calls: list[tuple[str, str]] = []

    def is_published(collection: str, scene_id: str) -> bool:
        calls.append((collection, scene_id))
        return collection in collections

    is_published.calls = calls  # type: ignore[attr-defined]
    return is_published


def skipped(plan: ScenePlan) -> dict[str, str | None]:
    return {n.node_id: n.skip_reason for n in plan.nodes}


def test_plan_scene_node_ids_preorder_with_parents() -> None:
    plan = plan_scene(conf(), SCENE, is_published=published_in())
    assert [(n.node_id, n.type, n.parent_id, n.source_collection) for n in plan.nodes] == [
        ("0", TaskType.DOWNLOAD, None, None),
        ("0.0", TaskType.CORRECTION, "0", "S2_L1C-1"),
        ("0.0.0", TaskType.PUBLISH, "0.0", "S2_L2A-1"),
        ("0.0.1", TaskType.HARMONIZATION, "0.0", "S2_L2A-1"),
        ("0.0.1.0", TaskType.PUBLISH, "0.0.1", "S2_NBAR-1"),
        ("0.1", TaskType.PUBLISH, "0", "S2_L1C-1"),
    ]
    assert plan.node("0.0.1").args == {"k": "harmonization"}
    assert all(n.skip_reason is None for n in plan.nodes)


def test_plan_scene_parent_always_before_child() -> None:
    plan = plan_scene(conf(), SCENE, is_published=published_in())
    position = {n.node_id: i for i, n in enumerate(plan.nodes)}
    for item in plan.nodes:
        if item.parent_id is not None:
            assert position[item.parent_id] < position[item.node_id]


def test_nodes_of_type_preorder_and_empty() -> None:
    plan = plan_scene(conf(), SCENE, is_published=published_in())
    assert [n.node_id for n in nodes_of_type(plan, TaskType.PUBLISH)] == ["0.0.0", "0.0.1.0", "0.1"]
    assert [n.node_id for n in nodes_of_type(plan, "download")] == ["0"]
    assert nodes_of_type(plan, TaskType.POST) == []


def test_plan_scene_nothing_published_nothing_skipped() -> None:
    plan = plan_scene(conf(), SCENE, is_published=published_in("S2_OTHER-1"))
    assert set(skipped(plan).values()) == {None}


def test_plan_scene_all_published_whole_tree_skipped() -> None:
    oracle = published_in("S2_L2A-1", "S2_NBAR-1", "S2_L1C-1")
    plan = plan_scene(conf(), SCENE, is_published=oracle)
    reasons = skipped(plan)
    assert all(reasons.values())
    assert reasons["0.0.0"] == "already published in S2_L2A-1"
    assert reasons["0"] == "already published in S2_L2A-1, S2_NBAR-1, S2_L1C-1"
    assert sorted(oracle.calls) == sorted({(c, SCENE.scene_id) for c, _ in oracle.calls})


def test_plan_scene_partial_publication_skips_only_exclusive_branch() -> None:
    plan = plan_scene(conf(), SCENE, is_published=published_in("S2_NBAR-1"))
    reasons = skipped(plan)
    assert reasons["0.0.1"] == reasons["0.0.1.0"] == "already published in S2_NBAR-1"
    assert {k for k, v in reasons.items() if v is None} == {"0", "0.0", "0.0.0", "0.1"}


def test_plan_scene_one_of_two_leaves_published_shared_parents_run() -> None:
    tree = [
        node(
            "download",
            "S2_L1C-1",
            node(
                "correction",
                "S2_L2A-1",
                node("publish", "S2_L2A-1"),
                node("publish", "S2_SR_SEN2COR-1"),
            ),
        )
    ]
    plan = plan_scene(conf(tasks=tree), SCENE, is_published=published_in("S2_L2A-1"))
    assert skipped(plan) == {
        "0": None,
        "0.0": None,
        "0.0.0": "already published in S2_L2A-1",
        "0.0.1": None,
    }


def test_plan_scene_force_skips_nothing() -> None:
    plan = plan_scene(
        conf(force=True), SCENE, is_published=published_in("S2_L2A-1", "S2_NBAR-1", "S2_L1C-1")
    )
    assert set(skipped(plan).values()) == {None}


def test_plan_scene_branch_without_publish_never_skipped_alone() -> None:
    tree = [node("download", "S2_L1C-1")]
    plan = plan_scene(conf(tasks=tree), SCENE, is_published=published_in("S2_L1C-1"))
    assert skipped(plan) == {"0": None}


def test_plan_scene_publishless_branch_follows_its_skipped_parent() -> None:
    tree = [
        node("download", "S2_L1C-1", node("publish", "S2_L1C-1"), node("correction", "S2_L2A-1"))
    ]
    plan = plan_scene(conf(tasks=tree), SCENE, is_published=published_in("S2_L1C-1"))
    assert skipped(plan) == dict.fromkeys(("0", "0.0", "0.1"), "already published in S2_L1C-1")


def test_plan_scene_asks_once_per_collection() -> None:
    tree = [
        node("download", "S2_L1C-1", node("publish", "S2_L1C-1")),
        node("download", "S2_L1C-1", node("publish", "S2_L1C-1")),
    ]
    oracle = published_in()
    plan_scene(conf(tasks=tree), SCENE, is_published=oracle)
    assert oracle.calls == [("S2_L1C-1", SCENE.scene_id)]


@pytest.mark.parametrize(
    ("parent_status", "expected"),
    [
        ("success", (True, "")),
        ("reused", (True, "")),
        ("failed", (False, "parent 0 failed")),
        ("skipped", (False, "parent 0 skipped")),
        ("upstream_failed", (False, "parent 0 upstream_failed")),
        (None, (False, "parent 0 has not run")),
    ],
)
def test_is_runnable_parent_status_decides(
    parent_status: str | None, expected: tuple[bool, str]
) -> None:
    plan = plan_scene(conf(), SCENE, is_published=published_in())
    statuses = {} if parent_status is None else {"0": parent_status}
    assert is_runnable(plan.node("0.0"), statuses) == expected


def test_is_runnable_root_always() -> None:
    plan = plan_scene(conf(), SCENE, is_published=published_in())
    assert is_runnable(plan.node("0"), {}) == (True, "")


def test_is_runnable_siblings_independent() -> None:
    plan = plan_scene(conf(), SCENE, is_published=published_in())
    # the correction branch failed; its sibling publish of S2_L1C-1 still runs
    statuses = {"0": "success", "0.0": "failed"}
    assert is_runnable(plan.node("0.1"), statuses) == (True, "")
    assert is_runnable(plan.node("0.0.0"), statuses) == (False, "parent 0.0 failed")
    # within one parent, a failed sibling does not block the other sibling
    statuses = {"0": "success", "0.0": "success", "0.0.0": "failed"}
    assert is_runnable(plan.node("0.0.1"), statuses) == (True, "")


def test_scene_plan_json_round_trip_equal() -> None:
    plan = plan_scene(conf(), SCENE, is_published=published_in("S2_NBAR-1"))
    text = json.dumps(plan.to_dict())
    again = ScenePlan.from_dict(json.loads(text))
    assert again == plan
    assert again.scene.datetime == SCENE.datetime and again.scene.assets == SCENE.assets
    assert isinstance(again.nodes[0].type, TaskType)


def test_plan_node_from_dict_bad_type_raises() -> None:
    data = PlanNode("0", TaskType.DOWNLOAD, "S2_L1C-1").to_dict() | {"type": "fetch"}
    with pytest.raises(ValueError, match="fetch"):
        PlanNode.from_dict(data)


def test_scene_plan_node_unknown_id_raises() -> None:
    plan = plan_scene(conf(), SCENE, is_published=published_in())
    with pytest.raises(KeyError):
        plan.node("9")
