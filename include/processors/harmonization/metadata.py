"""Product metadata the harmonization needs: reflectance scaling, platform, angle files.

Parsing is the product readers' (``include.processors.products``: DTD-refusing XML, the
Sentinel-2 product metadata, the Landsat MTL in its three formats); this module adds what the
harmonization needs on top:

- ``read_s2_product_metadata``: ``reflectance = (DN + offset) / quantification`` per band
  (DESIGN 5), refusing a baseline >= 04.00 file without offset lists (never assume);
- ``read_landsat_mtl``: spacecraft, sensor, level, scene-centre sun angles and the Level-2 surface
  reflectance ``REFLECTANCE_MULT/ADD`` by band number (Collection 2 only);
- ``parse_ang``: the USGS ``ANG.txt`` (ODL) with its value lists as numbers;
- ``find_metadata``: which of a step's input files are the tile metadata (``MTD_TL.xml`` or the
  AWS ``metadata.xml``), the product metadata, the MTL, the ``ANG.txt`` and the angle bands.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include.common.errors import FieldProblem, InvalidInputError
from include.processors.products.landsat import landsat_metadata, parse_mtl
from include.processors.products.landsat import parse_odl as parse_odl_tree
from include.processors.products.sentinel2 import (
    S2_BANDS,
    Sentinel2Metadata,
    baseline_number,
    parse_product_metadata,
)
from include.processors.products.xmlsafe import find_local, iter_local, local_name, parse_xml

S2_BAND_IDS: tuple[str, ...] = tuple(S2_BANDS)
"""Sentinel-2 ``bandId`` 0..12 in metadata order (B8A after B08)."""

ANGLE_BAND_KINDS: tuple[str, ...] = ("SZA", "SAA", "VZA", "VAA")
_SNIFF_BYTES = 2048
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

__all__ = [
    "ANGLE_BAND_KINDS",
    "S2_BAND_IDS",
    "LandsatFacts",
    "MetadataFiles",
    "find_local",
    "find_metadata",
    "iter_local",
    "local_name",
    "parse_ang",
    "parse_xml",
    "read_landsat_mtl",
    "read_s2_product_metadata",
    "s2_unit",
]


# --------------------------------------------------------------------------- ANG.txt (ODL)


def _ang_scalar(token: str) -> str | int | float:
    token = token.strip().strip('"')
    if _NUMBER.match(token):
        number = float(token)
        return int(number) if re.fullmatch(r"[-+]?\d+", token) else number
    return token


def parse_ang(text: str) -> dict[str, dict[str, Any]]:
    """Parse a USGS ``ANG.txt`` into ``{group: {key: value}}`` with numbers as numbers.

    Values are ``str``, ``int``/``float``, or tuples of those for ``(a, b, ...)`` lists (which
    span several lines in the file).

    Raises:
        ValueError: the text is not ODL (unbalanced groups, a line that is not ``KEY = value``).
    """
    groups: dict[str, dict[str, Any]] = {}
    for name, body in parse_odl_tree(text).items():
        if not isinstance(body, dict):
            continue
        values: dict[str, Any] = {}
        for key, raw in body.items():
            if not isinstance(raw, str):
                continue
            text_value = raw.strip()
            if text_value.startswith("(") and text_value.endswith(")"):
                values[key] = tuple(
                    _ang_scalar(part) for part in text_value[1:-1].split(",") if part.strip()
                )
            else:
                values[key] = _ang_scalar(text_value)
        groups[name] = values
    return groups


# --------------------------------------------------------------------------- Sentinel-2


def s2_unit(spacecraft: str | None) -> str | None:
    """Return ``S2A``/``S2B``/``S2C`` for ``Sentinel-2A``... (None when not Sentinel-2)."""
    if spacecraft and spacecraft.strip().upper().startswith("SENTINEL-2") and spacecraft.strip():
        return "S2" + spacecraft.strip()[-1].upper()
    return None


def read_s2_product_metadata(path: Path) -> Sentinel2Metadata:
    """Read a Sentinel-2 product metadata file (``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``).

    ``reflectance = (DN + offset) / quantification`` comes from the file (the L1C
    ``QUANTIFICATION_VALUE`` + ``RADIO_ADD_OFFSET``, the L2A ``BOA_QUANTIFICATION_VALUE`` +
    ``BOA_ADD_OFFSET``); products before baseline 04.00 have no offsets.

    Raises:
        InvalidInputError: the file is not Sentinel-2 product metadata, or it says baseline
            >= 04.00 but lists no offsets (the offset would be guessed otherwise).
    """
    metadata = parse_product_metadata(path)
    baseline = baseline_number(metadata.processing_baseline)
    if baseline is not None and baseline >= 4.0 and not metadata.offsets:
        tag = "RADIO_ADD_OFFSET" if metadata.level == "L1C" else "BOA_ADD_OFFSET"
        raise InvalidInputError(
            FieldProblem(
                f"files[{path.name}]",
                f"processing baseline {metadata.processing_baseline} has {tag} values but the "
                "file lists none",
                "give the product's own, complete metadata file",
            )
        )
    return metadata


# --------------------------------------------------------------------------- Landsat


@dataclass(frozen=True, slots=True)
class LandsatFacts:
    """What a Landsat Collection 2 MTL says (the parts the harmonization uses)."""

    path: Path
    spacecraft: str
    """``LANDSAT_5``, ``LANDSAT_7``, ``LANDSAT_8``, ``LANDSAT_9``."""
    sensor: str
    """``TM``, ``ETM``, ``OLI_TIRS``, ``OLI``."""
    processing_level: str
    sun_azimuth: float | None
    sun_elevation: float | None
    sr_scaling: dict[int, tuple[float, float]] = field(default_factory=dict)
    """Band number -> (REFLECTANCE_MULT, REFLECTANCE_ADD) of the Level-2 surface reflectance."""

    @property
    def is_oli(self) -> bool:
        """Whether the reflective bands are OLI's (Landsat 8/9)."""
        return self.sensor.upper().startswith("OLI")


def read_landsat_mtl(path: Path) -> LandsatFacts:
    """Read spacecraft, sensor, level, sun angles and SR scaling from a Collection 2 MTL.

    Raises:
        InvalidInputError: the file is not an MTL, or is a Collection 1 MTL (refused: its angle
            and scaling conventions differ and USGS retired Collection 1).
    """
    document = parse_mtl(path)
    where = f"files[{path.name}]"
    if document.collection == 1 or document.root_name == "L1_METADATA_FILE":
        raise InvalidInputError(
            FieldProblem(
                where,
                "is a Landsat Collection 1 MTL (L1_METADATA_FILE)",
                "use Collection 2 products; Collection 1 was retired by USGS",
            )
        )
    metadata = landsat_metadata(document)
    if not metadata.spacecraft:
        raise InvalidInputError(
            FieldProblem(
                where,
                "has no IMAGE_ATTRIBUTES/SPACECRAFT_ID",
                "give the scene's Collection 2 MTL (txt, xml or json)",
            )
        )
    scaling = {
        int(band): (mult, metadata.sr_add[band])
        for band, mult in metadata.sr_mult.items()
        if band.isdigit() and band in metadata.sr_add
    }
    return LandsatFacts(
        path=path,
        spacecraft=metadata.spacecraft,
        sensor=metadata.sensor or "",
        processing_level=metadata.processing_level or "",
        sun_azimuth=metadata.sun_azimuth_deg,
        sun_elevation=metadata.sun_elevation_deg,
        sr_scaling=scaling,
    )


# --------------------------------------------------------------------------- discovery


@dataclass(frozen=True, slots=True)
class MetadataFiles:
    """The metadata among a step's input files (None when absent)."""

    tile_metadata: Path | None = None
    product_metadata: Path | None = None
    mtl: Path | None = None
    ang: Path | None = None
    angle_bands: dict[str, Path] = field(default_factory=dict)
    """``SZA``/``SAA``/``VZA``/``VAA`` -> raster path (Landsat C2 angle bands)."""
    keys: frozenset[str] = frozenset()
    """The input keys recognised as metadata (so they are not taken for bands)."""


_DIR_SUFFIXES = frozenset({".xml", ".txt", ".json", ".tif", ".tiff"})
"""Files looked at inside folders (by content for xml/txt/json, by name for angle rasters)."""
_DIR_MAX_FILES = 5000


def _sniff(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return handle.read(_SNIFF_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _classify(key: str, path: Path) -> tuple[str, str] | None:
    """Return ``(kind, detail)`` for a metadata file, or None when it is not one."""
    name = path.name.upper()
    norm_key = key.strip().lower().replace("-", "_").replace(".", "_")
    suffix = path.suffix.lower()
    for kind in ANGLE_BAND_KINDS:
        if suffix in (".tif", ".tiff") and (
            path.stem.upper().endswith(f"_{kind}")
            or norm_key == kind.lower()
            or norm_key.endswith(f"_{kind.lower()}")
        ):
            return "angle_band", kind
    if suffix not in (".xml", ".txt", ".json"):
        return None
    head = _sniff(path)
    if suffix == ".xml":
        match = re.search(
            r"<(?:[\w.-]+:)?([\w.-]+)[\s>]", re.sub(r"<\?.*?\?>", "", head, flags=re.S)
        )
        root = match.group(1) if match else ""
        if root.endswith("Tile_ID"):
            return "tile_metadata", root
        if root.endswith("User_Product"):
            return "product_metadata", root
        if root == "LANDSAT_METADATA_FILE":
            return "mtl", root
        return None
    if suffix == ".json":
        return ("mtl", "json") if "LANDSAT_METADATA_FILE" in head else None
    first = head.lstrip().splitlines()[0] if head.strip() else ""
    if first.replace(" ", "") == "GROUP=FILE_HEADER" or name.endswith("_ANG.TXT"):
        return "ang", "odl"
    if first.replace(" ", "") == "GROUP=LANDSAT_METADATA_FILE":
        return "mtl", "odl"
    return None


def find_metadata(files: Mapping[str, Path]) -> MetadataFiles:
    """Find the metadata files among a step's inputs (files, or folders searched below).

    Files are recognised by content (XML root element, ODL first group) and by the USGS file name
    suffixes, so the asset keys providers use (``granule_metadata``, ``product-metadata``,
    ``mtl.txt``, ``ang``...) all work. Files given directly come before files found in folders
    (an upstream step's output folder); the first of each kind wins.

    Args:
        files: the parent step's files by key; values may be folders (an extracted product).

    Returns:
        What was found; absent kinds are None.
    """
    found: dict[str, Path] = {}
    angle_bands: dict[str, Path] = {}
    keys: set[str] = set()
    candidates: list[tuple[str, Path]] = [(k, p) for k, p in files.items() if not p.is_dir()]
    for path in (p for p in files.values() if p.is_dir()):  # files given directly win
        inside = sorted(p for p in path.rglob("*") if p.suffix.lower() in _DIR_SUFFIXES)
        candidates.extend((p.stem, p) for p in inside[:_DIR_MAX_FILES] if p.is_file())
    for key, path in candidates:
        if not path.is_file():
            continue
        kind = _classify(key, path)
        if kind is None:
            continue
        keys.add(key)
        if kind[0] == "angle_band":
            angle_bands.setdefault(kind[1], path)
        else:
            found.setdefault(kind[0], path)
    return MetadataFiles(
        tile_metadata=found.get("tile_metadata"),
        product_metadata=found.get("product_metadata"),
        mtl=found.get("mtl"),
        ang=found.get("ang"),
        angle_bands=angle_bands,
        keys=frozenset(keys),
    )
