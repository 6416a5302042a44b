"""Published STAC items: every field the issue lists, lineage, and stac-validator (offline core)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rasterio.crs import CRS

from include.catalog.static_stac import StaticStacBackend, collection_from_config
from include.collectors.base import Scene
from include.common.config import CollectionConfig, load_collections
from include.demo.build import build_demo_catalog
from include.processors.base import ProcessorInputs, ProcessorResult
from include.processors.publish import PublishProcessor
from include.processors.publish.cog import CogInfo
from include.processors.publish.stac_item import PublishedBand, _instruments, build_item
from tests.helpers.stac_validation import validate_offline

LINEAGE = {
    "steps": [
        {"task_type": "download", "collection": "S2_L1C-1", "provider": "demo"},
        {
            "task_type": "correction",
            "collection": "S2_L2A-1",
            "provider": "provider-l2",
            "software": {"provider-l2": "0.3.0"},
        },
    ]
}


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProcessorResult, Path]:
    out = tmp_path_factory.mktemp("out")
    result = _publish_demo(tmp_path_factory.mktemp("demo"), out, size_px=256, lineage=LINEAGE)
    return result, out


def _publish_demo(
    root: Path,
    out: Path,
    *,
    size_px: int,
    lineage: dict[str, Any] | None = None,
    args: dict[str, Any] | None = None,
) -> ProcessorResult:
    """Publish one demo S2 L2A scene (built under ``root``) to S2_L2A-1 in ``out``."""
    item = build_demo_catalog(root, scenes=1, size_px=size_px)[0]
    scene = Scene(
        scene_id=item["id"],
        catalog="demo",
        dataset="S2MSI2A",
        datetime=datetime.fromisoformat(item["properties"]["datetime"]),
        cloud_pct=item["properties"]["eo:cloud_cover"],
        tile="23LLF",
        footprint=None,
    )
    files = {k: root / a["href"].lstrip("/") for k, a in item["assets"].items()}
    return PublishProcessor().run(
        ProcessorInputs(
            scene=scene,
            collection=load_collections()["S2_L2A-1"],
            files=files,
            output_dir=out,
            source_collection="S2_L2A-1",
            lineage=lineage or {},
            args=args or {},
        )
    )


def item_of(published: tuple[ProcessorResult, Path]) -> dict[str, Any]:
    item = published[0].item
    assert item is not None
    return item


def test_publish_item_has_every_field_of_the_issue(
    published: tuple[ProcessorResult, Path],
) -> None:
    item = item_of(published)
    props = item["properties"]
    assert item["id"].startswith("S2A_") and item["collection"] == "S2_L2A-1"
    assert item["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert props["datetime"].endswith("Z") and "eo:cloud_cover" in props
    assert (props["platform"], props["constellation"], props["instruments"]) == (
        "sentinel-2a",
        "sentinel-2",
        ["msi"],
    )
    assert props["proj:code"] == "EPSG:32723" and props["proj:shape"] == [256, 256]
    assert len(props["proj:transform"]) == 6 and len(props["proj:bbox"]) == 4
    for key in ("B04", "NDVI", "quicklook"):
        asset = item["assets"][key]
        assert asset["file:checksum"].startswith("1220") and asset["file:size"] > 0
    b04 = item["assets"]["B04"]
    assert b04["eo:bands"][0]["common_name"] == "red"
    assert b04["raster:bands"][0] == {
        "nodata": 0,
        "data_type": "uint16",
        "spatial_resolution": 80.0,
        "scale": 0.0001,
    }
    ndvi = item["assets"]["NDVI"]
    assert ndvi["raster:bands"][0]["data_type"] == "int16"
    assert ndvi["processing:expression"]["expression"] == "(B08 - B04) / (B08 + B04)"
    assert {link["rel"] for link in item["links"]} == {"collection", "parent"}


def test_publish_item_lineage_names_source_provider_and_processors(
    published: tuple[ProcessorResult, Path],
) -> None:
    props = item_of(published)["properties"]
    assert props["processing:software"] == {
        "collection-builder": "0.1.0",
        "publish": "0.1.0",
        "provider-l2": "0.3.0",
    }
    lineage = props["processing:lineage"]
    assert "scene S2A_MSIL1C_20200109T132231" in lineage and "catalog demo" in lineage
    assert "downloaded from demo into S2_L1C-1" in lineage
    assert "correction by provider-l2 0.3.0 into S2_L2A-1" in lineage
    assert "spectral indices NDVI, EVI" in lineage  # the others are declared default: false


def test_publish_writes_default_indices_unless_the_run_names_others(
    published: tuple[ProcessorResult, Path], tmp_path: Path
) -> None:
    collection = load_collections()["S2_L2A-1"]
    declared = set(collection.indices)
    assert {"NDVI", "EVI", "NDWI", "NDMI"} <= declared
    assert set(item_of(published)["assets"]) & declared == {"NDVI", "EVI"}
    # a run naming indices writes those, declared default: false or not
    result = _publish_demo(
        tmp_path / "demo", tmp_path / "out", size_px=64, args={"indices": ["NDWI", "ndmi"]}
    )
    assert result.item is not None
    assert set(result.item["assets"]) & declared == {"NDWI", "NDMI"}


def test_publish_item_passes_stac_validator_offline(
    published: tuple[ProcessorResult, Path], tmp_path: Path
) -> None:
    # core schemas only: extension schemas are not available offline (see the helper)
    path = tmp_path / "item.json"
    path.write_text(json.dumps(item_of(published)))
    valid, messages = validate_offline(path)
    assert valid, messages


def test_static_catalog_item_and_collection_pass_stac_validator_offline(
    published: tuple[ProcessorResult, Path], tmp_path: Path
) -> None:
    backend = StaticStacBackend(tmp_path / "stac")
    backend.upsert(item_of(published), collection_from_config(load_collections()["S2_L2A-1"]))
    item_path = backend.item_path("S2_L2A-1", item_of(published)["id"])
    for path in (item_path, backend.collection_path("S2_L2A-1"), backend.catalog_path()):
        valid, messages = validate_offline(path)
        assert valid, (path, messages)


def test_stac_validator_offline_rejects_an_item_without_datetime(
    published: tuple[ProcessorResult, Path], tmp_path: Path
) -> None:
    item = dict(item_of(published))
    item["properties"] = {k: v for k, v in item["properties"].items() if k != "datetime"}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(item))
    valid, _ = validate_offline(path)
    assert not valid


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"footprint": "catalog"}, "args.footprint"),
        ({"indices": "NDVI"}, "args.indices"),
        ({"indices": ["NOPE"]}, "args.indices"),
    ],
)
def test_publish_bad_index_or_footprint_args_raise_invalid_input(
    published: tuple[ProcessorResult, Path], tmp_path: Path, args: dict[str, Any], field: str
) -> None:
    from include.common.errors import InvalidInputError

    result, out = published
    files = {key: path for key, path in result.files.items() if key in ("B04", "B08")}
    scene = Scene(
        scene_id=item_of(published)["id"],
        catalog="demo",
        dataset="S2MSI2A",
        datetime=datetime(2020, 1, 9),
        cloud_pct=None,
        tile="23LLF",
        footprint=None,
    )
    inputs = ProcessorInputs(
        scene=scene,
        collection=load_collections()["S2_L2A-1"],
        files=files,
        output_dir=tmp_path,
        args=args,
    )
    with pytest.raises(InvalidInputError, match=field):
        PublishProcessor().run(inputs)


def landsat_band(collection: CollectionConfig, name: str, path: Path) -> PublishedBand:
    """Return a published band on a hand-made 30 m UTM 23S grid (no file is read)."""
    band = collection.band(name)
    assert band is not None, name
    cog = CogInfo(
        path=path,
        width=100,
        height=100,
        dtype="uint16",
        nodata=0,
        epsg=32623,
        crs_wkt=CRS.from_epsg(32623).to_wkt(),
        transform=(30.0, 0.0, 300000.0, 0.0, -30.0, 8600000.0),
        overviews=(),
        compression="deflate",
    )
    return PublishedBand(band=band, cog=cog, checksum="1220" + "0" * 64, size_bytes=1)


def landsat_item(collection: CollectionConfig, names: tuple[str, ...], tmp_path: Path) -> Any:
    scene = Scene(
        scene_id="LC08_L2SP_220069_20200101_20200113_02_T1",
        catalog="usgs",
        dataset="landsat_ot_c2_l2",
        datetime=datetime(2020, 1, 1, tzinfo=UTC),
        cloud_pct=None,
        tile="220069",
        footprint=None,
    )
    geometry = {
        "type": "Polygon",
        "coordinates": [[[-46.0, -13.0], [-45.0, -13.0], [-45.0, -12.0], [-46.0, -12.0]]],
    }
    bands = [landsat_band(collection, name, tmp_path / f"{name}.tif") for name in names]
    return build_item(
        scene=scene, collection=collection, bands=bands, files={}, geometry=geometry, version="t"
    ).to_dict(include_self_link=False, transform_hrefs=False)


@pytest.mark.parametrize(
    ("name", "instruments"),
    [
        ("S2_L1C-1", ["msi"]),
        ("LC8_SR-1", ["oli", "tirs"]),
        ("LT5_SR-1", ["tm"]),
        ("LE7_SR-1", ["etm+"]),
        ("L57_NBAR-1", ["tm", "etm+"]),
    ],
)
def test_build_item_instruments_are_the_collection_config_ones(
    name: str, instruments: list[str], tmp_path: Path
) -> None:
    assert _instruments(load_collections()[name], "not-a-product-id") == instruments


@pytest.mark.parametrize(
    ("scene_id", "instruments"),
    [
        ("LT05_L2SP_221071_20110729_20200820_02_T1", ["tm"]),
        ("LE07_L2SP_221071_20110721_20200910_02_T1", ["etm+"]),
    ],
)
def test_build_item_instruments_of_a_several_sensor_collection_are_the_scene_ones(
    scene_id: str, instruments: list[str]
) -> None:
    assert _instruments(load_collections()["L57_NBAR-1"], scene_id) == instruments


def test_build_item_instruments_without_config_fall_back_to_the_platform_family() -> None:
    for name, usual in (("S2_L2A-1", ["msi"]), ("LT5_SR-1", ["oli", "tirs"])):
        collection = load_collections()[name].model_copy(update={"instruments": ()})
        assert _instruments(collection, "not-a-product-id") == usual


def test_build_item_landsat_item_carries_tm_instrument(tmp_path: Path) -> None:
    item = landsat_item(load_collections()["LT5_SR-1"], ("B3", "ST_B6"), tmp_path)
    assert item["properties"]["instruments"] == ["tm"]


@pytest.mark.parametrize(("name", "thermal"), [("LC8_SR-1", "ST_B10"), ("LT5_SR-1", "ST_B6")])
def test_build_item_surface_temperature_raster_band_has_unit_kelvin(
    name: str, thermal: str, tmp_path: Path
) -> None:
    collection = load_collections()[name]
    reflective = "B4"
    item = landsat_item(collection, (reflective, thermal), tmp_path)
    st = item["assets"][thermal]["raster:bands"][0]
    assert st["unit"] == "kelvin"
    assert (st["scale"], st["offset"]) == (0.00341802, 149.0)
    assert "unit" not in item["assets"][reflective]["raster:bands"][0]
