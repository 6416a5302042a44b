"""``toa``: Level-1 digital numbers to top-of-atmosphere reflectance, from the product metadata.

- Sentinel-2 L1C: ``rho = (DN + RADIO_ADD_OFFSET[b]) / QUANTIFICATION_VALUE`` (MTD_MSIL1C.xml;
  no offset before baseline 04.00); DN 0 is nodata.
  When the L1C has its cloud classification (``MSK_CLASSI``, baseline 04.00+) and the
  collection a ``CLOUD_MASK`` band, that band is written (1 opaque cloud or cirrus, 0 clear).
- Landsat Level-1 (Collection 1 or 2): ``rho = (DN * REFLECTANCE_MULT_BAND_n +
  REFLECTANCE_ADD_BAND_n) / sin(SUN_ELEVATION)`` (MTL); DN 0 is fill. QA_PIXEL (or C1 BQA) is
  copied when the collection has that band.

Every band of the target collection that the product has is written as ``<band>.tif`` in the
collection's encoding (see ``correction.common``), strip by strip. Options
(``collections.yaml`` ``processors.correction.options``, overridable by task args):
``min_sun_elevation_deg`` (default 5; below it the scene ends as succeeded with the flag
``sun_too_low`` and no files), ``bands`` (a subset of the collection's bands) and ``workers``
(bands converted at a time, default the CPUs up to 4).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from include.common.config import BandConfig
from include.common.errors import FieldProblem, InvalidInputError
from include.processors.base import Processor, ProcessorInputs, ProcessorResult
from include.processors.correction.common import (
    FLAG_NO_DATA,
    FLAG_SUN_TOO_LOW,
    ProcessorOptions,
    ReflectanceJob,
    classification_to_cloud_mask,
    copy_band,
    default_workers,
    flagged_result,
    open_product,
    options_for,
    percent,
    report_progress,
    sun_elevation_of,
    sun_too_low,
    write_reflectance,
)
from include.processors.products.landsat import LandsatProduct
from include.processors.products.package import Product, SceneHints
from include.processors.products.sentinel2 import (
    MSK_CLASSI,
    S2_BANDS,
    Sentinel2Product,
    canonical_band,
)
from include.processors.registry import register

log = logging.getLogger(__name__)

TOA_VERSION = "0.1.0"
QUALITY_BANDS = ("QA_PIXEL", "BQA")
CLOUD_MASK_BAND = "CLOUD_MASK"
"""Written from the L1C's MSK_CLASSI (opaque or cirrus = 1) when the collection has it."""


class ToaOptions(ProcessorOptions):
    """Options of ``toa``."""

    min_sun_elevation_deg: float | None = 5.0
    bands: list[str] | None = None
    workers: int = Field(default_factory=default_workers, ge=1, le=32)
    """Bands converted at the same time (threads: decoding, numpy and encoding release the GIL)."""


def _wanted_bands(inputs: ProcessorInputs, options: ToaOptions) -> list[BandConfig]:
    bands = list(inputs.collection.bands)
    if options.bands is None:
        return bands
    chosen: list[BandConfig] = []
    for name in options.bands:
        band = inputs.collection.band(name)
        if band is None:
            raise InvalidInputError(
                FieldProblem(
                    "args.bands",
                    f"{name!r} is not a band of {inputs.collection.name}",
                    f"use some of: {', '.join(b.name for b in bands)}",
                )
            )
        chosen.append(band)
    return chosen


@register("toa")
class ToaProcessor(Processor):
    """Convert a Level-1 scene to TOA reflectance (Sentinel-2 L1C or Landsat Level-1).

    Idempotent: outputs have fixed names in ``output_dir`` and are replaced atomically.
    Raises ``InvalidInputError`` for a Level-2 input or a product without its metadata;
    a sun below ``min_sun_elevation_deg`` ends as success with the flag ``sun_too_low``.
    """

    name: ClassVar[str] = "toa"
    version: ClassVar[str] = TOA_VERSION
    task_type: ClassVar[str] = "correction"

    def run(self, inputs: ProcessorInputs) -> ProcessorResult:
        """Convert every band the collection wants and the product has.

        Raises:
            InvalidInputError: a Level-2 product, missing metadata, no wanted band, bad options.
            ProcessingError: GDAL failed.
        """
        started = time.monotonic()
        options = options_for(inputs, self.task_type, ToaOptions, name=self.name)
        product = open_product(
            inputs.files,
            inputs.collection,
            scene_id=inputs.scene.scene_id,
            hints=SceneHints.of(inputs.scene),
        )
        sun_elevation = sun_elevation_of(product, inputs.scene.properties)
        common: dict[str, Any] = {
            "processor": self.name,
            "version": self.version,
            "sun_elevation_deg": sun_elevation,
            "min_sun_elevation_deg": options.min_sun_elevation_deg,
        }
        if sun_too_low(sun_elevation, options.min_sun_elevation_deg):
            return flagged_result([FLAG_SUN_TOO_LOW], common)
        if isinstance(product, LandsatProduct):
            files, radiometry, counts = self._landsat(product, inputs, options)
            common.update(
                product_id=product.metadata.product_id,
                sensor=product.metadata.sensor,
                mtl_format=product.metadata.mtl_format,
            )
        else:
            files, radiometry, counts = self._sentinel2(product, inputs, options)
            meta = product.metadata
            common.update(
                product_id=meta.product_uri,
                processing_baseline=meta.processing_baseline,
                quantification_value=meta.quantification_value,
                radio_add_offsets=dict(meta.offsets),
                radiometry_source=meta.source,
            )
        valid, total = counts
        common.update(
            bands=sorted(files),
            radiometry=radiometry,
            valid_pct=percent(valid, total),
            elapsed_s=round(time.monotonic() - started, 3),
        )
        if total and valid == 0:
            for path in files.values():
                path.unlink(missing_ok=True)
            return flagged_result([FLAG_NO_DATA], common)
        log.info(
            "toa.done scene=%s bands=%d valid_pct=%.2f elapsed_s=%.2f",
            inputs.scene.scene_id,
            len(files),
            common["valid_pct"],
            common["elapsed_s"],
        )
        return ProcessorResult(files={**files, **_carried_metadata(product)}, metadata=common)

    def _sentinel2(
        self, product: Sentinel2Product, inputs: ProcessorInputs, options: ToaOptions
    ) -> tuple[dict[str, Any], dict[str, Any], tuple[int, int]]:
        if product.level != "L1C":
            raise InvalidInputError(
                FieldProblem(
                    "files",
                    f"toa needs a Level-1C product, got {product.level}",
                    "give toa the L1C download (the L2A is already surface reflectance)",
                )
            )
        meta = product.metadata
        jobs = []
        for band in _wanted_bands(inputs, options):
            name = canonical_band(band.name) or next(
                (canonical_band(alias) for alias in band.aliases if canonical_band(alias)), None
            )
            if name in S2_BANDS and product.has_band(name):
                gain, bias = meta.reflectance_scale_offset(name)
                facts = {"gain": gain, "bias": bias, "radio_add_offset": meta.offset(name)}
                tags = {"processor": "toa", "band": name, "product": meta.product_uri or ""}
                src = product.band_path(name)
                jobs.append(
                    ReflectanceJob(band, src, gain, bias, (meta.nodata_value,), tags, facts)
                )
        _require_jobs(jobs, inputs, product.bands, what="bands")
        files, radiometry, counts = _write_all(jobs, inputs, options.workers)
        mask_band = inputs.collection.band(CLOUD_MASK_BAND)
        if mask_band is not None and product.has_band(MSK_CLASSI):
            files[mask_band.name] = classification_to_cloud_mask(
                product.band_path(MSK_CLASSI),
                inputs.output_dir / f"{mask_band.name}.tif",
                cloud_bands=(1, 2),
            )
        return files, radiometry, counts

    def _landsat(
        self, product: LandsatProduct, inputs: ProcessorInputs, options: ToaOptions
    ) -> tuple[dict[str, Any], dict[str, Any], tuple[int, int]]:
        meta = product.metadata
        if meta.is_level2:
            raise InvalidInputError(
                FieldProblem(
                    "files",
                    f"toa needs a Level-1 product, got {meta.processing_level}",
                    "give toa the Level-1 (L1TP/L1GT) bundle",
                )
            )
        quality: dict[str, Any] = {}
        jobs = []
        for band in _wanted_bands(inputs, options):
            if band.name.upper() in QUALITY_BANDS or any(
                a.upper() in ("QA_PIXEL",) for a in band.aliases
            ):
                if product.qa_pixel is not None:
                    quality[band.name] = copy_band(
                        product.qa_pixel, inputs.output_dir / f"{band.name}.tif", nodata=band.nodata
                    )
                continue
            band_id = band.name.upper().removeprefix("B")
            if band_id in product.bands and band_id in meta.toa_mult:
                gain, bias = meta.toa_scale_offset(band_id)
                facts = {
                    "reflectance_mult": meta.toa_mult[band_id],
                    "reflectance_add": meta.toa_add[band_id],
                    "gain": gain,
                    "bias": bias,
                }
                tags = {"processor": "toa", "band": f"B{band_id}"}
                tags["product"] = meta.product_id or ""
                src = product.band_path(band_id)
                jobs.append(ReflectanceJob(band, src, gain, bias, (0,), tags, facts))
        _require_jobs(jobs, inputs, product.bands, what="reflective bands")
        files, radiometry, counts = _write_all(jobs, inputs, options.workers)
        return {**quality, **files}, radiometry, counts


def _require_jobs(
    jobs: list[ReflectanceJob], inputs: ProcessorInputs, has: Iterable[str], *, what: str
) -> None:
    if not jobs:
        raise InvalidInputError(
            FieldProblem(
                "files",
                f"the product has none of {inputs.collection.name}'s {what}",
                f"download its bands (product has: {', '.join(sorted(has))})",
            )
        )


def _write_all(
    jobs: list[ReflectanceJob], inputs: ProcessorInputs, workers: int
) -> tuple[dict[str, Any], dict[str, Any], tuple[int, int]]:
    """Write every job, ``workers`` at a time.

    Returns:
        Files and radiometry by band (in the jobs' order) and the (valid, total) pixel counts.
    """
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(write_reflectance, job, inputs.output_dir) for job in jobs]
        try:
            for done, _ in enumerate(as_completed(futures), start=1):
                report_progress(inputs.progress, done, len(jobs))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    files: dict[str, Any] = {}
    radiometry: dict[str, Any] = {}
    valid = total = 0
    for job, future in zip(jobs, futures, strict=True):
        files[job.band.name], stats, radiometry[job.band.name] = future.result()
        valid, total = valid + stats.valid_pixels, total + stats.total_pixels
    return files, radiometry, (valid, total)


def _carried_metadata(product: Product) -> dict[str, Path]:
    """Return the product's metadata (and angle) files, passed on beside the TOA bands.

    Harmonization reads its angles from them (MTD_TL.xml, ANG.txt, angle bands) and publish its
    datetime, platform and footprint; they are the provider's files, not copies.
    """
    if isinstance(product, LandsatProduct):
        found = [product.mtl_path, product.ang_path, *product.angles.values()]
    else:
        found = [product.metadata_path, product.tile_metadata_path]
    return {path.stem: path for path in found if path is not None}
