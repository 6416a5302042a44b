"""A real ``dag.test()`` run of radcor: download -> correction (toa) -> post -> publish.

The demo catalog is built with its product metadata (MTD_MSIL1C.xml, MSK_CLASSI), so ``toa``
reads real-shaped radiometry (the N0500 scene carries the -1000 offset) and ``qa-post`` gets a
cloud mask. The 55 %-cloud scene is flagged ``fully_cloudy`` by the post step (its clear share is
below ``min_clear_pct``) and its publish is skipped, while the run still succeeds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from include.radcor.activities import ActivityStore

CLOUDY_SCENE = "S2B_MSIL1C_20200114T132229_N0208_R038_T23LLF_20200114T150103"
OFFSET_SCENE = "S2A_MSIL1C_20200119T132231_N0500_R038_T23LLF_20230612T101536"


@pytest.fixture(scope="module")
def demo_with_metadata(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from include.demo.build import build_demo_catalog
    from include.demo.server import serve

    root = tmp_path_factory.mktemp("demo-mtd")
    build_demo_catalog(root, scenes=4, size_px=96, product_metadata=True)
    with serve(root, port=0) as server:
        yield server.url, root


def _conf(url: str) -> dict[str, Any]:
    return {
        "w": -45.95, "s": -12.8, "e": -45.7, "n": -12.55,
        "catalog": "demo", "catalog_args": {"url": url}, "dataset": "S2MSI1C",
        "start": "2020-01-01T00:00:00", "end": "2020-12-31T23:59:59",
        "cloud": 100, "action": "start", "force": False,
        "tasks": [
            {"type": "download", "collection": "S2_L1C-1", "args": {}, "tasks": [
                {"type": "correction", "collection": "S2_TOA-1", "args": {}, "tasks": [
                    {"type": "post", "collection": "S2_TOA-1", "args": {"min_clear_pct": 50},
                     "tasks": [{"type": "publish", "collection": "S2_TOA-1", "args": {}}]},
                ]},
            ]},
        ],
    }  # fmt: skip


def _items(data_dir: Path) -> dict[str, dict[str, Any]]:
    paths = (data_dir / "stac" / "S2_TOA-1" / "items").glob("*.json")
    return {p.stem: json.loads(p.read_text()) for p in paths}


def test_radcor_toa_post_publish_records_cloud_cover_and_flags(
    radcor_dag: Any, demo_with_metadata: tuple[str, Path], data_dir: Path
) -> None:
    url, root = demo_with_metadata
    run = radcor_dag.test(run_conf=_conf(url))
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states

    activities = ActivityStore().for_run(run.run_id)
    by_key = {(a.key.scene_id, a.key.task_type): a for a in activities}
    assert len({a.key.scene_id for a in activities}) == 4

    # the fully cloudy scene: correction and post succeed, post carries the flag, publish skips
    post = by_key[(CLOUDY_SCENE, "post")]
    assert str(post.status) == "success"
    assert post.outputs["metadata"]["flags"] == ["fully_cloudy"]
    assert post.outputs["files"] == {}
    assert post.message == "flagged: fully_cloudy"
    publish = by_key[(CLOUDY_SCENE, "publish")]
    assert str(publish.status) == "skipped"
    assert "flagged fully_cloudy" in (publish.message or "")

    items = _items(data_dir)
    assert sorted(items) == sorted(
        a.key.scene_id
        for a in activities
        if a.key.task_type == "publish" and str(a.status) == "success"
    )
    assert CLOUDY_SCENE not in items and len(items) == 3
    for scene_id, item in items.items():
        recomputed = by_key[(scene_id, "post")].outputs["metadata"]["cloud_cover"]
        assert item["properties"]["eo:cloud_cover"] == recomputed
        assert "CLOUD_MASK" in item["assets"] and "B04" in item["assets"]

    # the N0500 scene: TOA = (DN - 1000) / 10000, stored as int16 x 10000 with its scale
    correction = by_key[(OFFSET_SCENE, "correction")]
    assert correction.outputs["metadata"]["radio_add_offsets"]["B04"] == -1000.0
    source = root / "files" / OFFSET_SCENE / "B04.tif"
    href = items[OFFSET_SCENE]["assets"]["B04"]["href"]  # relative to the item file
    published = (data_dir / "stac" / "S2_TOA-1" / "items" / href).resolve()
    with rasterio.open(source) as src, rasterio.open(published) as cog:
        dn, toa = src.read(1).astype(np.int32), cog.read(1)
        assert cog.dtypes[0] == "int16" and cog.nodata == -9999
        assert cog.scales == (0.0001,)
    valid = dn != 0
    assert (toa[valid] == dn[valid] - 1000).all()
