"""Writing Level-2 products (provider L2A/L2SP, Sen2Cor, LaSRC output) in our band convention.

Landsat L2SP surface temperature (``ST_B10``, TM/ETM+ ``ST_B6``) is copied as the provider
stores it, with the MTL's ``TEMPERATURE_MULT/ADD`` (kelvin) recorded as its scale/offset.

- Sentinel-2 L2A: ``rho = (DN + BOA_ADD_OFFSET[b]) / BOA_QUANTIFICATION_VALUE`` from
  MTD_MSIL2A.xml (offset -1000 from baseline 04.00 on, none before); DN 0 nodata; SCL copied.
- Landsat Collection 2 Level-2: ``rho = DN * REFLECTANCE_MULT_BAND_n + REFLECTANCE_ADD_BAND_n``
  from the MTL's ``LEVEL2_SURFACE_REFLECTANCE_PARAMETERS`` (2.75e-05 and -0.2); DN 0 fill;
  QA_PIXEL copied.

Each reflectance band is then encoded as the target collection declares (``Encoding``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from include.common.config import BandConfig, CollectionConfig
from include.common.errors import FieldProblem, InvalidInputError
from include.common.progress import ProgressFn
from include.processors.correction.common import (
    ReflectanceJob,
    copy_band,
    report_progress,
    validate_raster,
    write_reflectance,
)
from include.processors.products.landsat import LandsatProduct
from include.processors.products.sentinel2 import S2_BANDS, Sentinel2Product, canonical_band

S2_L2A_REFLECTANCE = tuple(band for band in S2_BANDS if band != "B10")
"""L2A has no cirrus band (B10 is used for the correction, not delivered)."""
S2_QUALITY = ("SCL",)
LANDSAT_QUALITY = ("QA_PIXEL",)


def _s2_name(band: BandConfig) -> str | None:
    for candidate in (band.name, *band.aliases):
        name = canonical_band(candidate)
        if name is not None:
            return name
    return None


def missing_s2_l2a_bands(product: Sentinel2Product, collection: CollectionConfig) -> list[str]:
    """Return the collection's L2A bands (reflectance and SCL) the product has no file for."""
    missing = []
    for band in collection.bands:
        name = _s2_name(band)
        if name in (*S2_L2A_REFLECTANCE, *S2_QUALITY) and not product.has_band(name):
            missing.append(band.name)
    return missing


def s2_l2a_jobs(
    product: Sentinel2Product, collection: CollectionConfig
) -> list[tuple[BandConfig, str]]:
    """Return ``(collection band, product band)`` for every wanted band the L2A has.

    Raises:
        InvalidInputError: when the product has none of the collection's bands.
    """
    jobs = []
    for band in collection.bands:
        name = _s2_name(band)
        if name in (*S2_L2A_REFLECTANCE, *S2_QUALITY) and product.has_band(name):
            jobs.append((band, name))
    if not any(name in S2_L2A_REFLECTANCE for _, name in jobs):
        raise InvalidInputError(
            FieldProblem(
                "files",
                f"the L2A product has none of {collection.name}'s reflectance bands",
                f"check the product (has: {', '.join(sorted(product.bands)) or 'none'})",
            )
        )
    return jobs


def write_s2_l2a(
    product: Sentinel2Product,
    collection: CollectionConfig,
    out_dir: Path,
    *,
    progress: ProgressFn | None = None,
    processor: str,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write the L2A's bands (reflectance + SCL) into ``out_dir`` as ``<band>.tif``.

    Returns:
        ``(files by collection band name, radiometry per band)``.

    Raises:
        InvalidInputError: not an L2A, or none of the collection's bands.
        ProcessingError: a band is unreadable or GDAL failed.
    """
    if product.level != "L2A":
        raise InvalidInputError(
            FieldProblem("files", f"expected an L2A product, got {product.level}", "check it")
        )
    meta = product.metadata
    jobs = s2_l2a_jobs(product, collection)
    files: dict[str, Path] = {}
    radiometry: dict[str, Any] = {}
    for done, (band, name) in enumerate(jobs, start=1):
        src = product.band_path(name)
        validate_raster(src, band=name)
        dest = out_dir / f"{band.name}.tif"
        if name in S2_QUALITY:
            files[band.name] = copy_band(src, dest, nodata=band.nodata)
        else:
            gain, bias = meta.reflectance_scale_offset(name)
            job = ReflectanceJob(
                band=band,
                source=src,
                gain=gain,
                bias=bias,
                source_nodata=(meta.nodata_value,),
                tags={"processor": processor, "band": name, "product": meta.product_uri or ""},
                facts={
                    "boa_add_offset": meta.offset(name),
                    "boa_quantification_value": meta.quantification_value,
                    "gain": gain,
                    "bias": bias,
                },
            )
            files[band.name], _, radiometry[band.name] = write_reflectance(job, out_dir)
        report_progress(progress, done, len(jobs))
    return files, radiometry


def write_landsat_l2(
    product: LandsatProduct,
    collection: CollectionConfig,
    out_dir: Path,
    *,
    progress: ProgressFn | None = None,
    processor: str,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write a Collection 2 Level-2 product's SR bands and QA_PIXEL into ``out_dir``.

    Returns:
        ``(files by collection band name, radiometry per band)``.

    Raises:
        InvalidInputError: not a Level-2 product, or none of the collection's bands.
        ProcessingError: a band is unreadable or GDAL failed.
    """
    meta = product.metadata
    if not meta.is_level2:
        raise InvalidInputError(
            FieldProblem(
                "files", f"expected a Level-2 product, got {meta.processing_level}", "check it"
            )
        )
    files: dict[str, Path] = {}
    radiometry: dict[str, Any] = {}
    jobs: list[tuple[BandConfig, str]] = []
    for band in collection.bands:
        if band.name.upper() in LANDSAT_QUALITY:
            if product.qa_pixel is not None:
                jobs.append((band, "QA_PIXEL"))
            continue
        if band.name.upper().startswith("ST_B"):
            if band.name.upper() in product.bands and band.name.upper() in meta.st_mult:
                jobs.append((band, band.name.upper()))
            continue
        band_id = band.name.upper().removeprefix("B")
        if band_id in product.bands and band_id in meta.sr_mult:
            jobs.append((band, band_id))
    if not any(band_id != "QA_PIXEL" and band_id.isdigit() for _, band_id in jobs):
        raise InvalidInputError(
            FieldProblem(
                "files",
                f"the Level-2 product has none of {collection.name}'s SR bands",
                f"check the product (has: {', '.join(sorted(product.bands)) or 'none'})",
            )
        )
    for done, (band, band_id) in enumerate(jobs, start=1):
        dest = out_dir / f"{band.name}.tif"
        if band_id == "QA_PIXEL":
            assert product.qa_pixel is not None  # noqa: S101 - checked above
            validate_raster(product.qa_pixel, band="QA_PIXEL")
            files[band.name] = copy_band(product.qa_pixel, dest, nodata=band.nodata)
        elif band_id.startswith("ST_B"):
            src = product.bands[band_id]
            validate_raster(src, band=band_id)
            kelvin = (meta.st_mult[band_id], meta.st_add[band_id])
            files[band.name] = copy_band(src, dest, nodata=0, scale_offset=kelvin)
            radiometry[band.name] = {"temperature_mult": kelvin[0], "temperature_add": kelvin[1]}
        else:
            src = product.band_path(band_id)
            validate_raster(src, band=f"B{band_id}")
            gain, bias = meta.sr_scale_offset(band_id)
            job = ReflectanceJob(
                band=band,
                source=src,
                gain=gain,
                bias=bias,
                source_nodata=(0,),
                tags={
                    "processor": processor,
                    "band": f"SR_B{band_id}",
                    "product": meta.product_id or "",
                },
                facts={"reflectance_mult": gain, "reflectance_add": bias},
            )
            files[band.name], _, radiometry[band.name] = write_reflectance(job, out_dir)
        report_progress(progress, done, len(jobs))
    return files, radiometry
