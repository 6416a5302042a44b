"""Gap check: catalog scenes against published items, per tile and month; confs for the gaps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from include.collectors.base import Scene
from include.common.errors import InvalidInputError
from include.radcor.conf import MAX_SCENES, RadcorConf
from include.radcor.gaps import check_gaps, gap_confs, publish_collections
from include.radcor.validation import validate_request


def _scene(tile: str | None, year: int, month: int, day: int, platform: str = "S2A") -> Scene:
    stamp = f"{year}{month:02d}{day:02d}T132231"
    return Scene(
        scene_id=f"{platform}_MSIL1C_{stamp}_N0208_R038_T{tile or '23LLF'}_{stamp}",
        catalog="demo",
        dataset="S2MSI1C",
        datetime=datetime(year, month, day, 13, 22, 31, tzinfo=UTC),
        cloud_pct=5.0,
        tile=tile,
        footprint=None,
    )


def _conf(tasks: list[dict[str, Any]] | None = None) -> RadcorConf:
    return validate_request(
        {
            "w": -45.9,
            "s": -12.74,
            "e": -45.8,
            "n": -12.6,
            "catalog": "demo",
            "dataset": "S2MSI1C",
            "start": "2020-01-01",
            "end": "2020-02-29",
            "cloud": 80,
            "action": "preview",
            "catalog_args": {"url": "http://127.0.0.1:1"},
            "tasks": tasks
            if tasks is not None
            else [
                {
                    "type": "download",
                    "collection": "S2_L1C-1",
                    "tasks": [{"type": "publish", "collection": "S2_L1C-1"}],
                }
            ],
        }
    )


def test_check_gaps_groups_by_tile_and_month_and_lists_missing() -> None:
    scenes = [
        _scene("23LLF", 2020, 1, 9),
        _scene("23LLF", 2020, 1, 14, "S2B"),
        _scene("23LLF", 2020, 2, 3),
        _scene("23LLG", 2020, 1, 9),
    ]
    published = {("S2_L1C-1", scenes[0].scene_id), ("S2_L1C-1", scenes[2].scene_id)}
    report = check_gaps(_conf(), scenes, lambda c, s: (c, s) in published)
    cells = [cell.to_dict() for cell in report.cells]
    assert cells == [
        {
            "tile": "23LLF",
            "month": "2020-01",
            "scenes": 2,
            "published": {"S2_L1C-1": 1},
            "missing": [scenes[1].scene_id],
        },
        {
            "tile": "23LLF",
            "month": "2020-02",
            "scenes": 1,
            "published": {"S2_L1C-1": 1},
            "missing": [],
        },
        {
            "tile": "23LLG",
            "month": "2020-01",
            "scenes": 1,
            "published": {"S2_L1C-1": 0},
            "missing": [scenes[3].scene_id],
        },
    ]
    assert report.missing_scenes == [scenes[1].scene_id, scenes[3].scene_id]
    assert report.to_dict()["scenes"] == 4 and report.to_dict()["missing"] == 2


def test_check_gaps_scene_missing_in_any_publish_collection_is_missing() -> None:
    conf = _conf(
        [
            {
                "type": "download",
                "collection": "S2_L1C-1",
                "tasks": [
                    {"type": "publish", "collection": "S2_L1C-1"},
                    {
                        "type": "correction",
                        "collection": "S2_L2A-1",
                        "tasks": [{"type": "publish", "collection": "S2_L2A-1"}],
                    },
                ],
            }
        ]
    )
    scene = _scene("23LLF", 2020, 1, 9)
    asked: list[tuple[str, str]] = []

    def is_published(collection: str, scene_id: str) -> bool:
        asked.append((collection, scene_id))
        return collection == "S2_L1C-1"

    report = check_gaps(conf, [scene], is_published)
    assert report.collections == ("S2_L1C-1", "S2_L2A-1")
    assert report.missing_scenes == [scene.scene_id]
    assert report.cells[0].to_dict()["published"] == {"S2_L1C-1": 1, "S2_L2A-1": 0}
    assert sorted(asked) == [("S2_L1C-1", scene.scene_id), ("S2_L2A-1", scene.scene_id)]


def test_check_gaps_scene_without_tile_goes_to_unknown_tile() -> None:
    report = check_gaps(_conf(), [_scene(None, 2020, 1, 9)], lambda c, s: False)
    assert report.cells[0].tile == "unknown"


def test_check_gaps_without_publish_node_raises_naming_tasks() -> None:
    conf = _conf([{"type": "download", "collection": "S2_L1C-1"}])
    assert publish_collections(conf) == []
    with pytest.raises(InvalidInputError) as caught:
        check_gaps(conf, [], lambda c, s: True)
    assert caught.value.problems[0].field == "tasks"


def test_gap_confs_select_the_scenes_by_id_and_validate() -> None:
    conf = _conf()
    missing = [_scene("23LLF", 2020, 1, 9).scene_id]
    (gap,) = gap_confs(conf, missing)
    assert gap["scenes"] == missing
    assert gap["action"] == "start"
    assert not {"w", "s", "e", "n", "start", "end", "cloud", "geom", "tiles"} & set(gap)
    assert gap["catalog_args"] == {"url": "http://127.0.0.1:1"}
    again = validate_request(gap)
    assert again.scenes == missing and again.tasks == conf.tasks


def test_gap_confs_split_long_lists_and_nothing_missing_gives_none() -> None:
    conf = _conf()
    ids = [
        f"S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_2020{i:010d}" for i in range(MAX_SCENES + 1)
    ]
    chunks = gap_confs(conf, ids)
    assert [len(c["scenes"]) for c in chunks] == [MAX_SCENES, 1]
    assert gap_confs(conf, []) == []
