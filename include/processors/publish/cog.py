"""Cloud-Optimized GeoTIFF writing and layout validation (GDAL's COG driver through rasterio).

The source (GeoTIFF, JP2, anything GDAL reads) is wrapped in a small VRT that sets the band's
nodata, scale and offset, so GDAL builds the internal overviews with nodata excluded, and the
whole copy streams block by block instead of loading the band in memory.
"""

from __future__ import annotations

import logging
import os
import uuid
import xml.etree.ElementTree as ET  # noqa: S405 - only builds XML, never parses it
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.errors import RasterioError

from include.common.errors import FieldProblem, InvalidInputError, ProcessingError

log = logging.getLogger(__name__)

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
NUM_THREADS_ENV = "COLLECTION_BUILDER_NUM_THREADS"
"""Default for ``num_threads`` when the task args do not set it (``ALL_CPUS`` when unset)."""

Compression = Literal["deflate", "zstd"]
_COMPRESSIONS: tuple[Compression, ...] = ("deflate", "zstd")
_RESAMPLINGS = ("average", "nearest", "bilinear", "cubic", "mode")
_GHOST_LIMIT_BYTES = 65536
"""In a COG the first IFD sits right after the header and GDAL's ghost area, well below this."""


@dataclass(frozen=True, slots=True)
class CogOptions:
    """How COGs are written.

    ``num_threads`` is a positive number or ``ALL_CPUS``; ``level`` is the codec level
    (deflate 1-12, zstd 1-22) or None for GDAL's default.
    """

    compress: Compression = "deflate"
    level: int | None = None
    blocksize: int = 512
    num_threads: str = "ALL_CPUS"
    overview_resampling: str = "average"

    def __post_init__(self) -> None:
        problems: list[FieldProblem] = []
        if self.compress not in _COMPRESSIONS:
            problems.append(
                FieldProblem(
                    "args.compress", f"{self.compress!r} is not supported", "use deflate or zstd"
                )
            )
        max_level = 12 if self.compress == "deflate" else 22
        if self.level is not None and not 1 <= self.level <= max_level:
            problems.append(
                FieldProblem(
                    "args.level",
                    f"{self.level} is out of range",
                    f"use 1..{max_level} for {self.compress}",
                )
            )
        if self.blocksize < 16 or self.blocksize % 16:
            problems.append(
                FieldProblem(
                    "args.blocksize",
                    f"{self.blocksize} is not valid",
                    "use a multiple of 16 such as 512",
                )
            )
        if self.num_threads != "ALL_CPUS" and not (
            self.num_threads.isdigit() and int(self.num_threads) > 0
        ):
            problems.append(
                FieldProblem(
                    "args.num_threads",
                    f"{self.num_threads!r} is not valid",
                    "use a positive integer or ALL_CPUS",
                )
            )
        if self.overview_resampling not in _RESAMPLINGS:
            problems.append(
                FieldProblem(
                    "args.overview_resampling",
                    f"{self.overview_resampling!r} is not supported",
                    f"use one of {', '.join(_RESAMPLINGS)}",
                )
            )
        if problems:
            raise InvalidInputError(problems)

    @classmethod
    def default_num_threads(cls) -> str:
        """Return ``$COLLECTION_BUILDER_NUM_THREADS`` or ``ALL_CPUS``."""
        return os.environ.get(NUM_THREADS_ENV, "").strip().upper() or "ALL_CPUS"

    def gdal_config(self) -> dict[str, str]:
        """Return GDAL settings for the copy that change its speed, never the file written.

        GDAL's COG driver first writes the overviews to a temporary ZSTD file at ZSTD's default
        level (9), then copies them into the COG with the COG's own compression. Level 1 writes
        that temporary file about five times faster and the COG is byte for byte the same. When
        the COG itself is ZSTD the same setting would also set the level of its overviews, so
        it is left to GDAL then.
        """
        return {"ZSTD_LEVEL_OVERVIEW": "1"} if self.compress != "zstd" else {}

    def creation_options(self, dtype: str) -> dict[str, str]:
        """Return GDAL COG creation options for a band of numpy type ``dtype``."""
        is_float = dtype.startswith("float")
        options = {
            "BLOCKSIZE": str(self.blocksize),
            "COMPRESS": self.compress.upper(),
            "PREDICTOR": "3" if is_float else "2",
            "BIGTIFF": "IF_SAFER",
            "NUM_THREADS": self.num_threads,
            "OVERVIEWS": "AUTO",
            "OVERVIEW_RESAMPLING": self.overview_resampling.upper(),
        }
        if self.level is not None:
            options["LEVEL"] = str(self.level)
        return options


@dataclass(frozen=True, slots=True)
class CogInfo:
    """What a written COG looks like (read back from the file)."""

    path: Path
    width: int
    height: int
    dtype: str
    nodata: float | None
    epsg: int | None
    crs_wkt: str
    transform: tuple[float, float, float, float, float, float]
    overviews: tuple[int, ...]
    compression: str
    scale: float | None = None
    offset: float | None = None

    @property
    def resolution_m(self) -> float:
        """Return the pixel width in CRS units (metres for UTM)."""
        return abs(self.transform[0])


_GDAL_TYPES = {
    "uint8": "Byte",
    "int8": "Int8",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "float32": "Float32",
    "float64": "Float64",
}


def _source_vrt(
    src: Path, *, band_index: int, nodata: float | None, scale: float | None, offset: float | None
) -> str:
    """Return a VRT document reading band ``band_index`` of ``src`` with nodata/scale/offset set."""
    with rasterio.open(src) as ds:
        if ds.crs is None:
            raise InvalidInputError(
                FieldProblem(
                    f"files[{src.name}]",
                    "the raster has no coordinate reference system",
                    "give a georeferenced raster (GeoTIFF or JP2 with a CRS)",
                )
            )
        dtype = ds.dtypes[band_index - 1]
        width, height = ds.width, ds.height
        crs_wkt = ds.crs.to_wkt()
        gt = ds.transform.to_gdal()
        effective_nodata = nodata if nodata is not None else ds.nodatavals[band_index - 1]
        own_scale, own_offset = ds.scales[band_index - 1], ds.offsets[band_index - 1]
    # the source's own scale/offset (per scene, e.g. the S2 baseline's -1000 offset) win over the
    # collection's defaults; rasterio reports 1.0/0.0 when the file declares none
    if own_scale not in (None, 1.0) or own_offset not in (None, 0.0):
        scale, offset = own_scale, own_offset
    if dtype not in _GDAL_TYPES:
        raise InvalidInputError(
            FieldProblem(
                f"files[{src.name}]",
                f"data type {dtype} is not supported",
                "give an integer or float band",
            )
        )
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    ET.SubElement(root, "SRS").text = crs_wkt
    ET.SubElement(root, "GeoTransform").text = ",".join(repr(float(v)) for v in gt)
    band = ET.SubElement(root, "VRTRasterBand", dataType=_GDAL_TYPES[dtype], band="1")
    if effective_nodata is not None:
        ET.SubElement(band, "NoDataValue").text = repr(float(effective_nodata))
    if scale is not None:
        ET.SubElement(band, "Scale").text = repr(float(scale))
    if offset is not None:
        ET.SubElement(band, "Offset").text = repr(float(offset))
    source = ET.SubElement(band, "SimpleSource")
    ET.SubElement(source, "SourceFilename", relativeToVRT="0").text = str(src.resolve())
    ET.SubElement(source, "SourceBand").text = str(band_index)
    return ET.tostring(root, encoding="unicode")


def write_cog(
    src: Path,
    dest: Path,
    *,
    nodata: float | None,
    options: CogOptions,
    scale: float | None = None,
    offset: float | None = None,
    band_index: int = 1,
) -> CogInfo:
    """Write band ``band_index`` of ``src`` as a validated COG at ``dest``, atomically.

    The file is written under a temporary name in ``dest``'s folder, validated, then renamed
    over ``dest``; on any failure the temporary file is removed and ``dest`` is left as it was.

    Args:
        src: any raster GDAL reads (GeoTIFF, JP2, ...); it is never modified.
        dest: the final path of the COG.
        nodata: the nodata value to declare (None keeps the source's).
        options: compression, block size, threads, overview resampling.
        scale: scale to record in the GeoTIFF metadata when the source declares none.
        offset: offset to record in the GeoTIFF metadata when the source declares none.
        band_index: the 1-based band of ``src`` to write.

    Returns:
        The validated layout of the written COG.

    Raises:
        InvalidInputError: when ``src`` is missing, unreadable or not georeferenced.
        ProcessingError: when GDAL fails or the result is not a valid COG.
    """
    if not src.is_file():
        raise InvalidInputError(
            FieldProblem(
                f"files[{src.name}]", f"{src} does not exist", "run the previous step again"
            )
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        vrt = _source_vrt(src, band_index=band_index, nodata=nodata, scale=scale, offset=offset)
        with rasterio.open(vrt) as source, rasterio.Env(**options.gdal_config()):
            creation = options.creation_options(source.dtypes[0])
            rasterio.shutil.copy(source, tmp, driver="COG", **creation)
        info = validate_cog(tmp, blocksize=options.blocksize)
        os.replace(tmp, dest)
    except RasterioError as err:
        raise ProcessingError(
            f"{dest.name}: GDAL could not write the COG from {src}: {err}"
        ) from err
    finally:
        tmp.unlink(missing_ok=True)
    return replace(info, path=dest)


def _declared(value: float | None, default: float) -> float | None:
    """Return a scale/offset the file declares, None when it is absent or the neutral value."""
    return None if value is None or value == default else float(value)


def _six(transform: Affine) -> tuple[float, float, float, float, float, float]:
    a, b, c, d, e, f = (float(v) for v in tuple(transform)[:6])
    return a, b, c, d, e, f


_TILE_WIDTH_TAG = 322
_TILE_LENGTH_TAG = 323


@dataclass(frozen=True, slots=True)
class _FirstIfd:
    offset: int
    tags: frozenset[int]


def _first_ifd(path: Path) -> _FirstIfd:
    """Return the offset and tag numbers of the first IFD, read from the (Big)TIFF header."""
    with path.open("rb") as handle:
        header = handle.read(16)
        order: Literal["little", "big"] = "little" if header[:2] == b"II" else "big"
        version = int.from_bytes(header[2:4], order)
        if version == 42:
            offset, count_size, entry_size = int.from_bytes(header[4:8], order), 2, 12
        elif version == 43:
            offset, count_size, entry_size = int.from_bytes(header[8:16], order), 8, 20
        else:
            raise ProcessingError(f"{path.name}: not a TIFF file (version {version})")
        handle.seek(offset)
        count = int.from_bytes(handle.read(count_size), order)
        entries = handle.read(count * entry_size)
    tags = frozenset(
        int.from_bytes(entries[i : i + 2], order) for i in range(0, len(entries), entry_size)
    )
    return _FirstIfd(offset=offset, tags=tags)


def validate_cog(path: Path, *, blocksize: int = 512) -> CogInfo:
    """Check that ``path`` is a Cloud-Optimized GeoTIFF and return its layout.

    Checks: GDAL reports ``LAYOUT=COG`` (IFDs before data, overview data before full-resolution
    data, as written by the COG driver and not edited since), the first IFD sits at the start of
    the file and has TIFF tile tags (rasterio's ``tiled`` says False for a one-tile image), tiles
    are ``blocksize`` square, the data is compressed, and there are internal overviews when the
    image is larger than one tile.

    Args:
        path: the file to check.
        blocksize: the expected tile size.

    Returns:
        The COG's layout.

    Raises:
        ProcessingError: naming every check that failed.
    """
    try:
        with rasterio.open(path) as ds:
            structure = ds.tags(ns="IMAGE_STRUCTURE")
            profile = ds.profile
            overviews = tuple(ds.overviews(1))
            compression = ds.compression.value.lower() if ds.compression else ""
            info = CogInfo(
                path=path,
                width=ds.width,
                height=ds.height,
                dtype=ds.dtypes[0],
                nodata=ds.nodata,
                epsg=ds.crs.to_epsg() if ds.crs else None,
                crs_wkt=ds.crs.to_wkt() if ds.crs else "",
                transform=_six(ds.transform),
                overviews=overviews,
                compression=compression,
                scale=_declared(ds.scales[0], 1.0),
                offset=_declared(ds.offsets[0], 0.0),
            )
    except RasterioError as err:
        raise ProcessingError(f"{path.name}: cannot be read as a GeoTIFF: {err}") from err
    problems = []
    if profile.get("driver") != "GTiff":
        problems.append(f"driver is {profile.get('driver')}, not GTiff")
    if structure.get("LAYOUT") != "COG":
        problems.append("GDAL does not report LAYOUT=COG (IFD/data order broken or file edited)")
    first_ifd = _first_ifd(path)
    if first_ifd.offset > _GHOST_LIMIT_BYTES:
        problems.append("the first IFD is not at the start of the file")
    if not {_TILE_WIDTH_TAG, _TILE_LENGTH_TAG} <= first_ifd.tags:
        problems.append("not tiled")
    elif (profile.get("blockxsize"), profile.get("blockysize")) != (blocksize, blocksize):
        problems.append(
            f"tiles are {profile.get('blockxsize')}x{profile.get('blockysize')}, not {blocksize}"
        )
    if not compression or compression == "none":
        problems.append("not compressed")
    if max(info.width, info.height) > blocksize and not overviews:
        problems.append(f"no internal overviews for a {info.width}x{info.height} image")
    if problems:
        raise ProcessingError(f"{path.name}: not a valid COG: {'; '.join(problems)}")
    return info
