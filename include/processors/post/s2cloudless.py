"""``s2cloudless``: cloud probability and mask from Sentinel-2 L1C bands, then ``qa-post``.

Uses Sentinel Hub's pixel classifier (the ``s2cloudless`` package, whose LightGBM model ships
inside the package: nothing is downloaded at run time). The model wants TOA reflectance of
B01, B02, B04, B05, B08, B8A, B09, B10, B11, B12 (``DN / 10000`` before baseline 04.00, with the
offset applied after); the inputs are either

- the ``toa`` processor's output (reflectance bands with scale/offset in their metadata), or
- the L1C download itself (DN + MTD_MSIL1C.xml, converted with the product's own
  quantification value and RADIO_ADD_OFFSETs).

The probability is computed on a working grid of ``resolution_m`` (default 60 m, the coarsest
input band; the package's authors recommend 10-60 m), pixel-wise in strips, then thresholded,
averaged and dilated as the package does. ``CLOUD_PROB`` (0-100 %, 255 nodata) and
``CLOUD_MASK`` (0 clear, 1 cloud, 255 nodata) go through the same steps as ``qa-post``:
nearest resampling to the finest reflectance grid, nodata where reflectance is nodata, COG,
cloud cover recomputed from the mask.

Options: ``threshold`` (0.4), ``average_over`` (4 px), ``dilation_size`` (2 px),
``resolution_m`` (60), plus the ``qa-post`` options.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT

from include.common.errors import FieldProblem, InvalidInputError, ProcessingError
from include.processors.base import Processor, ProcessorInputs, ProcessorResult
from include.processors.correction.common import options_for
from include.processors.grid import Grid
from include.processors.post.masks import CLOUD_MASK, MaskKind
from include.processors.post.qa import (
    PostOptions,
    mask_on_grid,
    post_process,
    reflectance_files,
    target_grid,
)
from include.processors.products.package import unpacked_inputs
from include.processors.products.sentinel2 import Sentinel2Product, canonical_band
from include.processors.publish.cog import CogOptions, write_cog
from include.processors.registry import register

log = logging.getLogger(__name__)

S2CLOUDLESS_VERSION = "0.1.0"
MODEL_BANDS = ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")
"""The model's input bands, in its order (``s2cloudless.utils.MODEL_BANDS``)."""
MAX_WORKING_PIXELS = 6000 * 6000
PROB_NODATA = 255
PROB_KIND = MaskKind("cloud_prob", PROB_NODATA, ("CLOUD_PROB",))
"""The probability layer, resampled like a mask (nodata 255; its class counts are unused)."""
_STRIP_ROWS = 256


class S2CloudlessOptions(PostOptions):
    """Options of ``s2cloudless``."""

    threshold: float = 0.4
    average_over: int = 4
    dilation_size: int = 2
    resolution_m: float = 60.0


@dataclass(frozen=True, slots=True)
class _BandSource:
    path: Path
    gain: float
    bias: float
    nodata: float | None


def _sources(inputs: ProcessorInputs) -> dict[str, _BandSource]:
    """Return the model bands as (file, reflectance = value * gain + bias, nodata)."""
    by_band: dict[str, Path] = {}
    for key, path in inputs.files.items():
        name = canonical_band(key)
        configured = inputs.collection.band(key)
        if configured is not None:
            name = canonical_band(configured.name) or name
        if name in MODEL_BANDS:
            by_band.setdefault(name, path)
    missing = [band for band in MODEL_BANDS if band not in by_band]
    if missing:
        raise InvalidInputError(
            FieldProblem(
                "files",
                f"s2cloudless needs {', '.join(MODEL_BANDS)}; missing {', '.join(missing)}",
                "download (and correct to TOA) every Sentinel-2 L1C band the model uses",
            )
        )
    scaled = {band: _own_scaling(band, path) for band, path in by_band.items()}
    if all(value is not None for value in scaled.values()):  # toa outputs
        return {
            band: _BandSource(by_band[band], *scaling)  # type: ignore[misc]
            for band, scaling in scaled.items()
        }
    # DN straight from the L1C download: the product's own radiometry (MTD_MSIL1C.xml)
    product = Sentinel2Product.from_files(inputs.files)
    if product.level != "L1C":
        raise InvalidInputError(
            FieldProblem("files", "s2cloudless needs L1C (TOA) bands", "give the L1C scene")
        )
    meta = product.metadata
    result: dict[str, _BandSource] = {}
    for band in MODEL_BANDS:
        gain, bias = meta.reflectance_scale_offset(band)
        result[band] = _BandSource(by_band[band], gain, bias, float(meta.nodata_value))
    return result


def _own_scaling(band: str, path: Path) -> tuple[float, float, float | None] | None:
    """Return ``(scale, offset, nodata)`` a toa output declares, None for plain DN."""
    try:
        with rasterio.open(path) as ds:
            scale, offset, nodata = ds.scales[0], ds.offsets[0], ds.nodata
    except RasterioError as err:
        raise InvalidInputError(
            FieldProblem(f"files[{band}]", f"cannot be read: {err}", "download it again")
        ) from err
    if scale in (None, 1.0) and offset in (None, 0.0):
        return None
    return float(scale), float(offset or 0.0), nodata


def _working_grid(reference: Path, resolution_m: float) -> Grid:
    """Return the grid the model runs on: ``resolution_m``, never finer than the reference."""
    grid = Grid.of(reference)
    resolution_m = max(resolution_m, grid.resolution)
    bounds_w = grid.transform.c
    bounds_n = grid.transform.f
    width_m = grid.width * grid.transform.a
    height_m = grid.height * abs(grid.transform.e)
    width = max(1, round(width_m / resolution_m))
    height = max(1, round(height_m / resolution_m))
    if width * height > MAX_WORKING_PIXELS:
        raise InvalidInputError(
            FieldProblem(
                "args.resolution_m",
                f"{resolution_m:g} m gives {width}x{height} pixels",
                "use a coarser working resolution (60 m for a full tile)",
            )
        )
    transform = Affine(width_m / width, 0.0, bounds_w, 0.0, -height_m / height, bounds_n)
    return Grid(grid.crs, transform, width, height)


def cloud_probability(
    sources: Mapping[str, _BandSource], grid: Grid
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Return the model's cloud probability on ``grid`` and the valid-data mask.

    Raises:
        ProcessingError: GDAL failed reading a band.
    """
    # heavy import (lightgbm, opencv): only when the processor runs
    from s2cloudless.cloud_detector import S2PixelCloudDetector

    detector = S2PixelCloudDetector(all_bands=False)
    probability = np.zeros((grid.height, grid.width), dtype=np.float32)
    valid = np.ones((grid.height, grid.width), dtype=bool)
    datasets = [rasterio.open(sources[band].path) for band in MODEL_BANDS]
    try:
        warped = [
            WarpedVRT(
                ds,
                crs=grid.crs,
                transform=grid.transform,
                width=grid.width,
                height=grid.height,
                resampling=Resampling.average,
                src_nodata=sources[band].nodata,
                nodata=sources[band].nodata,
            )
            for ds, band in zip(datasets, MODEL_BANDS, strict=True)
        ]
        for row in range(0, grid.height, _STRIP_ROWS):
            rows = min(_STRIP_ROWS, grid.height - row)
            window = ((row, row + rows), (0, grid.width))
            stack = np.empty((1, rows, grid.width, len(MODEL_BANDS)), dtype=np.float32)
            strip_valid = np.ones((rows, grid.width), dtype=bool)
            for index, (band, vrt) in enumerate(zip(MODEL_BANDS, warped, strict=True)):
                source = sources[band]
                values = vrt.read(1, window=window).astype(np.float64)
                if source.nodata is not None:
                    strip_valid &= values != source.nodata
                stack[0, :, :, index] = np.clip(values * source.gain + source.bias, 0.0, 1.5)
            strip = detector.get_cloud_probability_maps(stack)[0]
            probability[row : row + rows] = np.where(strip_valid, strip, 0.0)
            valid[row : row + rows] = strip_valid
        for vrt in warped:
            vrt.close()
    except RasterioError as err:
        raise ProcessingError(f"s2cloudless: GDAL failed reading the bands: {err}") from err
    finally:
        for ds in datasets:
            ds.close()
    return probability, valid


def _write(path: Path, values: npt.NDArray[np.uint8], grid: Grid) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with rasterio.open(
            tmp,
            "w",
            driver="GTiff",
            width=grid.width,
            height=grid.height,
            count=1,
            dtype="uint8",
            crs=grid.crs,
            transform=grid.transform,
            nodata=PROB_NODATA,
            compress="deflate",
        ) as out:
            out.write(values, 1)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@register("s2cloudless")
class S2CloudlessProcessor(Processor):
    """Cloud probability and mask with s2cloudless, then the ``qa-post`` steps on the mask.

    Idempotent: fixed output names, atomic writes; inputs are only read.
    """

    name: ClassVar[str] = "s2cloudless"
    version: ClassVar[str] = S2CLOUDLESS_VERSION
    task_type: ClassVar[str] = "post"

    def run(self, inputs: ProcessorInputs) -> ProcessorResult:
        """Compute ``CLOUD_PROB`` and ``CLOUD_MASK``, put them on the reflectance grid.

        Raises:
            InvalidInputError: a model band is missing or carries no reflectance scaling.
            ProcessingError: GDAL or the model failed.
        """
        started = time.monotonic()
        options = options_for(inputs, self.task_type, S2CloudlessOptions, name=self.name)
        inputs = unpacked_inputs(inputs)
        sources = _sources(inputs)
        grid = _working_grid(sources["B02"].path, options.resolution_m)
        probability, valid = cloud_probability(sources, grid)
        from s2cloudless.cloud_detector import S2PixelCloudDetector

        detector = S2PixelCloudDetector(
            threshold=options.threshold,
            average_over=options.average_over or None,
            dilation_size=options.dilation_size or None,
        )
        mask = detector.get_mask_from_prob(probability[np.newaxis, ...])[0]
        work = inputs.output_dir / ".s2cloudless"
        work.mkdir(parents=True, exist_ok=True)
        mask_raw = work / "CLOUD_MASK.tif"
        prob_raw = work / "CLOUD_PROB.tif"
        _write(mask_raw, np.where(valid, mask, CLOUD_MASK.nodata).astype(np.uint8), grid)
        prob_pct = np.rint(probability * 100.0).astype(np.uint8)
        _write(prob_raw, np.where(valid, prob_pct, PROB_NODATA).astype(np.uint8), grid)
        model_s = round(time.monotonic() - started, 3)
        log.info(
            "s2cloudless.model scene=%s grid=%dx%d resolution_m=%g cloud_pct=%.2f elapsed_s=%.2f",
            inputs.scene.scene_id,
            grid.width,
            grid.height,
            options.resolution_m,
            float(100.0 * mask[valid].mean()) if valid.any() else 0.0,
            model_s,
        )
        reflectance = reflectance_files(inputs.files, inputs.collection)
        _, target = target_grid(reflectance, options.grid_band)
        prob_staging = work / "CLOUD_PROB.grid.tif"
        mask_on_grid(prob_raw, PROB_KIND, target, reflectance, prob_staging)
        try:
            prob_cog = write_cog(
                prob_staging,
                inputs.output_dir / "CLOUD_PROB.tif",
                nodata=PROB_NODATA,
                options=CogOptions(overview_resampling="nearest"),
            )
        finally:
            prob_staging.unlink(missing_ok=True)
        return post_process(
            inputs,
            options,
            mask_key="CLOUD_MASK",
            mask_path=mask_raw,
            kind=CLOUD_MASK,
            processor=self.name,
            version=self.version,
            extra_files={"CLOUD_PROB": prob_cog.path},
            extra_metadata={
                "model": "s2cloudless pixel_s2_cloud_detector_lightGBM_v0.1",
                "threshold": options.threshold,
                "average_over": options.average_over,
                "dilation_size": options.dilation_size,
                "working_resolution_m": options.resolution_m,
                "model_elapsed_s": model_s,
            },
        )
