"""Item facts from product metadata: footprint, datetime, cloud cover, platform, EPSG.

The product readers (``include.processors.products``) give datetime, cloud cover, platform and
the tile EPSG; this module adds what the STAC item needs beyond them:

- Sentinel-2: the product footprint, ``Global_Footprint/EXT_POS_LIST`` of MTD_MSIL1C.xml /
  MTD_MSIL2A.xml (lat lon pairs of the valid-data outline, as ESA computed it);
- Landsat Collection 2: the footprint of the valid image, the four ``BAND01_L1T_IMAGE_CORNER_
  LINES/SAMPS`` of the ANG file placed on the MTL's grid (``CORNER_UL_PROJECTION_X/Y_PRODUCT``,
  ``GRID_CELL_SIZE_REFLECTIVE``) in its UTM zone; without an ANG file, the product corners
  (``CORNER_*_LAT/LON_PRODUCT``), which enclose the valid image; EPSG 326zz from ``UTM_ZONE``
  (Landsat grids use northern zones everywhere).

Footprints that cross the antimeridian are split into a MultiPolygon (GeoJSON, RFC 7946 3.1.9)
by ``stac_item.split_antimeridian``, the one owner of that rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import rasterio.warp
import shapely
from shapely.geometry import Polygon, mapping
from shapely.geometry.polygon import orient

from include.common.errors import FieldProblem, InvalidInputError
from include.processors.products import (
    landsat_metadata,
    parse_mtl,
    parse_product_metadata,
    parse_tile_metadata,
)
from include.processors.products.xmlsafe import parse_xml, text_of
from include.processors.publish.stac_item import split_antimeridian

S2_PRODUCT_FILES = ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml")
S2_TILE_FILES = ("MTD_TL.xml",)
_MTL = re.compile(r"_MTL\.(txt|xml|json)$", re.IGNORECASE)
_ANG = re.compile(r"_ANG\.txt$", re.IGNORECASE)
_ANG_ARRAY = r"BAND01_L1T_IMAGE_CORNER_{}\s*=\s*\(([^)]*)\)"


@dataclass(frozen=True, slots=True)
class ProductFacts:
    """What product metadata says about a scene, for its STAC item (None: not stated)."""

    source: str
    datetime: datetime | None = None
    cloud_cover_pct: float | None = None
    platform: str | None = None
    epsg: int | None = None
    footprint: dict[str, Any] | None = None


def _json_geometry(geometry: shapely.Geometry) -> dict[str, Any]:
    """Return a plain GeoJSON dict (lists, not tuples), equal across runs."""
    parsed: dict[str, Any] = json.loads(json.dumps(mapping(geometry)))
    return parsed


def antimeridian_safe(lonlat: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Return a GeoJSON Polygon of a lon/lat ring, split into a MultiPolygon at 180 degrees.

    A ring whose consecutive longitudes jump by more than 180 degrees crosses the antimeridian:
    ``stac_item.split_antimeridian`` unwraps it to [0, 360), splits it at 180 and shifts the
    eastern part back by -360; its ``bbox_of`` then gives west > east (RFC 7946 3.1.9, 5.2).
    """
    ring = [(float(lon), float(lat)) for lon, lat in lonlat]
    return split_antimeridian(_json_geometry(orient(Polygon(ring), 1.0)))


def sentinel2_footprint(product_xml: Path) -> dict[str, Any] | None:
    """Return the product footprint of MTD_MSIL1C/2A.xml as GeoJSON, or None when absent.

    Raises:
        InvalidInputError: when the file is not XML or the position list is malformed.
    """
    root = parse_xml(product_xml)
    text = text_of(root, "EXT_POS_LIST")
    if not text:
        return None
    numbers = text.split()
    if len(numbers) < 8 or len(numbers) % 2:
        raise InvalidInputError(
            FieldProblem(
                f"files[{product_xml.name}]",
                f"EXT_POS_LIST has {len(numbers)} numbers, not lat/lon pairs",
                "download the product again",
            )
        )
    values = [float(v) for v in numbers]
    lonlat = [(values[i + 1], values[i]) for i in range(0, len(values), 2)]
    return antimeridian_safe(lonlat)


def sentinel2_facts(product_xml: Path, tile_xml: Path | None = None) -> ProductFacts:
    """Return the facts of a Sentinel-2 product (MTD_MSIL1C/2A.xml, optionally MTD_TL.xml).

    Raises:
        InvalidInputError: when a file is not valid metadata.
    """
    product = parse_product_metadata(product_xml)
    tile = parse_tile_metadata(tile_xml) if tile_xml is not None else None
    cloud = product.cloud_cover_pct
    if cloud is None and tile is not None:
        cloud = tile.cloud_cover_pct
    return ProductFacts(
        source=product_xml.name + (f" + {tile_xml.name}" if tile_xml else ""),
        datetime=product.sensing_time or (tile.sensing_time if tile else None),
        cloud_cover_pct=cloud,
        platform=product.platform,
        epsg=tile.epsg if tile is not None else None,
        footprint=sentinel2_footprint(product_xml),
    )


def _floats(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _ang_corners(ang: Path) -> tuple[list[float], list[float]] | None:
    text = ang.read_text(encoding="utf-8", errors="replace")
    lines = re.search(_ANG_ARRAY.format("LINES"), text)
    samps = re.search(_ANG_ARRAY.format("SAMPS"), text)
    if not lines or not samps:
        return None
    rows = [float(v) for v in lines.group(1).replace(",", " ").split()]
    cols = [float(v) for v in samps.group(1).replace(",", " ").split()]
    return (rows, cols) if len(rows) == len(cols) == 4 else None


def landsat_facts(mtl: Path, ang: Path | None = None) -> ProductFacts:
    """Return the facts of a Landsat Collection 2 product (its MTL, optionally its ANG file).

    Raises:
        InvalidInputError: when the MTL cannot be parsed.
    """
    document = parse_mtl(mtl)
    meta = landsat_metadata(document)
    group = "PROJECTION_ATTRIBUTES"
    zone_text = document.get(group, "UTM_ZONE")
    epsg = (
        32600 + int(zone_text)
        if document.get(group, "MAP_PROJECTION") == "UTM" and zone_text and zone_text.isdigit()
        else None
    )
    footprint: dict[str, Any] | None = None
    ulx = _floats(document.get(group, "CORNER_UL_PROJECTION_X_PRODUCT"))
    uly = _floats(document.get(group, "CORNER_UL_PROJECTION_Y_PRODUCT"))
    cell = _floats(document.get(group, "GRID_CELL_SIZE_REFLECTIVE"))
    corners = _ang_corners(ang) if ang is not None else None
    if corners and epsg and None not in (ulx, uly, cell):
        rows, cols = corners
        xs = [float(ulx or 0) + col * float(cell or 0) for col in cols]
        ys = [float(uly or 0) - row * float(cell or 0) for row in rows]
        lons, lats = rasterio.warp.transform(f"EPSG:{epsg}", "EPSG:4326", xs, ys)
        footprint = antimeridian_safe(list(zip(lons, lats, strict=True)))
    else:
        lonlat: list[tuple[float, float]] = []
        for corner in ("UL", "UR", "LR", "LL"):
            lat = _floats(document.get(group, f"CORNER_{corner}_LAT_PRODUCT"))
            lon = _floats(document.get(group, f"CORNER_{corner}_LON_PRODUCT"))
            if lat is None or lon is None:
                lonlat = []
                break
            lonlat.append((lon, lat))
        footprint = antimeridian_safe(lonlat) if lonlat else None
    return ProductFacts(
        source=mtl.name + (f" + {ang.name}" if ang else ""),
        datetime=meta.acquired,
        cloud_cover_pct=meta.cloud_cover_pct,
        platform=meta.platform,
        epsg=epsg,
        footprint=footprint,
    )


def product_facts(files: Mapping[str, Path]) -> ProductFacts | None:
    """Return the facts of the product metadata among a step's files, or None when there is none.

    Recognised by file name: ``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml`` (+ ``MTD_TL.xml``) for
    Sentinel-2, ``*_MTL.txt|xml|json`` (+ ``*_ANG.txt``) for Landsat.

    Raises:
        InvalidInputError: when a recognised file is not valid metadata.
    """
    paths = [Path(path) for path in files.values()]
    by_name = {path.name: path for path in paths}
    product = next((by_name[name] for name in S2_PRODUCT_FILES if name in by_name), None)
    if product is not None:
        tile = next((by_name[name] for name in S2_TILE_FILES if name in by_name), None)
        return sentinel2_facts(product, tile)
    mtls = sorted(path for path in paths if _MTL.search(path.name))
    if mtls:
        preferred = sorted(mtls, key=lambda path: path.suffix.lower() != ".txt")[0]
        ang = next((path for path in paths if _ANG.search(path.name)), None)
        return landsat_facts(preferred, ang)
    return None
