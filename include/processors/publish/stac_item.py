"""STAC Items for published scenes: true footprint, checksums and the pystac item itself.

Properties go through pystac's extension accessors (eo, projection, raster, file, mgrs, grid);
the processing extension, which pystac does not model, is written with the constants below.
Items carry no creation time, so publishing the same inputs twice gives the same item.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
import rasterio.features
import rasterio.warp
import shapely
import shapely.affinity
from affine import Affine
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.grid import GridExtension
from pystac.extensions.mgrs import MgrsExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from shapely.geometry import MultiPolygon, Polygon, box, mapping, shape
from shapely.geometry.polygon import orient

from include.collectors.base import Scene
from include.common.config import BandConfig, CollectionConfig
from include.common.errors import ProcessingError
from include.processors.products.package import instruments_of_id
from include.processors.publish.cog import COG_MEDIA_TYPE, CogInfo
from include.processors.publish.indices import IndexDefinition
from include.processors.publish.quicklook import output_shape

SOFTWARE_NAME = "collection-builder"
PROCESSING_SCHEMA_URI = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
PROCESSING_SOFTWARE_PROP = "processing:software"
PROCESSING_LINEAGE_PROP = "processing:lineage"
PROCESSING_LEVEL_PROP = "processing:level"
PROCESSING_EXPRESSION_PROP = "processing:expression"
SHA2_256_MULTIHASH_PREFIX = "1220"
"""Multihash prefix of a sha2-256 digest: code 0x12, length 0x20 (STAC ``file:checksum``)."""

COLLECTION_HREF = "../collection.json"
FOOTPRINT_MAX_PX = 512
COORDINATE_DECIMALS = 7

_MGRS_TILE = re.compile(r"^(\d{1,2})([C-HJ-NP-X])([A-HJ-NP-Z]{2})$")
_WRS2_TILE = re.compile(r"^(\d{3})(\d{3})$")
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class PublishedBand:
    """One band COG as it goes into the item."""

    band: BandConfig
    cog: CogInfo
    checksum: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class PublishedIndex:
    """One spectral index COG as it goes into the item."""

    index: IndexDefinition
    cog: CogInfo
    checksum: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class PublishedFile:
    """A non-band file of the item (quicklook, thumbnail)."""

    path: Path
    checksum: str
    size_bytes: int
    media_type: str
    roles: tuple[str, ...]
    title: str


def file_checksum(path: Path) -> tuple[str, int]:
    """Return ``(sha2-256 multihash hex, size in bytes)`` of a file, read in 1 MiB chunks.

    Raises:
        OSError: when the file cannot be read.
    """
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return SHA2_256_MULTIHASH_PREFIX + digest.hexdigest(), size


def _rounded(geometry: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(geometry, lambda xy: np.round(xy, COORDINATE_DECIMALS))


def _oriented(geometry: shapely.Geometry) -> shapely.Geometry:
    """Return polygons with counter-clockwise exteriors (GeoJSON right-hand rule), no holes."""
    if isinstance(geometry, Polygon):
        return orient(Polygon(geometry.exterior), 1.0)
    if isinstance(geometry, MultiPolygon):
        return MultiPolygon([orient(Polygon(part.exterior), 1.0) for part in geometry.geoms])
    return geometry


def _as_json(geometry: shapely.Geometry) -> dict[str, Any]:
    """Return a plain GeoJSON dict (lists, not tuples), equal across runs."""
    result: dict[str, Any] = json.loads(json.dumps(mapping(geometry)))
    return result


def footprint(
    path: Path, *, nodata: float | None, max_px: int = FOOTPRINT_MAX_PX
) -> dict[str, Any] | None:
    """Return the WGS84 outline of the valid pixels of a raster, or None when none is valid.

    The valid mask (file mask and ``nodata``) is read at a reduced resolution (longest side
    ``max_px``, from the COG overviews when present), vectorised with ``rasterio.features.shapes``,
    unioned, stripped of holes and of specks smaller than four reduced pixels, simplified by 1.5
    reduced pixel, reprojected to WGS84 and rounded to 1e-7 degrees.

    Args:
        path: a georeferenced raster.
        nodata: a value meaning no data besides the file's own mask (or None).
        max_px: the longest side of the reduced mask.

    Returns:
        A GeoJSON Polygon or MultiPolygon (split at 180 degrees when it crosses), or None.

    Raises:
        ProcessingError: when the raster cannot be read or has no CRS.
    """
    try:
        with rasterio.open(path) as ds:
            if ds.crs is None:
                raise ProcessingError(f"{path.name}: no CRS, cannot compute a footprint")
            rows, cols = output_shape(ds.width, ds.height, min(max_px, max(ds.width, ds.height)))
            data = ds.read(1, out_shape=(rows, cols), resampling=Resampling.nearest)
            valid = ds.read_masks(1, out_shape=(rows, cols), resampling=Resampling.nearest) > 0
            if nodata is not None:
                valid &= data != nodata
            transform = ds.transform @ Affine.scale(ds.width / cols, ds.height / rows)
            crs = ds.crs
    except RasterioError as err:
        raise ProcessingError(f"{path.name}: cannot read the valid-data mask: {err}") from err
    if not valid.any():
        return None
    pixel_area = abs(transform.a * transform.e)
    parts = [
        Polygon(shape(geom).exterior)
        for geom, _ in rasterio.features.shapes(
            valid.astype(np.uint8), mask=valid, transform=transform, connectivity=8
        )
    ]
    outline = shapely.unary_union([part for part in parts if part.area >= 4 * pixel_area] or parts)
    outline = _oriented(outline).simplify(1.5 * abs(transform.a), preserve_topology=True)
    # GDAL (>= 2.2) cuts at the antimeridian itself; split_antimeridian catches a ring it left
    wgs84 = rasterio.warp.transform_geom(crs, "EPSG:4326", mapping(outline))
    return split_antimeridian(_as_json(_oriented(_rounded(shape(wgs84)))))


def _crosses_antimeridian(ring: Sequence[Sequence[float]]) -> bool:
    """Return whether consecutive longitudes of a ring jump by more than 180 degrees."""
    lons = [float(point[0]) for point in ring]
    return any(abs(b - a) > 180 for a, b in zip(lons, lons[1:] + lons[:1], strict=True))


def _unwrapped(polygon: Polygon) -> Polygon:
    """Return the exterior of a polygon that crosses 180 degrees with longitudes in [0, 360)."""
    return Polygon([(lon + 360 if lon < 0 else lon, lat) for lon, lat in polygon.exterior.coords])


def _split_at_180(geometry: shapely.Geometry) -> list[Polygon]:
    """Return the polygons of a geometry in [-360, 540) longitudes cut back into [-180, 180]."""
    parts: list[Polygon] = []
    for xoff in (-360.0, 0.0, 360.0):
        window = shapely.affinity.translate(box(-180, -90, 180, 90), xoff=xoff)
        piece = shapely.affinity.translate(geometry.intersection(window), xoff=-xoff)
        parts += [
            part
            for part in getattr(piece, "geoms", [piece])
            if isinstance(part, Polygon) and not part.is_empty and part.area > 0
        ]
    return parts


def split_antimeridian(geometry: Mapping[str, Any]) -> dict[str, Any]:
    """Return a GeoJSON (Multi)Polygon split at 180 degrees when a ring crosses it (RFC 7946 3.1.9).

    A polygon whose consecutive longitudes jump by more than 180 degrees is unwrapped to
    [0, 360), cut at 180 and its eastern part shifted by -360. Other geometries, including ones
    already split, are returned unchanged.

    Args:
        geometry: a WGS84 GeoJSON geometry.

    Returns:
        The geometry, a MultiPolygon (counter-clockwise exteriors, no holes) when it was split.
    """
    if geometry.get("type") not in ("Polygon", "MultiPolygon"):
        return dict(geometry)
    polygons = list(getattr(shape(geometry), "geoms", [shape(geometry)]))
    if not any(_crosses_antimeridian(polygon.exterior.coords) for polygon in polygons):
        return dict(geometry)
    unwrapped = shapely.unary_union(
        [
            _unwrapped(polygon) if _crosses_antimeridian(polygon.exterior.coords) else polygon
            for polygon in polygons
        ]
    )
    parts = [orient(Polygon(part.exterior), 1.0) for part in _split_at_180(unwrapped)]
    if not parts:
        return dict(geometry)
    return _as_json(_rounded(MultiPolygon(parts) if len(parts) > 1 else parts[0]))


def _longitude_spans(geometry: shapely.Geometry) -> list[tuple[float, float]]:
    """Return the merged, sorted longitude intervals of a geometry's parts."""
    spans = sorted(
        (part.bounds[0], part.bounds[2]) for part in getattr(geometry, "geoms", [geometry])
    )
    merged: list[tuple[float, float]] = [spans[0]]
    for west, east in spans[1:]:
        if west <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], east))
        else:
            merged.append((west, east))
    return merged


def bbox_of(geometry: Mapping[str, Any]) -> list[float]:
    """Return ``[w, s, e, n]`` of a GeoJSON geometry; ``w > e`` when it is split at 180 degrees.

    A geometry with parts on both sides of the antimeridian (touching -180 and 180) gets the
    smallest longitude interval over its parts, which crosses 180 (RFC 7946 section 5.2).
    """
    geom = shape(geometry)
    west, south, east, north = (float(value) for value in geom.bounds)
    if west > -180 or east < 180:
        return [west, south, east, north]
    spans = _longitude_spans(geom)
    if len(spans) == 1:
        return [west, south, east, north]
    gaps = [(spans[i + 1][0] - spans[i][1], i) for i in range(len(spans) - 1)]
    _, widest = max(gaps)
    return [float(spans[widest + 1][0]), south, float(spans[widest][1]), north]


def platform_of(scene: Scene, collection: CollectionConfig) -> str | None:
    """Return the STAC platform (``sentinel-2a``, ``landsat-8``) from the scene or its id."""
    if scene.platform:
        return scene.platform.strip().lower().replace(" ", "-")
    scene_id = scene.scene_id.upper()
    if collection.platform_family == "sentinel-2" and re.match(r"^S2[A-D]_", scene_id):
        return f"sentinel-2{scene_id[2].lower()}"
    match = re.match(r"^L[COTEM]0?(\d)", scene_id)
    if collection.platform_family == "landsat" and match:
        return f"landsat-{match.group(1)}"
    return None


def _instruments(collection: CollectionConfig, scene_id: str) -> list[str]:
    """Return the scene's instruments among the collection's, else the collection's own.

    A collection of several sensors (``L57_NBAR-1``: tm, etm+) names on each item only the
    instruments of that item's scene, read from its product id.
    """
    configured = list(collection.instruments) or (
        ["msi"] if collection.platform_family == "sentinel-2" else ["oli", "tirs"]
    )
    of_scene = set(instruments_of_id(scene_id))
    return [name for name in configured if name in of_scene] or configured


def _tile_properties(item: pystac.Item, collection: CollectionConfig, tile: str | None) -> None:
    if not tile:
        return
    tile = tile.upper().removeprefix("T") if collection.tile_system == "mgrs" else tile
    mgrs_match = _MGRS_TILE.match(tile)
    if collection.tile_system == "mgrs" and mgrs_match:
        mgrs = MgrsExtension.ext(item, add_if_missing=True)
        mgrs.utm_zone = int(mgrs_match.group(1))
        mgrs.latitude_band = mgrs_match.group(2)
        mgrs.grid_square = mgrs_match.group(3)
        GridExtension.ext(item, add_if_missing=True).code = f"MGRS-{tile}"
    elif collection.tile_system == "wrs2" and _WRS2_TILE.match(tile):
        GridExtension.ext(item, add_if_missing=True).code = f"WRS2-{tile}"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _set_projection(
    proj: ProjectionExtension[pystac.Item] | ProjectionExtension[pystac.Asset],
    cog: CogInfo,
    *,
    with_code: bool = True,
) -> None:
    if with_code:
        if cog.epsg is not None:
            proj.epsg = cog.epsg
        else:
            proj.wkt2 = cog.crs_wkt
    proj.shape = [cog.height, cog.width]
    proj.transform = list(cog.transform)
    a, _, c, _, e, f = cog.transform
    xs, ys = (c, c + a * cog.width), (f, f + e * cog.height)
    proj.bbox = [min(xs), min(ys), max(xs), max(ys)]


def _add_band_asset(item: pystac.Item, published: PublishedBand) -> pystac.Asset:
    band, cog = published.band, published.cog
    resolution = cog.resolution_m
    label = f"{band.name} ({band.common_name})" if band.common_name else band.name
    asset = pystac.Asset(
        href=str(cog.path.resolve()),
        title=f"{label} - {resolution:g} m",
        media_type=COG_MEDIA_TYPE,
        roles=["data"],
    )
    item.add_asset(band.name, asset)
    EOExtension.ext(asset, add_if_missing=True).bands = [
        Band.create(
            name=band.name,
            common_name=band.common_name,
            center_wavelength=band.center_wavelength_um,
        )
    ]
    RasterExtension.ext(asset, add_if_missing=True).bands = [
        RasterBand.create(
            nodata=band.nodata if band.nodata is not None else cog.nodata,
            data_type=DataType(cog.dtype),
            spatial_resolution=resolution,
            scale=cog.scale if cog.scale is not None else band.scale,
            offset=cog.offset if cog.offset is not None else band.offset,
            unit=band.unit,
        )
    ]
    file_ext = FileExtension.ext(asset, add_if_missing=True)
    file_ext.checksum = published.checksum
    file_ext.size = published.size_bytes
    return asset


def _index_asset(item: pystac.Item, published: PublishedIndex) -> pystac.Asset:
    index, cog = published.index, published.cog
    asset = pystac.Asset(
        href=str(cog.path.resolve()),
        title=index.title,
        description=f"{index.key} = {index.expression.text} (reflectance; source: {index.source})",
        media_type=COG_MEDIA_TYPE,
        roles=["data", "index"],
    )
    item.add_asset(index.key, asset)
    RasterExtension.ext(asset, add_if_missing=True).bands = [
        RasterBand.create(
            nodata=index.nodata,
            data_type=DataType(cog.dtype),
            spatial_resolution=cog.resolution_m,
            scale=index.stored_scale,
            offset=0.0 if index.stored_scale is not None else None,
        )
    ]
    asset.extra_fields[PROCESSING_EXPRESSION_PROP] = {
        "format": "band-math",
        "expression": index.expression.text,
    }
    file_ext = FileExtension.ext(asset, add_if_missing=True)
    file_ext.checksum = published.checksum
    file_ext.size = published.size_bytes
    return asset


def software_of(version: str, lineage: Mapping[str, Any] | None) -> dict[str, str]:
    """Return ``processing:software``: ours, the publish processor and every upstream processor."""
    software = {SOFTWARE_NAME: version, "publish": version}
    for step in (lineage or {}).get("steps", []):
        for name, step_version in (step.get("software") or {}).items():
            software.setdefault(str(name), str(step_version))
    return software


def lineage_text(
    scene: Scene,
    collection: CollectionConfig,
    *,
    version: str,
    source_collection: str | None,
    has_quicklook: bool,
    indices: Sequence[str] = (),
    lineage: Mapping[str, Any] | None = None,
) -> str:
    """Return the ``processing:lineage`` text: the source scene and every step that made it."""
    source = f", source collection {source_collection}" if source_collection else ""
    steps: list[str] = []
    for step in (lineage or {}).get("steps", []):
        task_type, provider = step.get("task_type"), step.get("provider")
        target = step.get("collection")
        if task_type == "download":
            steps.append(f"downloaded from {provider} into {target}")
        else:
            software = ", ".join(f"{k} {v}" for k, v in (step.get("software") or {}).items())
            steps.append(f"{task_type} by {software or provider} into {target}")
    made = "bands as Cloud-Optimized GeoTIFF"
    if has_quicklook:
        made += ", RGB quicklook with percentile stretch"
    if indices:
        made += f", spectral indices {', '.join(indices)}"
    history = f"{'; '.join(steps)}; " if steps else ""
    return (
        f"{collection.name} ({collection.level}) from scene {scene.scene_id} of catalog "
        f"{scene.catalog} (dataset {scene.dataset}{source}): {history}published by "
        f"{SOFTWARE_NAME} {version}: {made}"
    )


def build_item(
    *,
    scene: Scene,
    collection: CollectionConfig,
    bands: Sequence[PublishedBand],
    files: Mapping[str, PublishedFile],
    geometry: Mapping[str, Any],
    version: str,
    source_collection: str | None = None,
    indices: Sequence[PublishedIndex] = (),
    lineage: Mapping[str, Any] | None = None,
) -> pystac.Item:
    """Return the STAC Item of a published scene.

    Item-level projection fields describe the finest band's grid; a band on another grid gets
    its own ``proj:shape``/``proj:transform``. A footprint that crosses the antimeridian is
    split there and its bbox has west > east. Asset hrefs are absolute file paths: the catalog
    backend makes them relative (static) or URLs (pgstac), see ``include.catalog.hrefs``.

    Args:
        scene: the source scene (id, datetime, cloud cover, platform, tile).
        collection: the target collection (name, level, platform family, tile system).
        bands: the band COGs, in collection order.
        files: other assets by key (``quicklook``, ``thumbnail``).
        geometry: the WGS84 footprint (split at 180 degrees here when it crosses).
        version: the publishing software's version.
        source_collection: the collection the inputs came from, if any.
        indices: the spectral index COGs.
        lineage: the upstream steps (``ProcessorInputs.lineage``).

    Returns:
        A pystac Item with eo, projection, raster, file, processing (and mgrs/grid) fields.

    Raises:
        ProcessingError: when no band is given.
    """
    if not bands:
        raise ProcessingError(f"{scene.scene_id}: no band to put in the STAC item")
    geometry = split_antimeridian(geometry)
    item = pystac.Item(
        id=scene.scene_id,
        geometry=geometry,
        bbox=bbox_of(geometry),
        datetime=_utc(scene.datetime),
        properties={},
        collection=collection.name,
    )
    common = item.common_metadata
    common.platform = platform_of(scene, collection)
    common.constellation = collection.platform_family
    common.instruments = _instruments(collection, scene.scene_id)
    if scene.cloud_pct is not None:
        EOExtension.ext(item, add_if_missing=True).cloud_cover = float(scene.cloud_pct)
    finest = min(bands, key=lambda published: published.cog.resolution_m)
    _set_projection(ProjectionExtension.ext(item, add_if_missing=True), finest.cog)
    _tile_properties(item, collection, scene.tile)
    for published in bands:
        asset = _add_band_asset(item, published)
        same_grid = (published.cog.width, published.cog.height, published.cog.transform) == (
            finest.cog.width,
            finest.cog.height,
            finest.cog.transform,
        )
        if not same_grid:
            _set_projection(
                ProjectionExtension.ext(asset, add_if_missing=True), published.cog, with_code=False
            )
    for published_index in indices:
        _index_asset(item, published_index)
    for key, extra in files.items():
        asset = pystac.Asset(
            href=str(extra.path.resolve()),
            title=extra.title,
            media_type=extra.media_type,
            roles=list(extra.roles),
        )
        item.add_asset(key, asset)
        file_ext = FileExtension.ext(asset, add_if_missing=True)
        file_ext.checksum = extra.checksum
        file_ext.size = extra.size_bytes
    for rel in ("collection", "parent"):
        # relative to the static layout (<collection>/items/<id>.json); backends rewrite links
        item.add_link(
            pystac.Link(
                rel,
                COLLECTION_HREF,
                media_type=pystac.MediaType.JSON,
                title=collection.title,
            )
        )
    if not any(asset.has_role("data") for asset in item.assets.values()):
        raise ProcessingError(f"{scene.scene_id}: the item has no data asset")
    if PROCESSING_SCHEMA_URI not in item.stac_extensions:
        item.stac_extensions.append(PROCESSING_SCHEMA_URI)
    item.properties[PROCESSING_SOFTWARE_PROP] = software_of(version, lineage)
    item.properties[PROCESSING_LEVEL_PROP] = collection.level
    item.properties[PROCESSING_LINEAGE_PROP] = lineage_text(
        scene,
        collection,
        version=version,
        source_collection=source_collection,
        has_quicklook=any(asset.has_role("overview") for asset in item.assets.values()),
        indices=[published.index.key for published in indices],
        lineage=lineage,
    )
    return item
