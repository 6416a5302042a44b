"""Level-2A counterparts of the demo L1C scenes (``sentinel-2-l2a``), for ``provider-l2`` tests.

For each demo L1C scene one L2A product of the same datatake (same mission, sensing time,
relative orbit and tile) is made, named like ESA's (``S2A_MSIL2A_<sensing>_N<baseline>_R<orbit>
_T23LLF_<generation>``), baseline 02.13 for the 2020 products as ESA processed them then and
05.00 for a Collection-1 reprocessed one; the first scene also gets a second, reprocessed N0500
L2A, so "newest baseline wins" can be tested. Bands:

- B02, B03, B04, B08, B11: surface reflectance derived from the L1C's TOA reflectance (a simple
  per-band atmospheric factor), stored as ESA does: ``DN = rho * 10000 + 1000`` from baseline
  04.00 on (``BOA_ADD_OFFSET`` -1000 in MTD_MSIL2A.xml), ``rho * 10000`` before; 0 = nodata;
- SCL at 20 m from simple thresholds (0 no data, 3 shadow-dark, 4 vegetation, 5 bare, 6 water,
  8/9 cloud medium/high probability), so a cloud cover can be recomputed from it;
- ``product_metadata``: a specification-shaped MTD_MSIL2A.xml (``include.demo.product_metadata``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pystac
import rasterio
from affine import Affine
from pystac.extensions.raster import DataType, RasterBand

from include.demo.product_metadata import product_metadata_xml, write_product_metadata
from include.demo.scenes import write_cog
from include.processors.publish.cog import COG_MEDIA_TYPE

L2A_COLLECTION_ID = "sentinel-2-l2a"
ATMOSPHERIC_FACTOR = {"B02": 0.80, "B03": 0.88, "B04": 0.93, "B08": 1.02, "B11": 1.01}
"""rho_surface = factor * rho_TOA: a rough dry-season correction (haze lifts the blues)."""
SCL_BAND = "SCL"

_Array = npt.NDArray[Any]


def l2a_names(l1c_name: str, index: int) -> list[str]:
    """Return the L2A product names made for an L1C (two for the first scene)."""
    mission, _, sensing, baseline, orbit, tile, generated = l1c_name.split("_")
    sensing_time = datetime.strptime(sensing, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    generated_time = datetime.strptime(generated, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    first_baseline = "N0500" if baseline >= "N0400" else "N0213"
    produced = generated_time + timedelta(minutes=37)
    names = [f"{mission}_MSIL2A_{sensing}_{first_baseline}_{orbit}_{tile}_{produced:%Y%m%dT%H%M%S}"]
    if index == 0 and first_baseline != "N0500":
        names.append(
            f"{mission}_MSIL2A_{sensing}_N0500_{orbit}_{tile}_20230701T{sensing_time:%H%M%S}"
        )
    return names


def _read(path: Path) -> tuple[_Array, Affine, Any]:
    with rasterio.open(path) as ds:
        return ds.read(1), ds.transform, ds.crs


def _scl(blue: _Array, red: _Array, nir: _Array, valid: _Array) -> _Array:
    ndvi = np.where(nir + red > 0, (nir - red) / np.maximum(nir + red, 1e-6), 0.0)
    scl = np.full(blue.shape, 5, dtype=np.uint8)
    scl[ndvi > 0.35] = 4
    scl[(nir < 0.06) & (blue < 0.2)] = 6
    scl[(nir < 0.12) & (ndvi <= 0.35) & (blue < 0.2)] = 3
    scl[(blue > 0.22) & (blue <= 0.32)] = 8
    scl[blue > 0.32] = 9
    scl[~valid] = 0
    return scl


def write_l2a_files(
    l1c_files: dict[str, Path], l1c_offset: int, dest: Path, l2a_name: str
) -> tuple[dict[str, Path], float]:
    """Write one L2A's band COGs and SCL from the L1C files; return (files, SCL cloud %)."""
    dest.mkdir(parents=True, exist_ok=True)
    baseline = int(l2a_name.split("_")[3][1:])
    offset = 1000 if baseline >= 400 else 0
    files: dict[str, Path] = {}
    reflectance: dict[str, _Array] = {}
    valid_fine: _Array | None = None
    for band, factor in ATMOSPHERIC_FACTOR.items():
        dn, transform, crs = _read(l1c_files[band])
        valid = dn != 0
        rho = np.clip((dn.astype(np.float64) - l1c_offset) / 10000.0 * factor, 0.0, 1.6)
        out = np.where(valid, np.clip(np.rint(rho * 10000.0) + offset, 1, 65535), 0)
        path = dest / f"{band}.tif"
        write_cog(path, out, transform, crs, "uint16")
        files[band] = path
        reflectance[band] = rho
        if band == "B04":
            valid_fine = valid
    assert valid_fine is not None  # noqa: S101 - B04 is in ATMOSPHERIC_FACTOR
    # SCL on the 20 m grid (the B11 grid): 2x2 means of the fine bands
    _, coarse_transform, crs = _read(l1c_files["B11"])

    def coarse(values: _Array) -> _Array:
        rows, cols = values.shape
        result: _Array = values.reshape(rows // 2, 2, cols // 2, 2).mean(axis=(1, 3))
        return result

    valid_coarse = coarse(valid_fine.astype(np.float64)) == 1.0
    scl = _scl(
        coarse(reflectance["B02"]),
        coarse(reflectance["B04"]),
        coarse(reflectance["B08"]),
        valid_coarse,
    )
    scl_path = dest / f"{SCL_BAND}.tif"
    write_cog(scl_path, scl, coarse_transform, crs, "uint8")
    files[SCL_BAND] = scl_path
    valid_count = int((scl != 0).sum())
    cloud_pct = 100.0 * float(np.isin(scl, (8, 9, 10)).sum()) / valid_count if valid_count else 0.0
    return files, round(cloud_pct, 2)


def l2a_metadata(l2a_name: str, cloud_pct: float, dest: Path) -> Path:
    """Write the L2A's MTD_MSIL2A.xml into ``dest`` and return its path."""
    mission, _, sensing, baseline, orbit, tile, generated = l2a_name.split("_")
    sensing_time = datetime.strptime(sensing, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    document = product_metadata_xml(
        l2a_name,
        level="L2A",
        sensing_time=sensing_time,
        generation_time=datetime.strptime(generated, "%Y%m%dT%H%M%S").replace(tzinfo=UTC),
        baseline=f"{baseline[1:3]}.{baseline[3:]}",
        relative_orbit=int(orbit[1:]),
        absolute_orbit=int((sensing_time - datetime(2015, 6, 23, tzinfo=UTC)).days * 14.3),
        tile=tile[1:],
        cloud_pct=cloud_pct,
        bands=(*ATMOSPHERIC_FACTOR, SCL_BAND),
        offset_dn=-1000 if int(baseline[1:]) >= 400 else 0,
    )
    return write_product_metadata(dest / "MTD_MSIL2A.xml", document)


def to_l2a_item(
    item: dict[str, Any], scl_asset: pystac.Asset, metadata: pystac.Asset
) -> dict[str, Any]:
    """Turn a demo item dict built from L2A files into an ``sentinel-2-l2a`` item dict."""
    item = dict(item)
    item["collection"] = L2A_COLLECTION_ID
    properties = dict(item["properties"])
    properties["s2:product_type"] = "S2MSI2A"
    item["properties"] = properties
    assets = dict(item["assets"])
    assets[SCL_BAND] = scl_asset.to_dict()
    assets["product_metadata"] = metadata.to_dict()
    item["assets"] = assets
    return item


def scl_asset(href: str, checksum: str, size: int) -> pystac.Asset:
    """Return the SCL asset (uint8 classes, nodata 0, 20 m)."""
    asset = pystac.Asset(
        href=href, title="Scene classification (20 m)", media_type=COG_MEDIA_TYPE, roles=["data"]
    )
    asset.extra_fields["raster:bands"] = [
        RasterBand.create(nodata=0, data_type=DataType.UINT8).to_dict()
    ]
    asset.extra_fields.update({"file:checksum": checksum, "file:size": size})
    return asset


def metadata_asset(href: str, checksum: str, size: int, title: str) -> pystac.Asset:
    """Return a ``product_metadata`` asset (application/xml, role metadata)."""
    asset = pystac.Asset(href=href, title=title, media_type="application/xml", roles=["metadata"])
    asset.extra_fields.update({"file:checksum": checksum, "file:size": size})
    return asset
