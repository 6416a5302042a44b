"""What the correction processors share: options, product opening, reflectance encoding, checks.

Output convention (docs/processors.md): one GeoTIFF per band holding reflectance encoded as
``round((reflectance - offset) / scale)`` in the target band's ``data_type`` (``int16`` by
default; ``uint16`` when the collection's nodata is 0) with ``scale``/``offset`` from the
collection's band config (default 0.0001 and 0, i.e. reflectance x 10000), the band's nodata
wherever the source is nodata, and the scale/offset recorded in the raster metadata (GDAL band
scale/offset and tags). Valid values that would collide with nodata are nudged by one unit;
values beyond the type's range are clipped. Quality bands (SCL, QA_PIXEL, Fmask) are copied as
they are. Conversion streams in row strips, never the whole band in memory.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import rasterio
from pydantic import BaseModel, ConfigDict, ValidationError
from rasterio.errors import RasterioError
from rasterio.windows import Window

from include.common.config import BandConfig, CollectionConfig
from include.common.errors import FieldProblem, InvalidInputError, ProcessingError
from include.common.progress import ProgressFn
from include.processors.base import ProcessorInputs, ProcessorResult
from include.processors.products.landsat import LandsatProduct
from include.processors.products.package import (
    Product,
    SceneHints,
    open_package,
    require_sensor,
)

log = logging.getLogger(__name__)

DEFAULT_SCALE = 0.0001
STRIP_PIXELS = 4_000_000
"""Pixels per processing strip (~16 MB of float32): bounded memory whatever the band size."""
FLAG_SUN_TOO_LOW = "sun_too_low"
FLAG_FULLY_CLOUDY = "fully_cloudy"
FLAG_NO_DATA = "no_valid_pixels"
_DTYPE_RANGES = {
    "int16": (-32768, 32767),
    "uint16": (0, 65535),
    "int32": (-(2**31), 2**31 - 1),
    "uint8": (0, 255),
}

OptionsT = TypeVar("OptionsT", bound=BaseModel)


def intermediate_compression(compress: str = "zstd", level: int | None = None) -> dict[str, Any]:
    """Return the GeoTIFF creation options of a step output that a later step reads.

    Fast and lossless: ZSTD level 1 without predictor by default (about a fifth of DEFLATE's
    encoding and half its decoding time, for a few percent more bytes); ``deflate`` gets the
    horizontal predictor. Publish writes the COGs users get with its own options.
    """
    if compress == "zstd":
        return {"compress": "zstd", "zstd_level": level or 1}
    return {"compress": compress, "predictor": 2, "zlevel": level or 1}


def default_workers() -> int:
    """Return how many bands a processor works on at a time by default: the CPUs, at most 4."""
    return max(1, min(os.cpu_count() or 1, 4))


class ProcessorOptions(BaseModel):
    """Base of every processor's options model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def options_for(
    inputs: ProcessorInputs, task_type: str, model: type[OptionsT], *, name: str
) -> OptionsT:
    """Return the processor's options: the collection's config, overridden by the node's args.

    The collection's ``processors.<task_type>.options`` apply only when that entry names this
    processor (``name``); the node's args always apply.

    Raises:
        InvalidInputError: naming each unknown or badly typed option.
    """
    configured = inputs.collection.processors.get(task_type)
    same = configured is not None and configured.name.strip().lower() == name
    merged: dict[str, Any] = dict(configured.options) if configured is not None and same else {}
    merged.update(inputs.args)
    try:
        return model.model_validate(merged)
    except ValidationError as err:
        raise InvalidInputError(
            [
                FieldProblem(
                    "args." + ".".join(str(part) for part in error["loc"]),
                    error["msg"],
                    f"fix it in the task args or in collections.yaml "
                    f"({inputs.collection.name}.processors.{task_type}.options); known options: "
                    f"{', '.join(sorted(model.model_fields))}",
                )
                for error in err.errors()
            ]
        ) from err


# --------------------------------------------------------------------------------------------
# Opening the parent's product


def open_product(
    files: Mapping[str, Path],
    collection: CollectionConfig,
    *,
    scene_id: str | None = None,
    hints: SceneHints | None = None,
) -> Product:
    """Open the parent's output as a Sentinel-2 or Landsat product of ``collection``'s sensor.

    ``files`` is a folder of STAC assets (keys ``B04``/``red``, ``product_metadata``,
    ``mtl.txt``...), or one archive/folder (a CDSE SAFE ``.zip``, a USGS ``.tar`` bundle),
    extracted once beside itself and reused (``products.package``). ``hints``: the scene's
    tile, baseline and provider-applied offset, as its catalog gave them (``SceneHints.of``).

    Raises:
        InvalidInputError: nothing recognisable as either product, or a product of a sensor
            the collection does not take.
    """
    package = open_package(files, hints=hints)
    if package.product is None:
        raise InvalidInputError(
            FieldProblem(
                "files",
                f"neither a Sentinel-2 nor a Landsat product among {sorted(files)}",
                "download the scene with its metadata (MTD_MSIL1C.xml / _MTL.txt) and bands",
            )
        )
    require_sensor(package, collection, scene_id)
    return package.product


def sun_elevation_of(product: Product, scene_properties: Mapping[str, Any]) -> float | None:
    """Return the scene's (mean) sun elevation in degrees, from the product or the catalog."""
    if isinstance(product, LandsatProduct):
        if product.metadata.sun_elevation_deg is not None:
            return product.metadata.sun_elevation_deg
    else:
        tile = product.tile_metadata
        if tile is not None and tile.sun_elevation_deg is not None:
            return tile.sun_elevation_deg
    value = scene_properties.get("sun_elevation")
    return float(value) if isinstance(value, int | float) else None


# --------------------------------------------------------------------------------------------
# Encoding and writing


@dataclass(frozen=True, slots=True)
class Encoding:
    """How reflectance is stored: type, nodata and the scale/offset back to reflectance."""

    dtype: str = "int16"
    nodata: float = -9999
    scale: float = DEFAULT_SCALE
    offset: float = 0.0

    @classmethod
    def for_band(cls, band: BandConfig | None) -> Encoding:
        """Return the encoding the collection declares for ``band`` (defaults: int16, x10000).

        Raises:
            InvalidInputError: for a data type that cannot hold scaled reflectance.
        """
        if band is None:
            return cls()
        dtype = band.data_type.lower()
        if dtype not in ("int16", "uint16", "int32", "float32"):
            raise InvalidInputError(
                FieldProblem(
                    f"collections.bands[{band.name}].data_type",
                    f"{band.data_type!r} cannot hold reflectance",
                    "use int16 (or uint16 with nodata 0, or float32)",
                )
            )
        default_nodata = 0 if dtype == "uint16" else -9999
        nodata = band.nodata if band.nodata is not None else default_nodata
        scale = (
            band.scale if band.scale is not None else (1.0 if dtype == "float32" else DEFAULT_SCALE)
        )
        return cls(
            dtype=dtype, nodata=float(nodata), scale=float(scale), offset=float(band.offset or 0.0)
        )

    def encode(
        self, reflectance: npt.NDArray[np.float64], valid: npt.NDArray[np.bool_]
    ) -> npt.NDArray[Any]:
        """Return ``reflectance`` encoded, nodata where ``valid`` is False."""
        if self.dtype == "float32":
            out32 = ((reflectance - self.offset) / self.scale).astype(np.float32)
            out32[~valid] = self.nodata
            return out32
        low, high = _DTYPE_RANGES[self.dtype]
        nodata = int(self.nodata)
        if nodata == low:
            low += 1
        elif nodata == high:
            high -= 1
        values = np.rint((reflectance - self.offset) / self.scale)
        np.clip(values, low, high, out=values)
        encoded = values.astype(self.dtype)
        if low < nodata < high:
            encoded[(encoded == nodata) & valid] = nodata + 1
        encoded[~valid] = nodata
        return encoded


def _strips(width: int, height: int) -> Iterable[Window]:
    rows = max(1, STRIP_PIXELS // max(width, 1))
    for row in range(0, height, rows):
        yield Window(0, row, width, min(rows, height - row))


def _tmp_name(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")


@contextmanager
def raster_output(dest: Path, *, failure: str) -> Iterator[Path]:
    """Yield a temporary path beside ``dest`` that becomes ``dest`` when the block succeeds.

    The temporary file is removed whatever happens; a GDAL error inside the block is raised as
    ``ProcessingError`` starting ``<dest name>: <failure>``.

    Raises:
        ProcessingError: GDAL failed inside the block.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(dest)
    try:
        yield tmp
        os.replace(tmp, dest)
    except RasterioError as err:
        raise ProcessingError(f"{dest.name}: {failure}: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class BandStats:
    """Counts from one converted band."""

    valid_pixels: int
    total_pixels: int


def convert_linear(
    src: Path,
    dest: Path,
    *,
    gain: float,
    bias: float,
    encoding: Encoding,
    source_nodata: Iterable[float] = (0,),
    tags: Mapping[str, str] | None = None,
    valid_fn: Callable[[npt.NDArray[Any]], npt.NDArray[np.bool_]] | None = None,
) -> BandStats:
    """Write ``reflectance = DN * gain + bias`` of ``src`` band 1 to ``dest``, strip by strip.

    Pixels equal to one of ``source_nodata`` (and, if given, where ``valid_fn`` is False) are
    nodata. The file is written under a temporary name and renamed into place.

    Raises:
        InvalidInputError: ``src`` cannot be read or is not georeferenced.
        ProcessingError: GDAL failed writing.
    """
    fills = tuple(float(value) for value in source_nodata)
    valid_total = 0
    failure = f"GDAL failed converting {src.name}"
    with _band_writer(src, dest, encoding.dtype, encoding.nodata, failure) as (ds, out):
        total = ds.width * ds.height
        for window in _strips(ds.width, ds.height):
            dn = ds.read(1, window=window)
            valid = np.ones(dn.shape, dtype=bool)
            for fill in fills:
                valid &= dn != fill
            if valid_fn is not None:
                valid &= valid_fn(dn)
            reflectance = dn.astype(np.float64) * gain + bias
            out.write(encoding.encode(reflectance, valid), 1, window=window)
            valid_total += int(valid.sum())
        out.scales = (encoding.scale,)
        out.offsets = (encoding.offset,)
        out.update_tags(1, scale=repr(encoding.scale), offset=repr(encoding.offset))
        out.update_tags(
            **{
                "reflectance_gain": repr(gain),
                "reflectance_bias": repr(bias),
                **(tags or {}),
            }
        )
    return BandStats(valid_pixels=valid_total, total_pixels=total)


@dataclass(frozen=True, slots=True)
class ReflectanceJob:
    """A band to write as reflectance (``DN * gain + bias`` of ``source``) in its encoding."""

    band: BandConfig
    source: Path
    gain: float
    bias: float
    source_nodata: tuple[float, ...]
    tags: Mapping[str, str]
    facts: Mapping[str, Any] = field(default_factory=dict)
    """What the band's radiometry record starts with (the encoding's scale/offset follow)."""


def write_reflectance(job: ReflectanceJob, out_dir: Path) -> tuple[Path, BandStats, dict[str, Any]]:
    """Write ``job`` as ``<out_dir>/<band>.tif``; return the path, its counts and its radiometry.

    Raises:
        InvalidInputError: the band's encoding is unusable, or ``source`` is not georeferenced.
        ProcessingError: GDAL failed.
    """
    encoding = Encoding.for_band(job.band)
    dest = out_dir / f"{job.band.name}.tif"
    stats = convert_linear(
        job.source,
        dest,
        gain=job.gain,
        bias=job.bias,
        encoding=encoding,
        source_nodata=job.source_nodata,
        tags=job.tags,
    )
    return dest, stats, {**job.facts, "scale": encoding.scale, "offset": encoding.offset}


def copy_band(
    src: Path,
    dest: Path,
    *,
    nodata: float | None = None,
    scale_offset: tuple[float, float] | None = None,
) -> Path:
    """Copy a band (SCL, QA_PIXEL, Fmask, ST_B10) as a tiled GeoTIFF, values unchanged.

    ``scale_offset`` is recorded as the band's scale/offset (``ST_B10``: kelvin = DN * scale +
    offset), so publish and readers know what the stored numbers mean.

    Raises:
        InvalidInputError: ``src`` cannot be read or is not georeferenced.
        ProcessingError: GDAL failed writing.
    """
    failure = f"GDAL failed copying {src.name}"
    with _band_writer(src, dest, None, nodata, failure) as (ds, out):
        for window in _strips(ds.width, ds.height):
            out.write(ds.read(1, window=window), 1, window=window)
        if scale_offset is not None:
            out.scales, out.offsets = (scale_offset[0],), (scale_offset[1],)
    return dest


def classification_to_cloud_mask(src: Path, dest: Path, *, cloud_bands: tuple[int, ...]) -> Path:
    """Write a 0/1 cloud mask (nodata 255) from a 0/1 multi-band classification raster.

    A pixel is cloud (1) when any of ``cloud_bands`` (1-based) is non-zero, else clear (0);
    used for the L1C MSK_CLASSI (band 1 opaque clouds, band 2 cirrus).

    Raises:
        InvalidInputError: ``src`` cannot be read or is not georeferenced.
        ProcessingError: GDAL failed writing.
    """
    with _band_writer(src, dest, "uint8", 255, f"GDAL failed reading {src.name}") as (ds, out):
        indexes = [band for band in cloud_bands if band <= ds.count]
        for window in _strips(ds.width, ds.height):
            flags = ds.read(indexes, window=window)
            out.write((flags != 0).any(axis=0).astype(np.uint8), 1, window=window)
        out.update_tags(mask_kind="cloud_mask", source=src.name)
    return dest


@contextmanager
def _band_writer(
    src: Path, dest: Path, dtype: str | None, nodata: float | None, failure: str
) -> Iterator[tuple[Any, Any]]:
    """Yield ``src`` (georeferenced) open for reading and ``dest``'s one-band GeoTIFF for writing.

    ``dest`` has ``src``'s grid, ``dtype`` and ``nodata`` (None: the source's); it is written
    under a temporary name and renamed into place when the block succeeds.
    """
    with raster_output(dest, failure=failure) as tmp, georeferenced(src) as ds:
        declared = nodata if nodata is not None else ds.nodata
        profile = _output_profile(ds, dtype or ds.dtypes[0], declared)
        with rasterio.open(tmp, "w", **profile) as out:
            yield ds, out


def _output_profile(ds: Any, dtype: str, nodata: float | None) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": ds.width,
        "height": ds.height,
        "count": 1,
        "dtype": dtype,
        "crs": ds.crs,
        "transform": ds.transform,
        "nodata": nodata,
        **intermediate_compression(),
        "BIGTIFF": "IF_SAFER",
    }
    block = next((size for size in (512, 256) if min(ds.width, ds.height) >= size), None)
    if block is not None:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    return profile


@contextmanager
def georeferenced(src: Path) -> Iterator[Any]:
    """Open ``src`` for reading and require a CRS and a geotransform.

    Raises:
        InvalidInputError: ``src`` is not georeferenced.
    """
    with rasterio.open(src) as ds:
        _require_georeferenced(ds, src)
        yield ds


def _require_georeferenced(ds: Any, path: Path) -> None:
    if ds.crs is None or ds.transform.is_identity:
        raise InvalidInputError(
            FieldProblem(
                f"files[{path.name}]",
                "is not georeferenced (no CRS or no geotransform)",
                "give the provider's georeferenced band file",
            )
        )


def validate_raster(path: Path, *, band: str) -> tuple[int, int]:
    """Check that ``path`` is a readable, georeferenced raster; return ``(width, height)``.

    Reads one small window, so a truncated file fails here rather than in publish.

    Raises:
        ProcessingError: naming the band and what is wrong.
    """
    if not path.is_file() or path.stat().st_size == 0:
        raise ProcessingError(f"output {band}: {path} is missing or empty")
    try:
        with rasterio.open(path) as ds:
            if ds.crs is None or ds.transform.is_identity:
                raise ProcessingError(f"output {band}: {path.name} is not georeferenced")
            size = min(ds.width, 64), min(ds.height, 64)
            ds.read(1, window=Window(ds.width - size[0], ds.height - size[1], *size))
            return ds.width, ds.height
    except RasterioError as err:
        raise ProcessingError(f"output {band}: {path.name} cannot be read: {err}") from err


# --------------------------------------------------------------------------------------------
# Results


def flagged_result(flags: list[str], metadata: Mapping[str, Any]) -> ProcessorResult:
    """Return a successful result with no files and ``flags`` (the branch stops cleanly)."""
    log.warning("processor.flagged flags=%s %s", ",".join(flags), dict(metadata))
    return ProcessorResult(files={}, metadata={**metadata, "flags": list(flags)})


def sun_too_low(sun_elevation_deg: float | None, min_sun_elevation_deg: float | None) -> bool:
    """Return whether the sun is below the processor's limit (unknown elevation never is)."""
    if sun_elevation_deg is None or min_sun_elevation_deg is None:
        return False
    return sun_elevation_deg < min_sun_elevation_deg


def reset_dir(path: Path) -> None:
    """Empty (or create) a folder the processor owns."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def report_progress(progress: ProgressFn | None, done: int, total: int) -> None:
    """Call ``progress`` when given (units: bands)."""
    if progress is not None:
        progress(done, total)


def percent(part: int, whole: int) -> float:
    """Return ``100 * part / whole`` rounded to 2 decimals (0 when ``whole`` is 0)."""
    return round(100.0 * part / whole, 2) if whole else 0.0
