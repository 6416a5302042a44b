"""Landsat products: the MTL metadata file (ODL text, JSON, XML) and the bundle's files.

MTL formats (USGS Landsat Collection 1 and Collection 2 Level-1 / Level-2 Data Format Control
Books):

- ODL text (``_MTL.txt``): ``GROUP = NAME`` ... ``END_GROUP = NAME`` blocks of
  ``KEY = value`` lines (strings quoted, numbers and dates bare), ``OBJECT``/``END_OBJECT``
  as a synonym of groups, a final ``END``; parenthesised arrays may span lines.
- JSON (``_MTL.json``, Collection 2): the same tree, every value a string.
- XML (``_MTL.xml``, Collection 2): one element per group, one child per key.

All three become the same nested ``dict`` of strings (:class:`MtlDocument`).

Groups that matter:

- Collection 2 (root ``LANDSAT_METADATA_FILE``): ``PRODUCT_CONTENTS`` (product id, level,
  collection, file names: ``FILE_NAME_BAND_n``, ``FILE_NAME_QUALITY_L1_PIXEL``,
  ``FILE_NAME_ANGLE_COEFFICIENT``, ``FILE_NAME_ANGLE_{SOLAR,SENSOR}_{ZENITH,AZIMUTH}_BAND_4``),
  ``IMAGE_ATTRIBUTES`` (spacecraft, sensor, WRS path/row, date and time, cloud cover, sun
  azimuth/elevation, earth-sun distance), ``LEVEL1_RADIOMETRIC_RESCALING`` (TOA
  ``REFLECTANCE_MULT/ADD_BAND_n``) and, in Level-2 products,
  ``LEVEL2_SURFACE_REFLECTANCE_PARAMETERS`` (SR ``REFLECTANCE_MULT/ADD_BAND_n``, 2.75e-05 and
  -0.2) and ``LEVEL1_PROCESSING_RECORD`` (the Level-1 file names, angle bands included).
- Collection 1 (root ``L1_METADATA_FILE``): ``METADATA_FILE_INFO`` (product and scene ids,
  collection number), ``PRODUCT_METADATA`` (level, spacecraft, sensor, path/row, date, file
  names incl. ``FILE_NAME_BAND_QUALITY`` and ``ANGLE_COEFFICIENT_FILE_NAME``),
  ``IMAGE_ATTRIBUTES`` (cloud cover, sun angles) and ``RADIOMETRIC_RESCALING``. Read as
  metadata; a Collection 1 *product* is refused (``BQA`` bits differ from ``QA_PIXEL``).

Sensors (``SENSOR_ID``): ``OLI_TIRS`` (LC08/LC09), ``OLI`` (LO08/LO09, no bands 10-11),
``TIRS`` (LT08/LT09, bands 10-11 only), ``ETM`` (LE07: ``B6_VCID_1``/``B6_VCID_2``, pan ``B8``),
``TM`` (LT04/LT05), ``MSS``. ``CLOUD_COVER`` -1 (not assessed, e.g. TIRS-only) reads as None.

TOA reflectance = (DN * REFLECTANCE_MULT + REFLECTANCE_ADD) / sin(sun elevation); Level-2 SR =
DN * MULT + ADD with the Level-2 group's values. DN 0 is fill in both.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Literal

from include.common.errors import FieldProblem, InvalidInputError
from include.processors.products.archive import (
    ExtractionLimits,
    extract_archive,
    is_archive,
    unpacked_folder,
)
from include.processors.products.xmlsafe import local_name, parse_xml

log = logging.getLogger(__name__)

MtlFormat = Literal["odl", "json", "xml"]
MtlTree = dict[str, Any]
"""Nested groups: group name -> (group tree | string value)."""

MTL_SUFFIXES = ("_MTL.txt", "_MTL.json", "_MTL.xml")
ANGLE_BANDS = ("SZA", "SAA", "VZA", "VAA")
_ANGLE_KEYS = {
    "SZA": "FILE_NAME_ANGLE_SOLAR_ZENITH_BAND_4",
    "SAA": "FILE_NAME_ANGLE_SOLAR_AZIMUTH_BAND_4",
    "VZA": "FILE_NAME_ANGLE_SENSOR_ZENITH_BAND_4",
    "VAA": "FILE_NAME_ANGLE_SENSOR_AZIMUTH_BAND_4",
}
OLI_COMMON_NAMES = {
    "coastal": "1", "blue": "2", "green": "3", "red": "4", "nir08": "5", "swir16": "6",
    "swir22": "7", "pan": "8", "cirrus": "9", "lwir11": "10", "lwir12": "11",
}  # fmt: skip
TM_ETM_COMMON_NAMES = {
    "blue": "1", "green": "2", "red": "3", "nir08": "4", "swir16": "5", "lwir": "6",
    "swir22": "7", "pan": "8",
}  # fmt: skip
_ODL_LINE = re.compile(r"^\s*([A-Za-z0-9_:.]+)\s*=\s*(.*?)\s*$")
_FILE_NAME_BAND = re.compile(r"^FILE_NAME_BAND_(.+)$")
_BAND_SUFFIX = re.compile(r"(?:^|_)(?:SR_|ST_)?B(\d{1,2}(?:_VCID_\d)?)$", re.IGNORECASE)
_PRODUCT_ID = re.compile(
    r"^(L[COTEM]0\d)_(L[0-9A-Z]{3})_(\d{3})(\d{3})_(\d{8})_(\d{8})_(\d{2})_(T1|T2|RT)$"
)


# --------------------------------------------------------------------------------------------
# MTL parsing


class MtlDocument:
    """A parsed MTL file: nested groups of string values, with typed accessors."""

    def __init__(self, tree: MtlTree, *, fmt: MtlFormat, path: Path | None = None) -> None:
        if len(tree) == 1 and isinstance(next(iter(tree.values())), dict):
            self.root_name, body = next(iter(tree.items()))
        else:
            self.root_name, body = "", tree
        self.tree: MtlTree = body
        self.format: MtlFormat = fmt
        self.path = path

    @property
    def collection(self) -> int | None:
        """2 for ``LANDSAT_METADATA_FILE``, 1 for ``L1_METADATA_FILE`` (read from the number)."""
        number = self.find("COLLECTION_NUMBER", groups=("PRODUCT_CONTENTS", "METADATA_FILE_INFO"))
        if number is not None and number.strip().isdigit():
            return int(number)
        if self.root_name == "LANDSAT_METADATA_FILE":
            return 2
        return None

    def group(self, name: str) -> Mapping[str, Any]:
        """Return the group ``name`` (empty when absent)."""
        value = self.tree.get(name)
        return value if isinstance(value, dict) else {}

    def get(self, group: str, key: str) -> str | None:
        """Return ``key`` of ``group`` as a string (None when absent)."""
        value = self.group(group).get(key)
        return value if isinstance(value, str) else None

    def find(self, key: str, *, groups: tuple[str, ...] = ()) -> str | None:
        """Return ``key`` from the first of ``groups`` that has it, else from anywhere."""
        for group in groups:
            value = self.get(group, key)
            if value is not None:
                return value
        for _, found_key, value in self.items():
            if found_key == key:
                return value
        return None

    def items(self) -> Iterator[tuple[str, str, str]]:
        """Yield ``(group path, key, value)`` for every value, depth first."""

        def walk(prefix: str, node: MtlTree) -> Iterator[tuple[str, str, str]]:
            for key, value in node.items():
                if isinstance(value, dict):
                    yield from walk(f"{prefix}/{key}" if prefix else key, value)
                else:
                    yield prefix, key, str(value)

        yield from walk("", self.tree)


def _odl_value(raw: str) -> str:
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def parse_odl(text: str) -> MtlTree:
    """Parse ODL text (``GROUP``/``OBJECT`` blocks of ``KEY = value``) into nested dicts.

    Raises:
        ValueError: unbalanced groups or a line that is not ``KEY = value``.
    """
    text = text.removeprefix("\ufeff")  # a byte order mark some tools write
    root: MtlTree = {}
    stack: list[tuple[str, MtlTree]] = [("", root)]
    pending_key: str | None = None
    pending_parts: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if pending_key is not None:
            pending_parts.append(stripped)
            if stripped.endswith(")"):
                stack[-1][1][pending_key] = " ".join(pending_parts)
                pending_key, pending_parts = None, []
            continue
        if not stripped or stripped.startswith("/*"):
            continue
        if stripped == "END":
            break
        match = _ODL_LINE.match(stripped)
        if match is None:
            raise ValueError(f"line {number}: {stripped[:60]!r} is not KEY = value")
        key, value = match.group(1), match.group(2)
        if key in ("GROUP", "OBJECT"):
            child: MtlTree = {}
            stack[-1][1][value] = child
            stack.append((value, child))
        elif key in ("END_GROUP", "END_OBJECT"):
            if len(stack) == 1 or (value and stack[-1][0] != value):
                raise ValueError(f"line {number}: {key} {value} closes no open group")
            stack.pop()
        elif value.startswith("(") and not value.endswith(")"):
            pending_key, pending_parts = key, [value]
        else:
            stack[-1][1][key] = _odl_value(value)
    if len(stack) != 1 or pending_key is not None:
        raise ValueError(f"group {stack[-1][0]!r} is never closed")
    return root


def _xml_tree(element: Any) -> MtlTree | str:
    children = list(element)
    if not children:
        return (element.text or "").strip()
    return {local_name(child.tag): _xml_tree(child) for child in children}


def _json_tree(value: Any) -> MtlTree | str:
    if isinstance(value, dict):
        return {str(key): _json_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    return "" if value is None else str(value)


def parse_mtl(path: Path) -> MtlDocument:
    """Parse an MTL file in any of its three formats (chosen by content, not by name).

    Raises:
        InvalidInputError: the file is missing, empty or not a Landsat MTL.
    """
    where = f"files[{path.name}]"
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as err:
        raise InvalidInputError(
            FieldProblem(where, f"cannot be read ({err})", "download the product again")
        ) from err
    head = text.lstrip()[:1]
    try:
        if head == "{":
            data = json.loads(text)
            tree = _json_tree(data)
            fmt: MtlFormat = "json"
        elif head == "<":
            root = parse_xml(path)
            tree = {local_name(root.tag): _xml_tree(root)}
            fmt = "xml"
        else:
            tree = parse_odl(text)
            fmt = "odl"
    except (ValueError, json.JSONDecodeError) as err:
        raise InvalidInputError(
            FieldProblem(where, f"is not a readable MTL file ({err})", "download it again")
        ) from err
    if not isinstance(tree, dict) or not tree:
        raise InvalidInputError(FieldProblem(where, "is empty", "download it again"))
    document = MtlDocument(tree, fmt=fmt, path=path)
    if document.root_name not in ("LANDSAT_METADATA_FILE", "L1_METADATA_FILE"):
        raise InvalidInputError(
            FieldProblem(
                where,
                f"is not a Landsat MTL (root {document.root_name or '(none)'})",
                "give the _MTL.txt, _MTL.json or _MTL.xml of a Landsat product",
            )
        )
    return document


# --------------------------------------------------------------------------------------------
# Typed metadata


def _to_float(value: str | None) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _to_int(value: str | None) -> int | None:
    number = _to_float(value)
    return int(number) if number is not None else None


def _acquired(date_text: str | None, time_text: str | None) -> datetime | None:
    if not date_text:
        return None
    try:
        day = date.fromisoformat(date_text.strip())
    except ValueError:
        return None
    moment = time(0, tzinfo=UTC)
    if time_text:
        clean = time_text.strip().strip('"').rstrip("Zz")
        main, _, fraction = clean.partition(".")
        try:
            hours, minutes, seconds = (int(part) for part in main.split(":"))
            micro = int((fraction + "000000")[:6]) if fraction else 0
            moment = time(hours, minutes, seconds, micro, tzinfo=UTC)
        except ValueError:
            pass
    return datetime.combine(day, moment)


def _cloud_cover(value: str | None) -> float | None:
    """Return the MTL's ``CLOUD_COVER`` (percent), None for USGS's -1 (not assessed)."""
    number = _to_float(value)
    return number if number is not None and 0.0 <= number <= 100.0 else None


def _per_band(group: Mapping[str, Any], prefix: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for key, raw in group.items():
        if isinstance(raw, str) and key.startswith(prefix):
            number = _to_float(raw)
            if number is not None:
                values[key[len(prefix) :]] = number
    return values


@dataclass(frozen=True, slots=True)
class LandsatMetadata:
    """What an MTL says, for Collection 1 and 2, Level-1 and Level-2.

    Band ids are the MTL's (``"1"``..``"11"``, ``"6_VCID_1"``; ``"ST_B10"`` for Level-2
    temperature). ``toa_mult/toa_add`` are the Level-1 reflectance rescaling,
    ``sr_mult/sr_add`` the Level-2 surface-reflectance scaling (empty for Level-1).
    """

    product_id: str | None
    scene_id: str | None
    collection: int | None
    collection_category: str | None
    processing_level: str | None
    spacecraft: str | None
    sensor: str | None
    wrs_path: int | None
    wrs_row: int | None
    acquired: datetime | None
    cloud_cover_pct: float | None
    sun_elevation_deg: float | None
    sun_azimuth_deg: float | None
    earth_sun_distance_au: float | None
    toa_mult: dict[str, float] = field(default_factory=dict)
    toa_add: dict[str, float] = field(default_factory=dict)
    sr_mult: dict[str, float] = field(default_factory=dict)
    sr_add: dict[str, float] = field(default_factory=dict)
    st_mult: dict[str, float] = field(default_factory=dict)
    """Level-2 surface temperature ``TEMPERATURE_MULT_BAND_ST_B10`` (kelvin), keyed ``ST_B10``."""
    st_add: dict[str, float] = field(default_factory=dict)
    radiance_mult: dict[str, float] = field(default_factory=dict)
    """Level-1 ``RADIANCE_MULT_BAND_n`` (W/(m2 sr um)), thermal bands included."""
    radiance_add: dict[str, float] = field(default_factory=dict)
    band_files: dict[str, str] = field(default_factory=dict)
    """Band id -> file name as the MTL lists it (the product's own bands)."""
    qa_pixel_file: str | None = None
    angle_files: dict[str, str] = field(default_factory=dict)
    """``SZA``/``SAA``/``VZA``/``VAA`` -> file name (Level-1 Collection 2)."""
    ang_file: str | None = None
    mtl_format: MtlFormat = "odl"

    @property
    def is_level2(self) -> bool:
        """Whether this is a Level-2 (surface reflectance) product."""
        return bool(self.processing_level and self.processing_level.upper().startswith("L2"))

    @property
    def pathrow(self) -> str | None:
        """``PPPRRR`` (our WRS-2 tile id)."""
        if self.wrs_path is None or self.wrs_row is None:
            return None
        return f"{self.wrs_path:03d}{self.wrs_row:03d}"

    @property
    def platform(self) -> str | None:
        """Return ``landsat-8`` for ``LANDSAT_8`` (STAC ``platform``)."""
        return self.spacecraft.lower().replace("_", "-") if self.spacecraft else None

    def toa_scale_offset(self, band: str) -> tuple[float, float]:
        """Return ``(scale, offset)`` with TOA reflectance = DN * scale + offset.

        Includes the sun-elevation correction: ``(MULT, ADD) / sin(sun elevation)``.

        Raises:
            InvalidInputError: no Level-1 rescaling for ``band`` or no sun elevation.
        """
        import math

        if band not in self.toa_mult or band not in self.toa_add:
            raise InvalidInputError(
                FieldProblem(
                    f"MTL.REFLECTANCE_MULT_BAND_{band}",
                    "is missing (thermal and QA bands have no reflectance rescaling)",
                    f"use a reflective band ({', '.join(sorted(self.toa_mult)) or 'none'})",
                )
            )
        if self.sun_elevation_deg is None or self.sun_elevation_deg <= 0:
            raise InvalidInputError(
                FieldProblem(
                    "MTL.IMAGE_ATTRIBUTES.SUN_ELEVATION",
                    f"is {self.sun_elevation_deg}",
                    "TOA reflectance needs the sun above the horizon",
                )
            )
        sine = math.sin(math.radians(self.sun_elevation_deg))
        return self.toa_mult[band] / sine, self.toa_add[band] / sine

    def sr_scale_offset(self, band: str) -> tuple[float, float]:
        """Return the Level-2 ``(MULT, ADD)`` of ``band`` (SR = DN * MULT + ADD).

        Raises:
            InvalidInputError: when the MTL has no Level-2 scaling for ``band``.
        """
        if band not in self.sr_mult or band not in self.sr_add:
            raise InvalidInputError(
                FieldProblem(
                    f"MTL.LEVEL2_SURFACE_REFLECTANCE_PARAMETERS.REFLECTANCE_MULT_BAND_{band}",
                    "is missing",
                    "give a Collection 2 Level-2 product (L2SP/L2SR) MTL",
                )
            )
        return self.sr_mult[band], self.sr_add[band]


def landsat_metadata(document: MtlDocument) -> LandsatMetadata:
    """Return the typed metadata of a parsed MTL (Collection 1 or 2 groups)."""
    c2 = document.root_name == "LANDSAT_METADATA_FILE"
    contents: tuple[str, ...]
    attributes: tuple[str, ...]
    if c2:
        contents = ("PRODUCT_CONTENTS",)
        attributes = ("IMAGE_ATTRIBUTES",)
        toa_group = document.group("LEVEL1_RADIOMETRIC_RESCALING")
    else:
        contents = ("METADATA_FILE_INFO", "PRODUCT_METADATA")
        attributes = ("PRODUCT_METADATA", "IMAGE_ATTRIBUTES")
        toa_group = document.group("RADIOMETRIC_RESCALING")
    sr_group = document.group("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS")
    st_group = document.group("LEVEL2_SURFACE_TEMPERATURE_PARAMETERS")
    files_group = document.group(contents[-1] if not c2 else "PRODUCT_CONTENTS")
    band_files: dict[str, str] = {}
    for key, value in files_group.items():
        match = _FILE_NAME_BAND.match(key)
        if match and isinstance(value, str) and match.group(1) != "QUALITY":
            band_files[match.group(1)] = value
    angle_files: dict[str, str] = {}
    for name, key in _ANGLE_KEYS.items():
        found = document.find(key, groups=("PRODUCT_CONTENTS", "LEVEL1_PROCESSING_RECORD"))
        if found:
            angle_files[name] = found
    qa_pixel = (
        document.get("PRODUCT_CONTENTS", "FILE_NAME_QUALITY_L1_PIXEL")
        if c2
        else document.get("PRODUCT_METADATA", "FILE_NAME_BAND_QUALITY")
    )
    level = document.find("PROCESSING_LEVEL", groups=contents) or document.find(
        "DATA_TYPE", groups=contents
    )
    return LandsatMetadata(
        product_id=document.find("LANDSAT_PRODUCT_ID", groups=contents),
        scene_id=document.find("LANDSAT_SCENE_ID", groups=("LEVEL1_PROCESSING_RECORD", *contents)),
        collection=document.collection,
        collection_category=document.find("COLLECTION_CATEGORY", groups=contents),
        processing_level=level,
        spacecraft=document.find("SPACECRAFT_ID", groups=attributes),
        sensor=document.find("SENSOR_ID", groups=attributes),
        wrs_path=_to_int(document.find("WRS_PATH", groups=attributes)),
        wrs_row=_to_int(document.find("WRS_ROW", groups=attributes)),
        acquired=_acquired(
            document.find("DATE_ACQUIRED", groups=attributes),
            document.find("SCENE_CENTER_TIME", groups=attributes),
        ),
        cloud_cover_pct=_cloud_cover(document.find("CLOUD_COVER", groups=("IMAGE_ATTRIBUTES",))),
        sun_elevation_deg=_to_float(document.find("SUN_ELEVATION", groups=("IMAGE_ATTRIBUTES",))),
        sun_azimuth_deg=_to_float(document.find("SUN_AZIMUTH", groups=("IMAGE_ATTRIBUTES",))),
        earth_sun_distance_au=_to_float(
            document.find("EARTH_SUN_DISTANCE", groups=("IMAGE_ATTRIBUTES",))
        ),
        toa_mult=_per_band(toa_group, "REFLECTANCE_MULT_BAND_"),
        toa_add=_per_band(toa_group, "REFLECTANCE_ADD_BAND_"),
        sr_mult=_per_band(sr_group, "REFLECTANCE_MULT_BAND_"),
        sr_add=_per_band(sr_group, "REFLECTANCE_ADD_BAND_"),
        st_mult=_per_band(st_group, "TEMPERATURE_MULT_BAND_"),
        st_add=_per_band(st_group, "TEMPERATURE_ADD_BAND_"),
        radiance_mult=_per_band(toa_group, "RADIANCE_MULT_BAND_"),
        radiance_add=_per_band(toa_group, "RADIANCE_ADD_BAND_"),
        band_files=band_files,
        qa_pixel_file=qa_pixel,
        angle_files=angle_files,
        ang_file=document.find(
            "FILE_NAME_ANGLE_COEFFICIENT" if c2 else "ANGLE_COEFFICIENT_FILE_NAME",
            groups=contents,
        ),
        mtl_format=document.format,
    )


def parse_product_id(product_id: str) -> dict[str, str] | None:
    """Split ``LC08_L1TP_221069_20200109_20200114_02_T1`` into its named parts (or None)."""
    match = _PRODUCT_ID.match(product_id)
    if match is None:
        return None
    keys = ("mission", "level", "path", "row", "acquired", "processed", "collection", "category")
    return dict(zip(keys, match.groups(), strict=True))


# --------------------------------------------------------------------------------------------
# The product on disk


def _common_names(metadata: LandsatMetadata) -> dict[str, str]:
    """Return STAC common name -> MTL band number for the product's sensor.

    MSS numbers its bands 4-7 on Landsat 1-3 and 1-4 on Landsat 4-5 (green, red, two near
    infrared): the MTL's own band numbers say which.
    """
    sensor = (metadata.sensor or "OLI").upper()
    if sensor.startswith(("OLI", "TIRS")):
        return OLI_COMMON_NAMES
    if sensor == "MSS":
        first = 4 if "7" in metadata.band_files else 1
        names = ("green", "red", "nir08", "nir09")
        return {name: str(first + index) for index, name in enumerate(names)}
    return TM_ETM_COMMON_NAMES


def _band_id_of(key: str, names: Mapping[str, str]) -> str | None:
    lowered = key.lower()
    if lowered in names:
        return names[lowered]
    match = _BAND_SUFFIX.search(key)
    return match.group(1).upper().lstrip("0") if match else None


def _is_ang(key: str, path: Path) -> bool:
    """Whether a file is the angle coefficient file: ``*_ANG.txt``, or the STAC asset ``ang``."""
    if path.name.upper().endswith("_ANG.TXT"):
        return True
    lowered = key.lower().removesuffix(".txt")
    return path.suffix.lower() == ".txt" and (lowered == "ang" or lowered.endswith("_ang"))


def _refuse_collection1(metadata: LandsatMetadata, mtl_path: Path) -> None:
    """Refuse a Collection 1 product: its ``BQA`` bits are not Collection 2's ``QA_PIXEL``.

    Raises:
        InvalidInputError: naming the product and the Collection 2 product to download.
    """
    if metadata.collection != 1:
        return
    raise InvalidInputError(
        FieldProblem(
            f"files[{mtl_path.name}]",
            f"{metadata.product_id or mtl_path.stem} is a Landsat Collection 1 product "
            "(L1_METADATA_FILE): its BQA quality band uses other bits than Collection 2's "
            "QA_PIXEL, and USGS retired Collection 1 in 2022",
            "download the scene's Collection 2 product (product id ending _02_T1/_02_T2)",
        )
    )


@dataclass
class LandsatProduct:
    """A Landsat product on disk: its MTL and files by role.

    ``bands`` maps band ids (``"4"``) to files, ``qa_pixel`` is the QA_PIXEL (or C1 BQA) file,
    ``angles`` the SZA/SAA/VZA/VAA bands when present, ``ang_path`` the ANG.txt file.
    """

    root: Path
    mtl_path: Path
    metadata: LandsatMetadata
    bands: dict[str, Path]
    qa_pixel: Path | None = None
    angles: dict[str, Path] = field(default_factory=dict)
    ang_path: Path | None = None

    def band_path(self, band: str) -> Path:
        """Return the file of band ``band`` (``"4"``, ``"B4"`` or ``"SR_B4"``).

        Raises:
            InvalidInputError: when the product has no such band file.
        """
        wanted = _band_id_of(band, _common_names(self.metadata)) or band
        path = self.bands.get(wanted)
        if path is None:
            raise InvalidInputError(
                FieldProblem(
                    f"files[B{wanted}]",
                    f"{self.metadata.product_id or self.root} has no band {wanted} file",
                    f"download every band (has: {', '.join(sorted(self.bands)) or 'none'})",
                )
            )
        return path

    @classmethod
    def open(
        cls, path: Path, *, work_dir: Path | None = None, limits: ExtractionLimits | None = None
    ) -> LandsatProduct:
        """Open a bundle (``.tar``), a folder of its files, or a folder of STAC assets.

        Raises:
            InvalidInputError: no MTL found.
            UnsafeArchiveError, IntegrityError: a bad archive.
        """
        if path.is_file() and is_archive(path):
            path = extract_archive(
                path,
                work_dir / f"{path.name}.d" if work_dir else unpacked_folder(path),
                limits=limits,
            )
        if not path.is_dir():
            raise InvalidInputError(
                FieldProblem(
                    f"files[{path.name}]",
                    "is neither a folder nor a tar archive",
                    "give the product bundle (.tar) or the folder of downloaded files",
                )
            )
        files = {p.stem: p for p in sorted(path.rglob("*")) if p.is_file()}
        return cls.from_files(files)

    @classmethod
    def from_files(cls, files: Mapping[str, Path]) -> LandsatProduct:
        """Build a product from files keyed by asset key or file stem.

        The MTL is found by name (``*_MTL.txt|json|xml``) or key (``mtl.txt``, ``MTL``); when
        several formats are there, JSON is read first, then XML, then text.

        The angle coefficient file is ``*_ANG.txt`` or the STAC asset ``ang`` (``ang.txt``).

        Raises:
            InvalidInputError: when no MTL is among ``files``, or it is a Collection 1 MTL (its
                metadata stays readable with ``parse_mtl``; its BQA is no QA_PIXEL).
        """
        mtl_candidates: dict[str, Path] = {}
        for key, path in files.items():
            name = path.name.upper()
            lowered_key = key.lower()
            for suffix in MTL_SUFFIXES:
                if name.endswith(suffix.upper()):
                    mtl_candidates.setdefault(suffix, path)
            if lowered_key.startswith("mtl") or lowered_key.endswith("_mtl"):
                ext = path.suffix.lower()
                suffix = {".json": "_MTL.json", ".xml": "_MTL.xml"}.get(ext, "_MTL.txt")
                mtl_candidates.setdefault(suffix, path)
        mtl_path = next(
            (
                mtl_candidates[s]
                for s in ("_MTL.json", "_MTL.xml", "_MTL.txt")
                if s in mtl_candidates
            ),
            None,
        )
        if mtl_path is None:
            raise InvalidInputError(
                FieldProblem(
                    "files.MTL",
                    f"no Landsat MTL file among {sorted(files)}",
                    "download the product's _MTL.txt, _MTL.json or _MTL.xml with its bands",
                )
            )
        metadata = landsat_metadata(parse_mtl(mtl_path))
        _refuse_collection1(metadata, mtl_path)
        by_name = {path.name.upper(): path for path in files.values()}
        bands: dict[str, Path] = {}
        for band, file_name in metadata.band_files.items():
            if file_name.upper() in by_name:
                bands[band] = by_name[file_name.upper()]
        qa_pixel = by_name.get((metadata.qa_pixel_file or "").upper())
        angles = {
            name: by_name[file_name.upper()]
            for name, file_name in metadata.angle_files.items()
            if file_name.upper() in by_name
        }
        ang_path = by_name.get((metadata.ang_file or "").upper())
        for key, path in files.items():  # assets named by key (``red.tif``, ``qa_pixel.tif``)
            if path == mtl_path or path.suffix.lower() not in (".tif", ".tiff"):
                if ang_path is None and _is_ang(key, path):
                    ang_path = path
                continue
            upper_key = key.upper()
            if qa_pixel is None and (
                upper_key in ("QA_PIXEL", "BQA") or upper_key.endswith(("_QA_PIXEL", "_BQA"))
            ):
                qa_pixel = path
                continue
            angle = next(
                (a for a in ANGLE_BANDS if upper_key == a or upper_key.endswith("_" + a)), None
            )
            if angle is not None:
                angles.setdefault(angle, path)
                continue
            band_id = _band_id_of(key, _common_names(metadata))
            if band_id is not None and band_id not in bands and "QA" not in upper_key:
                bands[band_id] = path
        roots = {path.parent for path in files.values()}
        return cls(
            root=roots.pop() if len(roots) == 1 else mtl_path.parent,
            mtl_path=mtl_path,
            metadata=metadata,
            bands=bands,
            qa_pixel=qa_pixel,
            angles=angles,
            ang_path=ang_path,
        )
