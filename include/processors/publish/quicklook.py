"""Quicklook and thumbnail PNGs: RGB from three bands, percentile stretch, nodata transparent.

Bands are read already reduced (GDAL uses the COG overviews, averaging with nodata excluded),
stretched per band between two percentiles of the pixels valid in all three bands, and written as
8-bit RGBA whose alpha is 0 wherever any band is nodata. PNGs are encoded here (zlib), so no
GDAL sidecar files appear next to them.
"""

from __future__ import annotations

import os
import struct
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError

from include.common.errors import FieldProblem, InvalidInputError, ProcessingError

PNG_MEDIA_TYPE = "image/png"
THUMBNAIL_PX = 256

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
ByteArray = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class StretchLimits:
    """Per-band (low, high) values mapped to 0 and 255."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class QuicklookInfo:
    """What ``write_quicklook`` wrote."""

    quicklook: Path
    thumbnail: Path | None
    width: int
    height: int
    limits: StretchLimits
    valid_fraction: float


def output_shape(width: int, height: int, size_px: int) -> tuple[int, int]:
    """Return ``(rows, cols)`` whose longest side is ``size_px``, keeping the aspect ratio."""
    if width >= height:
        return max(1, round(height * size_px / width)), size_px
    return size_px, max(1, round(width * size_px / height))


def read_rgb(
    paths: Sequence[Path], size_px: int, nodata: Sequence[float | None]
) -> tuple[FloatArray, BoolArray]:
    """Read three bands resampled so the longest side is ``size_px``.

    Args:
        paths: red, green and blue rasters covering the same extent.
        size_px: the longest side of the result in pixels.
        nodata: per band, a value meaning "no data" besides the file's own mask (or None).

    Returns:
        ``(rgb, valid)``: a float32 array (3, rows, cols) and a boolean mask of the pixels that
        are valid in all three bands.

    Raises:
        InvalidInputError: when not exactly three paths are given.
        ProcessingError: when a band cannot be read.
    """
    if len(paths) != 3 or len(nodata) != 3:
        raise InvalidInputError(
            FieldProblem(
                "quicklook.bands", f"got {len(paths)} bands", "configure exactly three (R, G, B)"
            )
        )
    shape: tuple[int, int] | None = None
    layers: list[FloatArray] = []
    valid: BoolArray | None = None
    try:
        for path, band_nodata in zip(paths, nodata, strict=True):
            with rasterio.open(path) as ds:
                if shape is None:
                    shape = output_shape(ds.width, ds.height, size_px)
                data = ds.read(1, out_shape=shape, resampling=Resampling.average)
                band_valid: BoolArray = ds.read_masks(1, out_shape=shape) > 0
            if band_nodata is not None:
                band_valid &= data != band_nodata
            layers.append(data.astype(np.float32))
            valid = band_valid if valid is None else valid & band_valid
    except RasterioError as err:
        raise ProcessingError(
            f"quicklook: cannot read the bands {[p.name for p in paths]}: {err}"
        ) from err
    if valid is None or shape is None:
        raise ProcessingError("quicklook: no band was read")
    return np.stack(layers), valid


def stretch_limits(
    rgb: FloatArray, valid: BoolArray, percentiles: tuple[float, float]
) -> StretchLimits:
    """Return the per-band percentiles of the valid pixels (0..1 when none is valid)."""
    low: list[float] = []
    high: list[float] = []
    for layer in rgb:
        values = layer[valid]
        if values.size == 0:
            low.append(0.0)
            high.append(1.0)
            continue
        lo, hi = np.percentile(values, percentiles)
        low.append(float(lo))
        high.append(float(hi) if hi > lo else float(lo) + 1.0)
    return StretchLimits(low=(low[0], low[1], low[2]), high=(high[0], high[1], high[2]))


def to_rgba(rgb: FloatArray, valid: BoolArray, limits: StretchLimits) -> ByteArray:
    """Return an 8-bit (rows, cols, 4) RGBA image; alpha 0 and black where not valid."""
    rows, cols = valid.shape
    out = np.zeros((rows, cols, 4), dtype=np.uint8)
    for index, layer in enumerate(rgb):
        lo, hi = limits.low[index], limits.high[index]
        scaled = np.clip((layer - lo) / (hi - lo), 0.0, 1.0) * 255.0
        out[..., index] = np.where(valid, np.rint(scaled), 0).astype(np.uint8)
    out[..., 3] = np.where(valid, 255, 0).astype(np.uint8)
    return out


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def encode_png(rgba: ByteArray) -> bytes:
    """Encode an 8-bit (rows, cols, 4) array as a PNG (RGBA, "Up" row filter, zlib level 6).

    Raises:
        ValueError: when the array is not (rows, cols, 4) uint8.
    """
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"expected a (rows, cols, 4) uint8 array, got {rgba.shape} {rgba.dtype}")
    rows, cols = rgba.shape[:2]
    flat = rgba.reshape(rows, cols * 4)
    previous = np.vstack([np.zeros((1, cols * 4), dtype=np.uint8), flat[:-1]])
    filtered = flat - previous  # uint8 arithmetic wraps modulo 256, as PNG's Up filter wants
    raw = np.hstack([np.full((rows, 1), 2, dtype=np.uint8), filtered]).tobytes()
    header = struct.pack(">IIBBBBB", cols, rows, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 6))
        + _chunk(b"IEND", b"")
    )


def write_png(rgba: ByteArray, dest: Path) -> Path:
    """Write ``rgba`` as a PNG at ``dest`` through a temporary name and an atomic rename.

    Raises:
        OSError: when the file cannot be written (nothing is left at ``dest`` then).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(encode_png(rgba))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def write_quicklook(
    paths: Sequence[Path],
    dest: Path,
    *,
    size_px: int,
    percentiles: tuple[float, float],
    nodata: Sequence[float | None],
    thumbnail: Path | None = None,
    thumbnail_px: int = THUMBNAIL_PX,
) -> QuicklookInfo:
    """Write the quicklook PNG (and optionally a thumbnail with the same stretch).

    Args:
        paths: red, green and blue rasters.
        dest: the quicklook PNG path.
        size_px: the quicklook's longest side.
        percentiles: the (low, high) percentiles of the stretch, computed on valid pixels.
        nodata: per band nodata value (or None).
        thumbnail: where to write the thumbnail, or None for no thumbnail.
        thumbnail_px: the thumbnail's longest side.

    Returns:
        The paths written, the image size, the stretch and the valid fraction.

    Raises:
        InvalidInputError: when not exactly three bands are given.
        ProcessingError: when a band cannot be read.
    """
    rgb, valid = read_rgb(paths, size_px, nodata)
    limits = stretch_limits(rgb, valid, percentiles)
    write_png(to_rgba(rgb, valid, limits), dest)
    if thumbnail is not None:
        small_rgb, small_valid = read_rgb(paths, thumbnail_px, nodata)
        write_png(to_rgba(small_rgb, small_valid, limits), thumbnail)
    return QuicklookInfo(
        quicklook=dest,
        thumbnail=thumbnail,
        width=int(valid.shape[1]),
        height=int(valid.shape[0]),
        limits=limits,
        valid_fraction=float(valid.mean()) if valid.size else 0.0,
    )
