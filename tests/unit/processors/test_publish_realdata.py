"""Our items for real Sentinel-2 and Landsat products vs the independent reference items beside
them (stactools-sentinel2 ``expected_output.json``, the USGS ``*_SR_stac.json`` of
stactools-landsat): footprint, datetime, EPSG, cloud cover, band list.

The product metadata is real; the Landsat 008059 bands are real (downsampled by the source
repository); for the products whose bands are not in the sample data, small rasters are built
on the product's real grid (tile origin and EPSG from its metadata) and the footprint comes from
the metadata (``footprint: metadata``).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import shape

from include.collectors.base import Scene
from include.common.config import CollectionConfig, load_collections
from include.processors.base import ProcessorInputs
from include.processors.products.xmlsafe import find_local, parse_xml, text_of
from include.processors.publish import PublishProcessor

REPO = Path(__file__).resolve().parents[3]
S2_SAFES = (
    "S2A_MSIL1C_20200717T221941_R029_T01LAC_20200717T234135.SAFE",
    "S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248.SAFE",
    "S2A_MSIL2A_20190212T192651_N0212_R013_T07HFE_20201007T160857.SAFE",
    "esa_S2B_MSIL2A_20210122T133229_N0214_R081_T22HBD_20210122T155500.SAFE",
)
LANDSAT_REAL = "stactools-landsat/data-files/assets3"
LANDSAT_REAL_ID = "LC08_L2SP_008059_20191201_20200825_02_T1"
LANDSAT_ANTIMERIDIAN = "stactools-landsat/data-files/oli-tirs"
LANDSAT_ANTIMERIDIAN_ID = "LC08_L2SR_084024_20160111_20201016_02_T1"


def realdata(relative: str) -> Path:
    root = Path(os.environ.get("REALDATA_DIR") or REPO.parent / "shared" / "realdata")
    path = root / relative
    if not path.exists():
        pytest.skip(f"real sample {path} not found (set REALDATA_DIR)")
    return path


def iou(left: dict[str, Any], right: dict[str, Any]) -> float:
    a, b = shape(left), shape(right)
    return float(a.intersection(b).area / a.union(b).area)


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def build_bands(
    folder: Path, collection: CollectionConfig, *, epsg: int, ulx: float, uly: float, size_m: float
) -> dict[str, Path]:
    """Small all-valid rasters (64 x 64) covering ``size_m`` from the real grid origin."""
    folder.mkdir(parents=True, exist_ok=True)
    pixel = size_m / 64
    files = {}
    for band in collection.bands:
        path = folder / f"{band.name}.tif"
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=64,
            height=64,
            count=1,
            dtype="uint8" if band.data_type == "uint8" else "uint16",
            crs=f"EPSG:{epsg}",
            transform=Affine(pixel, 0, ulx, 0, -pixel, uly),
            nodata=band.nodata,
        ) as ds:
            ds.write(np.full((64, 64), 5, dtype=ds.dtypes[0]), 1)
        files[band.name] = path
    return files


def publish(
    scene_id: str,
    collection: CollectionConfig,
    files: dict[str, Path],
    out: Path,
    *,
    footprint: str = "data",
) -> dict[str, Any]:
    scene = Scene(
        scene_id=scene_id,
        catalog="realdata",
        dataset="product",
        datetime=datetime(2000, 1, 1, tzinfo=UTC),  # the product metadata must win
        cloud_pct=None,
        tile=None,
        footprint=None,
    )
    result = PublishProcessor().run(
        ProcessorInputs(
            scene=scene,
            collection=collection,
            files=files,
            output_dir=out,
            args={"quicklook": False, "indices": False, "footprint": footprint},
        )
    )
    assert result.item is not None
    return result.item


def spectral_band_names(item: dict[str, Any]) -> set[str]:
    names = set()
    for asset in item["assets"].values():
        bands = asset.get("eo:bands") or []
        if len(bands) == 1 and bands[0].get("center_wavelength") is not None:
            names.add(bands[0]["name"])
    return names


@pytest.mark.parametrize("safe_name", S2_SAFES)
def test_sentinel2_item_matches_stactools_reference(safe_name: str, tmp_path: Path) -> None:
    safe = realdata(f"stactools-sentinel2/{safe_name}")
    reference = json.loads((safe / "expected_output.json").read_text())
    product_xml = next(safe.glob("MTD_MSIL*.xml"))
    tile_xml = next(safe.glob("GRANULE/*/MTD_TL.xml"))
    tile = parse_xml(tile_xml)
    geoposition = find_local(tile, "Geoposition")
    assert geoposition is not None
    epsg = int((text_of(tile, "HORIZONTAL_CS_CODE") or "").split(":")[-1])
    ulx, uly = float(text_of(geoposition, "ULX") or 0), float(text_of(geoposition, "ULY") or 0)
    level = "S2_L2A-1" if "MSIL2A" in product_xml.name else "S2_L1C-1"
    collection = load_collections()[level]
    files = build_bands(tmp_path / "bands", collection, epsg=epsg, ulx=ulx, uly=uly, size_m=109800)
    files |= {"MTD_PRODUCT": product_xml, "MTD_TL": tile_xml}

    item = publish(safe_name.removesuffix(".SAFE"), collection, files, tmp_path / "out",
                   footprint="metadata")  # fmt: skip
    props, ref = item["properties"], reference["properties"]

    assert item["geometry"]["type"] == reference["geometry"]["type"]
    assert iou(item["geometry"], reference["geometry"]) > 0.995
    assert when(props["datetime"]) == when(ref["datetime"])
    assert props["proj:code"] == ref["proj:code"] == f"EPSG:{epsg}"
    assert props["eo:cloud_cover"] == pytest.approx(ref["eo:cloud_cover"], abs=1e-6)
    assert (props["platform"], props["instruments"]) == (ref["platform"], ref["instruments"])
    assert spectral_band_names(item) == spectral_band_names(reference)


def test_landsat_item_from_real_bands_matches_usgs_reference(tmp_path: Path) -> None:
    folder = realdata(LANDSAT_REAL)
    reference = json.loads((folder / f"{LANDSAT_REAL_ID}_SR_stac.json").read_text())
    files = {f"SR_B{i}": folder / f"{LANDSAT_REAL_ID}_SR_B{i}.TIF" for i in range(1, 8)}
    files |= {
        "MTL": folder / f"{LANDSAT_REAL_ID}_MTL.txt",
        "ANG": folder / f"{LANDSAT_REAL_ID}_ANG.txt",
    }
    collection = load_collections()["LC8_SR-1"]
    from_data = publish(LANDSAT_REAL_ID, collection, files, tmp_path / "data")
    from_metadata = publish(
        LANDSAT_REAL_ID, collection, files, tmp_path / "meta", footprint="metadata"
    )
    ref = reference["properties"]
    with rasterio.open(files["SR_B4"]) as ds:
        raster_epsg = ds.crs.to_epsg()
    for item in (from_data, from_metadata):
        props = item["properties"]
        assert props["datetime"][:10] == ref["datetime"]  # the reference gives the date only
        assert props["eo:cloud_cover"] == pytest.approx(ref["eo:cloud_cover"])
        assert props["proj:code"] == f"EPSG:{raster_epsg}" == "EPSG:32618"
        assert props["platform"] == ref["eo:platform"].lower().replace("_", "-")
        ours = [b["eo:bands"][0] for b in item["assets"].values() if "eo:bands" in b]
        assert [b.get("common_name") for b in ours if b.get("center_wavelength")] == [
            b["common_name"] for b in ref["eo:bands"]
        ]
    # the valid-data outline of the real (downsampled) bands, and the ANG image corners
    assert iou(from_data["geometry"], reference["geometry"]) > 0.95
    assert iou(from_metadata["geometry"], reference["geometry"]) > 0.97


def test_landsat_antimeridian_item_is_split_at_180_and_matches_usgs_facts(tmp_path: Path) -> None:
    folder = realdata(LANDSAT_ANTIMERIDIAN)
    reference = json.loads((folder / f"{LANDSAT_ANTIMERIDIAN_ID}_SR_stac.json").read_text())
    collection = load_collections()["LC8_SR-1"]
    # the grid of the MTL: UL corner 257400 / 5849700 in UTM zone 1, 8031 x 8121 px of 30 m
    files = build_bands(
        tmp_path / "bands", collection, epsg=32601, ulx=257400, uly=5849700, size_m=8031 * 30
    )
    files |= {
        "MTL": folder / f"{LANDSAT_ANTIMERIDIAN_ID}_MTL.txt",
        "ANG": folder / f"{LANDSAT_ANTIMERIDIAN_ID}_ANG.txt",
    }
    item = publish(LANDSAT_ANTIMERIDIAN_ID, collection, files, tmp_path / "out",
                   footprint="metadata")  # fmt: skip
    props, ref = item["properties"], reference["properties"]
    assert props["datetime"][:10] == ref["datetime"]
    assert props["eo:cloud_cover"] == pytest.approx(ref["eo:cloud_cover"])
    assert props["proj:code"] == "EPSG:32601"
    # The reference polygon is not valid GeoJSON across 180 degrees (its ring jumps from -179.7
    # to 179.97 and back, out of order), so only its latitude range is comparable; ours is a
    # MultiPolygon split at the antimeridian (RFC 7946 3.1.9).
    assert item["geometry"]["type"] == "MultiPolygon"
    lons = [x for part in item["geometry"]["coordinates"] for x, _ in part[0]]
    assert max(lons) == 180.0 and min(lons) == -180.0
    lats = [y for part in item["geometry"]["coordinates"] for _, y in part[0]]
    ref_lats = [y for _, y in reference["geometry"]["coordinates"][0]]
    assert min(lats) == pytest.approx(min(ref_lats), abs=0.05)
    assert max(lats) == pytest.approx(max(ref_lats), abs=0.05)
