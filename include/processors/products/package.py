"""One resolver from what a step received to a collection's bands, with their radiometry.

A download hands the next step what the provider sent: a Sentinel-2 SAFE (``.zip`` or folder),
a Landsat Collection 2 bundle (``.tar`` or folder), or one file per STAC asset (``B04.tif``,
``red.tif``, ``product_metadata.xml``, ``mtl.txt``...). A processing step hands on one file per
band in the collection's encoding. ``open_package`` reads any of them: an archive is extracted
once, safely, beside itself (``<archive>.d``) and reused by every later step and rerun;
product metadata among the files makes it a product. ``resolve_bands`` then maps the package to
a collection's bands and says, per band, how its numbers become physical values:

- a raster that declares its own scale/offset (our processors' outputs) keeps them;
- a Sentinel-2 band takes ``1 / QUANTIFICATION_VALUE`` and ``RADIO_ADD_OFFSET`` (L1C) or
  ``BOA_ADD_OFFSET`` (L2A) ``/ QUANTIFICATION_VALUE`` from that product's MTD (baselines
  before 04.00 have no offset list: no offset);
- a Landsat Level-2 band takes the MTL's surface reflectance ``REFLECTANCE_MULT/ADD`` or
  surface temperature ``TEMPERATURE_MULT/ADD`` (kelvin); a Level-1 band the MTL's TOA
  reflectance gains divided by sin(sun elevation), or its radiance gains for thermal bands;
- anything else takes the collection's band config.

What the catalog said about the scene and its files may not (``SceneHints``) is passed in:
the MGRS tile picks the granule of an old-format SAFE of several; Earth Search's
``earthsearch:boa_offset_applied`` says its COGs already hold ``DN + BOA_ADD_OFFSET`` (read with
``1 / QUANTIFICATION_VALUE`` and no offset); the processing baseline stands in for product
metadata a per-asset download lacks.

``require_sensor`` refuses a product of another sensor than the collection's (a TM scene in an
OLI collection would put TM's band 4, near infrared, under OLI's band 4, red), and a TIRS-only
scene (LT08/LT09) in a collection of reflective bands.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rasterio
from rasterio.errors import RasterioError

from include.collectors.scene_ids import is_mgrs_tile
from include.common.config import BandConfig, CollectionConfig, load_collections
from include.common.errors import ConfigError, FieldProblem, InvalidInputError
from include.processors.products.archive import extract_archive, is_archive, unpacked_folder
from include.processors.products.landsat import MTL_SUFFIXES, LandsatProduct
from include.processors.products.sentinel2 import (
    PRODUCT_METADATA_KEYS,
    S2_BANDS,
    TILE_METADATA_KEYS,
    Sentinel2Product,
    canonical_band,
    is_product_metadata_name,
    is_tile_metadata_name,
)

if TYPE_CHECKING:
    from include.collectors.base import Scene
    from include.processors.base import ProcessorInputs

log = logging.getLogger(__name__)

Product = Sentinel2Product | LandsatProduct

LANDSAT_SENSOR_INSTRUMENTS: dict[str, tuple[str, ...]] = {
    "OLI_TIRS": ("oli", "tirs"),
    "OLI": ("oli",),
    "TIRS": ("tirs",),
    "ETM": ("etm+",),
    "TM": ("tm",),
    "MSS": ("mss",),
}
"""MTL ``SENSOR_ID`` -> STAC instruments."""
THERMAL_ONLY_INSTRUMENTS = frozenset({"tirs"})
"""Instruments without reflective bands: a scene of only these fills no reflectance band."""
_ID_INSTRUMENTS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(r"^S2[A-D]_"), ("msi",)),
    (re.compile(r"^LC0[89]"), ("oli", "tirs")),
    (re.compile(r"^LO0[89]"), ("oli",)),
    (re.compile(r"^LT0[89]"), ("tirs",)),
    (re.compile(r"^LE07"), ("etm+",)),
    (re.compile(r"^LT0[45]"), ("tm",)),
    (re.compile(r"^LM0[1-5]"), ("mss",)),
    (re.compile(r"^LC[89]\d{6}"), ("oli", "tirs")),  # legacy scene ids
    (re.compile(r"^LE7\d{6}"), ("etm+",)),
    (re.compile(r"^LT[45]\d{6}"), ("tm",)),
)
"""Product or scene id prefix -> instruments (Landsat ``LXSS``: sensor letter, satellite)."""


BOA_OFFSET_APPLIED = "boa_offset_applied"
"""Scene property (Earth Search ``earthsearch:boa_offset_applied``, kept by the STAC driver)."""


@dataclass(frozen=True, slots=True)
class SceneHints:
    """What the catalog said about a scene that its downloaded files may not say themselves."""

    tile: str | None = None
    """MGRS tile (``31TDH``): picks the granule of an old-format SAFE holding several."""
    baseline: str | None = None
    """Processing baseline (``05.11``), for per-asset files without product metadata."""
    offset_applied: bool = False
    """The provider already added ``BOA_ADD_OFFSET`` to the values (Earth Search v1 L2A)."""

    @classmethod
    def of(cls, scene: Scene) -> SceneHints:
        """Return the hints of a catalog ``Scene`` (a WRS-2 path/row is no MGRS tile: None)."""
        baseline = scene.properties.get("processing_baseline")
        return cls(
            tile=is_mgrs_tile(scene.tile) if scene.tile else None,
            baseline=str(baseline) if baseline else None,
            offset_applied=_is_true(scene.properties.get(BOA_OFFSET_APPLIED)),
        )


def _is_true(value: Any) -> bool:
    """A STAC boolean, also as the string some catalogs send (``"true"``)."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


@dataclass(frozen=True, slots=True)
class Package:
    """What a step received, opened: a provider product, plain band files, or both."""

    label: str
    """How errors name it: the archive or folder name, or ``assets``."""
    assets: dict[str, Path]
    """Files by key: the step's own keys, or file stems inside an archive or folder."""
    product: Product | None = None
    container: bool = False
    """Whether it came as one archive or folder (a whole provider product)."""

    @property
    def metadata_files(self) -> dict[str, Path]:
        """The product's metadata files by role (empty when it is not a product)."""
        product = self.product
        if isinstance(product, Sentinel2Product):
            found = {
                "product_metadata": product.metadata_path,
                "tile_metadata": product.tile_metadata_path,
            }
        elif isinstance(product, LandsatProduct):
            found = {"mtl": product.mtl_path, "ang": product.ang_path}
        else:
            return {}
        return {key: path for key, path in found.items() if path is not None}


@dataclass(frozen=True, slots=True)
class BandFile:
    """One collection band found in a package and how to read its numbers."""

    band: BandConfig
    path: Path
    scale: float | None
    offset: float | None
    source: str
    """Where scale/offset came from: ``raster``, ``MTD``, ``MTL`` or ``config``."""


@dataclass(frozen=True, slots=True)
class ResolvedBands:
    """A package mapped to a collection: bands found, bands lacking, keys that are no band."""

    bands: list[BandFile]
    missing: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Opening


def _listing(folder: Path) -> dict[str, Path]:
    """Return the files below ``folder`` by name (``_MTL.txt`` and ``_MTL.xml`` share a stem)."""
    return {path.name: path for path in sorted(folder.rglob("*")) if path.is_file()}


def _has_landsat_mtl(files: Mapping[str, Path]) -> bool:
    for key, path in files.items():
        if path.name.upper().endswith(tuple(s.upper() for s in MTL_SUFFIXES)):
            return True
        if key.lower().startswith("mtl") or key.lower().endswith("_mtl"):
            return True
    return False


def _has_s2_metadata(files: Mapping[str, Path]) -> bool:
    return any(
        is_product_metadata_name(path.name)
        or is_tile_metadata_name(path.name)
        or (
            path.suffix.lower() == ".xml"
            and key.lower() in (*PRODUCT_METADATA_KEYS, *TILE_METADATA_KEYS)
        )
        for key, path in files.items()
    )


def _has_s2_band_files(files: Mapping[str, Path]) -> bool:
    """Whether provider band files (``B04.jp2``) are among ``files``, metadata or not."""
    return any(
        path.suffix.lower() == ".jp2" and canonical_band(key) is not None
        for key, path in files.items()
    )


def _open_container(container: Path, tile: str | None) -> Package:
    folder = container
    if container.is_file():
        folder = extract_archive(container, unpacked_folder(container))
    listing = _listing(folder)
    product: Product | None
    if _has_landsat_mtl(listing):
        product = LandsatProduct.from_files(listing)
    elif _has_s2_metadata(listing):
        product = Sentinel2Product.open(folder, tile=tile)
    else:
        raise InvalidInputError(
            FieldProblem(
                f"files[{container.name}]",
                "holds neither a Sentinel-2 SAFE (MTD_MSIL1C/2A.xml) nor a Landsat bundle (_MTL)",
                "download the provider's whole product (SAFE .zip or Collection 2 .tar)",
            )
        )
    return Package(label=container.name, assets=listing, product=product, container=True)


def single_container(files: Mapping[str, Path]) -> Path | None:
    """Return the one archive or folder ``files`` consists of (a whole product), else None."""
    if len(files) != 1:
        return None
    only = Path(next(iter(files.values())))
    return only if only.is_dir() or is_archive(only) else None


def open_package(files: Mapping[str, Path], *, hints: SceneHints | None = None) -> Package:
    """Open what a step received: one archive or folder, or files by key.

    Args:
        files: the parent step's files by key.
        hints: what the catalog said about the scene (``SceneHints.of(scene)``): its tile
            (granule of a several-granule SAFE), baseline (assets without product metadata)
            and whether the provider applied the BOA offset.

    Raises:
        InvalidInputError: a file is missing; an archive or folder that is no known product;
            a SAFE without the scene tile's granule.
        UnsafeArchiveError, IntegrityError: a bad archive.
    """
    hints = hints or SceneHints()
    paths = {key: Path(path) for key, path in files.items()}
    missing = [key for key, path in paths.items() if not path.exists()]
    if missing:
        raise InvalidInputError(
            [
                FieldProblem(
                    f"files[{paths[key].name}]",
                    f"{paths[key]} does not exist",
                    "run the previous step again",
                )
                for key in missing
            ]
        )
    container = single_container(paths)
    if container is not None:
        return _open_container(container, hints.tile)  # a whole product: its own metadata
    product: Product | None = None
    if _has_landsat_mtl(paths):
        product = LandsatProduct.from_files(paths)
    elif _has_s2_metadata(paths) or (hints.baseline and _has_s2_band_files(paths)):
        product = Sentinel2Product.from_files(
            paths, baseline_hint=hints.baseline, offset_applied=hints.offset_applied
        )
    return Package(label="assets", assets=paths, product=product)


def unpacked_inputs(inputs: ProcessorInputs) -> ProcessorInputs:
    """Return a step's inputs with a provider package among its files unpacked.

    ``band_inputs`` for the inputs' collection and scene (its hints pick the granule).
    """
    files = band_inputs(
        inputs.files, inputs.collection, inputs.scene.scene_id, hints=SceneHints.of(inputs.scene)
    )
    return replace(inputs, files=files)


def band_inputs(
    files: Mapping[str, Path],
    collection: CollectionConfig,
    scene_id: str | None,
    *,
    hints: SceneHints | None = None,
) -> dict[str, Path]:
    """Return a step's input files with a whole product (one archive or folder) unpacked.

    A provider package becomes the collection's band files keyed by band name, plus the
    product's metadata files (and Landsat angle bands) keyed by file stem, so processors that
    read bands by key take what a download produced; step outputs pass through unchanged.
    ``hints`` (``SceneHints.of(scene)``) pick the scene's granule in a SAFE holding several.

    Raises:
        InvalidInputError: a product of another sensor, or one lacking a band (named).
    """
    if single_container(files) is None:
        require_sensor(Package("assets", {}), collection, scene_id)
        return dict(files)
    package = open_package(files, hints=hints)
    require_sensor(package, collection, scene_id)
    resolved = resolve_bands(package, collection)
    unpacked: dict[str, Path] = {bf.band.name: bf.path for bf in resolved.bands}
    extras = list(package.metadata_files.values())
    if isinstance(package.product, LandsatProduct):
        extras += list(package.product.angles.values())
    unpacked.update({path.stem: path for path in extras})
    log.info(
        "package.unpacked package=%s bands=%s",
        package.label,
        ",".join(bf.band.name for bf in resolved.bands),
    )
    return unpacked


# --------------------------------------------------------------------------------------------
# Sensors


def instruments_of(package: Package, scene_id: str | None = None) -> tuple[str, ...]:
    """Return the package's instruments (MTL sensor, else the product or scene id's prefix)."""
    product = package.product
    if isinstance(product, LandsatProduct) and product.metadata.sensor:
        known = LANDSAT_SENSOR_INSTRUMENTS.get(product.metadata.sensor.upper())
        if known:
            return known
    if isinstance(product, Sentinel2Product):
        return ("msi",)
    ids = [scene_id or ""]
    if isinstance(product, LandsatProduct):
        ids.insert(0, product.metadata.product_id or "")
    for identifier in ids:
        if instruments := instruments_of_id(identifier):
            return instruments
    return ()


def instruments_of_id(identifier: str) -> tuple[str, ...]:
    """Return the instruments a Sentinel-2 or Landsat product/scene id names, else ()."""
    for pattern, instruments in _ID_INSTRUMENTS:
        if pattern.match(identifier):
            return instruments
    return ()


def _collections_for(instruments: tuple[str, ...], like: CollectionConfig) -> list[str]:
    try:
        configured = load_collections()
    except ConfigError:
        return []
    matching = [c for c in configured.values() if set(c.instruments) & set(instruments)]
    same_level = [c.name for c in matching if c.level == like.level]
    return same_level or [c.name for c in matching]


def require_sensor(package: Package, collection: CollectionConfig, scene_id: str | None) -> None:
    """Refuse a product whose instruments the collection does not take.

    Raises:
        InvalidInputError: naming the product's sensor and the collections that take it.
    """
    instruments = instruments_of(package, scene_id)
    if not collection.instruments or not instruments:
        return
    reflective = set(collection.instruments) - THERMAL_ONLY_INSTRUMENTS
    if reflective and set(instruments) <= THERMAL_ONLY_INSTRUMENTS:
        name = scene_id or package.label
        raise InvalidInputError(
            FieldProblem(
                "collection",
                f"{name} is a TIRS-only scene: it has no reflective bands for {collection.name} "
                f"({'/'.join(sorted(reflective))})",
                "leave TIRS-only scenes (LT08/LT09 product ids) out of this collection's tasks",
            )
        )
    if set(instruments) & set(collection.instruments):
        return
    others = _collections_for(instruments, collection)
    name = scene_id or package.label
    raise InvalidInputError(
        FieldProblem(
            "collection",
            f"{name} is a {'/'.join(instruments)} product; {collection.name} holds "
            f"{'/'.join(collection.instruments)} bands, numbered differently",
            f"use {' or '.join(others)}"
            if others
            else "configure a collection with this sensor's own bands",
        )
    )


# --------------------------------------------------------------------------------------------
# Bands


def _declared_scale_offset(path: Path) -> tuple[float, float] | None:
    """Return the raster's own non-neutral scale/offset (our processors' outputs), else None."""
    try:
        with rasterio.open(path) as ds:
            scale, offset = ds.scales[0], ds.offsets[0]
    except (RasterioError, IndexError):
        return None
    if (scale in (None, 1.0)) and (offset in (None, 0.0)):
        return None
    return float(scale if scale is not None else 1.0), float(offset or 0.0)


def _s2_band(product: Sentinel2Product, band: BandConfig) -> tuple[Path, str] | None:
    for candidate in (band.name, *band.aliases):
        name = canonical_band(candidate)
        if name is not None and product.has_band(name):
            return product.band_path(name, band.resolution_m), name
    return None


def _s2_radiometry(product: Sentinel2Product, name: str) -> tuple[float | None, float | None]:
    if name not in S2_BANDS:
        return None, None
    meta = product.metadata
    scale = 1.0 / meta.quantification_value
    offset = meta.offsets.get(name)
    return scale, (offset / meta.quantification_value if offset is not None else None)


def _landsat_id(band: BandConfig) -> str:
    """Return the MTL band id of a collection band: ``B4``/``SR_B4`` -> ``4``, ``ST_B10`` kept."""
    upper = band.name.upper()
    if upper.startswith("ST_B"):
        return upper
    return upper.removeprefix("SR_").removeprefix("B")


def _landsat_band(product: LandsatProduct, band: BandConfig) -> tuple[Path, str] | None:
    band_id = _landsat_id(band)
    if band_id in ("QA_PIXEL", "BQA"):
        return (product.qa_pixel, "QA_PIXEL") if product.qa_pixel is not None else None
    candidates = [band_id]
    if band_id.startswith("ST_B"):
        candidates.append(band_id.removeprefix("ST_B"))  # STAC assets keyed lwir11/lwir
    for candidate in candidates:
        path = product.bands.get(candidate)
        if path is not None:
            return path, band_id
    return None


def _landsat_radiometry(product: LandsatProduct, band_id: str) -> tuple[float | None, float | None]:
    meta = product.metadata
    if meta.is_level2:
        if band_id in meta.sr_mult and band_id in meta.sr_add:
            return meta.sr_mult[band_id], meta.sr_add[band_id]
        if band_id in meta.st_mult and band_id in meta.st_add:
            return meta.st_mult[band_id], meta.st_add[band_id]
        return None, None
    if band_id in meta.toa_mult and band_id in meta.toa_add:
        return meta.toa_scale_offset(band_id)
    if band_id in meta.radiance_mult and band_id in meta.radiance_add:
        return meta.radiance_mult[band_id], meta.radiance_add[band_id]
    return None, None


def _from_product(product: Product, band: BandConfig) -> BandFile | None:
    if isinstance(product, Sentinel2Product):
        found = _s2_band(product, band)
        if found is None:
            return None
        path, name = found
        scale, offset = _s2_radiometry(product, name)
        source = "MTD"
    else:
        found = _landsat_band(product, band)
        if found is None:
            return None
        path, name = found
        scale, offset = _landsat_radiometry(product, name)
        source = "MTL"
    if scale is None and offset is None:
        return BandFile(band, path, band.scale, band.offset, "config")
    return BandFile(band, path, scale, offset, source)


def _by_key(assets: Mapping[str, Path], collection: CollectionConfig) -> dict[str, Path]:
    """Map asset keys to band names; a key equal to the band name wins over an alias."""
    chosen: dict[str, tuple[str, Path]] = {}
    for key in sorted(assets):
        band = collection.band(key)
        if band is None:
            continue
        previous = chosen.get(band.name)
        if previous is None or (key.lower() == band.name.lower() != previous[0].lower()):
            chosen[band.name] = (key, assets[key])
    return {name: path for name, (_, path) in chosen.items()}


def resolve_bands(package: Package, collection: CollectionConfig) -> ResolvedBands:
    """Map ``package`` to ``collection``'s bands, in collection order.

    Keys named like a band (our steps' outputs, STAC assets) are taken first; otherwise the
    product's own file for that band. Scale/offset: the raster's own, else the product
    metadata's, else the band config's (see the module docstring).

    Raises:
        InvalidInputError: a whole product (archive or folder) lacks a band the collection
            needs, naming the bands and the package; or no band of the collection at all.
    """
    keyed = _by_key(package.assets, collection) if not package.container else {}
    found: list[BandFile] = []
    missing: list[str] = []
    for band in collection.bands:
        band_file: BandFile | None = None
        if band.name in keyed:
            band_file = BandFile(band, keyed[band.name], band.scale, band.offset, "config")
            if package.product is not None:
                from_product = _from_product(package.product, band)
                if from_product is not None and from_product.path == band_file.path:
                    band_file = from_product
        elif package.product is not None:
            band_file = _from_product(package.product, band)
        if band_file is None:
            if not band.optional:
                missing.append(band.name)
            continue
        declared = _declared_scale_offset(band_file.path)
        if declared is not None:
            band_file = BandFile(band, band_file.path, *declared, "raster")
        found.append(band_file)
    used = {bf.path for bf in found}
    ignored = sorted(key for key, path in package.assets.items() if path not in used)
    if package.container and missing:
        raise InvalidInputError(
            FieldProblem(
                "files",
                f"{package.label} has no {', '.join(missing)} band for {collection.name}",
                "download the provider's complete product again, or publish it to a collection "
                "of its own product type",
            )
        )
    if not found:
        raise InvalidInputError(
            FieldProblem(
                "files",
                f"no file is a band of {collection.name} in {package.label} "
                f"(keys: {sorted(package.assets)[:20]})",
                f"give asset keys named like its bands: "
                f"{', '.join(band.name for band in collection.bands)}",
            )
        )
    return ResolvedBands(bands=found, missing=missing, ignored=ignored)
