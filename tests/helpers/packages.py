"""Provider packages for journey tests, built the way the providers lay them out.

Every package starts from REAL product metadata in ``../shared/realdata`` (read at test time,
never copied into the repository) and adds band rasters written at that metadata's
georeference: cropped windows (120 x 120 px at 10 m for Sentinel-2, 64 x 64 px at 30 m for
Landsat unless the real band files exist) holding known DN patterns with a block of nodata (0).

- Sentinel-2 L1C and L2A SAFE zips as CDSE serves them: one ``<PRODUCT_URI>.SAFE/`` top folder
  with ``manifest.safe``, ``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml``, ``GRANULE/<granule>/MTD_TL.xml``,
  the band JP2s at the paths the MTD's ``IMAGE_FILE`` entries give (lossless JP2OpenJPEG,
  ``QUALITY=100, REVERSIBLE=YES``), georeferenced by ``MTD_TL.xml`` (``Geoposition`` ULX/ULY per
  resolution, ``HORIZONTAL_CS_CODE``), and ``QI_DATA``.
- Landsat Collection 2 Product Bundles as USGS (M2M) serves them: a flat tar named
  ``<product id>.tar`` whose members are named as the MTL's ``FILE_NAME_*`` entries; a TM/ETM+
  bundle's ``ANG.txt`` (none is in realdata) is built for its scene by :func:`tm_etm_ang`.

``s2_package(...)`` and ``landsat_package(...)`` return the bytes plus what a test needs to check
the published result independently of ``include/``: the DN written per band, the grid, the
radiometric constants read from the real metadata, the footprint and the acquisition time.

Where a package has to differ from the real metadata (a tile/date moved to match a conf, a
baseline with offsets the realdata does not hold, a sensor realdata lacks), the change is made
with :class:`S2Relocation` / :func:`derived_mtl_xml` and says so in ``derivation``.
"""

from __future__ import annotations

import copy
import io
import json
import math
import re
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tests.helpers.realdata import realdata

S2_BANDS = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
"""Band names in the MTD's ``band_id`` order (0..12)."""
S2_RESOLUTION_M = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
    "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20,
}  # fmt: skip

# Real sources (relative to the realdata folder)
S2_L1C_N0206_T31TDH = "eodag/products/S2A_MSIL1C_20180101T105441_N0206_R051_T31TDH_20180101T124911"
S2_L1C_N0209_T01LAC = (
    "stactools-sentinel2/S2A_MSIL1C_20200717T221941_R029_T01LAC_20200717T234135.SAFE"
)
S2_L1C_N0301_T46RER = (
    "stactools-sentinel2/S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248.SAFE"
)
S2_L1C_N0509_T34UDD = "s2-l1c-n0509/S2B_MSIL1C_20230601T094549_N0509_R079_T34UDD"
S2_L2A_N0212_T07HFE = (
    "stactools-sentinel2/S2A_MSIL2A_20190212T192651_N0212_R013_T07HFE_20201007T160857.SAFE"
)
S2_L2A_N0214_T22HBD = (
    "stactools-sentinel2/esa_S2B_MSIL2A_20210122T133229_N0214_R081_T22HBD_20210122T155500.SAFE"
)
S2_L1C_MANIFEST = "eodag/safe_build/manifest.safe.S2_MSI_L1C"
S2_L2A_MANIFEST = "eodag/safe_build/manifest.safe.S2_MSI_L2A"

LANDSAT_L1TP_OLI = "eo-datasets/LC08_L1TP_090084_20160121_20200907_02_T1"
LANDSAT_L2SP_OLI = "stactools-landsat/data-files/assets3"
LANDSAT_L2SP_OLI_ID = "LC08_L2SP_008059_20191201_20200825_02_T1"
LANDSAT_L2SP_TM_MTL = (
    "stactools-landsat/data-files/tm/LT05_L2SP_010067_19860424_20200918_02_T2_MTL.xml"
)

_NS = re.compile(r"\{[^}]*\}")


# --------------------------------------------------------------------------------------------
# Small shared pieces


def dn_pattern(shape: tuple[int, int], seed: int, *, low: int, span: int) -> np.ndarray:
    """A deterministic uint16 ramp ``low .. low+span`` that differs per ``seed`` (band)."""
    rows, cols = np.indices(shape)
    values = low + (rows * (13 + seed) + cols * (7 + 2 * seed) + 97 * seed) % span
    return values.astype(np.uint16)


def _nodata_block(shape: tuple[int, int], fraction: int = 6) -> tuple[slice, slice]:
    """The upper-left block (1/``fraction`` of each side) that holds nodata (DN 0)."""
    return slice(0, max(1, shape[0] // fraction)), slice(0, max(1, shape[1] // fraction))


def geotiff_bytes(
    array: np.ndarray, crs: str, transform: Any, *, nodata: float | None = None
) -> bytes:
    from rasterio.io import MemoryFile

    count = 1 if array.ndim == 2 else array.shape[0]
    height, width = array.shape[-2:]
    with MemoryFile() as memory:
        with memory.open(
            driver="GTiff", width=width, height=height, count=count, dtype=array.dtype.name,
            crs=crs, transform=transform, nodata=nodata, compress="deflate",
        ) as dst:  # fmt: skip
            dst.write(array if array.ndim == 3 else array[np.newaxis])
        return bytes(memory.read())


def _jp2_bytes(array: np.ndarray, crs: str, transform: Any) -> bytes:
    """A lossless JPEG 2000 (as the SAFE's: reversible wavelet, no colour transform)."""
    from rasterio.io import MemoryFile

    count = 1 if array.ndim == 2 else array.shape[0]
    height, width = array.shape[-2:]
    with MemoryFile(ext=".jp2") as memory:
        with memory.open(
            driver="JP2OpenJPEG", width=width, height=height, count=count,
            dtype=array.dtype.name, crs=crs, transform=transform,
            QUALITY=100, REVERSIBLE="YES", YCC="NO",
        ) as dst:  # fmt: skip
            dst.write(array if array.ndim == 3 else array[np.newaxis])
        return bytes(memory.read())


def _text_of(root: ET.Element, name: str) -> str | None:
    for element in root.iter():
        if _NS.sub("", element.tag) == name:
            return (element.text or "").strip()
    return None


def _parse_time(text: str) -> datetime:
    text = text.strip().rstrip("Z")
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _ring_wkt_to_geojson(ring: list[tuple[float, float]]) -> dict[str, Any]:
    if ring[0] != ring[-1]:
        ring = [*ring, ring[0]]
    return {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}


# --------------------------------------------------------------------------------------------
# Sentinel-2


@dataclass(frozen=True)
class S2Metadata:
    """What a test needs from MTD_MSIL1C.xml / MTD_MSIL2A.xml, read here with ElementTree."""

    product_uri: str
    level: str
    baseline: str
    spacecraft: str
    start_time: datetime
    quantification: float
    offsets: dict[str, float]
    image_files: tuple[str, ...]
    footprint: dict[str, Any]

    def reflectance(self, band: str, dn: np.ndarray) -> np.ndarray:
        """(DN + offset) / quantification, as the PSD defines it (DESIGN 5)."""
        return (dn.astype(np.float64) + self.offsets.get(band, 0.0)) / self.quantification


def read_s2_metadata(text: str) -> S2Metadata:
    """Parse the product metadata's radiometry, files, footprint and times."""
    root = ET.fromstring(text)  # noqa: S314 - a real ESA file from the realdata folder
    level = "L2A" if "2A" in _NS.sub("", root.tag) else "L1C"
    if level == "L1C":
        quantification = float(_text_of(root, "QUANTIFICATION_VALUE") or "nan")
        offset_tag = "RADIO_ADD_OFFSET"
    else:
        quantification = float(_text_of(root, "BOA_QUANTIFICATION_VALUE") or "nan")
        offset_tag = "BOA_ADD_OFFSET"
    offsets = {
        S2_BANDS[int(e.get("band_id", "0"))]: float(e.text or 0)
        for e in root.iter()
        if _NS.sub("", e.tag) == offset_tag
    }
    numbers = [float(v) for v in (_text_of(root, "EXT_POS_LIST") or "").split()]
    ring = [(numbers[i + 1], numbers[i]) for i in range(0, len(numbers) - 1, 2)]
    return S2Metadata(
        product_uri=(_text_of(root, "PRODUCT_URI") or "").removesuffix(".SAFE"),
        level=level,
        baseline=_text_of(root, "PROCESSING_BASELINE") or "",
        spacecraft=_text_of(root, "SPACECRAFT_NAME") or "",
        start_time=_parse_time(_text_of(root, "PRODUCT_START_TIME") or ""),
        quantification=quantification,
        offsets=offsets,
        image_files=tuple(
            (e.text or "").strip() for e in root.iter() if _NS.sub("", e.tag) == "IMAGE_FILE"
        ),
        footprint=_ring_wkt_to_geojson(ring),
    )


@dataclass(frozen=True)
class S2TileGrid:
    """MTD_TL.xml's grid: EPSG code and the upper-left corner per resolution."""

    epsg: int
    upper_left: dict[int, tuple[float, float]]
    sensing_time: datetime


def read_s2_tile_grid(text: str) -> S2TileGrid:
    root = ET.fromstring(text)  # noqa: S314 - a real ESA file from the realdata folder
    code = _text_of(root, "HORIZONTAL_CS_CODE") or ""
    upper_left: dict[int, tuple[float, float]] = {}
    for element in root.iter():
        if _NS.sub("", element.tag) == "Geoposition":
            resolution = int(element.get("resolution", "0"))
            upper_left[resolution] = (
                float(_text_of(element, "ULX") or "nan"),
                float(_text_of(element, "ULY") or "nan"),
            )
    return S2TileGrid(
        epsg=int(code.split(":")[-1]),
        upper_left=upper_left,
        sensing_time=_parse_time(_text_of(root, "SENSING_TIME") or ""),
    )


@dataclass(frozen=True)
class S2Relocation:
    """Move a real product's metadata to another product name, tile grid and time.

    Only identifiers, times, the footprint and the tile's georeference change; radiometry, angle
    grids and everything else stay as in the real files. ``boa_offset`` adds the
    ``BOA_ADD_OFFSET_VALUES_LIST`` that PSD 14.9 defines for L2A from baseline 04.00 (one
    ``BOA_ADD_OFFSET band_id="0..12"`` per band, -1000) to a real pre-04.00 MTD_MSIL2A.xml.
    """

    product_uri: str
    epsg: int
    upper_left: tuple[float, float]
    utm_zone: str
    """``23S``: the tile's UTM zone and hemisphere (for HORIZONTAL_CS_NAME)."""
    absolute_orbit: int | None = None
    boa_offset: float | None = None


def _s2_name_parts(uri: str) -> dict[str, str]:
    mission, level, sensing, baseline, orbit, tile, generated = uri.split("_")
    return {
        "mission": mission, "level": level[3:], "sensing": sensing, "baseline": baseline,
        "orbit": orbit, "tile": tile[1:], "generated": generated,
    }  # fmt: skip


def _iso(compact: str) -> str:
    return datetime.strptime(compact, "%Y%m%dT%H%M%S").strftime("%Y-%m-%dT%H:%M:%S")


def _tile_footprint(epsg: int, upper_left: tuple[float, float]) -> list[tuple[float, float]]:
    """Lon/lat of a 109.8 km tile's corners (UL, UR, LR, LL, UL)."""
    from pyproj import Transformer

    to_wgs84 = Transformer.from_crs(epsg, 4326, always_xy=True)
    x0, y0 = upper_left
    size = 109_800.0
    corners = [(x0, y0), (x0 + size, y0), (x0 + size, y0 - size), (x0, y0 - size), (x0, y0)]
    return [to_wgs84.transform(x, y) for x, y in corners]


def _relocate_s2(
    product_text: str, tile_text: str, relocation: S2Relocation
) -> tuple[str, str, str]:
    """Return (product MTD, tile MTD, description of the change)."""
    old = read_s2_metadata(product_text)
    old_parts = _s2_name_parts(old.product_uri)
    new_parts = _s2_name_parts(relocation.product_uri)
    old_granule = old.image_files[0].split("/")[1]
    old_prefix = old.image_files[0].split("/")[-1].rsplit("_B", 1)[0]
    if old.level == "L2A":
        old_prefix = old.image_files[0].split("/")[-1].split("_")[0] + "_" + old_parts["sensing"]
    orbit = relocation.absolute_orbit or int(old_granule.split("_")[2][1:])
    new_granule = f"{old.level}_T{new_parts['tile']}_A{orbit:06d}_{new_parts['sensing']}"
    new_prefix = f"T{new_parts['tile']}_{new_parts['sensing']}"
    new_start = _iso(new_parts["sensing"]) + ".024Z"
    new_baseline = f"{new_parts['baseline'][1:3]}.{new_parts['baseline'][3:]}"
    old_baseline = f"{old_parts['baseline'][1:3]}.{old_parts['baseline'][3:]}"
    spacecraft = f"Sentinel-2{new_parts['mission'][-1]}"
    lonlat = _tile_footprint(relocation.epsg, relocation.upper_left)
    ext_pos = " ".join(f"{lat!r} {lon!r}" for lon, lat in lonlat) + " "

    text = product_text
    for before, after in (
        (old.product_uri, relocation.product_uri),
        (old_granule, new_granule),
        (old_prefix, new_prefix),
        (f"T{old_parts['tile']}", f"T{new_parts['tile']}"),
        (f"N{old_baseline}", f"N{new_baseline}"),
    ):
        text = text.replace(before, after)
    text = re.sub(r"<EXT_POS_LIST>[^<]*</EXT_POS_LIST>", f"<EXT_POS_LIST>{ext_pos}</EXT_POS_LIST>",
                  text)  # fmt: skip
    for tag in ("PRODUCT_START_TIME", "PRODUCT_STOP_TIME", "DATATAKE_SENSING_START"):
        text = re.sub(rf"<{tag}>[^<]*</{tag}>", f"<{tag}>{new_start}</{tag}>", text)
    text = re.sub(
        r"<GENERATION_TIME>[^<]*</GENERATION_TIME>",
        f"<GENERATION_TIME>{_iso(new_parts['generated'])}.000000Z</GENERATION_TIME>",
        text,
    )
    text = re.sub(
        r"<PROCESSING_BASELINE>[^<]*</PROCESSING_BASELINE>",
        f"<PROCESSING_BASELINE>{new_baseline}</PROCESSING_BASELINE>",
        text,
    )
    text = re.sub(r"<SPACECRAFT_NAME>[^<]*</SPACECRAFT_NAME>",
                  f"<SPACECRAFT_NAME>{spacecraft}</SPACECRAFT_NAME>", text)  # fmt: skip
    text = re.sub(r"<SENSING_ORBIT_NUMBER>[^<]*</SENSING_ORBIT_NUMBER>",
                  f"<SENSING_ORBIT_NUMBER>{int(new_parts['orbit'][1:])}</SENSING_ORBIT_NUMBER>",
                  text)  # fmt: skip
    if relocation.boa_offset is not None:
        offsets = "".join(
            f'\n          <BOA_ADD_OFFSET band_id="{i}">{relocation.boa_offset:g}</BOA_ADD_OFFSET>'
            for i in range(len(S2_BANDS))
        )
        block = (
            f"\n        <BOA_ADD_OFFSET_VALUES_LIST>{offsets}"
            "\n        </BOA_ADD_OFFSET_VALUES_LIST>"
        )
        text, count = re.subn(
            r"(</QUANTIFICATION_VALUES_LIST>)", lambda m: m.group(1) + block, text, count=1
        )
        assert count == 1, "no QUANTIFICATION_VALUES_LIST to put the offsets after"

    tile = tile_text
    for before, after in (
        (f"T{old_parts['tile']}", f"T{new_parts['tile']}"),
        (f"N{old_baseline}", f"N{new_baseline}"),
    ):
        tile = tile.replace(before, after)
    tile = re.sub(r"WGS84 / UTM zone \d+[NS]", f"WGS84 / UTM zone {relocation.utm_zone}", tile)
    tile = re.sub(r"EPSG:\d+", f"EPSG:{relocation.epsg}", tile)
    ulx, uly = relocation.upper_left
    tile = re.sub(r"<ULX>[^<]*</ULX>", f"<ULX>{ulx:g}</ULX>", tile)
    tile = re.sub(r"<ULY>[^<]*</ULY>", f"<ULY>{uly:g}</ULY>", tile)
    tile = re.sub(r"<SENSING_TIME([^>]*)>[^<]*</SENSING_TIME>",
                  lambda m: f"<SENSING_TIME{m.group(1)}>{new_start}</SENSING_TIME>",
                  tile)  # fmt: skip
    note = (
        f"{old.product_uri} moved to {relocation.product_uri} (tile grid EPSG:{relocation.epsg} "
        f"UL {ulx:g},{uly:g}; times, footprint, baseline label and spacecraft rewritten)"
    )
    if relocation.boa_offset is not None:
        note += f"; BOA_ADD_OFFSET {relocation.boa_offset:g} added per PSD 14.9"
    return text, tile, note


@dataclass(frozen=True)
class S2Package:
    """A Sentinel-2 SAFE zip and what it holds."""

    name: str
    """PRODUCT_URI without ``.SAFE`` (the CDSE product ``Name`` is ``name + ".SAFE"``)."""
    zip_bytes: bytes
    metadata: S2Metadata
    grid: S2TileGrid
    members: tuple[str, ...]
    dn: dict[str, np.ndarray]
    """Band -> DN at the band's native resolution (what the JP2 at that resolution holds);
    ``SCL`` (L2A, 20 m) and ``MSK_CLASSI`` (L1C from 04.00: 3 layers at 60 m) too."""
    transforms: dict[int, Any]
    """Resolution (m) -> affine transform of the windows at that resolution."""
    derivation: str = ""
    files: dict[str, bytes] = field(default_factory=dict, repr=False)
    """Member path inside the SAFE (no top folder) -> bytes."""

    @property
    def crs(self) -> str:
        return f"EPSG:{self.grid.epsg}"

    @property
    def level(self) -> str:
        return self.metadata.level

    def reflectance(self, band: str) -> np.ndarray:
        return self.metadata.reflectance(band, self.dn[band])

    def valid(self, band: str) -> np.ndarray:
        return self.dn[band] != 0

    def write_zip(self, folder: Path) -> Path:
        path = folder / f"{self.name}.zip"
        path.write_bytes(self.zip_bytes)
        return path

    def write_safe(self, folder: Path) -> Path:
        """Unpack into ``folder/<name>.SAFE`` (as a provider's SAFE folder)."""
        with zipfile.ZipFile(io.BytesIO(self.zip_bytes)) as archive:
            archive.extractall(folder)  # noqa: S202 - our own archive
        return folder / f"{self.name}.SAFE"


def _window_origin(
    grid: S2TileGrid,
    footprint: dict[str, Any],
    window_m: float,
    center_lonlat: tuple[float, float] | None,
) -> tuple[float, float]:
    """Upper-left of a ``window_m`` square inside the footprint, on the tile's 60 m grid."""
    import shapely
    from pyproj import Transformer
    from shapely.geometry import box, shape

    to_utm = Transformer.from_crs(4326, grid.epsg, always_xy=True)
    ulx, uly = grid.upper_left[60]
    if center_lonlat is not None:
        cx, cy = to_utm.transform(*center_lonlat)
    else:
        projected = shapely.transform(
            shape(footprint), lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1]))
        )
        inside = projected.intersection(box(ulx, uly - 109_800, ulx + 109_800, uly))
        cx, cy = inside.representative_point().coords[0]
    col = math.floor((cx - window_m / 2 - ulx) / 60)
    row = math.floor((uly - (cy + window_m / 2)) / 60)
    col = min(max(col, 0), 1830 - int(window_m // 60))
    row = min(max(row, 0), 1830 - int(window_m // 60))
    return ulx + 60 * col, uly - 60 * row


def s2_package(
    source: str,
    *,
    relocation: S2Relocation | None = None,
    tile_source: str | None = None,
    tile_relocation: S2Relocation | None = None,
    window_px: int = 120,
    center_lonlat: tuple[float, float] | None = None,
) -> S2Package:
    """Build a SAFE zip from the real metadata in ``realdata/<source>``.

    Args:
        source: folder holding ``MTD_MSIL1C.xml`` or ``MTD_MSIL2A.xml`` (and, normally,
            ``GRANULE/*/MTD_TL.xml`` and ``manifest.safe``).
        relocation: move the product to another name/tile/time (see :class:`S2Relocation`).
        tile_source: a product folder whose ``MTD_TL.xml`` is used when ``source`` has none (the
            05.09 L1C); ``tile_relocation`` then places it on the product's own tile grid.
        window_px: side of the 10 m window (a multiple of 6: 60 m windows are ``window_px/6``).
        center_lonlat: centre the window here (default: inside the footprint).

    Skips the test when the realdata folder lacks the files.
    """
    from rasterio.transform import from_origin

    assert window_px % 6 == 0, "window_px must be a multiple of 6 (10, 20 and 60 m windows)"
    folder = realdata(source)
    mtd_path = next(p for p in (folder / "MTD_MSIL1C.xml", folder / "MTD_MSIL2A.xml") if p.exists())
    product_text = mtd_path.read_text(encoding="utf-8")
    tiles = sorted(folder.glob("GRANULE/*/MTD_TL.xml"))
    derivation = ""
    if tiles:
        tile_text = tiles[0].read_text(encoding="utf-8")
    else:
        assert tile_source is not None and tile_relocation is not None, f"{source} has no MTD_TL"
        donor = sorted(realdata(tile_source).glob("GRANULE/*/MTD_TL.xml"))[0]
        donor_product = next(realdata(tile_source).glob("MTD_MSIL*.xml")).read_text("utf-8")
        _, tile_text, _ = _relocate_s2(donor_product, donor.read_text("utf-8"), tile_relocation)
        derivation = (
            f"MTD_TL.xml: {tile_source}'s, placed on {tile_relocation.product_uri}'s tile grid "
            "(the real product's tile metadata is not in realdata)"
        )
    if relocation is not None:
        product_text, tile_text, note = _relocate_s2(product_text, tile_text, relocation)
        derivation = "; ".join(filter(None, (derivation, note)))
    metadata = read_s2_metadata(product_text)
    grid = read_s2_tile_grid(tile_text)
    manifest_path = folder / "manifest.safe"
    if not manifest_path.exists():
        manifest_path = realdata(S2_L1C_MANIFEST if metadata.level == "L1C" else S2_L2A_MANIFEST)

    window_m = window_px * 10.0
    x0, y0 = _window_origin(grid, metadata.footprint, window_m, center_lonlat)
    transforms = {res: from_origin(x0, y0, res, res) for res in (10, 20, 60)}
    crs = f"EPSG:{grid.epsg}"
    granule = metadata.image_files[0].split("/")[1]
    files: dict[str, bytes] = {
        "manifest.safe": manifest_path.read_bytes(),
        mtd_path.name: product_text.encode(),
        f"GRANULE/{granule}/MTD_TL.xml": tile_text.encode(),
    }
    dn: dict[str, np.ndarray] = {}
    for image_file in metadata.image_files:
        stem = image_file.rsplit("/", 1)[-1]
        match = re.search(r"_(B\d[0-9A]|SCL|AOT|WVP|TCI)(?:_(\d{2})m)?$", stem)
        assert match, image_file
        layer, res_text = match.group(1), match.group(2)
        resolution = int(res_text) if res_text else {**S2_RESOLUTION_M, "TCI": 10}[layer]
        side = int(window_m // resolution)
        array = _s2_layer(layer, (side, side), metadata.level)
        if layer in S2_BANDS and resolution == S2_RESOLUTION_M[layer]:
            dn[layer] = array
        elif layer == "SCL" and resolution == 20:
            dn[layer] = array
        files[image_file + ".jp2"] = _jp2_bytes(array, crs, transforms[resolution])
    if metadata.level == "L1C" and float(metadata.baseline or 0) >= 4.0:
        # PSD 14.9: the L1C cloud mask is a 3-band 60 m raster (opaque, cirrus, snow)
        classi = _classi((window_px // 6, window_px // 6))
        dn["MSK_CLASSI"] = classi
        files[f"GRANULE/{granule}/QI_DATA/MSK_CLASSI_B00.jp2"] = _jp2_bytes(
            classi, crs, transforms[60]
        )
    else:  # pre-04.00 products carry GML masks
        files[f"GRANULE/{granule}/QI_DATA/MSK_CLOUDS_B00.gml"] = _empty_gml_mask(crs)
    zip_bytes = _safe_zip(metadata.product_uri, files)
    return S2Package(
        name=metadata.product_uri,
        zip_bytes=zip_bytes,
        metadata=metadata,
        grid=grid,
        members=tuple(sorted(f"{metadata.product_uri}.SAFE/{m}" for m in files)),
        dn=dn,
        transforms=transforms,
        derivation=derivation,
        files=files,
    )


def _s2_layer(layer: str, shape: tuple[int, int], level: str) -> np.ndarray:
    block = _nodata_block(shape)
    if layer == "TCI":
        rgb = np.stack([dn_pattern(shape, s, low=1, span=254) for s in (3, 2, 1)]).astype(np.uint8)
        rgb[:, block[0], block[1]] = 0
        return rgb
    if layer == "SCL":
        rows, cols = np.indices(shape)
        scl = np.where((rows // 10 + cols // 10) % 3 == 0, 5, 4).astype(np.uint8)
        scl[(rows + cols) % 17 == 0] = 8  # a few cloud pixels
        scl[block] = 0
        return scl
    seed = S2_BANDS.index(layer) if layer in S2_BANDS else 13
    array = dn_pattern(shape, seed, low=1001 + 150 * seed, span=2500)
    array[block] = 0
    return array


def _classi(shape: tuple[int, int]) -> np.ndarray:
    """MSK_CLASSI layers 1 opaque clouds, 2 cirrus, 3 snow (1 = flagged): a few of each."""
    rows, cols = np.indices(shape)
    opaque = (rows + cols) % 7 == 0
    cirrus = (rows % 4 == 0) & (cols % 5 == 0)
    snow = (rows == cols) & ~opaque
    return np.stack([opaque, cirrus, snow]).astype(np.uint8)


def _empty_gml_mask(crs: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<eop:Mask xmlns:eop="http://www.opengis.net/eop/2.0" '
        'xmlns:gml="http://www.opengis.net/gml/3.2" gml:id="OPAQUE">\n'
        f"  <gml:boundedBy><gml:Null>Empty</gml:Null></gml:boundedBy>\n"
        f"  <!-- {crs} -->\n"
        "  <eop:maskMembers></eop:maskMembers>\n"
        "</eop:Mask>\n"
    ).encode()


def _safe_zip(product_uri: str, files: Mapping[str, bytes]) -> bytes:
    """Zip ``files`` under ``<product_uri>.SAFE/`` (CDSE's zips: deflate, one top folder)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in sorted(files.items()):
            info = zipfile.ZipInfo(f"{product_uri}.SAFE/{member}", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Landsat


def _mtl_tree(xml_text: str) -> ET.Element:
    return ET.fromstring(xml_text)  # noqa: S314 - a real USGS file from the realdata folder


def mtl_values(xml_text: str) -> dict[str, str]:
    """First value of every key of an MTL.xml (``PRODUCT_CONTENTS`` first, as in the file)."""
    values: dict[str, str] = {}
    for group in _mtl_tree(xml_text):
        for element in group:
            values.setdefault(element.tag, (element.text or "").strip())
    return values


_ODL_NUMBER = re.compile(r"^-?\d+(\.\d+)?([Ee][+-]?\d+)?$|^\d{4}-\d{2}-\d{2}$")


def odl_from_xml(xml_text: str) -> str:
    """Render an MTL.xml as the ODL text USGS ships beside it (``_MTL.txt``).

    Numbers and dates stay bare, everything else is quoted, as in the real ODL files.
    """
    root = _mtl_tree(xml_text)
    lines = [f"GROUP = {root.tag}"]
    for group in root:
        lines.append(f"  GROUP = {group.tag}")
        for element in group:
            value = (element.text or "").strip()
            shown = value if _ODL_NUMBER.match(value) else f'"{value}"'
            lines.append(f"    {element.tag} = {shown}")
        lines.append(f"  END_GROUP = {group.tag}")
    lines += [f"END_GROUP = {root.tag}", "END", ""]
    return "\n".join(lines)


def derived_mtl_xml(
    xml_text: str,
    *,
    product_id: str,
    values: Mapping[str, str] = {},  # noqa: B006 - read only
    renames: Mapping[str, str] = {},  # noqa: B006 - read only
    drop: Iterable[str] = (),
) -> str:
    """Return the MTL.xml with its product id replaced everywhere and keys changed.

    Args:
        product_id: the new ``LANDSAT_PRODUCT_ID`` (file names follow it).
        values: key -> new value, in every group that has the key.
        renames: old key -> new key (e.g. TM's ``..._BAND_6`` -> ETM+'s ``..._BAND_6_VCID_1``).
        drop: keys to remove.
    """
    root = _mtl_tree(xml_text)
    old_id = root.find("PRODUCT_CONTENTS/LANDSAT_PRODUCT_ID")
    assert old_id is not None and old_id.text
    old = old_id.text.strip()
    old_l1 = root.find("LEVEL1_PROCESSING_RECORD/LANDSAT_PRODUCT_ID")
    new_l1 = product_id.replace("_L2SP_", "_L1TP_").replace("_L2SR_", "_L1TP_")
    dropped = set(drop)
    for group in root:
        for element in list(group):
            if element.tag in dropped:
                group.remove(element)
                continue
            if element.tag in renames:
                element.tag = renames[element.tag]
            if element.tag in values:
                element.text = values[element.tag]
            elif element.text:
                element.text = element.text.replace(old, product_id)
                if old_l1 is not None and old_l1.text:
                    element.text = element.text.replace(old_l1.text.strip(), new_l1)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


@dataclass(frozen=True)
class LandsatPackage:
    """A Landsat Collection 2 Product Bundle (flat tar) and what it holds."""

    product_id: str
    tar_bytes: bytes
    mtl: dict[str, str]
    members: tuple[str, ...]
    crs: str
    transform: Any
    dn: dict[str, np.ndarray]
    """File suffix (``B4``, ``SR_B4``, ``ST_B10``, ``QA_PIXEL``) -> the DN in the bundle."""
    derivation: str = ""
    files: dict[str, bytes] = field(default_factory=dict, repr=False)
    angles: AngModel | None = None
    """The angles of the bundle's built TM/ETM+ ``ANG.txt`` (None: a real one, or none)."""

    @property
    def name(self) -> str:
        return f"{self.product_id}.tar"

    def pixel_centres(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Map x and y of the pixel centres of layer ``key`` (2-D, the layer's shape)."""
        rows, cols = np.indices(self.dn[key].shape, dtype=np.float64)
        t = self.transform
        return t.c + (cols + 0.5) * t.a, t.f + (rows + 0.5) * t.e

    @property
    def acquired(self) -> datetime:
        time = self.mtl["SCENE_CENTER_TIME"].strip('"').rstrip("Z")[:15]
        return datetime.fromisoformat(f"{self.mtl['DATE_ACQUIRED']}T{time}").replace(tzinfo=UTC)

    @property
    def footprint(self) -> dict[str, Any]:
        ring = [
            (float(self.mtl[f"CORNER_{c}_LON_PRODUCT"]), float(self.mtl[f"CORNER_{c}_LAT_PRODUCT"]))
            for c in ("UL", "UR", "LR", "LL")
        ]
        return _ring_wkt_to_geojson(ring)

    @property
    def mtl_txt(self) -> bytes:
        return self.files[f"{self.product_id}_MTL.txt"]

    def write_tar(self, folder: Path) -> Path:
        path = folder / self.name
        path.write_bytes(self.tar_bytes)
        return path

    def write_mtl(self, folder: Path) -> Path:
        """Write the ODL MTL alone (what ``m2m_server.scene_from_mtl`` reads)."""
        path = folder / f"{self.product_id}_MTL.txt"
        path.write_bytes(self.mtl_txt)
        return path

    def valid(self, key: str) -> np.ndarray:
        return self.dn[key] != 0

    def sr_reflectance(self, band: int) -> np.ndarray:
        mult = float(self.mtl[f"REFLECTANCE_MULT_BAND_{band}"])
        add = float(self.mtl[f"REFLECTANCE_ADD_BAND_{band}"])
        return self.dn[f"SR_B{band}"].astype(np.float64) * mult + add

    def toa_reflectance(self, band: int) -> np.ndarray:
        """Level-1: (DN * REFLECTANCE_MULT + ADD) / sin(sun elevation), from the real MTL."""
        mult = float(self.mtl[f"REFLECTANCE_MULT_BAND_{band}"])
        add = float(self.mtl[f"REFLECTANCE_ADD_BAND_{band}"])
        sine = math.sin(math.radians(float(self.mtl["SUN_ELEVATION"])))
        return (self.dn[f"B{band}"].astype(np.float64) * mult + add) / sine

    def temperature_k(self, key: str) -> np.ndarray:
        band = key.removeprefix("ST_B")
        mult = float(self.mtl[f"TEMPERATURE_MULT_BAND_ST_B{band}"])
        add = float(self.mtl[f"TEMPERATURE_ADD_BAND_ST_B{band}"])
        return self.dn[key].astype(np.float64) * mult + add


def _tar(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_600_000_000
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _landsat_layer(suffix: str, shape: tuple[int, int], seed: int) -> tuple[np.ndarray, int | None]:
    """A generated layer for file suffix ``suffix`` and its nodata value."""
    block = _nodata_block(shape)
    if suffix == "QA_PIXEL":
        qa = np.full(shape, 21824, dtype=np.uint16)  # clear, low confidences (C2 DFCB)
        qa[block] = 1  # fill
        return qa, 1
    if suffix.startswith("SR_B"):
        array = dn_pattern(shape, seed, low=7300 + 900 * seed, span=12000)  # 0.0 .. 0.45
    elif suffix.startswith("ST_B"):
        array = dn_pattern(shape, seed, low=40000, span=6000)  # 285.7 .. 306.2 K
    elif suffix.startswith("B") and suffix[1:].split("_")[0].isdigit():
        array = dn_pattern(shape, seed, low=6000 + 500 * seed, span=20000)
    elif suffix in ("SZA", "SAA", "VZA", "VAA"):
        array = np.full(shape, 3000 + 1000 * seed, dtype=np.int16)
        return array, None
    else:  # QA/auxiliary layers: small codes, 0 as fill where the bands are fill
        array = dn_pattern(shape, seed, low=1, span=200)
    array[block] = 0
    return array, 0


def _file_suffix(file_name: str, product_id: str) -> str:
    return Path(file_name).stem.removeprefix(product_id + "_")


# USGS Landsat 4-7 angle coefficient file (ANG.txt)

TM_ETM_ANG_BANDS = {"TM": (1, 2, 3, 4, 5, 6, 7), "ETM": (1, 2, 3, 4, 5, 61, 62, 7, 8)}
"""``BAND_LIST`` of the real Collection 2 TM and ETM+ files (ETM+ band 6 as VCID 1 and 2)."""
_ANG_LINES_PER_SCAN = {6: 4, 61: 8, 62: 8, 8: 32}
"""Detectors per mirror sweep: 16 for the reflective bands, TM thermal 4, ETM+ 8, pan 32."""
VIEW_TILT_PER_SAMPLE = math.tan(math.radians(7.5)) / 3085
"""``tan(view zenith)`` per 30 m sample off the scene's middle: 7.5 degrees (TM/ETM+'s half
field of view) at the swath edge, 3085 samples (92.5 km) away."""


@dataclass(frozen=True)
class AngModel:
    """The angles a built TM/ETM+ ``ANG.txt`` gives, exactly (what a test checks NBAR with).

    The sun is where the MTL says (``SUN_ELEVATION``, ``SUN_AZIMUTH``) everywhere; the
    satellite is straight above the scene's middle sample and tilts across track (east-west)
    by :data:`VIEW_TILT_PER_SAMPLE` per sample: a point east of the middle sees it to the west.
    """

    sun_zenith: float
    sun_azimuth: float
    first_x: float
    """Map x of the centre of L1T sample 0 (the MTL's ``CORNER_UL_PROJECTION_X_PRODUCT``)."""
    middle_sample: float
    pixel_m: float

    def view(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (view zenith, view azimuth) in degrees at map x."""
        toward_satellite_east = -VIEW_TILT_PER_SAMPLE * ((x - self.first_x) / self.pixel_m
                                                         - self.middle_sample)  # fmt: skip
        zenith = np.degrees(np.arctan(np.abs(toward_satellite_east)))
        return zenith, np.where(toward_satellite_east >= 0, 90.0, 270.0)


def _odl_value(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "(" + ", ".join(str(v) if isinstance(v, int) else f"{v:.12e}" for v in value) + ")"
    return str(value)


def _odl_groups(groups: Iterable[tuple[str, list[tuple[str, Any]]]]) -> str:
    lines: list[str] = []
    for name, items in groups:
        lines.append(f"GROUP = {name}")
        lines += [f"  {key} = {_odl_value(value)}" for key, value in items]
        lines.append(f"END_GROUP = {name}")
    return "\n".join([*lines, "END", ""])


def _rpc_band(number: int, lines: int, samps: int, model: AngModel) -> tuple[str, list[Any]]:
    """RPC_BANDnn: L1R = L1T for both scan directions, sun fixed, satellite tilting east-west."""
    factor = 2 if number == 8 else 1  # the 15 m pan band: twice the lines, half the tilt
    lines, samps = lines * factor - (factor - 1), samps * factor - (factor - 1)
    per_scan = _ANG_LINES_PER_SCAN.get(number, 16)
    middle = ((lines - 1) / 2, (samps - 1) / 2)
    sun = (
        math.sin(math.radians(model.sun_zenith)) * math.sin(math.radians(model.sun_azimuth)),
        math.sin(math.radians(model.sun_zenith)) * math.cos(math.radians(model.sun_azimuth)),
        math.cos(math.radians(model.sun_zenith)),
    )
    p = f"BAND{number:02d}_"
    zeros = {9: (0.0,) * 9, 10: (0.0,) * 10}
    items: list[tuple[str, Any]] = [
        (f"{p}NUM_L1T_LINES", lines), (f"{p}NUM_L1T_SAMPS", samps),
        (f"{p}NUM_L1R_LINES", (lines // per_scan + 2) * per_scan), (f"{p}NUM_L1R_SAMPS", samps + 1),
        (f"{p}PIXEL_SIZE", model.pixel_m / factor), (f"{p}START_TIME", 2.5),
        (f"{p}LINE_TIME", 0.00431 / factor),
        (f"{p}NUMBER_OF_DIRECTIONS", 2), (f"{p}LINES_PER_SCAN", per_scan),
        (f"{p}MEAN_HEIGHT", 0.0), (f"{p}MEAN_L1R_LINE_SAMP", middle),
        (f"{p}MEAN_L1T_LINE_SAMP", middle), (f"{p}MEAN_SAT_VECTOR", (0.0, 0.0, 1.0)),
        (f"{p}SAT_X_NUM_COEF", (0.0, 0.0, -VIEW_TILT_PER_SAMPLE / factor, *zeros[10][3:])),
        (f"{p}SAT_X_DEN_COEF", zeros[9]),
        *((f"{p}SAT_{axis}_{kind}_COEF", zeros[n]) for axis in "YZ"
          for kind, n in (("NUM", 10), ("DEN", 9))),
        (f"{p}MEAN_SUN_VECTOR", sun),
        *((f"{p}SUN_{axis}_{kind}_COEF", zeros[n]) for axis in "XYZ"
          for kind, n in (("NUM", 10), ("DEN", 9))),
    ]  # fmt: skip
    for direction in (0, 1):
        d = f"{p}DIR{direction:02d}_"
        items += [
            (f"{d}MEAN_HEIGHT", 0.0), (f"{d}MEAN_L1R_LINE_SAMP", middle),
            (f"{d}MEAN_L1T_LINE_SAMP", middle),
            (f"{d}LINE_NUM_COEF", (0.0, 1.0, 0.0, 0.0, 0.0)), (f"{d}LINE_DEN_COEF", (0.0,) * 4),
            (f"{d}SAMP_NUM_COEF", (0.0, 0.0, 1.0, 0.0, 0.0)), (f"{d}SAMP_DEN_COEF", (0.0,) * 4),
        ]  # fmt: skip
    return f"RPC_BAND{number:02d}", items


def tm_etm_ang(values: Mapping[str, str]) -> tuple[str, AngModel]:
    """Return a Landsat 4-7 ``ANG.txt`` for the MTL's scene, and the angles it gives.

    The layout is USGS's (read by ``gxx_angle_gen_read_ang.c`` of the Landsat 4-7 angle tool in
    espa-product-formatter; headers as in real Collection 2 files): ``FILE_HEADER`` (scene id,
    ``L5_TM``/``L7_ETM``, WRS path/row, ``MODE``, ``FIRST_SCAN_DIRECTION``, ``BAND_LIST``),
    ``PROJECTION`` (the MTL's UTM zone and product corners, as pixel centres),
    ``SCAN_TIME_POLY`` and one ``RPC_BANDnn`` per band with two scan directions. No real TM/ETM+
    ANG.txt is in realdata, so the coefficients are simple ones whose angles are known exactly
    (:class:`AngModel`): the MTL's sun everywhere, a satellite tilting across track; the
    ``EPHEMERIS``/``SOLAR_VECTOR`` samples real files carry (unused by the readers) are left out.
    """
    sensor = values["SENSOR_ID"]
    model = AngModel(
        sun_zenith=90.0 - float(values["SUN_ELEVATION"]),
        sun_azimuth=float(values["SUN_AZIMUTH"]),
        first_x=float(values["CORNER_UL_PROJECTION_X_PRODUCT"]),
        middle_sample=(int(values["REFLECTIVE_SAMPLES"]) - 1) / 2,
        pixel_m=float(values.get("GRID_CELL_SIZE_REFLECTIVE", "30")),
    )
    bands = TM_ETM_ANG_BANDS[sensor]
    acquired = values["DATE_ACQUIRED"]
    corners = {
        corner: (float(values[f"CORNER_{corner}_PROJECTION_X_PRODUCT"]),
                 float(values[f"CORNER_{corner}_PROJECTION_Y_PRODUCT"]))
        for corner in ("UL", "UR", "LL", "LR")
    }  # fmt: skip
    header = [
        ("LANDSAT_SCENE_ID", values["LANDSAT_SCENE_ID"]),
        ("SPACECRAFT_ID", "L7_ETM" if sensor == "ETM" else f"L{values['SPACECRAFT_ID'][-1]}_TM"),
        ("WRS_PATH", int(values["WRS_PATH"])), ("WRS_ROW", int(values["WRS_ROW"])),
        ("MODE", "SLC_OFF" if sensor == "ETM" and acquired > "2003-05-31" else "SLC_ON"),
        ("FIRST_SCAN_DIRECTION", "R"), ("NUMBER_OF_BANDS", len(bands)), ("BAND_LIST", bands),
    ]  # fmt: skip
    projection = [
        ("ELLIPSOID_AXES", (6378137.0, 6356752.3142)), ("MAP_PROJECTION", "UTM"),
        ("PROJECTION_UNITS", "METERS"), ("DATUM", "WGS84"), ("ELLIPSOID", "WGS84"),
        ("UTM_ZONE", int(values["UTM_ZONE"])), ("PROJECTION_PARAMETERS", (0.0,) * 15),
        *((f"{corner}_CORNER", xy) for corner, xy in corners.items()),
    ]  # fmt: skip
    scan_time: list[tuple[str, Any]] = [("SCAN_TIME_POLY_NCOEFF", 4),
                                        ("SCAN_TIME_POLY_NUMBER_DIRECTIONS", 2)]  # fmt: skip
    for direction in (0, 1):
        scan_time += [
            (f"SCAN_TIME{direction:02d}_MEAN_ACTIVESCAN", 0.060743),
            (f"SCAN_TIME{direction:02d}_MEAN_EOL", 0.010724),
            (f"SCAN_TIME{direction:02d}_POLY_COEFF", (0.0, 1.0, 0.0, 0.0)),
        ]
    lines, samps = int(values["REFLECTIVE_LINES"]), int(values["REFLECTIVE_SAMPLES"])
    text = _odl_groups([
        ("FILE_HEADER", header), ("PROJECTION", projection), ("SCAN_TIME_POLY", scan_time),
        *(_rpc_band(number, lines, samps, model) for number in bands),
    ])  # fmt: skip
    return text, model


def landsat_package(
    *,
    mtl_xml: str,
    real_files: Mapping[str, Path] = {},  # noqa: B006 - read only
    extra_files: Mapping[str, bytes] = {},  # noqa: B006 - read only
    window_px: int = 64,
    shift_px: tuple[int, int] = (0, 0),
    derivation: str = "",
) -> LandsatPackage:
    """Build a Product Bundle from an MTL.xml: every raster its PRODUCT_CONTENTS names.

    Rasters in ``real_files`` (file name -> real file) are used as they are (their own grid);
    the others are generated: ``window_px`` square at the MTL's reflective grid cell size,
    centred in the MTL's product extent (``CORNER_*_PROJECTION_*_PRODUCT``, ``UTM_ZONE``,
    south-up zones as negative northings as in the MTL), moved ``shift_px`` (rows down,
    columns east). The bundle also holds the MTL as ODL text (``FILE_NAME_METADATA_ODL``,
    rendered from the XML when not real) and XML, and, for a TM/ETM+ MTL that names an angle
    coefficient file realdata lacks, the ``ANG.txt`` of :func:`tm_etm_ang` for its geometry.
    """
    from rasterio.transform import from_origin

    values = mtl_values(mtl_xml)
    product_id = values["LANDSAT_PRODUCT_ID"]
    root = _mtl_tree(mtl_xml)
    contents = root.find("PRODUCT_CONTENTS")
    assert contents is not None
    names = {e.tag: (e.text or "").strip() for e in contents if e.tag.startswith("FILE_NAME_")}
    zone = int(values["UTM_ZONE"])
    south = (
        float(values["CORNER_UL_LAT_PRODUCT"]) < 0
        and float(values["CORNER_UL_PROJECTION_Y_PRODUCT"]) > 0
    )
    epsg = (32700 if south else 32600) + zone
    crs = f"EPSG:{epsg}"
    cell = float(values.get("GRID_CELL_SIZE_REFLECTIVE", "30"))
    ulx = float(values["CORNER_UL_PROJECTION_X_PRODUCT"])
    uly = float(values["CORNER_UL_PROJECTION_Y_PRODUCT"])
    lrx = float(values["CORNER_LR_PROJECTION_X_PRODUCT"])
    lry = float(values["CORNER_LR_PROJECTION_Y_PRODUCT"])
    center_col = int((lrx - ulx) / cell / 2)
    center_row = int((uly - lry) / cell / 2)
    first_col = center_col - window_px // 2 + shift_px[1]
    first_row = center_row - window_px // 2 + shift_px[0]
    x0 = ulx - cell / 2 + first_col * cell  # MTL corners are pixel centres
    y0 = uly + cell / 2 - first_row * cell
    transform = from_origin(x0, y0, cell, cell)
    shape = (window_px, window_px)

    files: dict[str, bytes] = {}
    dn: dict[str, np.ndarray] = {}
    grid_transform: Any = transform
    for index, file_name in enumerate(sorted(names.values())):
        if not file_name.upper().endswith(".TIF"):
            continue
        suffix = _file_suffix(file_name, product_id)
        if file_name in real_files:
            import rasterio

            data = real_files[file_name].read_bytes()
            with rasterio.open(real_files[file_name]) as src:
                dn[suffix] = src.read(1)
                grid_transform = src.transform
                crs = str(src.crs)
            files[file_name] = data
            continue
        seed = int(re.sub(r"\D", "", suffix.split("_VCID")[0]) or index % 7) % 12
        array, nodata = _landsat_layer(suffix, shape, seed)
        dn[suffix] = array
        files[file_name] = geotiff_bytes(array, crs, transform, nodata=nodata)
    for file_name, path in real_files.items():
        if not file_name.upper().endswith(".TIF"):
            files[file_name] = path.read_bytes()
    files.update(extra_files)
    angles: AngModel | None = None
    ang_name = names.get("FILE_NAME_ANGLE_COEFFICIENT")
    if ang_name and ang_name not in files and values.get("SENSOR_ID") in TM_ETM_ANG_BANDS:
        text, angles = tm_etm_ang(values)
        files[ang_name] = text.encode()
    odl_name = names["FILE_NAME_METADATA_ODL"]
    xml_name = names["FILE_NAME_METADATA_XML"]
    files.setdefault(odl_name, odl_from_xml(mtl_xml).encode())
    files.setdefault(xml_name, mtl_xml.encode())
    unknown = set(files) - set(names.values()) - {f"{product_id}_MTL.json"}
    assert not unknown, f"bundle members not named by the MTL: {sorted(unknown)}"
    return LandsatPackage(
        product_id=product_id,
        tar_bytes=_tar(files),
        mtl=values,
        members=tuple(sorted(files)),
        crs=crs,
        transform=grid_transform,
        dn=dn,
        derivation=derivation,
        files=files,
        angles=angles,
    )


def landsat_l1tp_oli() -> LandsatPackage:
    """LC08_L1TP_090084_20160121_20200907_02_T1: real MTL.txt and the real 60 x 60 band TIFs.

    Only the MTL.txt is real (no MTL.xml in realdata); the XML the builder needs is made from it
    by :func:`_xml_from_odl`, and the bundle keeps the real ODL text. Missing rasters the MTL
    lists (QA_RADSAT, the SZA/SAA/VZA/VAA angle bands) are generated on the real bands' grid.
    """
    folder = realdata(LANDSAT_L1TP_OLI)
    product_id = folder.name
    odl = (folder / f"{product_id}_MTL.txt").read_text(encoding="utf-8")
    real = {p.name: p for p in folder.glob("*.TIF")}
    real[f"{product_id}_MTL.txt"] = folder / f"{product_id}_MTL.txt"
    package = landsat_package(mtl_xml=_xml_from_odl(odl), real_files=real)
    # generated layers go on the real bands' 60 x 60 grid (not the MTL's 30 m cell)
    import rasterio

    with rasterio.open(folder / f"{product_id}_B4.TIF") as src:
        grid, shape = src.transform, src.shape
        crs = str(src.crs)
    files = dict(package.files)
    dn = dict(package.dn)
    for file_name in list(files):
        if file_name in real or not file_name.upper().endswith(".TIF"):
            continue
        suffix = _file_suffix(file_name, product_id)
        array, nodata = _landsat_layer(suffix, shape, 1)
        dn[suffix] = array
        files[file_name] = geotiff_bytes(array, crs, grid, nodata=nodata)
    return LandsatPackage(
        product_id=product_id,
        tar_bytes=_tar(files),
        mtl=package.mtl,
        members=tuple(sorted(files)),
        crs=crs,
        transform=grid,
        dn=dn,
        files=files,
        derivation="MTL.xml rendered from the real MTL.txt; QA_RADSAT and angle bands generated",
    )


def landsat_l2sp_oli() -> LandsatPackage:
    """LC08_L2SP_008059_20191201_20200825_02_T1: real MTL (txt, xml, json), ANG and rasters.

    The real SR/ST/QA TIFs are 512 x 512 (downsampled by stactools); the auxiliary ST layers the
    MTL also lists (ST_TRAD, ST_URAD, ST_DRAD, ST_ATRAN, ST_EMIS, ST_EMSD, ST_CDIST) are not in
    realdata and are generated on the same grid.
    """
    folder = realdata(LANDSAT_L2SP_OLI)
    product_id = LANDSAT_L2SP_OLI_ID
    real = {p.name: p for p in folder.glob(f"{product_id}_*") if not p.name.endswith("_stac.json")}
    xml = (folder / f"{product_id}_MTL.xml").read_text(encoding="utf-8")
    package = landsat_package(mtl_xml=xml, real_files=real)
    import rasterio

    with rasterio.open(folder / f"{product_id}_SR_B4.TIF") as src:
        grid, shape, crs = src.transform, src.shape, str(src.crs)
    files, dn = dict(package.files), dict(package.dn)
    for file_name in list(files):
        if file_name in real or not file_name.upper().endswith(".TIF"):
            continue
        suffix = _file_suffix(file_name, product_id)
        array, nodata = _landsat_layer(suffix, shape, 3)
        dn[suffix] = array
        files[file_name] = geotiff_bytes(array, crs, grid, nodata=nodata)
    return LandsatPackage(
        product_id=product_id, tar_bytes=_tar(files), mtl=package.mtl,
        members=tuple(sorted(files)), crs=crs, transform=grid, dn=dn, files=files,
        derivation="auxiliary ST layers generated on the real 512 x 512 grid",
    )  # fmt: skip


def landsat_l2sp_tm(*, shift_px: tuple[int, int] = (0, 0)) -> LandsatPackage:
    """LT05_L2SP_010067_19860424_20200918_02_T2 from its real MTL.xml; rasters at its grid.

    realdata has the XML MTL only: the ODL text is rendered from it. No ANG.txt is in realdata
    for this scene: the bundle's is :func:`tm_etm_ang`'s for its geometry. ``shift_px`` moves
    the raster window off the scene's middle (see :func:`landsat_package`).
    """
    xml = realdata(LANDSAT_L2SP_TM_MTL).read_text(encoding="utf-8")
    return landsat_package(
        mtl_xml=xml,
        shift_px=shift_px,
        derivation="MTL.txt rendered from the real MTL.xml; rasters and ANG.txt generated",
    )


ETM_FROM_TM = {
    # USGS Landsat 7 ETM+ Collection 2 Level-2 DFCB (LSDS-1337): the Level-2 groups are the TM
    # ones (LEDAPS SR, ST_B6); the ETM+ Level-1 record has the two thermal gains and pan band.
    "SPACECRAFT_ID": "LANDSAT_7",
    "SENSOR_ID": "ETM",
    "DATE_ACQUIRED": "2003-04-10",
    "COLLECTION_CATEGORY": "T1",
    "DATE_PRODUCT_GENERATED": "2020-09-16T06:12:40Z",
}


def landsat_l2sp_etm(*, shift_px: tuple[int, int] = (0, 0)) -> LandsatPackage:
    """An LE07 L2SP bundle to the Collection 2 Level-2 DFCB, MTL derived from the real TM one.

    Changed from ``LT05_L2SP_010067_19860424_20200918_02_T2``: product id
    ``LE07_L2SP_010067_20030410_20200916_02_T1``, ``SPACECRAFT_ID`` LANDSAT_7, ``SENSOR_ID``
    ETM, ``DATE_ACQUIRED`` 2003-04-10 (before the SLC failure), category T1, and in the Level-1
    record ``FILE_NAME_BAND_6`` -> ``FILE_NAME_BAND_6_VCID_1`` (ETM+ has two thermal gains;
    the Level-2 product keeps one ``ST_B6``). Sun angles, corners and the SR/ST gains (the same
    2.75e-05/-0.2 and 0.00341802/149.0 for every Collection 2 Level-2 product) stay the TM's.
    """
    tm = realdata(LANDSAT_L2SP_TM_MTL).read_text(encoding="utf-8")
    product_id = "LE07_L2SP_010067_20030410_20200916_02_T1"
    xml = derived_mtl_xml(
        tm.replace(
            "LT05_L1GS_010067_19860424_20200918_02_T2", "LE07_L1TP_010067_20030410_20200916_02_T1"
        ),
        product_id=product_id,
        values=ETM_FROM_TM,
        renames={
            "RADIANCE_MULT_BAND_6": "RADIANCE_MULT_BAND_6_VCID_1",
            "RADIANCE_ADD_BAND_6": "RADIANCE_ADD_BAND_6_VCID_1",
            "K1_CONSTANT_BAND_6": "K1_CONSTANT_BAND_6_VCID_1",
            "K2_CONSTANT_BAND_6": "K2_CONSTANT_BAND_6_VCID_1",
        },
    )
    xml = xml.replace(
        "<FILE_NAME_BAND_6>LE07_L1TP_010067_20030410_20200916_02_T1_B6.TIF</FILE_NAME_BAND_6>",
        "<FILE_NAME_BAND_6_VCID_1>LE07_L1TP_010067_20030410_20200916_02_T1_B6_VCID_1.TIF"
        "</FILE_NAME_BAND_6_VCID_1>",
    )
    xml = re.sub(r"<LANDSAT_SCENE_ID>LT5(\d{6})1986114(\w+)</LANDSAT_SCENE_ID>",
                 r"<LANDSAT_SCENE_ID>LE7\g<1>2003100ASN00</LANDSAT_SCENE_ID>", xml)  # fmt: skip
    return landsat_package(
        mtl_xml=xml,
        shift_px=shift_px,
        derivation="ETM+ MTL derived from the real TM MTL (see landsat_l2sp_etm); rasters and "
        "ANG.txt generated",
    )


def moved_scene_values(
    *,
    path: int,
    row: int,
    acquired: str,
    center_lonlat: tuple[float, float],
    zone: int,
    cloud_cover_pct: float = 12.5,
) -> dict[str, str]:
    """MTL values of an OLI scene moved to a path/row, date and 185 km square around a point.

    USGS grids are UTM north zones (negative northings south of the equator); corners on the
    30 m grid.
    """
    from pyproj import Transformer

    to_utm = Transformer.from_crs(4326, 32600 + zone, always_xy=True)
    to_wgs84 = Transformer.from_crs(32600 + zone, 4326, always_xy=True)
    cx, cy = to_utm.transform(*center_lonlat)
    cx, cy = round(cx / 30) * 30, round(cy / 30) * 30
    half = 92_400
    corners = {"UL": (cx - half, cy + half), "UR": (cx + half, cy + half),
               "LL": (cx - half, cy - half), "LR": (cx + half, cy - half)}  # fmt: skip
    values = {
        "WRS_PATH": str(path), "WRS_ROW": str(row), "DATE_ACQUIRED": acquired,
        "UTM_ZONE": str(zone),
        "CLOUD_COVER": f"{cloud_cover_pct:.2f}", "CLOUD_COVER_LAND": f"{cloud_cover_pct:.2f}",
        "LANDSAT_SCENE_ID": f"LC8{path:03d}{row:03d}{datetime.fromisoformat(acquired):%Y%j}LGN00",
    }  # fmt: skip
    for corner, (x, y) in corners.items():
        lon, lat = to_wgs84.transform(x, y)
        values[f"CORNER_{corner}_LAT_PRODUCT"] = f"{lat:.5f}"
        values[f"CORNER_{corner}_LON_PRODUCT"] = f"{lon:.5f}"
        values[f"CORNER_{corner}_PROJECTION_X_PRODUCT"] = f"{x:.3f}"
        values[f"CORNER_{corner}_PROJECTION_Y_PRODUCT"] = f"{y:.3f}"
    return values


def landsat_l2sp_oli_at(
    *,
    path: int,
    row: int,
    acquired: str,
    center_lonlat: tuple[float, float],
    zone: int,
    cloud_cover_pct: float = 12.5,
) -> LandsatPackage:
    """The real LC08 L2SP MTL moved to another WRS-2 path/row and date (a pipeline's tiles).

    Everything but the identifiers, the date, the cloud cover, the UTM zone and the corner
    coordinates (a 185 km square around ``center_lonlat``) stays as in the real MTL; rasters are
    generated.
    """
    xml = realdata(f"{LANDSAT_L2SP_OLI}/{LANDSAT_L2SP_OLI_ID}_MTL.xml").read_text("utf-8")
    day = acquired.replace("-", "")
    product_id = f"LC08_L2SP_{path:03d}{row:03d}_{day}_{day[:4]}{int(day[4:]) + 9:04d}_02_T1"
    values = moved_scene_values(
        path=path, row=row, acquired=acquired, center_lonlat=center_lonlat, zone=zone,
        cloud_cover_pct=cloud_cover_pct,
    )  # fmt: skip
    derived = derived_mtl_xml(xml, product_id=product_id, values=values)
    return landsat_package(
        mtl_xml=derived,
        derivation=f"{LANDSAT_L2SP_OLI_ID} MTL moved to {product_id}; rasters generated",
    )


def _xml_from_odl(odl: str) -> str:
    """An MTL.xml with the groups and values of an ODL MTL (the C2 XML has the same tree)."""
    root: ET.Element | None = None
    stack: list[ET.Element] = []
    for line in odl.splitlines():
        key, sep, value = line.strip().partition(" = ")
        if not sep:
            continue
        value = value.strip().strip('"')
        if key == "GROUP":
            element = ET.Element(value) if not stack else ET.SubElement(stack[-1], value)
            root = root if root is not None else element
            stack.append(element)
        elif key == "END_GROUP":
            stack.pop()
        elif stack:
            ET.SubElement(stack[-1], key).text = value
    assert root is not None
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def stac_json(document: Any) -> bytes:
    return json.dumps(document).encode()


LEVEL1_GROUPS = (
    "IMAGE_ATTRIBUTES",
    "PROJECTION_ATTRIBUTES",
    "LEVEL1_PROCESSING_RECORD",
    "LEVEL1_MIN_MAX_RADIANCE",
    "LEVEL1_MIN_MAX_REFLECTANCE",
    "LEVEL1_MIN_MAX_PIXEL_VALUE",
    "LEVEL1_RADIOMETRIC_RESCALING",
    "LEVEL1_THERMAL_CONSTANTS",
    "LEVEL1_PROJECTION_PARAMETERS",
)
"""The groups a Collection 2 Level-1 MTL has (Level-1 DFCB, LSDS-1822), in its order."""


def level1_mtl_from_level2(xml_text: str) -> str:
    """Return the Level-1 MTL.xml of the Level-1 product a Level-2 MTL was made from.

    A Level-2 MTL carries its Level-1 record: ``LEVEL1_PROCESSING_RECORD`` (the Level-1 product
    id, level and every file name) and the Level-1 groups (radiometric rescaling, thermal
    constants, min/max). The Level-1 MTL is those, as a real one is laid out (eo-datasets'
    LC08_L1TP_090084 MTL): ``PRODUCT_CONTENTS`` with the record's identity and file names, then
    the Level-1 groups with the record itself; the ``LEVEL2_*`` groups are left out.
    """
    root = _mtl_tree(xml_text)
    record = root.find("LEVEL1_PROCESSING_RECORD")
    assert record is not None
    level1 = ET.Element(root.tag)
    contents = ET.SubElement(level1, "PRODUCT_CONTENTS")
    for element in record:
        if element.tag in ("REQUEST_ID", "LANDSAT_SCENE_ID", "FILE_NAME_CPF", "EPHEMERIS_TYPE"):
            continue
        contents.append(copy.deepcopy(element))
        if element.tag == "PROCESSING_LEVEL":
            number = ET.SubElement(contents, "COLLECTION_NUMBER")
            number.text = "02"
    for name in LEVEL1_GROUPS:
        group = root.find(name)
        if group is not None:
            level1.append(group)
    ET.indent(level1, space="  ")
    body = ET.tostring(level1, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def landsat_l1_tm() -> LandsatPackage:
    """LT05_L1GS_010067_19860424_20200918_02_T2: the Level-1 product of the real TM L2SP MTL.

    Its MTL is the real one's Level-1 record and groups (``level1_mtl_from_level2``); the bands
    B1..B7, QA_PIXEL, QA_RADSAT and the SZA/SAA/VZA/VAA angle bands are generated at its grid.
    """
    xml = level1_mtl_from_level2(realdata(LANDSAT_L2SP_TM_MTL).read_text(encoding="utf-8"))
    return landsat_package(
        mtl_xml=xml, derivation="Level-1 MTL from the real TM L2SP MTL's Level-1 record"
    )


def landsat_l1_etm() -> LandsatPackage:
    """An LE07 L1TP bundle: the Level-1 product of ``landsat_l2sp_etm`` (see there)."""
    level2 = landsat_l2sp_etm()
    xml = level1_mtl_from_level2(level2.files[f"{level2.product_id}_MTL.xml"].decode())
    return landsat_package(mtl_xml=xml, derivation="Level-1 MTL of the derived ETM+ L2SP MTL")
