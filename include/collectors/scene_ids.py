"""Sentinel-2 and Landsat scene ids parsed by their official naming conventions.

Accepted forms (DESIGN 4: a scene id is validated before it becomes a path):

- Sentinel-2 compact product name (ESA S2 Products Specification, naming since Dec 2016):
  ``MMM_MSIXXX_YYYYMMDDTHHMMSS_Nxxyy_ROOO_Txxxxx_YYYYMMDDTHHMMSS`` with mission S2A-S2D, level
  MSIL1C or MSIL2A and an optional ``.SAFE`` suffix.
- Landsat Collection 1/2 product id (USGS): ``LXSS_LLLL_PPPRRR_YYYYMMDD_yyyymmdd_CC_TX``.
- Landsat scene id (USGS, legacy): ``LXSPPPRRRYYYYDDDGSIVV``.

Anything else (old long S2 names, granule ids) raises ``InvalidInputError`` whose fix shows the
expected form. Catalog item ids (``S2A_13TDE_20231008_0_L2A``...) are not product names either:
``catalog_item_id`` recognises them and says which catalogs name their items so, so that a
``scenes`` search of that catalog can take them (its STAC ``ids`` search finds the product).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from include.common.errors import FieldProblem, InvalidInputError

Family = Literal["sentinel-2", "landsat"]
IdKind = Literal["s2-product", "landsat-product", "landsat-scene"]

S2_EXAMPLE = "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429"
LANDSAT_EXAMPLE = "LC08_L1TP_221069_20200110_20200114_02_T1"
LANDSAT_SCENE_EXAMPLE = "LC82210692020010LGN00"

_S2_FORM = "MMM_MSIXXX_YYYYMMDDTHHMMSS_Nxxyy_ROOO_Txxxxx_YYYYMMDDTHHMMSS"
_S2_MISSIONS = ("S2A", "S2B", "S2C", "S2D")
_S2_LEVELS = {"MSIL1C": "L1C", "MSIL2A": "L2A"}
_S2_STAMP = re.compile(r"^\d{8}T\d{6}$")

_LANDSAT_FORM = "LXSS_LLLL_PPPRRR_YYYYMMDD_yyyymmdd_CC_TX"
_LANDSAT_LEVELS = ("L1TP", "L1GT", "L1GS", "L2SP", "L2SR")
_LANDSAT_CATEGORIES = ("RT", "T1", "T2")
_LANDSAT_SCENE_RE = re.compile(r"^L([A-Z])(\d)(\d{3})(\d{3})(\d{4})(\d{3})([A-Z]{3})(\d{2})$")

# Sensor letter -> satellites that carried it and the sensor's name there.
_LANDSAT_SENSORS: dict[str, dict[int, str]] = {
    "M": {1: "MSS", 2: "MSS", 3: "MSS", 4: "MSS", 5: "MSS"},
    "T": {4: "TM", 5: "TM", 8: "TIRS", 9: "TIRS"},
    "E": {7: "ETM+"},
    "O": {8: "OLI", 9: "OLI"},
    "C": {8: "OLI_TIRS", 9: "OLI_TIRS"},
}

# MGRS 100 km column letters repeat every three zones; I and O are never used.
_MGRS_COLUMNS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
_MGRS_RE = re.compile(r"^T?(\d{1,2})([C-HJ-NP-X])([A-HJ-NP-Z])([A-HJ-NP-V])$")
_WRS_RE = re.compile(r"^(\d{3})[/-]?(\d{3})$")


@dataclass(frozen=True, slots=True)
class SceneIdentity:
    """What a scene id says: mission, level, acquisition time, tile and processing facts.

    ``datetime`` is the sensing start for Sentinel-2 and the acquisition date at 00:00 UTC for
    Landsat (the id carries no time). ``tile`` is the MGRS tile without ``T`` or the WRS path/row
    as ``PPPRRR``. ``level`` is None for legacy Landsat scene ids, which do not carry one.
    """

    scene_id: str
    kind: IdKind
    family: Family
    platform: str
    sensor: str
    level: str | None
    datetime: datetime
    tile: str
    processing_baseline: str | None = None
    relative_orbit: int | None = None
    product_discriminator: str | None = None
    processing_date: date | None = None
    collection_number: int | None = None
    collection_category: str | None = None
    ground_station: str | None = None
    archive_version: int | None = None

    @property
    def baseline_tuple(self) -> tuple[int, int] | None:
        """Return the processing baseline as a comparable ``(major, minor)``, e.g. ``(2, 8)``."""
        if self.processing_baseline is None:
            return None
        major, minor = self.processing_baseline.split(".")
        return int(major), int(minor)

    @property
    def wrs_path(self) -> int | None:
        """Return the WRS path of a Landsat id, else None."""
        return int(self.tile[:3]) if self.family == "landsat" else None

    @property
    def wrs_row(self) -> int | None:
        """Return the WRS row of a Landsat id, else None."""
        return int(self.tile[3:]) if self.family == "landsat" else None


@dataclass(frozen=True, slots=True)
class CatalogItemId:
    """A STAC item id as a catalog names a scene's item, not the product name.

    ``catalogs`` are the registry keys of the catalogs whose items are named so (the ``scenes``
    of a conf for one of them may hold it), ``source`` says which catalog and collection in
    words, and ``product_form`` is the product name with the parts the item id lacks spelled
    as placeholders (``Nxxyy``: the processing baseline...).
    """

    item_id: str
    catalogs: tuple[str, ...]
    source: str
    product_form: str


_PC_S2_ITEM = re.compile(
    r"^(S2[A-D])_(MSIL1C|MSIL2A)_(\d{8}T\d{6})_(R\d{3})_(T\d{2}[C-HJ-NP-X][A-Z]{2})_(\d{8}T\d{6})$"
)
_ES_S2_ITEM = re.compile(r"^(S2[A-D])_(\d{1,2}[C-HJ-NP-X][A-Z]{2})_(\d{8})_\d+_(L1C|L2A)$")
_ES_C1_ITEM = re.compile(r"^(S2[A-D])_(T\d{2}[C-HJ-NP-X][A-Z]{2})_(\d{8}T\d{6})_(L1C|L2A)$")
_LANDSAT_ITEM = re.compile(r"^(L[COTEM]\d{2}_L[12][A-Z]{2}_\d{6}_\d{8})_(\d{2}_(?:RT|T1|T2))$")
_S2_PRODUCT_LEVEL = {"L1C": "MSIL1C", "L2A": "MSIL2A"}


def catalog_item_id(value: str) -> CatalogItemId | None:
    """Return what a catalog item id is, or None when ``value`` is not one.

    Recognised (the forms the providers' recorded answers and docs show):

    - Planetary Computer ``sentinel-2-l2a``:
      ``S2A_MSIL2A_20200731T080611_R078_T35MNM_20200818T062751`` (the product name without its
      baseline ``Nxxyy``);
    - Earth Search ``sentinel-2-l2a``/``-l1c``: ``S2A_13TDE_20231008_0_L2A``;
    - Earth Search ``sentinel-2-c1-l2a``: ``S2B_T20EPT_20250731T131905_L2A``;
    - Earth Search and Planetary Computer ``landsat-c2-l2``: ``LC09_L2SP_084068_20250722_02_T2``
      (the product id without its processing date).
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if match := _PC_S2_ITEM.match(text):
        mission, level, sensed, orbit, tile, generated = match.groups()
        return CatalogItemId(
            text,
            ("planetarycomputer",),
            "a Planetary Computer sentinel-2-l2a item id",
            f"{mission}_{level}_{sensed}_Nxxyy_{orbit}_{tile}_{generated}",
        )
    if match := _ES_S2_ITEM.match(text):
        mission, tile, day, level = match.groups()
        return CatalogItemId(
            text,
            ("earthsearch",),
            "an Earth Search sentinel-2 item id",
            f"{mission}_{_S2_PRODUCT_LEVEL[level]}_{day}Thhmmss_Nxxyy_Rooo_T{tile.zfill(5)}_"
            "<generation time>",
        )
    if match := _ES_C1_ITEM.match(text):
        mission, tile, sensed, level = match.groups()
        return CatalogItemId(  # its time is the granule's, seconds off the product's sensing
            text,
            ("earthsearch",),
            "an Earth Search sentinel-2-c1-l2a item id",
            f"{mission}_{_S2_PRODUCT_LEVEL[level]}_{sensed[:8]}Thhmmss_Nxxyy_Rooo_{tile}_"
            "<generation time>",
        )
    if match := _LANDSAT_ITEM.match(text):
        acquisition, collection = match.groups()
        return CatalogItemId(
            text,
            ("earthsearch", "planetarycomputer"),
            "an Earth Search / Planetary Computer landsat-c2-l2 item id",
            f"{acquisition}_<processing date YYYYMMDD>_{collection}",
        )
    return None


def item_id_problem(item: CatalogItemId, field: str, catalog: str | None) -> FieldProblem:
    """Return why ``item`` cannot name a scene of ``catalog``, and what to give instead."""
    searched = f"catalog {catalog!r}" if catalog else "this catalog"
    others = " or ".join(repr(name) for name in item.catalogs)
    named_by = "s2:product_uri" if item.item_id.startswith("S2") else "landsat:product_id"
    return FieldProblem(
        field,
        f"{_shown(item.item_id)} is {item.source}, which {searched} does not know",
        f"give the product name {item.product_form} (the item's {named_by}), or search "
        f"catalog {others}",
    )


def is_mgrs_tile(value: str) -> str | None:
    """Return the canonical MGRS tile (``23LLF``) for ``value``, or None when it is not one.

    Accepts an optional leading ``T`` and any case; checks zone 01-60, latitude band C-X
    (no I, O), the 100 km column letter set of the zone and row letter A-V (no I, O).
    """
    if not isinstance(value, str):
        return None
    match = _MGRS_RE.match(value.strip().upper())
    if match is None:
        return None
    zone_text, band, column, row = match.groups()
    zone = int(zone_text)
    if not 1 <= zone <= 60 or column not in _MGRS_COLUMNS[(zone - 1) % 3]:
        return None
    return f"{zone:02d}{band}{column}{row}"


def parse_wrs2_pathrow(value: str) -> str | None:
    """Return a WRS-2 path/row as ``PPPRRR`` (``221069``), or None when it is not one.

    Accepts ``221069``, ``221/069`` and ``221-069``; path 001-233, row 001-248.
    """
    if not isinstance(value, str):
        return None
    match = _WRS_RE.match(value.strip())
    if match is None:
        return None
    path, row = int(match.group(1)), int(match.group(2))
    if _wrs_problem(path, row, wrs1=False):
        return None
    return f"{path:03d}{row:03d}"


def parse_scene_id(scene_id: str, *, field: str = "scene_id") -> SceneIdentity:
    """Parse a Sentinel-2 product name or a Landsat product/scene id.

    Args:
        scene_id: the id; surrounding blanks and a ``.SAFE`` suffix are dropped, case is ignored.
        field: the input field named in errors, e.g. ``scenes[3]``.

    Returns:
        The identity, whose ``scene_id`` is the canonical (uppercase, no ``.SAFE``) id.

    Raises:
        InvalidInputError: one ``FieldProblem`` naming ``field``, what is wrong and the form to use.
    """
    if not isinstance(scene_id, str):
        raise _problem(field, f"must be a string, not {type(scene_id).__name__}", _any_fix())
    text = scene_id.strip()
    if not text:
        raise _problem(field, "is empty", _any_fix())
    if "/" in text or "\\" in text or ".." in text:
        raise _problem(
            field,
            f"{_shown(text)} contains a path separator or '..'",
            "give the bare product name, not a path, e.g. " + repr(S2_EXAMPLE),
        )
    canonical = text.upper()
    if canonical.endswith(".SAFE"):
        canonical = canonical[: -len(".SAFE")]
    if canonical.startswith("S2"):
        return _parse_sentinel2(canonical, field)
    if canonical.startswith("L") and "_" in canonical:
        return _parse_landsat_product(canonical, field)
    if canonical.startswith("L") and len(canonical) == 21:
        return _parse_landsat_scene(canonical, field)
    raise _problem(field, f"{_shown(text)} is not a Sentinel-2 or Landsat scene id", _any_fix())


def _parse_sentinel2(text: str, field: str) -> SceneIdentity:
    parts = text.split("_")
    fix = f"use the compact product name {_S2_FORM}, e.g. {S2_EXAMPLE!r}"
    if len(parts) > 1 and parts[1] in ("OPER", "USER"):
        raise _problem(
            field,
            f"{_shown(text)} is an old-format product or granule name",
            f"use the compact product name (PRODUCT_URI in MTD_MSIL1C.xml), e.g. {S2_EXAMPLE!r}",
        )
    item = catalog_item_id(text)
    if item is not None:
        raise _problem(
            field,
            f"{_shown(text)} is {item.source}, not a product name (no baseline Nxxyy)",
            f"use the product name {item.product_form} (the item's s2:product_uri), or give "
            "the item id with the catalog that names it so",
        )
    if len(parts) != 7:
        raise _problem(field, f"{_shown(text)} has {len(parts)} parts, not 7", fix)
    mission, product, sensing, baseline, orbit, tile, discriminator = parts
    reasons: list[str] = []
    if mission not in _S2_MISSIONS:
        reasons.append(f"mission {mission!r} is not one of {', '.join(_S2_MISSIONS)}")
    if product not in _S2_LEVELS:
        reasons.append(f"product level {product!r} is not MSIL1C or MSIL2A")
    sensed = _stamp(sensing)
    if sensed is None:
        reasons.append(f"sensing time {sensing!r} is not a valid YYYYMMDDTHHMMSS")
    if not re.fullmatch(r"N\d{4}", baseline):
        reasons.append(f"processing baseline {baseline!r} is not Nxxyy")
    if not re.fullmatch(r"R\d{3}", orbit) or not 1 <= int(orbit[1:]) <= 143:
        reasons.append(f"relative orbit {orbit!r} is not R001-R143")
    mgrs = is_mgrs_tile(tile) if tile.startswith("T") else None
    if mgrs is None:
        reasons.append(f"tile {tile!r} is not T + an MGRS tile such as T23LLF")
    if _stamp(discriminator) is None:
        reasons.append(f"product discriminator {discriminator!r} is not a YYYYMMDDTHHMMSS")
    if reasons or sensed is None or mgrs is None:
        raise _problem(
            field,
            f"{_shown(text)} is not a valid Sentinel-2 product name: " + "; ".join(reasons),
            fix,
        )
    return SceneIdentity(
        scene_id=text,
        kind="s2-product",
        family="sentinel-2",
        platform="sentinel-2" + mission[-1].lower(),
        sensor="MSI",
        level=_S2_LEVELS[product],
        datetime=sensed,
        tile=mgrs,
        processing_baseline=f"{baseline[1:3]}.{baseline[3:5]}",
        relative_orbit=int(orbit[1:]),
        product_discriminator=discriminator,
    )


def _parse_landsat_product(text: str, field: str) -> SceneIdentity:
    parts = text.split("_")
    fix = f"use a Landsat product id {_LANDSAT_FORM}, e.g. {LANDSAT_EXAMPLE!r}"
    if len(parts) == 6 and re.fullmatch(r"\d{8}", parts[3]) and re.fullmatch(r"\d{2}", parts[4]):
        raise _problem(
            field,
            f"{_shown(text)} lacks the processing date (a catalog item id, not a product id)",
            "use the full product id (landsat:product_id or LANDSAT_PRODUCT_ID in the MTL), e.g. "
            + repr(LANDSAT_EXAMPLE)
            + ", or give the item id with a catalog that names items so (earthsearch, "
            "planetarycomputer)",
        )
    if len(parts) != 7:
        raise _problem(field, f"{_shown(text)} has {len(parts)} parts, not 7", fix)
    mission, level, pathrow, acquired_text, processed_text, collection, category = parts
    reasons: list[str] = []
    platform, sensor, satellite = "", "", 0
    mission_match = re.fullmatch(r"L([A-Z])(\d{2})", mission)
    if mission_match is None:
        reasons.append(f"{mission!r} is not L + sensor letter + two-digit satellite (LC08)")
    else:
        satellite = int(mission_match.group(2))
        sensor, reason = _landsat_sensor(mission_match.group(1), satellite)
        platform = f"landsat-{satellite}"
        if reason:
            reasons.append(reason)
    if level not in _LANDSAT_LEVELS:
        reasons.append(f"correction level {level!r} is not one of {', '.join(_LANDSAT_LEVELS)}")
    tile = _landsat_pathrow(pathrow, satellite, reasons)
    acquired = _yyyymmdd(acquired_text)
    processed = _yyyymmdd(processed_text)
    if acquired is None:
        reasons.append(f"acquisition date {acquired_text!r} is not a valid YYYYMMDD")
    if processed is None:
        reasons.append(f"processing date {processed_text!r} is not a valid YYYYMMDD")
    elif acquired is not None and processed < acquired:
        reasons.append("processing date is before the acquisition date")
    if collection not in ("01", "02"):
        reasons.append(f"collection {collection!r} is not 01 or 02")
    if category not in _LANDSAT_CATEGORIES:
        reasons.append(f"category {category!r} is not one of {', '.join(_LANDSAT_CATEGORIES)}")
    if level.startswith("L2") and (collection != "02" or category == "RT" or sensor == "MSS"):
        reasons.append(f"{level} exists only for Collection 2 tier T1/T2 TM, ETM+ or OLI data")
    if reasons or acquired is None or processed is None or tile is None:
        raise _problem(
            field, f"{_shown(text)} is not a valid Landsat product id: " + "; ".join(reasons), fix
        )
    return SceneIdentity(
        scene_id=text,
        kind="landsat-product",
        family="landsat",
        platform=platform,
        sensor=sensor,
        level=level,
        datetime=datetime(acquired.year, acquired.month, acquired.day, tzinfo=UTC),
        tile=tile,
        processing_date=processed,
        collection_number=int(collection),
        collection_category=category,
    )


def _parse_landsat_scene(text: str, field: str) -> SceneIdentity:
    fix = f"use a Landsat scene id LXSPPPRRRYYYYDDDGSIVV, e.g. {LANDSAT_SCENE_EXAMPLE!r}"
    match = _LANDSAT_SCENE_RE.match(text)
    if match is None:
        raise _problem(field, f"{_shown(text)} is not a valid Landsat scene id", fix)
    letter, satellite_text, path, row, year, day, station, version = match.groups()
    reasons: list[str] = []
    satellite = int(satellite_text)
    sensor, reason = _landsat_sensor(letter, satellite)
    if reason:
        reasons.append(reason)
    tile = _landsat_pathrow(path + row, satellite, reasons)
    acquired: date | None = None
    days_in_year = 366 if calendar.isleap(int(year)) else 365
    if int(year) >= 1 and 1 <= int(day) <= days_in_year:
        acquired = date(int(year), 1, 1) + timedelta(days=int(day) - 1)
    else:
        reasons.append(f"day of year {day!r} is not valid in {year}")
    if reasons or acquired is None or tile is None:
        raise _problem(
            field, f"{_shown(text)} is not a valid Landsat scene id: " + "; ".join(reasons), fix
        )
    return SceneIdentity(
        scene_id=text,
        kind="landsat-scene",
        family="landsat",
        platform=f"landsat-{satellite}",
        sensor=sensor,
        level=None,
        datetime=datetime(acquired.year, acquired.month, acquired.day, tzinfo=UTC),
        tile=tile,
        ground_station=station,
        archive_version=int(version),
    )


def _landsat_sensor(letter: str, satellite: int) -> tuple[str, str]:
    """Return ``(sensor name, "")``, or ``("", why the letter/satellite pair is invalid)``."""
    carried = _LANDSAT_SENSORS.get(letter)
    if carried is None:
        return "", f"sensor letter {letter!r} is not one of C, O, T, E, M"
    if satellite not in carried:
        return "", f"Landsat {satellite} carried no sensor {letter!r}"
    return carried[satellite], ""


def _landsat_pathrow(pathrow: str, satellite: int, reasons: list[str]) -> str | None:
    if not re.fullmatch(r"\d{6}", pathrow):
        reasons.append(f"path/row {pathrow!r} is not PPPRRR")
        return None
    problem = _wrs_problem(int(pathrow[:3]), int(pathrow[3:]), wrs1=1 <= satellite <= 3)
    if problem:
        reasons.append(problem)
        return None
    return pathrow


def _wrs_problem(path: int, row: int, *, wrs1: bool) -> str:
    """Return why a path/row is outside WRS-1 (Landsat 1-3) or WRS-2, or ''."""
    last_path, system = (251, "WRS-1") if wrs1 else (233, "WRS-2")
    if not 1 <= path <= last_path:
        return f"path {path:03d} is outside {system} 001-{last_path}"
    if not 1 <= row <= 248:
        return f"row {row:03d} is outside {system} 001-248"
    return ""


def _stamp(text: str) -> datetime | None:
    if not _S2_STAMP.match(text):
        return None
    try:
        return datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _yyyymmdd(text: str) -> date | None:
    if not re.fullmatch(r"\d{8}", text):
        return None
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _any_fix() -> str:
    return (
        f"use a Sentinel-2 product name such as {S2_EXAMPLE!r} or a Landsat product id "
        f"such as {LANDSAT_EXAMPLE!r}"
    )


def _problem(field: str, message: str, fix: str) -> InvalidInputError:
    return InvalidInputError(FieldProblem(field, message, fix))


# --------------------------------------------------------------------------------------------
# One product, several processings


def product_key(scene_id: str) -> tuple[str, ...]:
    """Return what identifies the acquisition of ``scene_id``, whatever its processing.

    Sentinel-2: mission, level, sensing time, relative orbit and tile (the baseline and the
    generation time are left out); Landsat: mission, sensor, level, path/row and acquisition date
    (the processing date and collection are left out). Any other id is its own key.
    """
    try:
        identity = parse_scene_id(scene_id)
    except InvalidInputError:
        return (scene_id,)
    return (
        identity.family,
        identity.platform,
        identity.sensor,
        identity.level or "",
        identity.datetime.isoformat(),
        identity.tile,
        str(identity.relative_orbit or ""),
    )


def processing_rank(scene_id: str) -> tuple[object, ...]:
    """Return a sortable rank of the processing of ``scene_id``: the newest ranks highest.

    Sentinel-2: processing baseline, then generation time (the product discriminator);
    Landsat: processing date, then collection number.
    """
    try:
        identity = parse_scene_id(scene_id)
    except InvalidInputError:
        return ()
    if identity.family == "sentinel-2":
        return (identity.baseline_tuple or (0, 0), identity.product_discriminator or "")
    return (
        (identity.processing_date or date.min).isoformat(),
        identity.collection_number or 0,
    )
