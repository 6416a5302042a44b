"""A real ``dag.test()`` run of radcor: download -> toa -> nbar harmonization -> publish.

The demo catalog is built with its product metadata (MTD_MSIL1C.xml); each scene also gets a
``granule_metadata`` asset: the real eodag MTD_TL.xml (its sun and per-detector view grids)
placed on the 23LLF tile grid the demo scenes use. The step runner hands the harmonization the
download's folder, where the processor finds the tile metadata; the correction's int16 TOA
bands carry their scale in the raster metadata.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from include.radcor.activities import ActivityStore

REPO = Path(__file__).resolve().parents[2]
REAL_TILE = (
    "eodag/products/S2A_MSIL1C_20180101T105441_N0206_R051_T31TDH_20180101T124911/GRANULE/"
    "L1C_T31TDH_A013204_20180101T105435/MTD_TL.xml"
)


def _tile_metadata_on_23llf() -> bytes:
    realdata = Path(os.environ.get("REALDATA_DIR") or REPO.parent / "shared" / "realdata")
    path = realdata / REAL_TILE
    if not path.is_file():
        pytest.skip(f"real sample {REAL_TILE} is absent (set REALDATA_DIR)")
    text = path.read_text()
    # same tile size and ULX; only the zone and the northing differ (23LLF: 399960, 8700040)
    for old, new in (
        ("WGS84 / UTM zone 31N", "WGS84 / UTM zone 23S"),
        ("EPSG:32631", "EPSG:32723"),
        ("<ULY>4800000</ULY>", "<ULY>8700040</ULY>"),
    ):
        assert old in text
        text = text.replace(old, new)
    return text.encode()


@pytest.fixture(scope="module")
def demo_with_angles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from include.catalog.static_stac import StaticStacBackend
    from include.demo.build import FILES_DIR, build_demo_catalog, demo_collection
    from include.demo.server import serve
    from include.processors.publish.stac_item import file_checksum

    tile_metadata = _tile_metadata_on_23llf()
    root = tmp_path_factory.mktemp("demo-angles")
    items = build_demo_catalog(root, scenes=2, size_px=96, product_metadata=True)
    backend = StaticStacBackend(root)
    for item in items:
        path = root / FILES_DIR / item["id"] / "MTD_TL.xml"
        path.write_bytes(tile_metadata)
        checksum, size = file_checksum(path)
        item["assets"]["granule_metadata"] = {
            "href": f"/{FILES_DIR}/{item['id']}/MTD_TL.xml",
            "type": "application/xml",
            "title": "Tile metadata (sun and view angle grids)",
            "roles": ["metadata"],
            "file:checksum": checksum,
            "file:size": size,
        }
        backend.upsert(item, collection=demo_collection())
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
                    {"type": "harmonization", "collection": "S2_NBAR-1", "args": {}, "tasks": [
                        {"type": "publish", "collection": "S2_NBAR-1", "args": {}}]},
                ]},
            ]},
        ],
    }  # fmt: skip


def test_radcor_toa_nbar_publish_harmonizes_every_scene(
    radcor_dag: Any, demo_with_angles: tuple[str, Path], data_dir: Path
) -> None:
    url, _ = demo_with_angles
    run = radcor_dag.test(run_conf=_conf(url))
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states

    activities = ActivityStore().for_run(run.run_id)
    by_key = {(a.key.scene_id, a.key.task_type): a for a in activities}
    scenes = sorted({a.key.scene_id for a in activities})
    assert len(scenes) == 2
    items = {
        p.stem: json.loads(p.read_text())
        for p in (data_dir / "stac" / "S2_NBAR-1" / "items").glob("*.json")
    }
    assert sorted(items) == scenes
    for scene_id in scenes:
        harmonization = by_key[(scene_id, "harmonization")]
        assert str(harmonization.status) == "success", harmonization.error
        meta = harmonization.outputs["metadata"]
        assert meta["angles_source"].startswith("granule_metadata.xml: Sentinel-2 5 km")
        assert meta["bandpass_coefficients_source"] == scene_id[:3]
        assert sorted(meta["bands"]) == ["B02", "B03", "B04", "B08", "B11"]  # the demo's bands
        assert meta["bands"]["B04"]["scaling_source"] == "raster scale/offset"

        # NBAR = c * TOA, then the bandpass: recover c from the files and check its range
        toa_path = Path(by_key[(scene_id, "correction")].outputs["files"]["B04"])
        asset = items[scene_id]["assets"]["B04"]
        entry = meta["bands"]["B04"]
        cog_path = data_dir / "stac" / "S2_NBAR-1" / "items" / asset["href"]  # a relative href
        with rasterio.open(toa_path) as src, rasterio.open(cog_path.resolve()) as cog:
            toa, nbar = src.read(1).astype(np.float64), cog.read(1).astype(np.float64)
            assert (cog.dtypes[0], cog.nodata, cog.scales) == ("int16", -9999.0, (0.0001,))
            valid = toa != src.nodata
        assert ((nbar == -9999) == ~valid).all()  # nodata kept, never adjusted
        bright = valid & (toa > 500)
        c = (nbar[bright] - 1e4 * entry["bandpass_offset"]) / (
            entry["bandpass_slope"] * toa[bright]
        )
        assert entry["c_factor_min"] - 2e-3 < c.min() <= c.max() < entry["c_factor_max"] + 2e-3
