"""``lasrc``: run LaSRC (+ Fmask) on a Landsat Level-1 bundle and keep SR bands and the mask.

LaSRC has no single standard command line (USGS ESPA wraps it in several tools; container
images such as the Brazil Data Cube ``lasrc-ledaps-fmask`` one take the scene id), so the
command is configured (``processors.correction.options.command``, with ``image`` for a
container; see ``correction.external``). The contract the processor relies on:

- ``{input}`` is the folder holding the extracted Level-1 bundle (``*_MTL.txt``, ``*_B<n>.TIF``),
  ``{output}`` an empty folder, ``{aux}`` the LaSRC auxiliary data (LUTs, ancillary), and
  ``{scene_id}`` the Landsat product id;
- the program writes one surface-reflectance GeoTIFF per band named ``*_sr_band<n>.tif``
  (ESPA naming) or ``*_SR_B<n>.TIF`` (Collection 2 naming), int16 reflectance x 10000 with
  fill -9999 by default (``sr_scale``, ``sr_offset``, ``sr_nodata`` options change that), and,
  with Fmask, ``*Fmask4.tif`` / ``*_fmask.tif`` (0 clear land, 1 water, 2 shadow, 3 snow,
  4 cloud, 255 fill), which is passed on as ``FMASK`` for the ``fmask`` post processor.

Outputs are found, checked (every SR band the collection wants is there, readable and
georeferenced) and rewritten in the collection's encoding; a failing, hanging or silent program
fails the step with its last error lines. The sun limit (``min_sun_elevation_deg``, default 14:
USGS does not make Level-2 above a 76 degree solar zenith) flags ``sun_too_low``.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any, ClassVar

from include.common.errors import FieldProblem, InvalidInputError, ProcessingError
from include.processors.base import ProcessorInputs, ProcessorResult
from include.processors.correction.common import (
    FLAG_SUN_TOO_LOW,
    ReflectanceJob,
    copy_band,
    flagged_result,
    open_product,
    options_for,
    report_progress,
    sun_too_low,
    validate_raster,
    write_reflectance,
)
from include.processors.correction.external import (
    ExternalOptions,
    ExternalProcessor,
    last_error_lines,
)
from include.processors.products.landsat import LandsatProduct
from include.processors.registry import register

log = logging.getLogger(__name__)

LASRC_VERSION = "0.1.0"
_SR_BAND = re.compile(r"(?:_sr_band|_SR_B)(\d{1,2})\.tiff?$", re.IGNORECASE)
_FMASK = re.compile(r"(?:fmask4?|_fmask)\.tiff?$", re.IGNORECASE)
QUALITY_BANDS = ("QA_PIXEL",)


class LasrcOptions(ExternalOptions):
    """Options of ``lasrc`` (see ``correction.external``)."""

    min_sun_elevation_deg: float | None = 14.0
    sr_scale: float = 0.0001
    sr_offset: float = 0.0
    sr_nodata: float = -9999
    fmask: bool = True
    """Expect an Fmask output (fail when missing)."""


def find_outputs(folder: Path) -> tuple[dict[str, Path], Path | None]:
    """Return the SR band files by band id and the Fmask file found below ``folder``."""
    bands: dict[str, Path] = {}
    fmask: Path | None = None
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        match = _SR_BAND.search(path.name)
        if match:
            bands.setdefault(str(int(match.group(1))), path)
        elif _FMASK.search(path.name):
            fmask = fmask or path
    return bands, fmask


@register("lasrc")
class LasrcProcessor(ExternalProcessor):
    """Atmospheric correction of Landsat Level-1 with LaSRC (+ Fmask), validated outputs."""

    name: ClassVar[str] = "lasrc"
    version: ClassVar[str] = LASRC_VERSION

    def run(self, inputs: ProcessorInputs) -> ProcessorResult:
        """Run LaSRC on the parent's Level-1 bundle and return SR bands (+ FMASK).

        Raises:
            InvalidInputError: not a Landsat Level-1 product, no command configured.
            ProcessingError: the program failed, timed out, or wrote no valid outputs.
        """
        started = time.monotonic()
        options = options_for(inputs, self.task_type, LasrcOptions, name=self.name)
        work = inputs.output_dir / ".lasrc"
        product = open_product(inputs.files, inputs.collection, scene_id=inputs.scene.scene_id)
        if not isinstance(product, LandsatProduct) or product.metadata.is_level2:
            raise InvalidInputError(
                FieldProblem(
                    "files",
                    "lasrc needs a Landsat Level-1 product (bundle with its MTL)",
                    "download the Level-1 scene (landsat_ot_c2_l1) before lasrc",
                )
            )
        meta = product.metadata
        common: dict[str, Any] = {
            "processor": self.name,
            "version": self.version,
            "l1": meta.product_id,
            "sun_elevation_deg": meta.sun_elevation_deg,
        }
        if sun_too_low(meta.sun_elevation_deg, options.min_sun_elevation_deg):
            common["min_sun_elevation_deg"] = options.min_sun_elevation_deg
            return flagged_result([FLAG_SUN_TOO_LOW], common)
        if not options.command:
            raise InvalidInputError(
                FieldProblem(
                    "options.command",
                    "lasrc has no default command line",
                    "set processors.correction.options.command (and image for a container) in "
                    "collections.yaml; see docs/processors.md",
                )
            )
        program_out = work / "output"
        result = self.run_external(
            options,
            input_path=product.mtl_path.parent,
            output_dir=program_out,
            scene_id=meta.product_id or inputs.scene.scene_id,
        )
        sr_bands, fmask = find_outputs(program_out)
        wanted = [
            (band, band.name.upper().removeprefix("B"))
            for band in inputs.collection.bands
            if band.center_wavelength_um is not None
        ]
        missing = [band.name for band, band_id in wanted if band_id not in sr_bands]
        if not sr_bands or missing or (options.fmask and fmask is None):
            what = []
            if missing:
                what.append(f"SR bands {', '.join(missing)}")
            if options.fmask and fmask is None:
                what.append("the Fmask file (set fmask: false if the program makes none)")
            raise ProcessingError(
                f"lasrc: exited 0 but {program_out} lacks {' and '.join(what) or 'every output'}; "
                "last lines:\n" + last_error_lines(result)
            )
        try:
            for band, band_id in wanted:
                validate_raster(sr_bands[band_id], band=band.name)
            if fmask is not None:
                validate_raster(fmask, band="FMASK")
        except ProcessingError as err:
            raise ProcessingError(
                f"lasrc: {err}; last lines:\n" + last_error_lines(result)
            ) from err
        files: dict[str, Path] = {}
        radiometry: dict[str, Any] = {}
        jobs = len(wanted) + (fmask is not None)
        for done, (band, band_id) in enumerate(wanted, start=1):
            job = ReflectanceJob(
                band=band,
                source=sr_bands[band_id],
                gain=options.sr_scale,
                bias=options.sr_offset,
                source_nodata=(options.sr_nodata,),
                tags={
                    "processor": self.name,
                    "band": f"B{band_id}",
                    "product": meta.product_id or "",
                },
            )
            files[band.name], _, radiometry[band.name] = write_reflectance(job, inputs.output_dir)
            report_progress(inputs.progress, done, jobs)
        for band in inputs.collection.bands:
            if band.name.upper() in QUALITY_BANDS and product.qa_pixel is not None:
                files[band.name] = copy_band(
                    product.qa_pixel, inputs.output_dir / f"{band.name}.tif"
                )
        if fmask is not None:
            files["FMASK"] = copy_band(fmask, inputs.output_dir / "FMASK.tif", nodata=255)
            report_progress(inputs.progress, jobs, jobs)
        common.update(
            bands=sorted(files),
            radiometry=radiometry,
            sr_scale=options.sr_scale,
            sr_offset=options.sr_offset,
            program_elapsed_s=round(result.elapsed_s, 1),
            elapsed_s=round(time.monotonic() - started, 1),
        )
        return ProcessorResult(files=files, metadata=common)
