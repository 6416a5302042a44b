"""Footprints across the antimeridian: split at 180 degrees, bbox west > east (RFC 7946 3.1.9, 5.2).

The crossing case is Sentinel-2 tile 01LAC (EPSG:32701, 179.26 to -179.70 degrees): a raster is
written at the georeference its real MTD_TL.xml states, and our data footprint, metadata
footprint and item are compared with the item stactools-sentinel2 made for that product.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET  # noqa: S405 - a local sample file, read by the test only
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin
from shapely.geometry import MultiPolygon, Polygon, shape

from include.collectors.base import Scene
from include.common.config import load_collections
from include.processors.base import ProcessorInputs
from include.processors.publish import PublishProcessor
from include.processors.publish.metadata import antimeridian_safe, sentinel2_footprint
from include.processors.publish.stac_item import bbox_of, footprint, split_antimeridian
from tests.helpers.realdata import realdata

T01LAC = "stactools-sentinel2/S2A_MSIL1C_20200717T221941_R029_T01LAC_20200717T234135.SAFE"
T01LAC_TILE_XML = "GRANULE/L1C_T01LAC_A026481_20200717T221944/MTD_TL.xml"
T01LAC_ID = "S2A_MSIL1C_20200717T221941_R029_T01LAC_20200717T234135"
GEOPOSITION_RESOLUTION_M = "60"


def expected_item() -> dict[str, Any]:
    """Return stactools-sentinel2's item for the 01LAC product (skips when absent)."""
    data: dict[str, Any] = json.loads((realdata(T01LAC) / "expected_output.json").read_text())
    return data


def write_01lac_raster(path: Path) -> Path:
    """Write a fully valid uint16 raster on the 60 m grid MTD_TL.xml of 01LAC states."""
    root = ET.parse(realdata(T01LAC) / T01LAC_TILE_XML).getroot()  # noqa: S314 - local sample
    geocoding = root.find(".//Tile_Geocoding")
    assert geocoding is not None, "MTD_TL.xml has no Tile_Geocoding"
    epsg = geocoding.findtext("HORIZONTAL_CS_CODE")
    size = geocoding.find(f"Size[@resolution='{GEOPOSITION_RESOLUTION_M}']")
    position = geocoding.find(f"Geoposition[@resolution='{GEOPOSITION_RESOLUTION_M}']")
    assert epsg and size is not None and position is not None
    rows, cols = int(size.findtext("NROWS", "0")), int(size.findtext("NCOLS", "0"))
    ulx, uly = float(position.findtext("ULX", "0")), float(position.findtext("ULY", "0"))
    xdim = float(position.findtext("XDIM", "0"))
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": 1,
        "dtype": "uint16",
        "crs": epsg,
        "transform": from_origin(ulx, uly, xdim, xdim),
        "nodata": 0,
        "compress": "deflate",
        "tiled": True,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, rows, cols), 1000, dtype="uint16"))
    return path


def unwrapped(geometry: dict[str, Any]) -> shapely.Geometry:
    """Return a geometry near 180 degrees with longitudes in [0, 360), parts unioned."""
    parts = list(getattr(shape(geometry), "geoms", [shape(geometry)]))
    shifted = [Polygon([(x + 360 if x < 0 else x, y) for x, y in p.exterior.coords]) for p in parts]
    return shapely.unary_union(shifted)


def iou(a: dict[str, Any], b: dict[str, Any]) -> float:
    first, second = unwrapped(a), unwrapped(b)
    return float(first.intersection(second).area / first.union(second).area)


def assert_split_at_180(geometry: dict[str, Any]) -> None:
    assert geometry["type"] == "MultiPolygon"
    lons = [x for part in geometry["coordinates"] for ring in part for x, _ in ring]
    assert max(lons) == 180.0 and min(lons) == -180.0
    assert all(-180.0 <= x <= 180.0 for x in lons)
    assert shape(geometry).is_valid


def test_footprint_of_01lac_raster_is_split_at_180_with_stactools_bbox(tmp_path: Path) -> None:
    expected = expected_item()
    geometry = footprint(write_01lac_raster(tmp_path / "B04.tif"), nodata=0)
    assert geometry is not None
    assert_split_at_180(geometry)
    west, south, east, north = bbox_of(geometry)
    assert west > east
    assert [west, south, east, north] == pytest.approx(expected["bbox"], abs=0.002)
    assert iou(geometry, expected["geometry"]) > 0.995


def test_metadata_footprint_of_01lac_equals_stactools_geometry_and_bbox() -> None:
    expected = expected_item()
    geometry = sentinel2_footprint(realdata(T01LAC) / "MTD_MSIL1C.xml")
    assert geometry is not None
    assert_split_at_180(geometry)
    assert bbox_of(geometry) == pytest.approx(expected["bbox"], abs=1e-6)
    assert iou(geometry, expected["geometry"]) > 0.9999


def test_publish_01lac_item_is_split_at_180_with_bbox_west_greater_than_east(
    tmp_path: Path,
) -> None:
    expected = expected_item()
    scene = Scene(
        scene_id=T01LAC_ID,
        catalog="cdse",
        dataset="S2MSI1C",
        datetime=datetime(2020, 7, 17, 22, 19, 41, tzinfo=UTC),
        cloud_pct=None,
        tile="01LAC",
        footprint=None,
    )
    result = PublishProcessor().run(
        ProcessorInputs(
            scene=scene,
            collection=load_collections()["S2_L1C-1"],
            files={"B04": write_01lac_raster(tmp_path / "B04.tif")},
            output_dir=tmp_path / "out",
            args={"quicklook": False, "indices": False},
        )
    )
    assert result.item is not None
    assert_split_at_180(result.item["geometry"])
    assert result.item["bbox"][0] > result.item["bbox"][2]
    assert result.item["bbox"] == pytest.approx(expected["bbox"], abs=0.002)
    assert result.item["properties"]["proj:code"] == expected["properties"]["proj:code"]


def test_split_antimeridian_ring_that_jumps_across_180_becomes_two_parts() -> None:
    ring = [(179.5, -16.0), (-179.5, -16.0), (-179.5, -15.0), (179.5, -15.0), (179.5, -16.0)]
    geometry = split_antimeridian({"type": "Polygon", "coordinates": [ring]})
    assert_split_at_180(geometry)
    assert bbox_of(geometry) == [179.5, -16.0, -179.5, -15.0]
    assert shape(geometry).area == pytest.approx(1.0)
    for part in shape(geometry).geoms:
        assert part.exterior.is_ccw
    assert shape(antimeridian_safe(ring)).equals(shape(geometry))


def test_split_antimeridian_footprint_that_does_not_cross_is_unchanged() -> None:
    polygon = {
        "type": "Polygon",
        "coordinates": [[[-46.0, -13.0], [-45.0, -13.0], [-45.0, -12.0], [-46.0, -12.0]]],
    }
    assert split_antimeridian(polygon) == polygon
    assert bbox_of(polygon) == [-46.0, -13.0, -45.0, -12.0]
    point = {"type": "Point", "coordinates": [179.9, 0.0]}
    assert split_antimeridian(point) == point


def test_bbox_of_parts_far_from_180_or_one_part_spanning_the_globe_is_plain() -> None:
    apart = MultiPolygon(
        [Polygon([(170, 0), (171, 0), (171, 1)]), Polygon([(-171, 0), (-170, 0), (-170, 1)])]
    )
    assert bbox_of(shapely.geometry.mapping(apart)) == [-171.0, 0.0, 171.0, 1.0]
    band = Polygon([(-180, 80), (180, 80), (180, 90), (-180, 90)])
    assert bbox_of(shapely.geometry.mapping(band)) == [-180.0, 80.0, 180.0, 90.0]


def test_bbox_of_split_parts_on_both_sides_takes_the_short_way_round() -> None:
    parts = MultiPolygon(
        [
            Polygon([(179, 0), (180, 0), (180, 1), (179, 1)]),
            Polygon([(-180, 0), (-179, 0), (-179, 1), (-180, 1)]),
            Polygon([(-178.5, 0), (-178, 0), (-178, 1)]),
        ]
    )
    assert bbox_of(shapely.geometry.mapping(parts)) == [179.0, 0.0, -178.0, 1.0]
