"""Optional parts of the demo catalog: L1C product metadata assets and the L2A collection.

Called by ``build_demo_catalog`` when asked (``product_metadata=True``, ``l2a=True``); the
default catalog is unchanged.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from include.catalog.static_stac import StaticStacBackend
from include.demo.l2a import (
    L2A_COLLECTION_ID,
    SCL_BAND,
    l2a_metadata,
    l2a_names,
    metadata_asset,
    scl_asset,
    to_l2a_item,
    write_l2a_files,
)
from include.demo.product_metadata import product_metadata_xml, write_product_metadata
from include.demo.scenes import (
    BANDS,
    FILES_DIR,
    TILE,
    DemoSceneSpec,
    build_item,
    demo_collection,
)
from include.processors.publish.cog import COG_MEDIA_TYPE
from include.processors.publish.quicklook import write_quicklook
from include.processors.publish.stac_item import file_checksum

log = logging.getLogger(__name__)


def _absolute_orbit(sensing: datetime) -> int:
    return int((sensing - datetime(2015, 6, 23, tzinfo=UTC)).days * 14.3)


def with_l1c_metadata(
    item: dict[str, Any], spec: DemoSceneSpec, scene_dir: Path, cloud_pct: float
) -> dict[str, Any]:
    """Write the scene's MTD_MSIL1C.xml and return ``item`` with its ``product_metadata`` asset."""
    document = product_metadata_xml(
        spec.product_name,
        level="L1C",
        sensing_time=spec.sensing_time,
        generation_time=spec.generation_time,
        baseline=spec.baseline,
        relative_orbit=spec.relative_orbit,
        absolute_orbit=_absolute_orbit(spec.sensing_time),
        tile=TILE,
        cloud_pct=cloud_pct,
        bands=tuple(band.name for band in BANDS),
        offset_dn=-spec.radiometric_offset,
    )
    path = write_product_metadata(scene_dir / "MTD_MSIL1C.xml", document)
    checksum, size = file_checksum(path)
    asset = metadata_asset(
        f"/{FILES_DIR}/{spec.product_name}/{path.name}", checksum, size, "Product metadata"
    )
    mask = write_msk_classi(scene_dir, spec.radiometric_offset)
    mask_checksum, mask_size = file_checksum(mask)
    mask_asset = {
        "href": f"/{FILES_DIR}/{spec.product_name}/{mask.name}",
        "type": COG_MEDIA_TYPE,
        "title": "Cloud classification MSK_CLASSI (opaque, cirrus, snow)",
        "roles": ["data", "cloud"],
        "file:checksum": mask_checksum,
        "file:size": mask_size,
    }
    result = dict(item)
    # what a real item of this tile and date would say (23LLF, mid-January, ~13:22 UTC)
    result["properties"] = {
        **item["properties"],
        "view:sun_elevation": 63.8,
        "view:sun_azimuth": 101.5,
    }
    result["assets"] = {
        **item["assets"],
        "product_metadata": asset.to_dict(),
        "MSK_CLASSI": mask_asset,
    }
    return result


def write_msk_classi(scene_dir: Path, offset_dn: int) -> Path:
    """Write ``MSK_CLASSI_B00.tif`` as L1C products carry it (baseline 04.00+).

    Three uint8 bands on the coarse (B11) grid, 0/1 each: opaque clouds (bright blue, a
    threshold on the scene's own B02 TOA reflectance), cirrus (none in the demo), snow (none).
    """
    with (
        rasterio.open(scene_dir / "B02.tif") as blue_ds,
        rasterio.open(scene_dir / "B11.tif") as coarse_ds,
    ):
        dn = blue_ds.read(1).astype(np.float64)
        rows, cols = dn.shape
        blocks = dn.reshape(rows // 2, 2, cols // 2, 2)
        valid = (blocks != 0).all(axis=(1, 3))
        blue = (blocks.mean(axis=(1, 3)) - offset_dn) / 10000.0
        profile = {
            "driver": "GTiff",
            "width": coarse_ds.width,
            "height": coarse_ds.height,
            "count": 3,
            "dtype": "uint8",
            "crs": coarse_ds.crs,
            "transform": coarse_ds.transform,
            "compress": "deflate",
        }
    opaque = ((blue > 0.3) & valid).astype(np.uint8)
    path = scene_dir / "MSK_CLASSI_B00.tif"
    with rasterio.open(path, "w", **profile) as out:
        out.write(opaque, 1)
        out.write(np.zeros_like(opaque), 2)
        out.write(np.zeros_like(opaque), 3)
        out.descriptions = ("OPAQUE", "CIRRUS", "SNOW_ICE")
    return path


def l2a_collection() -> dict[str, Any]:
    """Return the ``sentinel-2-l2a`` collection dict (the L1C one, renamed)."""
    collection = demo_collection()
    collection["id"] = L2A_COLLECTION_ID
    collection["title"] = "Sentinel-2 Level-2A (synthetic demo)"
    collection["description"] = collection["description"].replace("L1C", "L2A")
    collection["keywords"] = ["sentinel-2", "l2a", "demo"]
    return collection


def add_l2a_items(
    backend: StaticStacBackend,
    root: Path,
    spec: DemoSceneSpec,
    index: int,
    l1c_files: dict[str, Path],
    *,
    seed: int,
) -> list[dict[str, Any]]:
    """Write and store the L2A product(s) of one demo L1C scene; return their item dicts."""
    items = []
    collection = l2a_collection()
    for name in l2a_names(spec.product_name, index):
        scene_dir = root / FILES_DIR / name
        files, cloud_pct = write_l2a_files(l1c_files, spec.radiometric_offset, scene_dir, name)
        thumbnail = scene_dir / "thumbnail.png"
        write_quicklook(
            [files["B04"], files["B03"], files["B02"]],
            thumbnail,
            size_px=128,
            percentiles=(2.0, 98.0),
            nodata=[0, 0, 0],
        )
        l2a_spec = DemoSceneSpec(name, spec.cloud_target_pct, spec.nodata_corner)
        item = build_item(l2a_spec, {**files, "thumbnail": thumbnail}, cloud_pct, seed=seed)
        mtd = l2a_metadata(name, cloud_pct, scene_dir)
        scl_checksum, scl_size = file_checksum(files[SCL_BAND])
        mtd_checksum, mtd_size = file_checksum(mtd)
        item = to_l2a_item(
            item,
            scl_asset(f"/{FILES_DIR}/{name}/{SCL_BAND}.tif", scl_checksum, scl_size),
            metadata_asset(f"/{FILES_DIR}/{name}/{mtd.name}", mtd_checksum, mtd_size, "MTD_MSIL2A"),
        )
        backend.upsert(item, collection=collection)
        items.append(item)
        log.info("demo.l2a scene=%s l1c=%s cloud_pct=%.2f", name, spec.product_name, cloud_pct)
    return items
