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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class QualityCopy:
    """A band copied as the provider stores it (SCL, QA_PIXEL, surface temperature)."""

    band: BandConfig
    source: Path
    nodata: float | None
    scale_offset: tuple[float, float] | None = None
    facts: Mapping[str, Any] | None = None
    """The band's radiometry record, when it has one (surface temperature)."""


BandJob = ReflectanceJob | QualityCopy
"""One band of a Level-2 product to write, with the product's name for it (messages)."""


def s2_l2a_jobs(
    product: Sentinel2Product, collection: CollectionConfig, *, processor: str
) -> list[tuple[BandJob, str]]:
    """Return the jobs (and product band names) of every wanted band the L2A has.

    Raises:
        InvalidInputError: not an L2A, or none of the collection's reflectance bands.
    """
    if product.level != "L2A":
        raise InvalidInputError(
            FieldProblem("files", f"expected an L2A product, got {product.level}", "check it")
        )
    meta = product.metadata
    jobs: list[tuple[BandJob, str]] = []
    for band in collection.bands:
        name = _s2_name(band)
        if name not in (*S2_L2A_REFLECTANCE, *S2_QUALITY) or not product.has_band(name):
            continue
        src = product.band_path(name)
        if name in S2_QUALITY:
            jobs.append((QualityCopy(band, src, band.nodata), name))
            continue
        gain, bias = meta.reflectance_scale_offset(name)
        facts = {
            "boa_add_offset": meta.offset(name),
            "boa_quantification_value": meta.quantification_value,
            "gain": gain,
            "bias": bias,
        }
        tags = {"processor": processor, "band": name, "product": meta.product_uri or ""}
        jobs.append(
            (ReflectanceJob(band, src, gain, bias, (meta.nodata_value,), tags, facts), name)
        )
    _require_reflectance(jobs, collection, product.bands, level="L2A")
    return jobs


def landsat_l2_jobs(
    product: LandsatProduct, collection: CollectionConfig, *, processor: str
) -> list[tuple[BandJob, str]]:
    """Return the jobs (and product band names) of every wanted band the Level-2 product has.

    Raises:
        InvalidInputError: not a Level-2 product, or none of the collection's SR bands.
    """
    meta = product.metadata
    if not meta.is_level2:
        raise InvalidInputError(
            FieldProblem(
                "files", f"expected a Level-2 product, got {meta.processing_level}", "check it"
            )
        )
    jobs: list[tuple[BandJob, str]] = []
    for band in collection.bands:
        key = band.name.upper()
        if key in LANDSAT_QUALITY:
            if product.qa_pixel is not None:
                jobs.append((QualityCopy(band, product.qa_pixel, band.nodata), "QA_PIXEL"))
        elif key.startswith("ST_B"):
            if key in product.bands and key in meta.st_mult:
                kelvin = (meta.st_mult[key], meta.st_add[key])
                facts = {"temperature_mult": kelvin[0], "temperature_add": kelvin[1]}
                jobs.append((QualityCopy(band, product.bands[key], 0, kelvin, facts), key))
        else:
            band_id = key.removeprefix("B")
            if band_id in product.bands and band_id in meta.sr_mult:
                gain, bias = meta.sr_scale_offset(band_id)
                facts = {"reflectance_mult": gain, "reflectance_add": bias}
                tags = {
                    "processor": processor,
                    "band": f"SR_B{band_id}",
                    "product": meta.product_id or "",
                }
                src = product.band_path(band_id)
                jobs.append(
                    (ReflectanceJob(band, src, gain, bias, (0,), tags, facts), f"B{band_id}")
                )
    _require_reflectance(jobs, collection, product.bands, level="Level-2")
    return jobs


def _require_reflectance(
    jobs: list[tuple[BandJob, str]], collection: CollectionConfig, has: Iterable[str], *, level: str
) -> None:
    if not any(isinstance(job, ReflectanceJob) for job, _ in jobs):
        what = "reflectance" if level == "L2A" else "SR"
        raise InvalidInputError(
            FieldProblem(
                "files",
                f"the {level} product has none of {collection.name}'s {what} bands",
                f"check the product (has: {', '.join(sorted(has)) or 'none'})",
            )
        )


def write_level2(
    product: Sentinel2Product | LandsatProduct,
    collection: CollectionConfig,
    out_dir: Path,
    *,
    progress: ProgressFn | None = None,
    processor: str,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write a Level-2 product's bands (reflectance + quality) into ``out_dir`` as ``<band>.tif``.

    Returns:
        ``(files by collection band name, radiometry per band)``.

    Raises:
        InvalidInputError: not a Level-2 product, or none of the collection's bands.
        ProcessingError: a band is unreadable or GDAL failed.
    """
    if isinstance(product, Sentinel2Product):
        jobs = s2_l2a_jobs(product, collection, processor=processor)
    else:
        jobs = landsat_l2_jobs(product, collection, processor=processor)
    files: dict[str, Path] = {}
    radiometry: dict[str, Any] = {}
    for done, (job, name) in enumerate(jobs, start=1):
        validate_raster(job.source, band=name)
        if isinstance(job, ReflectanceJob):
            files[job.band.name], _, radiometry[job.band.name] = write_reflectance(job, out_dir)
        else:
            dest = out_dir / f"{job.band.name}.tif"
            files[job.band.name] = copy_band(
                job.source, dest, nodata=job.nodata, scale_offset=job.scale_offset
            )
            if job.facts is not None:
                radiometry[job.band.name] = dict(job.facts)
        report_progress(progress, done, len(jobs))
    return files, radiometry
