"""``qa-post``: the quality mask on the reflectance grid, nodata-consistent, and its statistics.

For one scene it:

1. finds the quality mask among the parent's files (SCL, QA_PIXEL, FMASK or CLOUD_MASK; or the
   band named by the ``mask_band`` option) and the reflectance bands (collection bands with a
   wavelength);
2. resamples the mask (nearest neighbour) onto the grid of the finest reflectance band (10 m for
   Sentinel-2, 30 m for Landsat), strip by strip through GDAL warped VRTs;
3. sets the mask's nodata wherever any reflectance band is nodata (each read on the same grid);
4. writes it as a COG (``publish.cog.write_cog``, nearest overviews) with its size and checksum;
5. recomputes the cloud cover (cloud pixels / valid pixels, mask semantics in ``masks``) and
   returns it as ``metadata["cloud_cover"]``, which publish writes as ``eo:cloud_cover``.

The reflectance files pass through unchanged. A scene with data but no clear pixel ends as
succeeded with the flag ``fully_cloudy`` and no files (its branch stops) unless
``keep_fully_cloudy`` is true; ``min_clear_pct`` raises that bar. A scene with no valid pixel
is flagged ``no_valid_pixels``.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from include.common.config import CollectionConfig
from include.common.errors import FieldProblem, InvalidInputError, ProcessingError
from include.processors.base import Processor, ProcessorInputs, ProcessorResult
from include.processors.correction.common import (
    FLAG_FULLY_CLOUDY,
    FLAG_NO_DATA,
    STRIP_PIXELS,
    ProcessorOptions,
    flagged_result,
    options_for,
    percent,
)
from include.processors.grid import Grid, on_grid
from include.processors.post.masks import KINDS, MaskKind, kind_by_name, kind_for_key
from include.processors.products.package import unpacked_inputs
from include.processors.publish.cog import CogOptions, write_cog
from include.processors.publish.stac_item import file_checksum
from include.processors.registry import register

log = logging.getLogger(__name__)

QA_POST_VERSION = "0.1.0"


class PostOptions(ProcessorOptions):
    """Options of the post processors."""

    mask_band: str | None = None
    """The key of the quality mask among the inputs (default: the first known mask found)."""
    grid_band: str | None = None
    """The reflectance band whose grid the mask is put on (default: the finest)."""
    min_clear_pct: float = 0.0
    """A scene with at most this share of clear pixels (of valid ones) is ``fully_cloudy``."""
    keep_fully_cloudy: bool = False
    """Keep the files of a fully cloudy scene (publish it) instead of stopping its branch."""


@dataclass(frozen=True, slots=True)
class MaskStats:
    """Pixel counts of a post-processed mask."""

    valid: int
    cloud: int
    clear: int
    total: int

    @property
    def cloud_cover(self) -> float:
        """Cloud pixels per valid pixel, in percent."""
        return percent(self.cloud, self.valid)

    @property
    def clear_pct(self) -> float:
        """Clear pixels per valid pixel, in percent."""
        return percent(self.clear, self.valid)


def reflectance_files(files: Mapping[str, Path], collection: CollectionConfig) -> dict[str, Path]:
    """Return the inputs that are reflectance bands of ``collection`` (by band name)."""
    found: dict[str, Path] = {}
    for key, path in sorted(files.items()):
        band = collection.band(key)
        if band is not None and band.center_wavelength_um is not None:
            found.setdefault(band.name, path)
    return found


def find_mask(
    files: Mapping[str, Path], wanted: str | None, kinds: tuple[MaskKind, ...] = KINDS
) -> tuple[str, Path, MaskKind]:
    """Return ``(key, path, kind)`` of the quality mask among ``files``.

    Raises:
        InvalidInputError: when no known mask (or not the wanted one) is there.
    """
    for key, path in files.items():
        kind = kind_for_key(key)
        if kind is None or kind not in kinds:
            continue
        if wanted is None or key.upper() == wanted.upper():
            return key, path, kind
    if wanted is not None:
        for key, path in files.items():
            if key.upper() == wanted.upper():
                kind = kind_by_name(wanted) or kind_for_key(wanted)
                if kind is not None:
                    return key, path, kind
    names = ", ".join(sorted({k for kind in kinds for k in kind.keys}))
    raise InvalidInputError(
        FieldProblem(
            "files",
            f"no quality mask ({names}) among {sorted(files)}",
            "put post after a correction that outputs one (provider-l2, sen2cor, lasrc) or use "
            "s2cloudless to make one",
        )
    )


def _strips(grid: Grid) -> list[Window]:
    rows = max(1, STRIP_PIXELS // max(grid.width, 1))
    return [
        Window(0, row, grid.width, min(rows, grid.height - row))
        for row in range(0, grid.height, rows)
    ]


def mask_on_grid(
    mask_path: Path,
    kind: MaskKind,
    grid: Grid,
    reflectance: Mapping[str, Path],
    dest: Path,
) -> MaskStats:
    """Write ``mask_path`` resampled (nearest) onto ``grid`` with reflectance nodata applied.

    The result is a tiled GeoTIFF at ``dest`` (written through a temporary name).

    Raises:
        InvalidInputError: a file cannot be read.
        ProcessingError: GDAL failed.
    """
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    valid = cloud = clear = 0
    try:
        with rasterio.open(mask_path) as mask_ds:
            dtype = mask_ds.dtypes[0]
            sources = [rasterio.open(path) for path in reflectance.values()]
            try:
                profile = {
                    "driver": "GTiff",
                    "width": grid.width,
                    "height": grid.height,
                    "count": 1,
                    "dtype": dtype,
                    "crs": grid.crs,
                    "transform": grid.transform,
                    "nodata": kind.nodata,
                    "compress": "deflate",
                    "BIGTIFF": "IF_SAFER",
                }
                if grid.width >= 256 and grid.height >= 256:
                    profile.update(tiled=True, blockxsize=256, blockysize=256)
                warped_mask = on_grid(mask_ds, grid, kind.nodata)
                warped_bands = [on_grid(ds, grid, ds.nodata) for ds in sources]
                with rasterio.open(tmp, "w", **profile) as out:
                    for window in _strips(grid):
                        values = warped_mask.read(1, window=window)
                        for ds, warped in zip(sources, warped_bands, strict=True):
                            if ds.nodata is None:
                                continue
                            band = warped.read(1, window=window)
                            values[band == ds.nodata] = kind.nodata
                        out.write(values, 1, window=window)
                        is_valid = kind.valid(values)
                        valid += int(is_valid.sum())
                        cloud += int((kind.cloud(values) & is_valid).sum())
                        clear += int((kind.clear(values) & is_valid).sum())
                    out.update_tags(mask_kind=kind.name, resampling="nearest")
                warped_mask.close()
                for warped in warped_bands:
                    warped.close()
            finally:
                for ds in sources:
                    ds.close()
        os.replace(tmp, dest)
    except RasterioError as err:
        raise ProcessingError(
            f"{dest.name}: GDAL failed resampling {mask_path.name}: {err}"
        ) from err
    finally:
        tmp.unlink(missing_ok=True)
    return MaskStats(valid=valid, cloud=cloud, clear=clear, total=grid.width * grid.height)


def target_grid(reflectance: Mapping[str, Path], grid_band: str | None) -> tuple[str, Grid]:
    """Return the band whose grid is the target (asked for, else the finest) and that grid.

    Raises:
        InvalidInputError: no reflectance band, or ``grid_band`` is not among them.
    """
    if not reflectance:
        raise InvalidInputError(
            FieldProblem(
                "files",
                "no reflectance band among the inputs",
                "put post after a correction step (its bands define the grid)",
            )
        )
    grids = {name: Grid.of(path) for name, path in reflectance.items()}
    if grid_band is not None:
        if grid_band not in grids:
            raise InvalidInputError(
                FieldProblem(
                    "args.grid_band", f"{grid_band!r} is not an input band", f"use {sorted(grids)}"
                )
            )
        return grid_band, grids[grid_band]
    name = min(grids, key=lambda key: (grids[key].resolution, key))
    return name, grids[name]


def post_process(
    inputs: ProcessorInputs,
    options: PostOptions,
    *,
    mask_key: str,
    mask_path: Path,
    kind: MaskKind,
    processor: str,
    version: str,
    extra_files: Mapping[str, Path] | None = None,
    extra_metadata: Mapping[str, Any] | None = None,
) -> ProcessorResult:
    """Put ``mask_path`` on the reflectance grid, write its COG, and return the post result.

    Raises:
        InvalidInputError: no reflectance band, unreadable inputs.
        ProcessingError: GDAL failed or the COG is invalid.
    """
    started = time.monotonic()
    reflectance = reflectance_files(inputs.files, inputs.collection)
    grid_name, grid = target_grid(reflectance, options.grid_band)
    band = inputs.collection.band(mask_key)
    out_name = band.name if band is not None else mask_key.upper()
    out_dir = inputs.output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / f".{out_name}.grid.tif"
    stats = mask_on_grid(mask_path, kind, grid, reflectance, staging)
    try:
        cog = write_cog(
            staging,
            out_dir / f"{out_name}.tif",
            nodata=kind.nodata,
            options=CogOptions(overview_resampling="nearest"),
        )
    finally:
        staging.unlink(missing_ok=True)
    checksum, size = file_checksum(cog.path)
    metadata: dict[str, Any] = {
        "processor": processor,
        "version": version,
        "mask_band": out_name,
        "mask_kind": kind.name,
        "grid_band": grid_name,
        "grid_resolution": grid.resolution,
        "cloud_cover": stats.cloud_cover,
        "clear_pct": stats.clear_pct,
        "valid_pct": percent(stats.valid, stats.total),
        "checksums": {out_name: checksum},
        "sizes": {out_name: size},
        **dict(extra_metadata or {}),
    }
    files: dict[str, Path] = {**reflectance, **dict(extra_files or {}), out_name: cog.path}
    metadata["elapsed_s"] = round(time.monotonic() - started, 3)
    log.info(
        "post.done scene=%s mask=%s kind=%s grid=%s cloud_cover=%.2f clear_pct=%.2f "
        "size_bytes=%d elapsed_s=%.2f",
        inputs.scene.scene_id,
        out_name,
        kind.name,
        grid_name,
        stats.cloud_cover,
        stats.clear_pct,
        size,
        metadata["elapsed_s"],
    )
    if stats.valid == 0:
        return flagged_result([FLAG_NO_DATA], metadata)
    if stats.clear_pct <= options.min_clear_pct:
        if options.keep_fully_cloudy:
            metadata["flags"] = [FLAG_FULLY_CLOUDY]
            return ProcessorResult(files=files, metadata=metadata)
        return flagged_result([FLAG_FULLY_CLOUDY], metadata)
    return ProcessorResult(files=files, metadata=metadata)


@register("qa-post")
class QaPostProcessor(Processor):
    """Post-process the quality mask the correction step produced (SCL, QA_PIXEL, Fmask).

    Idempotent: fixed output names, atomic writes; inputs are only read.
    """

    name: ClassVar[str] = "qa-post"
    version: ClassVar[str] = QA_POST_VERSION
    task_type: ClassVar[str] = "post"
    mask_kinds: ClassVar[tuple[MaskKind, ...]] = KINDS
    """The kinds of quality mask this processor takes from its inputs."""

    def run(self, inputs: ProcessorInputs) -> ProcessorResult:
        """Resample the mask onto the reflectance grid and recompute the cloud cover.

        Raises:
            InvalidInputError: no quality mask or no reflectance band among the inputs.
            ProcessingError: GDAL failed.
        """
        inputs = unpacked_inputs(inputs)
        options = options_for(inputs, self.task_type, PostOptions, name=self.name)
        key, path, kind = find_mask(inputs.files, options.mask_band, kinds=self.mask_kinds)
        return post_process(
            inputs,
            options,
            mask_key=key,
            mask_path=path,
            kind=kind,
            processor=self.name,
            version=self.version,
        )
