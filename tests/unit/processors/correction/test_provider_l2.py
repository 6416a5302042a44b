"""``provider-l2`` through the STAC driver, over real HTTP, against loopback STAC APIs:

- the demo catalog built with its ``sentinel-2-l2a`` collection (two L2A baselines for the first
  datatake, the newest must win, and its BOA offset must be removed);
- a small Landsat Collection 2 Level-2 catalog made in the test from the real L2SP files of
  ../shared/realdata (stactools-landsat), served by the same server.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from include.catalog.static_stac import StaticStacBackend
from include.collectors.base import CatalogDriver, Scene
from include.collectors.registry import make_driver
from include.common.config import load_collections
from include.common.errors import InvalidInputError, ProcessingError
from include.demo.build import build_demo_catalog, demo_collection
from include.demo.server import DemoStacServer, serve
from include.processors.base import ProcessorInputs, ProcessorResult
from include.processors.correction.l2 import write_level2
from include.processors.correction.provider_l2 import acquisition_of, best_match, l2_rank
from include.processors.products.landsat import LandsatProduct
from include.processors.registry import make_processor
from tests.helpers.realdata import realdata

L2SP_ID = "LC08_L2SP_008059_20191201_20200825_02_T1"
L1TP_ID = "LC08_L1TP_008059_20191201_20200825_02_T1"
DEMO_PROVIDER = [{"catalog": "demo", "dataset": "sentinel-2-l2a"}]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoStacServer, Path, list]]:
    root = tmp_path_factory.mktemp("demo-l2a")
    items = build_demo_catalog(root, scenes=3, size_px=64, l2a=True)
    with serve(root, port=0) as server:
        yield server, root, items


def factory(url: str) -> Callable[[str], CatalogDriver]:
    def make(name: str) -> CatalogDriver:
        return make_driver(name, catalog_args={"url": url})

    return make


def l1_scene(scene_id: str, when: datetime, tile: str, catalog: str = "demo") -> Scene:
    return Scene(
        scene_id=scene_id, catalog=catalog, dataset="x", datetime=when, cloud_pct=None,
        tile=tile, footprint=None,
    )  # fmt: skip


def run(scene: Scene, url: str | None, out: Path, collection: str, **args: Any) -> ProcessorResult:
    return make_processor("provider-l2").run(
        ProcessorInputs(
            scene=scene,
            collection=load_collections()[collection],
            files={},
            output_dir=out,
            args=args,
            driver_factory=factory(url) if url else None,
        )
    )


def _scene_of(item: dict[str, Any]) -> Scene:
    when = datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))
    return l1_scene(item["id"], when, "23LLF")


def test_provider_l2_picks_the_newest_baseline_and_removes_its_offset(
    demo: tuple[DemoStacServer, Path, list], tmp_path: Path
) -> None:
    server, root, items = demo
    result = run(_scene_of(items[0]), server.url, tmp_path, "S2_L2A-1", providers=DEMO_PROVIDER)
    meta = result.metadata
    assert meta["l2_scene_id"] == "S2A_MSIL2A_20200109T132231_N0500_R038_T23LLF_20230701T132231"
    assert meta["processing_baseline"] == "05.00"
    assert meta["boa_add_offsets"]["B04"] == -1000.0
    assert sorted(result.files) == ["B02", "B03", "B04", "B08", "B11", "SCL"]
    source = root / "files" / meta["l2_scene_id"]
    with rasterio.open(source / "B04.tif") as src, rasterio.open(result.files["B04"]) as out:
        dn, sr = src.read(1).astype(np.int32), out.read(1)
        assert out.scales == (0.0001,) and out.dtypes[0] == "uint16"  # S2_L2A-1's encoding
    valid = dn != 0
    assert (sr[valid] == np.maximum(dn[valid] - 1000, 1)).all()  # (DN - 1000) / 10000 * 10000
    assert (sr[~valid] == 0).all()
    with rasterio.open(source / "SCL.tif") as src, rasterio.open(result.files["SCL"]) as out:
        assert (src.read(1) == out.read(1)).all()


def test_provider_l2_before_0400_keeps_the_dn_as_reflectance(
    demo: tuple[DemoStacServer, Path, list], tmp_path: Path
) -> None:
    server, root, items = demo
    result = run(_scene_of(items[1]), server.url, tmp_path, "S2_L2A-1", providers=DEMO_PROVIDER)
    assert result.metadata["l2_scene_id"].startswith("S2B_MSIL2A_20200110T131239_N0213_R138")
    assert result.metadata["boa_add_offsets"] == {}
    source = root / "files" / result.metadata["l2_scene_id"]
    with rasterio.open(source / "B08.tif") as src, rasterio.open(result.files["B08"]) as out:
        assert (src.read(1) == out.read(1)).all()


def test_provider_l2_skips_unusable_providers_and_fails_when_none_has_it(
    demo: tuple[DemoStacServer, Path, list], tmp_path: Path
) -> None:
    server, _, items = demo
    providers = [{"catalog": "nowhere", "dataset": "x"}, *DEMO_PROVIDER]
    found = run(_scene_of(items[2]), server.url, tmp_path / "a", "S2_L2A-1", providers=providers)
    assert found.metadata["l2_catalog"] == "demo"
    other_day = l1_scene(
        "S2A_MSIL1C_20200301T132231_N0208_R038_T23LLF_20200301T145429",
        datetime(2020, 3, 1, 13, 22, 31, tzinfo=UTC),
        "23LLF",
    )
    with pytest.raises(ProcessingError, match="no Level-2 product of S2A_MSIL1C_20200301"):
        run(other_day, server.url, tmp_path / "b", "S2_L2A-1", providers=DEMO_PROVIDER)


def test_provider_l2_needs_a_product_id_and_catalog_access(tmp_path: Path) -> None:
    when = datetime(2020, 1, 9, tzinfo=UTC)
    with pytest.raises(InvalidInputError, match="neither a Sentinel-2 L1C nor a Landsat"):
        run(l1_scene("S2A_23LLF_20200109_0_L1C", when, "23LLF"), "http://x", tmp_path, "S2_L2A-1")
    sid = "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429"
    with pytest.raises(InvalidInputError, match="needs catalog access"):
        run(l1_scene(sid, when, "23LLF"), None, tmp_path, "S2_L2A-1")


def test_l2_rank_matches_only_the_same_acquisition() -> None:
    l1c = acquisition_of(
        "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429", datetime.now(UTC)
    )
    assert l1c is not None
    same = "S2A_MSIL2A_20200109T132231_N0213_R038_T23LLF_20200109T160000"
    assert l2_rank(same, l1c) == (213, "20200109T160000")
    for other in (
        "S2B_MSIL2A_20200109T132231_N0213_R038_T23LLF_20200109T160000",  # other satellite
        "S2A_MSIL2A_20200109T132231_N0213_R038_T23LLG_20200109T160000",  # other tile
        "S2A_MSIL2A_20200109T132232_N0213_R038_T23LLF_20200109T160000",  # other datatake
        "S2A_MSIL1C_20200109T132231_N0213_R038_T23LLF_20200109T160000",  # not Level-2
    ):
        assert l2_rank(other, l1c) is None
    landsat = acquisition_of(L1TP_ID, datetime.now(UTC))
    assert landsat is not None and landsat.tile == "008059"
    assert l2_rank(L2SP_ID, landsat) is not None
    assert l2_rank("LC09_L2SP_008059_20191201_20200825_02_T1", landsat) is None
    scenes = [
        l1_scene(name, datetime.now(UTC), "008059")
        for name in (
            "LC08_L2SR_008059_20191201_20210101_02_T1",
            L2SP_ID,
            "LC08_L2SP_008059_20191201_20190101_02_T1",
        )
    ]
    chosen = best_match(scenes, landsat)
    assert chosen is not None and chosen.scene_id == L2SP_ID  # L2SP over L2SR, newest L2SP


@pytest.fixture(scope="module")
def landsat_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    mtl = realdata(f"stactools-landsat/data-files/assets3/{L2SP_ID}_MTL.txt")
    root = tmp_path_factory.mktemp("landsat-catalog")
    files = root / "files" / L2SP_ID
    files.mkdir(parents=True)
    assets: dict[str, Any] = {}
    names = {
        "blue": "SR_B2", "green": "SR_B3", "red": "SR_B4", "nir08": "SR_B5", "coastal": "SR_B1",
        "swir16": "SR_B6", "swir22": "SR_B7", "qa_pixel": "QA_PIXEL",
    }  # fmt: skip
    for key, suffix in names.items():
        shutil.copy(mtl.parent / f"{L2SP_ID}_{suffix}.TIF", files)
        assets[key] = {
            "href": f"/files/{L2SP_ID}/{L2SP_ID}_{suffix}.TIF",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
        }
    shutil.copy(mtl, files)
    assets["mtl.txt"] = {
        "href": f"/files/{L2SP_ID}/{mtl.name}", "type": "text/plain", "roles": ["metadata"],
    }  # fmt: skip
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": L2SP_ID,
        "collection": "landsat-c2-l2",
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[-77.3, 4.4], [-75.6, 4.4], [-75.6, 6.3], [-77.3, 6.3], [-77.3, 4.4]]],
        },
        "bbox": [-77.3, 4.4, -75.6, 6.3],
        "properties": {
            "datetime": "2019-12-01T15:13:51.861099Z",
            "platform": "landsat-8",
            "eo:cloud_cover": 81.02,
            "landsat:wrs_path": "008",
            "landsat:wrs_row": "059",
            "landsat:product_id": L2SP_ID,
        },
        "links": [],
        "assets": assets,
    }
    collection = demo_collection()
    collection["id"] = "landsat-c2-l2"
    StaticStacBackend(root).upsert(item, collection=collection)
    with serve(root, port=0) as server:
        yield server.url, mtl.parent


def test_provider_l2_landsat_l2sp_converts_sr_scaling(
    landsat_catalog: tuple[str, Path], tmp_path: Path
) -> None:
    url, source = landsat_catalog
    scene = l1_scene(L1TP_ID, datetime(2019, 12, 1, 15, 13, 51, tzinfo=UTC), "008059")
    providers = [{"catalog": "demo", "dataset": "landsat-c2-l2"}]
    same = run(scene, url, tmp_path / "usgs", "LC8_SR-1", providers=providers)
    assert same.metadata["l2_scene_id"] == L2SP_ID
    assert sorted(same.files) == ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "QA_PIXEL"]
    with (
        rasterio.open(source / f"{L2SP_ID}_SR_B4.TIF") as src,
        rasterio.open(same.files["B4"]) as out,
    ):
        # LC8_SR-1 keeps USGS's own scaling (2.75e-05, -0.2): the DNs come back unchanged
        assert (src.read(1) == out.read(1)).all()
        assert out.scales == (2.75e-05,) and out.offsets == (-0.2,)
    x10000 = run(scene, url, tmp_path / "x10000", "LC8_SR_LASRC-1", providers=providers)
    with rasterio.open(x10000.files["B4"]) as out:
        values = out.read(1)
        # DN 9904 at (256, 256): 9904 * 2.75e-05 - 0.2 = 0.07236 -> 724 (int16 x 10000)
        assert values[256, 256] == 724
        assert out.nodata == -9999 and int((values == -9999).sum()) == 80464
    assert x10000.metadata["radiometry"]["B4"]["reflectance_mult"] == 2.75e-05


def test_write_landsat_l2_carries_surface_temperature_in_kelvin(tmp_path: Path) -> None:
    folder = realdata("stactools-landsat/data-files/assets3")
    product = LandsatProduct.open(folder)
    collection = load_collections()["LC8_SR-1"]
    files, radiometry = write_level2(product, collection, tmp_path, processor="provider-l2")
    assert "ST_B10" in files
    with (
        rasterio.open(folder / f"{L2SP_ID}_ST_B10.TIF") as src,
        rasterio.open(files["ST_B10"]) as out,
    ):
        assert (src.read(1) == out.read(1)).all()
        assert out.scales == (0.00341802,) and out.offsets == (149.0,)
    assert radiometry["ST_B10"] == {"temperature_mult": 0.00341802, "temperature_add": 149.0}
