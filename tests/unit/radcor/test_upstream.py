"""The upstream collection builder's vocabulary: guide requests, preview shape, restart names."""

from __future__ import annotations

import copy
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from include.collectors.base import Scene
from include.common.errors import InvalidInputError
from include.radcor.activities import Activity, ActivityKey, ActivityState
from include.radcor.conf import equivalent_tree, validate_conf
from include.radcor.preview import human_size, preview, product_type
from include.radcor.search import platform_matches
from include.radcor.upstream import (
    celery_status,
    restart_action_label,
    restart_filters,
    statuses_from_upstream,
    upstream_activity,
)
from tests.helpers import upstream_guide

S2 = "S2A_MSIL1C_20200110T132231_N0208_R038_T23LLF_20200110T145523"
SQUARE = {
    "type": "Polygon",
    "coordinates": [[[-45.83, -13.65], [-45.83, -12.66], [-46.84, -12.65], [-45.83, -13.65]]],
}


def scene(scene_id: str = S2, **changes: Any) -> Scene:
    values: dict[str, Any] = {
        "scene_id": scene_id,
        "catalog": "cdse",
        "dataset": "S2MSI1C",
        "datetime": datetime(2020, 1, 10, 13, 22, 31, tzinfo=UTC),
        "cloud_pct": 31.5879,
        "tile": "23LLF",
        "footprint": SQUARE,
        "size_bytes": 853_196_000,
        "link": "https://example.org/Products('x')/$value",
        "quicklook": "https://example.org/Products('x')/Products('Quicklook')/$value",
    }
    values.update(changes)
    return Scene(**values)


# --- the guide's requests ----------------------------------------------------------------------


@pytest.mark.parametrize("body", [upstream_guide.SENTINEL2, upstream_guide.LANDSAT8])
def test_every_guide_request_validates_unchanged(body: dict[str, Any]) -> None:
    conf = validate_conf(copy.deepcopy(body))
    assert conf.tasks and conf.force is True


def test_guide_catalog_esa_is_cdse() -> None:
    assert validate_conf(copy.deepcopy(upstream_guide.SENTINEL2)).catalog == "cdse"


def test_upstream_fields_accepted_with_their_meaning(caplog: pytest.LogCaptureFixture) -> None:
    body = {
        **copy.deepcopy(upstream_guide.LANDSAT8),
        "platform": "LANDSAT_8",
        "catalog_search_args": {"limit": 5},
        "tags": ["bdc", " test "],
        "catalog_args": {"progress": False},
    }
    with caplog.at_level(logging.INFO):
        conf = validate_conf(body)
    assert conf.platform_wanted == "LANDSAT_8"
    assert conf.catalog_search_args == {"limit": 5}
    assert conf.tags == ["bdc", "test"]
    assert conf.catalog_args.progress is False
    assert conf.catalog_args.driver_args() == {}
    assert "progress" in caplog.text and "ignored" in caplog.text


def test_geom_as_upstream_wkt() -> None:
    body = {k: v for k, v in upstream_guide.LANDSAT8.items() if k not in ("w", "s", "e", "n")}
    body["geom"] = "POLYGON ((-48 -14, -46 -14, -46 -12, -48 -12, -48 -14))"
    assert validate_conf(body).area_mode == "geom"


def test_unknown_search_arg_refused_naming_the_supported_ones() -> None:
    body = {**copy.deepcopy(upstream_guide.LANDSAT8), "catalog_search_args": {"orbit": 38}}
    with pytest.raises(InvalidInputError) as caught:
        validate_conf(body)
    (problem,) = caught.value.problems
    assert problem.field == "catalog_search_args.orbit"
    assert "platform" in problem.fix and "limit" in problem.fix


@pytest.mark.parametrize("key", ["username", "password"])
def test_credentials_in_catalog_args_refused_naming_the_connection(key: str) -> None:
    body = {**copy.deepcopy(upstream_guide.SENTINEL2), "catalog_args": {key: "x"}}
    with pytest.raises(InvalidInputError) as caught:
        validate_conf(body)
    (problem,) = caught.value.problems
    assert problem.field == f"catalog_args.{key}"
    assert "cdse_default" in problem.fix and "x" not in problem.message


# --- the preview's shape -----------------------------------------------------------------------


def test_preview_entry_is_the_guides_shape() -> None:
    result = preview([scene()])
    assert result["Results"] == 1
    entry = result[S2]
    assert tuple(entry)[: len(upstream_guide.PREVIEW_ENTRY_KEYS)] == (
        upstream_guide.PREVIEW_ENTRY_KEYS
    )
    assert entry["type"] == "MSIL1C"
    assert entry["date"] == "2020-01-10"
    assert entry["size"] == "813.67 MB"
    assert entry["tileid"] == entry["pathrow"] == "23LLF"
    assert entry["footprint"].startswith("POLYGON ((-45.83 -13.65")
    assert entry["icon"].endswith("Products('Quicklook')/$value")
    assert re.fullmatch(upstream_guide.SIZE_RE, entry["size"])


@pytest.mark.parametrize(
    ("scene_id", "dataset", "expected"),
    [
        (S2, "S2MSI1C", "MSIL1C"),
        ("S2A_MSIL2A_20200731T080611_R078_T35MNM_20200818T062751", "sentinel-2-l2a", "MSIL2A"),
        ("S2A_23LLF_20200109_0_L2A", "sentinel-2-l2a", "MSIL2A"),
        ("S2B_23LLF_20200109_0_L1C", "sentinel-2-l1c", "MSIL1C"),
        ("LC08_L1TP_221069_20200223_20200822_02_T1", "landsat_ot_c2_l1", "L1TP"),
        ("LC09_L2SP_221069_20230223_20230225_02_T1", "landsat_ot_c2_l2", "L2SP"),
    ],
)
def test_type_is_the_product_name_part(scene_id: str, dataset: str, expected: str) -> None:
    assert product_type(scene(scene_id, dataset=dataset)) == expected


@pytest.mark.parametrize(
    ("size", "text"), [(None, "unknown"), (500, "500.00 B"), (1536, "1.50 KB"), (2**31, "2.00 GB")]
)
def test_human_size_as_the_guide(size: int | None, text: str) -> None:
    assert human_size(size) == text


def test_preview_and_start_keep_types() -> None:
    entry = preview([scene(size_bytes=None, quicklook=None)])[S2]
    assert isinstance(entry["size"], str) and entry["icon"] is None


@pytest.mark.parametrize(
    ("wanted", "scene_id", "platform", "ok"),
    [
        ("Sentinel-2A", S2, None, True),
        ("Sentinel-2B", S2, None, False),
        ("sentinel-2", S2, None, True),
        ("LANDSAT_8", "LC08_L1TP_221069_20200223_20200822_02_T1", None, True),
        ("landsat-9", "LC08_L1TP_221069_20200223_20200822_02_T1", "landsat-8", False),
        ("sentinel-2b", S2, "sentinel-2b", True),
    ],
)
def test_platform_filter(wanted: str, scene_id: str, platform: str | None, ok: bool) -> None:
    assert platform_matches(scene(scene_id, platform=platform), wanted) is ok


# --- restart and activities --------------------------------------------------------------------


def test_restart_ids_as_comma_string_number_or_list() -> None:
    assert restart_filters({"ids": "13,17"})["ids"] == ["13", "17"]
    assert restart_filters({"id": 3})["ids"] == ["3"]
    assert restart_filters({"ids": [1, 2], "action": "start"}) == {
        "ids": ["1", "2"],
        "action": "start",
    }


def test_restart_without_action_previews_as_upstream() -> None:
    assert restart_filters({"ids": "1"})["action"] == "preview"
    assert restart_action_label({"ids": "1"}) == "PREVIEW"
    assert restart_action_label({"ids": "1", "action": "start"}) == "start"


def test_restart_sceneid_needs_collection_and_type() -> None:
    with pytest.raises(InvalidInputError) as caught:
        restart_filters({"sceneid": S2})
    assert caught.value.problems[0].field == "sceneid"
    out = restart_filters({"sceneid": S2, "collection_id": "S2_L1C-1", "activity_type": "download"})
    assert out == {
        "scene_ids": [S2],
        "collection": "S2_L1C-1",
        "type": "download",
        "action": "preview",
    }


def test_restart_without_filters_refused_as_upstream() -> None:
    with pytest.raises(InvalidInputError) as caught:
        restart_filters({"action": "start"})
    assert "Requires" in caught.value.problems[0].message


@pytest.mark.parametrize(
    ("celery", "ours"),
    [
        ("FAILURE", ["failed", "invalid"]),
        ("SUCCESS", ["success", "reused", "skipped"]),
        ("PENDING", ["pending", "queued", "scheduled"]),
        ("STARTED", ["running"]),
        ("RETRY", ["up_for_retry", "up_for_reschedule"]),
        ("failed", ["failed"]),
    ],
)
def test_celery_status_names_map_to_airflow_states(celery: str, ours: list[str]) -> None:
    assert statuses_from_upstream(celery) == ours
    assert restart_filters({"status": celery})["status"] == ours


def test_upstream_activity_shape() -> None:
    key = ActivityKey("radcor", "manual__1", S2, "0", "download", "S2_L1C-1")
    activity = Activity(
        id=7,
        key=key,
        status=ActivityState.FAILED,
        catalog="cdse",
        provider="cdse",
        task_instance="radcor/manual__1/scene.download/0/try1",
        attempts=1,
        size_bytes=None,
        checksum=None,
        error="boom",
    )
    out = upstream_activity(activity)
    assert out["id"] == 7 and out["sceneid"] == S2
    assert (out["collection_id"], out["activity_type"]) == ("S2_L1C-1", "download")
    assert out["status"] == out["last_execution"]["status"] == "FAILURE"
    assert celery_status(ActivityState.REUSED) == "SUCCESS"


# --- task trees --------------------------------------------------------------------------------

TILES = {
    "tiles": ["23LLF"],
    "catalog": "demo",
    "dataset": "S2MSI1C",
    "start": "2020-01-09",
    "end": "2020-01-10",
}


def node(kind: str, collection: str, *children: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "collection": collection, "args": {}, "tasks": list(children)}


def test_tree_out_of_order_refused_with_the_equivalent_tree() -> None:
    tree = [node("download", "S2_L1C-1", node("publish", "S2_L2A-1", node("post", "S2_L2A-1")))]
    with pytest.raises(InvalidInputError) as caught:
        validate_conf({**TILES, "tasks": tree})
    (problem,) = [p for p in caught.value.problems if p.field.endswith(".type")]
    assert problem.field == "tasks[0].tasks[0].tasks[0].type"
    expected = [node("download", "S2_L1C-1", node("post", "S2_L2A-1", node("publish", "S2_L2A-1")))]
    assert json.dumps(expected, separators=(", ", ": ")) in problem.fix


def test_equivalent_tree_lifts_every_early_child_and_keeps_siblings() -> None:
    tree = [
        node(
            "publish",
            "S2_L1C-1",
            node("download", "S2_L1C-1"),
            node("correction", "S2_L2A-1", node("publish", "S2_L2A-1")),
        )
    ]
    assert equivalent_tree(tree) == [
        node(
            "download",
            "S2_L1C-1",
            node(
                "correction", "S2_L2A-1", node("publish", "S2_L2A-1"), node("publish", "S2_L1C-1")
            ),
        )
    ]


def test_equivalent_tree_of_a_valid_tree_is_itself() -> None:
    for body in (upstream_guide.SENTINEL2, upstream_guide.LANDSAT8):
        tree = copy.deepcopy(body["tasks"])
        for item in tree:
            for child in item["tasks"]:
                child.setdefault("tasks", [])
        assert equivalent_tree(tree) == tree


def test_guide_task_args_are_dropped_so_processors_never_see_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        conf = validate_conf(copy.deepcopy(upstream_guide.SENTINEL2))
    (download,) = conf.tasks
    (publish,) = download.tasks
    assert download.args == {} and publish.args == {}
    assert "items_to_publish" in caplog.text and "path_include_month" in caplog.text


def test_tasks_param_is_a_json_field_in_the_airflow_form() -> None:
    from include.radcor.conf import params_schema

    # Airflow's form renders an array whose items have no type (or type string) as one string
    # per line; typed items get the JSON editor
    assert params_schema()["tasks"]["items"]["type"] == "object"
