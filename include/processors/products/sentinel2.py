"""Sentinel-2 products: metadata (MTD_MSIL1C.xml, MTD_MSIL2A.xml, MTD_TL.xml) and band files.

A product comes as a SAFE folder, a SAFE archive (``.zip`` from CDSE) or a folder of STAC
assets (Earth Search, Planetary Computer, the demo catalog) whose files are named by asset key
(``B04.tif`` or ``red.tif``, ``product_metadata.xml``, ``granule_metadata.xml``).

Radiometry (Sentinel-2 Products Specification Document, PSD 14.x/15.x; DESIGN 5):

- L1C: ``rho_TOA = (DN + RADIO_ADD_OFFSET[b]) / QUANTIFICATION_VALUE`` with
  ``General_Info/Product_Image_Characteristics/QUANTIFICATION_VALUE`` and
  ``Radiometric_Offset_List/RADIO_ADD_OFFSET band_id="b"``;
- L2A: ``rho_BOA = (DN + BOA_ADD_OFFSET[b]) / BOA_QUANTIFICATION_VALUE`` with
  ``QUANTIFICATION_VALUES_LIST/BOA_QUANTIFICATION_VALUE`` and
  ``BOA_ADD_OFFSET_VALUES_LIST/BOA_ADD_OFFSET band_id="b"`` (older Sen2Cor output prefixes the
  names with ``L2A_``);
- ``band_id`` 0..12 is B01, B02, B03, B04, B05, B06, B07, B08, B8A, B09, B10, B11, B12; the
  offset lists exist from processing baseline 04.00 on (and in the 05.xx Collection-1
  reprocessing), absent before, which means an offset of 0. DN 0 is NODATA, 65535 SATURATED
  (``Special_Values``).

Nothing is assumed when the product metadata is there. Without it (a granule folder that only
has its tile metadata), the values the specification fixes for baselines before 04.00
(quantification 10000, no offset) are used, and only for those baselines, read from the tile id.

Layouts read: the compact SAFE (December 2016 on: ``MTD_MSIL1C.xml``, ``GRANULE/L1C_T.../``,
``T..._B04.jp2``; L2A ``IMG_DATA/R10m|R20m|R60m/..._B04_10m.jp2``, ``QI_DATA/MSK_CLDPRB_20m``,
Sen2Cor 2.4's ``L2A_T..._B04_10m`` and ``..._CLD_20m``) and the older "OPER" SAFE
(``S2A_OPER_MTD_SAFL1C_PDMC_...xml``, granules ``S2A_OPER_MSI_L1C_TL_..._T31TDH_N02.04`` with
``..._B04.jp2``), whose several granules are told apart by the scene's tile.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from include.common.errors import FieldProblem, InvalidInputError
from include.processors.products.archive import (
    ExtractionLimits,
    extract_archive,
    is_archive,
    unpacked_folder,
)
from include.processors.products.xmlsafe import find_local, iter_local, parse_xml, text_of

log = logging.getLogger(__name__)

S2_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
"""Band names in ``band_id`` order (0..12)."""
NATIVE_RESOLUTION_M: dict[str, float] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
    "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20, "SCL": 20, "AOT": 10, "WVP": 10,
    "TCI": 10, "MSK_CLASSI": 60, "CLD": 20, "SNW": 20,
}  # fmt: skip
COMMON_NAMES: dict[str, str] = {
    "coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05",
    "rededge2": "B06", "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09",
    "cirrus": "B10", "swir16": "B11", "swir22": "B12", "scl": "SCL", "aot": "AOT", "wvp": "WVP",
    "visual": "TCI", "cloud": "CLD", "snow": "SNW",
}  # fmt: skip
"""STAC ``eo:common_name``-style asset keys (Earth Search) -> band names."""
OTHER_LAYERS = ("SCL", "AOT", "WVP", "TCI", "MSK_CLASSI", "CLD", "SNW")
"""Layers without reflectance radiometry; CLD/SNW are L2A's cloud and snow probabilities."""
MSK_CLASSI = "MSK_CLASSI"
"""L1C cloud classification mask (baseline 04.00+): band 1 opaque clouds, 2 cirrus, 3 snow."""
RASTER_SUFFIXES = (".jp2", ".tif", ".tiff")
PRODUCT_METADATA_NAMES = ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml")
TILE_METADATA_NAMES = ("MTD_TL.xml",)
PRODUCT_METADATA_KEYS = ("product_metadata", "product-metadata", "mtd", "metadata_product")
"""Asset keys of MTD_MSIL*.xml: Earth Search (``_``), Planetary Computer (``-``)."""
TILE_METADATA_KEYS = ("granule_metadata", "granule-metadata", "tile_metadata", "metadata")

Level = Literal["L1C", "L2A"]

_BAND_IN_NAME = re.compile(
    r"(?:^|_)(B(?:0[1-9]|1[0-2]|8A)|SCL|AOT|WVP|TCI|CLD|SNW)(?:_(\d{2})m)?$", re.IGNORECASE
)
_PROBABILITY_MASK = re.compile(r"(?:^|_)MSK_(CLD|SNW)PRB_(\d{2})m$", re.IGNORECASE)
"""L2A QI_DATA ``MSK_CLDPRB_20m`` / ``MSK_SNWPRB_60m`` (Sen2Cor 2.5 on)."""
_OLD_L2A_LAYER = re.compile(r"^S2[A-D]_USER_(SCL|CLD|SNW|AOT|WVP)_L2A_.*_(\d{2})m$", re.IGNORECASE)
"""Sen2Cor 2.0-2.3 layers in an OPER-format L2A (``S2A_USER_SCL_L2A_TL_..._20m``)."""
_OLD_PRODUCT_METADATA = re.compile(r"^S2[A-D]_(?:OPER|USER)_MTD_SAFL(?:1C|2A)_.*\.xml$", re.I)
_OLD_TILE_METADATA = re.compile(r"^S2[A-D]_(?:OPER|USER)_MTD_L(?:1C|2A)_TL_.*\.xml$", re.I)
_TILE_IN_NAME = re.compile(r"_T(\d{2}[A-Z]{3})(?:_|$)")
_BASELINE_IN_ID = re.compile(r"_N(\d{2})\.?(\d{2})(?:_|$)")
_FRACTION = re.compile(r"\.(\d+)")


def parse_time(value: str | None) -> datetime | None:
    """Parse an ESA timestamp (``2018-01-01T10:54:41.026Z``, any fraction digits) as UTC."""
    if not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def baseline_number(baseline: str | None) -> float | None:
    """Return ``"04.00"`` as 4.0 (None when absent or malformed)."""
    if not baseline:
        return None
    try:
        return float(baseline)
    except ValueError:
        return None


def baseline_from_id(identifier: str) -> str | None:
    """Return the processing baseline (``"02.09"``) from a product, tile or datastrip id."""
    match = _BASELINE_IN_ID.search(identifier)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def is_product_metadata_name(name: str) -> bool:
    """Whether ``name`` is S2 product metadata (``MTD_MSIL1C.xml``, ``S2A_OPER_MTD_SAFL1C_*``)."""
    return name in PRODUCT_METADATA_NAMES or bool(_OLD_PRODUCT_METADATA.match(name))


def is_tile_metadata_name(name: str) -> bool:
    """Whether a file name is S2 tile metadata (``MTD_TL.xml``, ``S2A_OPER_MTD_L1C_TL_*``)."""
    return name in TILE_METADATA_NAMES or bool(_OLD_TILE_METADATA.match(name))


def canonical_band(key: str) -> str | None:
    """Return the band name (``B04``, ``B8A``, ``SCL``) for an asset key or a file stem."""
    text = key.strip()
    lowered = text.lower()
    if MSK_CLASSI.lower() in lowered:
        return MSK_CLASSI
    if lowered in COMMON_NAMES:
        return COMMON_NAMES[lowered]
    if lowered.endswith("-jp2") and lowered[:-4] in COMMON_NAMES:
        return COMMON_NAMES[lowered[:-4]]
    special = _PROBABILITY_MASK.search(text) or _OLD_L2A_LAYER.match(text)
    if special:
        return special.group(1).upper()
    if lowered.startswith("msk_"):
        return None  # MSK_DETFOO_B04, MSK_QUALIT_B04: per-band quality masks, not bands
    match = _BAND_IN_NAME.search(text)
    if match:
        name = match.group(1).upper()
        return name
    if re.fullmatch(r"B0?8A", text, re.IGNORECASE):
        return "B8A"
    if re.fullmatch(r"B\d{1,2}", text, re.IGNORECASE):
        number = int(text[1:])
        return f"B{number:02d}" if 1 <= number <= 12 else None
    return None


def _resolution_in_name(stem: str) -> float | None:
    match = (
        _PROBABILITY_MASK.search(stem) or _OLD_L2A_LAYER.match(stem) or _BAND_IN_NAME.search(stem)
    )
    if match and match.group(2):
        return float(match.group(2))
    return None


@dataclass(frozen=True, slots=True)
class Sentinel2Metadata:
    """What the product metadata (MTD_MSIL1C.xml / MTD_MSIL2A.xml) says.

    ``offsets`` maps band names to the additive DN offset (``RADIO_ADD_OFFSET`` for L1C,
    ``BOA_ADD_OFFSET`` for L2A); it is empty before baseline 04.00.
    """

    level: Level
    quantification_value: float
    offsets: dict[str, float] = field(default_factory=dict)
    product_uri: str | None = None
    product_type: str | None = None
    processing_baseline: str | None = None
    spacecraft: str | None = None
    sensing_time: datetime | None = None
    generation_time: datetime | None = None
    datatake_id: str | None = None
    relative_orbit: int | None = None
    cloud_cover_pct: float | None = None
    nodata_value: int = 0
    saturated_value: int = 65535
    image_files: tuple[str, ...] = ()
    """``IMAGE_FILE`` entries: paths inside the SAFE without extension."""
    reflectance_conversion_u: float | None = None
    source: str = "product metadata"
    """Where the radiometry came from: ``product metadata`` or ``specification default``."""

    @property
    def baseline(self) -> float | None:
        """The processing baseline as a number (4.0 for ``04.00``)."""
        return baseline_number(self.processing_baseline)

    @property
    def platform(self) -> str | None:
        """Return ``sentinel-2a`` for ``Sentinel-2A`` (STAC ``platform``)."""
        return self.spacecraft.lower() if self.spacecraft else None

    def offset(self, band: str) -> float:
        """Return the DN offset of ``band`` (0 when the product has none for it)."""
        return self.offsets.get(band, 0.0)

    def with_offsets_applied(self, note: str) -> Sentinel2Metadata:
        """Return this metadata for values a provider already shifted by the offsets.

        Earth Search's ``sentinel-2-l2a`` COGs with ``earthsearch:boa_offset_applied`` hold
        ``DN + BOA_ADD_OFFSET``: reflectance is ``DN / quantification``, no offset again.
        """
        return replace(self, offsets={}, source=f"{self.source}, {note}")

    def reflectance_scale_offset(self, band: str) -> tuple[float, float]:
        """Return ``(scale, offset)`` such that ``reflectance = DN * scale + offset``."""
        quantification = self.quantification_value
        return 1.0 / quantification, self.offset(band) / quantification


def _float(text: str | None, where: str, path: Path) -> float:
    try:
        return float(text or "")
    except ValueError as err:
        raise InvalidInputError(
            FieldProblem(
                f"{path.name}: {where}",
                f"{text!r} is not a number",
                "give the product's own, unedited metadata file",
            )
        ) from err


def _level_of(root_tag: str, product_type: str | None, processing_level: str | None) -> Level:
    joined = " ".join(filter(None, (root_tag, product_type, processing_level))).upper()
    if "2A" in joined:
        return "L2A"
    if "1C" in joined:
        return "L1C"
    raise ValueError(joined)


_IMAGE_TAGS = ("IMAGE_FILE", "IMAGE_FILE_2A", "IMAGE_ID", "IMAGE_ID_2A")
"""Band file entries: compact SAFE (``_2A`` from Sen2Cor 2.4), OPER SAFE (``IMAGE_ID``)."""


def parse_product_metadata(path: Path) -> Sentinel2Metadata:
    """Parse MTD_MSIL1C.xml or MTD_MSIL2A.xml (any PSD version, namespaces ignored).

    Raises:
        InvalidInputError: not S2 product metadata, or without its quantification value.
    """
    root = parse_xml(path)
    root_tag = root.tag.rsplit("}", 1)[-1]
    product_type = text_of(root, "PRODUCT_TYPE")
    try:
        level = _level_of(root_tag, product_type, text_of(root, "PROCESSING_LEVEL"))
    except ValueError as err:
        raise InvalidInputError(
            FieldProblem(
                f"files[{path.name}]",
                f"is not Sentinel-2 L1C or L2A product metadata (root {root_tag})",
                "give MTD_MSIL1C.xml or MTD_MSIL2A.xml",
            )
        ) from err
    if level == "L1C":
        quantification_text = text_of(root, "QUANTIFICATION_VALUE")
        offset_tag = "RADIO_ADD_OFFSET"
    else:
        quantification_text = text_of(
            root, "BOA_QUANTIFICATION_VALUE", "L2A_BOA_QUANTIFICATION_VALUE"
        )
        offset_tag = "BOA_ADD_OFFSET"
    if quantification_text is None:
        tag = "QUANTIFICATION_VALUE" if level == "L1C" else "BOA_QUANTIFICATION_VALUE"
        raise InvalidInputError(
            FieldProblem(
                f"files[{path.name}]",
                f"has no {tag}",
                "give the product's complete metadata file",
            )
        )
    quantification = _float(quantification_text, "QUANTIFICATION_VALUE", path)
    if quantification <= 0:
        raise InvalidInputError(
            FieldProblem(f"files[{path.name}]", "quantification value is not positive", "check it")
        )
    offsets: dict[str, float] = {}
    for tag in (offset_tag, f"L2A_{offset_tag}"):
        for element in iter_local(root, tag):
            band_id = element.get("band_id") or element.get("bandId")
            if band_id is None or not band_id.isdigit() or int(band_id) >= len(S2_BANDS):
                raise InvalidInputError(
                    FieldProblem(
                        f"files[{path.name}]: {tag}",
                        f"band_id {band_id!r} is not 0..12",
                        "give the product's own metadata file",
                    )
                )
            offsets[S2_BANDS[int(band_id)]] = _float(element.text, tag, path)
    baseline = text_of(root, "PROCESSING_BASELINE")
    product_uri = text_of(root, "PRODUCT_URI", "PRODUCT_URI_2A", "PRODUCT_URI_1C")
    if baseline is None and product_uri:
        baseline = baseline_from_id(product_uri)
    number = baseline_number(baseline)
    if not offsets and number is not None and 4.0 <= number < 99.0:
        raise InvalidInputError(
            FieldProblem(
                f"files[{path.name}]",
                f"processing baseline {baseline} has {offset_tag} values but the file lists "
                "none (the PSD gives one per band from 04.00 on; without them every value "
                "would be off by the offset)",
                "download the product's own, complete metadata file again",
            )
        )
    nodata, saturated = 0, 65535
    for special in iter_local(root, "Special_Values"):
        label = (text_of(special, "SPECIAL_VALUE_TEXT") or "").upper()
        index = text_of(special, "SPECIAL_VALUE_INDEX")
        if index is not None and index.lstrip("-").isdigit():
            if label == "NODATA":
                nodata = int(index)
            elif label == "SATURATED":
                saturated = int(index)
    datatake = find_local(root, "Datatake")
    orbit = text_of(root, "SENSING_ORBIT_NUMBER")
    cloud = text_of(root, "Cloud_Coverage_Assessment", "CLOUDY_PIXEL_PERCENTAGE")
    u_text = text_of(root, "U")
    return Sentinel2Metadata(
        level=level,
        quantification_value=quantification,
        offsets=offsets,
        product_uri=product_uri.removesuffix(".SAFE") if product_uri else None,
        product_type=product_type,
        processing_baseline=baseline,
        spacecraft=text_of(root, "SPACECRAFT_NAME"),
        sensing_time=parse_time(text_of(root, "PRODUCT_START_TIME", "DATATAKE_SENSING_START")),
        generation_time=parse_time(text_of(root, "GENERATION_TIME")),
        datatake_id=datatake.get("datatakeIdentifier") if datatake is not None else None,
        relative_orbit=int(orbit) if orbit and orbit.isdigit() else None,
        cloud_cover_pct=float(cloud) if cloud else None,
        nodata_value=nodata,
        saturated_value=saturated,
        image_files=tuple(
            element.text.strip()
            for tag in _IMAGE_TAGS
            for element in iter_local(root, tag)
            if element.text
        ),
        reflectance_conversion_u=float(u_text) if u_text else None,
    )


@dataclass(frozen=True, slots=True)
class Sentinel2TileMetadata:
    """What the tile metadata (MTD_TL.xml, AWS ``metadata.xml``) says; angle grids stay in it."""

    path: Path
    tile_id: str | None
    sensing_time: datetime | None
    epsg: int | None
    mean_sun_zenith_deg: float | None
    mean_sun_azimuth_deg: float | None
    cloud_cover_pct: float | None

    @property
    def processing_baseline(self) -> str | None:
        """The baseline in the tile id (``..._N02.09``)."""
        return baseline_from_id(self.tile_id) if self.tile_id else None

    @property
    def sun_elevation_deg(self) -> float | None:
        """Mean sun elevation (90 - mean sun zenith)."""
        return None if self.mean_sun_zenith_deg is None else 90.0 - self.mean_sun_zenith_deg


def parse_tile_metadata(path: Path) -> Sentinel2TileMetadata:
    """Parse MTD_TL.xml: tile id, sensing time, EPSG code, mean sun angles, cloud cover.

    Raises:
        InvalidInputError: when the file is not XML.
    """
    root = parse_xml(path)
    code = text_of(root, "HORIZONTAL_CS_CODE")
    epsg = int(code.split(":")[-1]) if code and code.split(":")[-1].isdigit() else None
    sun = find_local(root, "Mean_Sun_Angle")
    zenith = text_of(sun, "ZENITH_ANGLE") if sun is not None else None
    azimuth = text_of(sun, "AZIMUTH_ANGLE") if sun is not None else None
    cloud = text_of(root, "CLOUDY_PIXEL_PERCENTAGE")
    return Sentinel2TileMetadata(
        path=path,
        tile_id=text_of(root, "TILE_ID", "TILE_ID_2A"),
        sensing_time=parse_time(text_of(root, "SENSING_TIME")),
        epsg=epsg,
        mean_sun_zenith_deg=float(zenith) if zenith else None,
        mean_sun_azimuth_deg=float(azimuth) if azimuth else None,
        cloud_cover_pct=float(cloud) if cloud else None,
    )


def specification_defaults(
    level: Level, baseline: str, product_uri: str | None, *, offset_applied: bool = False
) -> Sentinel2Metadata:
    """Return the radiometry the specification fixes for baselines before 04.00.

    ``offset_applied``: the provider already added the offsets (quantification 10000 is left).

    Raises:
        InvalidInputError: for baselines 04.00 and later, whose offsets must be read.
    """
    number = baseline_number(baseline)
    if number is None or (number >= 4.0 and not offset_applied):
        raise InvalidInputError(
            FieldProblem(
                "files.product_metadata",
                f"is missing and baseline {baseline} carries per-band offsets",
                f"download the product metadata (MTD_MSI{level[1:]}.xml) with the bands, from "
                "a catalog serving it over HTTPS (CDSE, Planetary Computer, Earth Search "
                "sentinel-2-c1-l2a), or say the provider applied the offsets (offset_applied)",
            )
        )
    return Sentinel2Metadata(
        level=level,
        quantification_value=10000.0,
        processing_baseline=baseline,
        product_uri=product_uri,
        source="specification default",
    )


@dataclass
class Sentinel2Product:
    """A Sentinel-2 L1C or L2A product on disk: its metadata and its band files.

    ``bands`` maps band names (``B04``, ``SCL``) to their files by resolution in metres.
    """

    root: Path
    metadata: Sentinel2Metadata
    metadata_path: Path | None
    tile_metadata_path: Path | None
    bands: dict[str, dict[float, Path]]

    @property
    def level(self) -> Level:
        """``L1C`` or ``L2A``."""
        return self.metadata.level

    @property
    def tile_metadata(self) -> Sentinel2TileMetadata | None:
        """The parsed tile metadata, when the product has it."""
        if self.tile_metadata_path is None:
            return None
        return parse_tile_metadata(self.tile_metadata_path)

    def has_band(self, band: str) -> bool:
        """Return whether the product has a file for ``band``."""
        return bool(self.bands.get(band))

    def band_path(self, band: str, resolution_m: float | None = None) -> Path:
        """Return the file of ``band`` at ``resolution_m`` (default: its native resolution).

        When that resolution is missing, the finest one available is returned.

        Raises:
            InvalidInputError: when the product has no file for ``band``.
        """
        name = canonical_band(band) or band
        choices = self.bands.get(name)
        if not choices:
            raise InvalidInputError(
                FieldProblem(
                    f"files[{name}]",
                    f"the {self.level} product at {self.root} has no {name} band",
                    f"download it with every band (has: {', '.join(sorted(self.bands)) or 'none'})",
                )
            )
        wanted = resolution_m if resolution_m is not None else NATIVE_RESOLUTION_M.get(name)
        if wanted is not None and wanted in choices:
            return choices[wanted]
        return choices[min(choices)]

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        tile: str | None = None,
        work_dir: Path | None = None,
        limits: ExtractionLimits | None = None,
    ) -> Sentinel2Product:
        """Open a SAFE folder, a folder holding one, a SAFE archive, or a folder of assets.

        Args:
            path: the folder or the ``.zip`` (``<name>.zip`` holding ``<name>.SAFE/``, a zip
                of the SAFE's content, or ``<name>.SAFE.zip``).
            tile: the scene's MGRS tile (``31TDH``): picks the granule of an OPER-format SAFE
                holding several, and is checked against a single one.
            work_dir: where an archive is extracted (default: beside it).
            limits: archive extraction bounds.

        Raises:
            InvalidInputError: no Sentinel-2 metadata or band found; an OPER SAFE of several
                granules without ``tile``, or without that tile's granule.
            UnsafeArchiveError, IntegrityError: a bad archive.
        """
        if path.is_file() and is_archive(path):
            target = work_dir / f"{path.name}.d" if work_dir else unpacked_folder(path)
            path = extract_archive(path, target, limits=limits)
        if not path.is_dir():
            raise InvalidInputError(
                FieldProblem(
                    f"files[{path.name}]",
                    "is neither a folder nor a zip/tar archive",
                    "give the SAFE (folder or .zip) or the folder of downloaded assets",
                )
            )
        safe = _find_safe(path)
        if safe is not None:
            return cls._from_safe(safe, tile)
        return cls.from_files({p.stem: p for p in sorted(path.iterdir()) if p.is_file()})

    @classmethod
    def _from_safe(cls, safe: Path, tile: str | None = None) -> Sentinel2Product:
        metadata_path = _product_metadata_in(safe)
        if metadata_path is None:
            raise InvalidInputError(
                FieldProblem(
                    f"files[{safe.name}]",
                    "has no MTD_MSIL1C.xml or MTD_MSIL2A.xml",
                    "download the complete SAFE product",
                )
            )
        metadata = parse_product_metadata(metadata_path)
        granule = _granule_of(safe, tile)
        bands: dict[str, dict[float, Path]] = {}
        for raster in sorted(granule.glob("IMG_DATA/**/*")):
            if raster.suffix.lower() in RASTER_SUFFIXES and raster.is_file():
                _add_band(bands, raster.stem, raster)
        for raster in sorted(granule.glob("QI_DATA/*")):
            if raster.suffix.lower() in RASTER_SUFFIXES and _is_mask_layer(raster.stem):
                _add_band(bands, raster.stem, raster)
        tile_metadata = next(
            (p for p in sorted(granule.iterdir()) if is_tile_metadata_name(p.name)), None
        )
        return cls(
            root=safe,
            metadata=metadata,
            metadata_path=metadata_path,
            tile_metadata_path=tile_metadata,
            bands=bands,
        )

    @classmethod
    def from_files(
        cls,
        files: Mapping[str, Path],
        *,
        baseline_hint: str | None = None,
        offset_applied: bool = False,
    ) -> Sentinel2Product:
        """Build a product from downloaded assets keyed by asset key (or file stem).

        Args:
            files: asset key -> path (``B04``/``red``/``red-jp2``, ``product_metadata`` or
                ``product-metadata``, ``granule_metadata`` or ``granule-metadata``).
            baseline_hint: the processing baseline from the catalog, used only when neither the
                product nor the tile metadata is there.
            offset_applied: the provider already added the offsets to the values (Earth
                Search ``earthsearch:boa_offset_applied``): the MTD's offsets are not applied
                again.

        Raises:
            InvalidInputError: no product metadata for a baseline that needs it, or no band.
        """
        metadata_path: Path | None = None
        tile_path: Path | None = None
        bands: dict[str, dict[float, Path]] = {}
        # A COG key (``red``) wins over its original JP2 (``red-jp2``): with the offset
        # applied only the COG holds the shifted values.
        for key, path in sorted(files.items(), key=lambda item: item[0].lower().endswith("-jp2")):
            name = path.name
            lowered_key = key.lower()
            if is_product_metadata_name(name) or lowered_key in PRODUCT_METADATA_KEYS:
                metadata_path = path
            elif is_tile_metadata_name(name) or lowered_key in TILE_METADATA_KEYS:
                tile_path = path
            elif path.suffix.lower() in RASTER_SUFFIXES:
                _add_band(bands, key, path)
        tile = parse_tile_metadata(tile_path) if tile_path is not None else None
        if metadata_path is not None:
            metadata = parse_product_metadata(metadata_path)
        else:
            level: Level = (
                "L2A"
                if "SCL" in bands or (tile is not None and "L2A" in (tile.tile_id or ""))
                else "L1C"
            )
            baseline = (tile.processing_baseline if tile is not None else None) or baseline_hint
            if baseline is None:
                raise InvalidInputError(
                    FieldProblem(
                        "files.product_metadata",
                        "is missing and no processing baseline is known",
                        "download the product metadata asset (product_metadata) with the bands",
                    )
                )
            metadata = specification_defaults(level, baseline, None, offset_applied=offset_applied)
            log.warning(
                "sentinel2.spec_defaults baseline=%s level=%s offset_applied=%s: no product "
                "metadata, using quantification 10000 and no offset",
                baseline,
                level,
                offset_applied,
            )
        if offset_applied:
            metadata = metadata.with_offsets_applied("offset applied by the provider")
        if not bands:
            raise InvalidInputError(
                FieldProblem(
                    "files",
                    f"no Sentinel-2 band file among {sorted(files)}",
                    "download the band assets (B01..B12 or coastal..swir22)",
                )
            )
        roots = {path.parent for path in files.values()}
        return cls(
            root=roots.pop() if len(roots) == 1 else Path("."),
            metadata=metadata,
            metadata_path=metadata_path,
            tile_metadata_path=tile_path,
            bands=bands,
        )


def _is_mask_layer(stem: str) -> bool:
    """QI_DATA rasters read as layers: MSK_CLASSI_B00, MSK_CLDPRB/SNWPRB, Sen2Cor 2.4 CLD/SNW."""
    return canonical_band(stem) in (MSK_CLASSI, "CLD", "SNW")


def _tile_of(granule: Path) -> str | None:
    match = _TILE_IN_NAME.search(granule.name.upper())
    return match.group(1) if match else None


def _granule_of(safe: Path, tile: str | None) -> Path:
    """Return the granule folder of ``tile`` (the only one when ``tile`` is None).

    Raises:
        InvalidInputError: no granule; several without ``tile``; none of ``tile``.
    """
    folder = safe / "GRANULE"
    granules = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    where = f"files[{safe.name}]"
    if not granules:
        raise InvalidInputError(
            FieldProblem(where, "has no GRANULE/<granule> folder", "download the complete SAFE")
        )
    tiles = {granule: _tile_of(granule) for granule in granules}
    listed = ", ".join(sorted(t or g.name for g, t in tiles.items()))
    if len(granules) == 1 and tiles[granules[0]] is None:
        return granules[0]  # a granule name without its tile: nothing to check it against
    if tile is not None:
        wanted = tile.upper().removeprefix("T")
        chosen = [granule for granule, found in tiles.items() if found == wanted]
        if len(chosen) != 1:
            raise InvalidInputError(
                FieldProblem(
                    where,
                    f"has no granule of tile {wanted} (granules: {listed})",
                    "download the product of the scene's own tile",
                )
            )
        return chosen[0]
    if len(granules) > 1:
        raise InvalidInputError(
            FieldProblem(
                where,
                f"is an OPER-format SAFE (before December 2016) of {len(granules)} granules "
                f"({listed}) and the scene's tile is not known",
                "process it as a scene whose catalog names its MGRS tile (the pipeline "
                "passes it; Sentinel2Product.open(path, tile=...) in code), or download the "
                "single-tile product of the same date (CDSE's reprocessed baseline 05.xx)",
            )
        )
    return granules[0]


def _product_metadata_in(folder: Path) -> Path | None:
    """Return the product metadata file directly in ``folder`` (compact or OPER naming)."""
    for name in PRODUCT_METADATA_NAMES:
        if (folder / name).is_file():
            return folder / name
    return next((p for p in sorted(folder.glob("*.xml")) if is_product_metadata_name(p.name)), None)


def _add_band(bands: dict[str, dict[float, Path]], key: str, path: Path) -> None:
    name = canonical_band(key) or canonical_band(path.stem)
    if name is None:
        return
    resolution = _resolution_in_name(path.stem) or _resolution_in_name(key)
    if resolution is None:
        resolution = NATIVE_RESOLUTION_M.get(name, 10.0)
    bands.setdefault(name, {}).setdefault(float(resolution), path)


def _find_safe(path: Path) -> Path | None:
    """Return the SAFE folder at or directly below ``path`` (the one holding its MTD)."""
    candidates = [path, *sorted(p for p in path.iterdir() if p.is_dir())]
    for candidate in candidates:
        if (candidate / "GRANULE").is_dir() and _product_metadata_in(candidate) is not None:
            return candidate
    return None
