"""The ``nbar`` harmonization processor: NBAR c-factor + HLS bandpass, windowed, tiled outputs.

Registered as ``nbar`` (task type ``harmonization``). For one scene it reads the parent step's
reflectance bands and metadata, and writes into ``inputs.output_dir``:

- ``<scene>_<band>.tif`` per harmonized band: tiled (512 px), compressed GeoTIFF, int16
  reflectance x 10000 (scale 0.0001, offset 0 in the GeoTIFF), nodata pixels kept as nodata and
  never adjusted;
- ``<scene>_<band>.tif`` per quality band (``SCL``, ``QA_PIXEL``, cloud masks) copied unchanged.

They are intermediates: publish writes the COGs (with overviews) once, so no COG is encoded here
only to be decoded and encoded again (bench/journey.py).

Per pixel: ``reflectance = DN * scale + offset`` (the raster's own scale/offset when it has one,
as the correction step writes it; else the Sentinel-2 product metadata's quantification and
``BOA_ADD_OFFSET``/``RADIO_ADD_OFFSET``; else the Landsat C2 MTL's Level-2
``REFLECTANCE_MULT/ADD``), then ``NBAR = c * reflectance`` with the c-factor of the band's Roy
coefficients, and for Sentinel-2 ``OLI-like = slope * NBAR + offset`` (HLS v2.0, when
``bandpass`` is on).

The c-factor is evaluated exactly on a node grid of at most 1.25 km spacing (the angle grid,
refined by interpolating its view vectors as pixels are) and interpolated bilinearly to each
window's pixels: it matches the per-pixel evaluation within about 3e-5 while costing a few small
array operations per window instead of a dozen transcendental functions per pixel.

Options (collection ``processors.harmonization.options``, overridden by the task ``args``):
``target_sun_zenith`` (``latitude-polynomial`` default | ``scene``), ``bandpass`` (bool, default
true; Sentinel-2 only), ``window_px`` (default 1024), ``workers`` (bands at a time, default the
CPUs up to 4), ``gdal_cache_mb`` (default 256, per process), ``compress``/``level`` (of the
tiled outputs; default zstd at level 1, no predictor), ``num_threads`` (accepted for older
confs; unused).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.warp
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.windows import Window

from include.collectors.scene_ids import SceneIdentity, parse_scene_id
from include.common.config import BandConfig, CollectionConfig
from include.common.errors import (
    FieldProblem,
    InvalidInputError,
)
from include.common.storage import safe_component
from include.processors.base import Processor, ProcessorInputs, ProcessorResult
from include.processors.correction.common import (
    copy_band,
    default_workers,
    intermediate_compression,
    raster_output,
)
from include.processors.harmonization.angles import (
    AngleGrid,
    read_landsat_ang,
    read_landsat_angle_bands,
    read_s2_tile_angles,
)
from include.processors.harmonization.bandpass import (
    HLS_SOURCE,
    BandpassCoefficients,
    bandpass_coefficients,
    coefficients_source,
)
from include.processors.harmonization.brdf import (
    BR_RATIO,
    COEFFICIENTS_SOURCE,
    HB_RATIO,
    c_factor,
    target_sun_zenith,
    weights_for,
)
from include.processors.harmonization.metadata import (
    LandsatFacts,
    MetadataFiles,
    find_metadata,
    read_landsat_mtl,
    read_s2_product_metadata,
    s2_unit,
)
from include.processors.products.package import unpacked_inputs
from include.processors.products.sentinel2 import Sentinel2Metadata
from include.processors.publish.cog import CogOptions, Compression
from include.processors.registry import register

log = logging.getLogger(__name__)

NBAR_VERSION = "1.0.0"
OUTPUT_SCALE = 1e-4
OUTPUT_NODATA = -9999
"""Output nodata when the collection band declares none that fits int16."""
_INT16_MIN, _INT16_MAX = -32768, 32767
C_FACTOR_NODE_M = 1250.0
"""Largest spacing of the nodes the c-factor is evaluated at (Sentinel-2's 5 km grid is refined
4 times); bilinear interpolation of c between such nodes stays within 3e-5 of the per-pixel value
on the real tiles of the tests (2.6e-4 without the refinement)."""

S2_ROLES: dict[str, str] = {
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B08": "nir",
    "B8A": "nir",
    "B11": "swir1",
    "B12": "swir2",
}
OLI_ROLES: dict[int, str] = {2: "blue", 3: "green", 4: "red", 5: "nir", 6: "swir1", 7: "swir2"}
TM_ETM_ROLES: dict[int, str] = {1: "blue", 2: "green", 3: "red", 4: "nir", 5: "swir1", 7: "swir2"}
_ROLE_COMMON_NAMES: dict[str, frozenset[str]] = {
    "blue": frozenset({"blue"}),
    "green": frozenset({"green"}),
    "red": frozenset({"red"}),
    "nir": frozenset({"nir", "nir08"}),
    "swir1": frozenset({"swir16"}),
    "swir2": frozenset({"swir22"}),
}
QUALITY_KEYS = frozenset({"scl", "qa_pixel", "cloud_mask", "cloudmask", "fmask", "clouds", "mask"})
"""Input keys (lower case) carried over unchanged even when the collection does not list them."""

TargetSunZenith = Literal["latitude-polynomial", "scene"]
_OPTION_KEYS = (
    "target_sun_zenith",
    "bandpass",
    "window_px",
    "workers",
    "gdal_cache_mb",
    "compress",
    "level",
    "num_threads",
)
_LANDSAT_BAND_RE = re.compile(r"^(?:SR_)?B(\d{1,2})$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class NbarOptions:
    """The harmonization options, validated."""

    target_sun_zenith: TargetSunZenith = "latitude-polynomial"
    bandpass: bool = True
    window_px: int = 1024
    workers: int = 2
    """Bands processed at the same time (threads)."""
    gdal_cache_mb: int = 256
    cog: CogOptions = field(default_factory=CogOptions)

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> NbarOptions:
        """Validate options (collection options merged with task args).

        Raises:
            InvalidInputError: naming every unknown key and bad value, with the fix.
        """
        problems: list[FieldProblem] = []
        unknown = sorted(set(args) - set(_OPTION_KEYS))
        if unknown:
            problems.append(
                FieldProblem(
                    f"args.{unknown[0]}",
                    f"unknown harmonization option(s) {', '.join(unknown)}",
                    f"use only {', '.join(_OPTION_KEYS)}",
                )
            )
        target = args.get("target_sun_zenith", "latitude-polynomial")
        if target not in ("latitude-polynomial", "scene"):
            problems.append(
                FieldProblem(
                    "args.target_sun_zenith",
                    f"{target!r} is not supported",
                    "use latitude-polynomial (HLS) or scene (the scene's own mean sun zenith)",
                )
            )
        bandpass = args.get("bandpass", True)
        if not isinstance(bandpass, bool):
            problems.append(
                FieldProblem("args.bandpass", f"{bandpass!r} is not a boolean", "use true/false")
            )
        window_px = args.get("window_px", 1024)
        if (
            not isinstance(window_px, int)
            or isinstance(window_px, bool)
            or not (64 <= window_px <= 8192)
        ):
            problems.append(
                FieldProblem("args.window_px", f"{window_px!r} is not valid", "use 64..8192")
            )
        workers = args.get("workers", default_workers())
        if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 32:
            problems.append(FieldProblem("args.workers", f"{workers!r} is not valid", "use 1..32"))
        cache = args.get("gdal_cache_mb", 256)
        if not isinstance(cache, int) or isinstance(cache, bool) or not 16 <= cache <= 4096:
            problems.append(
                FieldProblem("args.gdal_cache_mb", f"{cache!r} is not valid", "use 16..4096")
            )
        if problems:
            raise InvalidInputError(problems)
        compress: Compression = args.get("compress", "zstd")
        num_threads = str(args.get("num_threads") or CogOptions.default_num_threads()).upper()
        cog = CogOptions(compress=compress, level=args.get("level"), num_threads=num_threads)
        return cls(
            target_sun_zenith=target,
            bandpass=bandpass,
            window_px=window_px,
            workers=workers,
            gdal_cache_mb=cache,
            cog=cog,
        )


@dataclass(frozen=True, slots=True)
class InputScaling:
    """How a band's stored values become reflectance: ``DN * scale + offset``."""

    scale: float
    offset: float
    source: str
    nodata: float | None


@dataclass(frozen=True, slots=True)
class BandJob:
    """One band to harmonize."""

    band: BandConfig
    role: str
    source: Path
    grid_key: str
    bandpass: BandpassCoefficients | None


@dataclass(frozen=True, slots=True)
class SceneContext:
    """What the processor knows about the scene before touching pixels."""

    family: Literal["sentinel-2", "landsat"]
    platform: str
    sensor: str
    unit: str | None
    """``S2A``/``S2B``/``S2C`` for Sentinel-2."""
    metadata: MetadataFiles
    s2_product: Sentinel2Metadata | None
    landsat: LandsatFacts | None


def find_band_file(files: Mapping[str, Path], band: BandConfig) -> Path | None:
    """Return the input file of ``band``: its name or an alias as key, else a key suffix.

    ``LC08_..._SR_B4`` (a USGS file stem) matches band ``B4`` with alias ``SR_B4``.
    """
    names = [band.name.lower(), *(alias.lower() for alias in band.aliases)]
    lowered = {key.lower(): path for key, path in files.items()}
    for name in names:
        if name in lowered and not lowered[name].is_dir():
            return lowered[name]
    for name in names:
        matches = [p for key, p in lowered.items() if key.endswith(f"_{name}") and not p.is_dir()]
        if len(matches) == 1:
            return matches[0]
    return None


def _identity(scene_id: str) -> SceneIdentity | None:
    try:
        return parse_scene_id(scene_id)
    except InvalidInputError:
        return None


def scene_context(inputs: ProcessorInputs) -> SceneContext:
    """Identify the scene (family, platform, sensor) and read its metadata files.

    Raises:
        InvalidInputError: the scene's family disagrees with the collection's, or a metadata
            file is unreadable.
    """
    collection = inputs.collection
    identity = _identity(inputs.scene.scene_id)
    family = collection.platform_family
    if identity is not None and identity.family != family:
        raise InvalidInputError(
            FieldProblem(
                "scene.scene_id",
                f"{inputs.scene.scene_id} is {identity.family}, collection {collection.name} is "
                f"{family}",
                "harmonize each scene into a collection of its own platform family",
            )
        )
    metadata = find_metadata(inputs.files)
    if family == "sentinel-2":
        product = (
            read_s2_product_metadata(metadata.product_metadata)
            if metadata.product_metadata is not None
            else None
        )
        unit = identity.scene_id[:3].upper() if identity is not None else None
        product_unit = s2_unit(product.spacecraft) if product is not None else None
        if unit is not None and product_unit is not None and unit != product_unit:
            raise InvalidInputError(
                FieldProblem(
                    "files[product_metadata]",
                    f"describes {product_unit} but the scene is {inputs.scene.scene_id}",
                    "pass the metadata of the same product as the bands",
                )
            )
        unit = unit or product_unit
        platform = (
            identity.platform
            if identity
            else (f"sentinel-2{unit[-1].lower()}" if unit else "sentinel-2")
        )
        return SceneContext(
            family=family,
            platform=platform,
            sensor="MSI",
            unit=unit,
            metadata=metadata,
            s2_product=product,
            landsat=None,
        )
    facts = read_landsat_mtl(metadata.mtl) if metadata.mtl is not None else None
    if facts is not None:
        platform = facts.spacecraft.lower().replace("_", "-")
        sensor = "OLI" if facts.is_oli else facts.sensor.upper()
    elif identity is not None:
        platform = identity.platform
        sensor = "OLI" if identity.sensor.startswith("OLI") else identity.sensor
    else:
        raise InvalidInputError(
            FieldProblem(
                "files",
                f"cannot tell which Landsat sensor made {inputs.scene.scene_id}",
                "give the scene's MTL (txt, xml or json) or use its USGS product id",
            )
        )
    if sensor.startswith("ETM"):
        sensor = "ETM+"
    if sensor not in ("OLI", "TM", "ETM+"):
        raise InvalidInputError(
            FieldProblem(
                "scene.scene_id",
                f"{platform} {sensor} has no NBAR coefficients",
                "harmonize Landsat 4/5 TM, 7 ETM+ or 8/9 OLI scenes",
            )
        )
    return SceneContext(
        family=family,
        platform=platform,
        sensor=sensor,
        unit=None,
        metadata=metadata,
        s2_product=None,
        landsat=facts,
    )


def plan_bands(
    inputs: ProcessorInputs, context: SceneContext, options: NbarOptions
) -> tuple[list[BandJob], list[tuple[BandConfig, Path]], list[str]]:
    """Return the bands to harmonize, the quality bands to carry over, and bands left out.

    Raises:
        InvalidInputError: no band to harmonize, a Landsat band's role disagrees with the
            collection's common name, or the Sentinel-2 unit is unknown while bandpass is on.
    """
    collection = inputs.collection
    files = {k: v for k, v in inputs.files.items() if k not in context.metadata.keys}
    jobs: list[BandJob] = []
    quality: list[tuple[BandConfig, Path]] = []
    left_out: list[str] = []
    for band in collection.bands:
        path = find_band_file(files, band)
        if band.center_wavelength_um is None:
            if path is not None:
                quality.append((band, path))
            continue
        role, grid_key = _role(band, context, collection)
        if role is None:
            left_out.append(band.name)
            continue
        if path is None:
            left_out.append(band.name)
            continue
        coefficients = None
        if context.family == "sentinel-2" and options.bandpass:
            if context.unit is None:
                raise InvalidInputError(
                    FieldProblem(
                        "scene.scene_id",
                        f"cannot tell which Sentinel-2 unit took {inputs.scene.scene_id}",
                        "use the ESA product name as scene id, give MTD_MSIL*.xml, or set "
                        "bandpass: false",
                    )
                )
            coefficients = bandpass_coefficients(context.unit, band.name)
        jobs.append(
            BandJob(band=band, role=role, source=path, grid_key=grid_key, bandpass=coefficients)
        )
    if not jobs:
        wanted = [b.name for b in collection.bands if b.center_wavelength_um is not None]
        raise InvalidInputError(
            FieldProblem(
                "files",
                f"no reflectance band of {collection.name} among the inputs "
                f"(keys: {', '.join(sorted(inputs.files)) or 'none'})",
                f"give bands keyed like {', '.join(wanted)} (a correction step's outputs)",
            )
        )
    known = {b.name.lower() for b, _ in quality} | {
        a.lower() for b, _ in quality for a in b.aliases
    }
    for key, path in sorted(files.items()):
        if key.lower() in QUALITY_KEYS and key.lower() not in known and path.is_file():
            quality.append((BandConfig(name=key, resolution_m=0, nodata=None), path))
    return jobs, quality, left_out


def _role(
    band: BandConfig, context: SceneContext, collection: CollectionConfig
) -> tuple[str | None, str]:
    if context.family == "sentinel-2":
        name = band.name.upper()
        return S2_ROLES.get(name), name
    match = _LANDSAT_BAND_RE.match(band.name)
    if match is None:
        return None, band.name
    number = int(match.group(1))
    table = OLI_ROLES if context.sensor == "OLI" else TM_ETM_ROLES
    role = table.get(number)
    if role is None:
        return None, f"B{number}"
    if band.common_name and band.common_name not in _ROLE_COMMON_NAMES[role]:
        raise InvalidInputError(
            FieldProblem(
                f"collection {collection.name} band {band.name}",
                f"is {band.common_name} in the collection, but {context.platform} "
                f"{context.sensor} band {number} is {role}",
                "harmonize this sensor into a collection whose band names follow its own "
                "numbering (TM/ETM+: B1 blue, B2 green, B3 red, B4 nir, B5 swir16, B7 swir22)",
            )
        )
    return role, f"B{number}"


def angle_grid(context: SceneContext, jobs: list[BandJob]) -> AngleGrid:
    """Read the scene's angle grid from the best source available.

    Sentinel-2: MTD_TL.xml. Landsat: the C2 angle bands, else ANG.txt (per-band polynomials,
    or the MTL scene-centre fallback for angle files without them).

    Raises:
        InvalidInputError: no angle source among the inputs, naming what to give.
    """
    metadata = context.metadata
    if context.family == "sentinel-2":
        if metadata.tile_metadata is None:
            raise InvalidInputError(
                FieldProblem(
                    "files",
                    "no Sentinel-2 tile metadata (MTD_TL.xml) among the inputs",
                    "pass the granule's MTD_TL.xml (key granule_metadata or MTD_TL) along with "
                    "the bands",
                )
            )
        return read_s2_tile_angles(metadata.tile_metadata)
    if len(metadata.angle_bands) == 4:
        return read_landsat_angle_bands(metadata.angle_bands, mtl=context.landsat)
    if metadata.ang is not None:
        numbers = tuple(int(job.grid_key[1:]) for job in jobs)
        return read_landsat_ang(metadata.ang, numbers, mtl=context.landsat)
    raise InvalidInputError(
        FieldProblem(
            "files",
            "no Landsat angle source among the inputs",
            "pass the scene's SZA/SAA/VZA/VAA angle bands or its ANG.txt (and MTL)",
        )
    )


def input_scaling(
    ds: rasterio.io.DatasetReader, job: BandJob, context: SceneContext
) -> InputScaling:
    """Return how ``job``'s stored values become reflectance (raster, else product metadata).

    Raises:
        InvalidInputError: nothing says how to scale the band (never assumed).
    """
    scale = float(ds.scales[0]) if ds.scales and ds.scales[0] is not None else 1.0
    offset = float(ds.offsets[0]) if ds.offsets and ds.offsets[0] is not None else 0.0
    nodata = ds.nodata
    if (scale, offset) != (1.0, 0.0):
        return InputScaling(scale, offset, "raster scale/offset", nodata)
    product = context.s2_product
    if context.family == "sentinel-2" and product is not None:
        band = job.band.name.upper()
        scale, offset = product.reflectance_scale_offset(band)
        product_file = context.metadata.product_metadata
        return InputScaling(
            scale,
            offset,
            f"{product_file.name if product_file else 'product metadata'}"
            f" (baseline {product.processing_baseline}: (DN + {product.offset(band):g}) / "
            f"{product.quantification_value:g})",
            nodata if nodata is not None else float(product.nodata_value),
        )
    facts = context.landsat
    if context.family == "landsat" and facts is not None:
        number = int(job.grid_key[1:])
        if number in facts.sr_scaling:
            mult, add = facts.sr_scaling[number]
            return InputScaling(
                mult,
                add,
                f"{facts.path.name} LEVEL2_SURFACE_REFLECTANCE_PARAMETERS",
                nodata if nodata is not None else 0.0,
            )
        raise InvalidInputError(
            FieldProblem(
                f"files[{job.source.name}]",
                f"{facts.path.name} is a {facts.processing_level or 'Level-1'} MTL without "
                "surface reflectance scaling and the band has no scale/offset",
                "harmonize surface reflectance: add a correction node (provider-l2, lasrc or "
                "toa) before harmonization",
            )
        )
    raise InvalidInputError(
        FieldProblem(
            f"files[{job.source.name}]",
            "has no scale/offset and no product metadata says how to turn its values into "
            "reflectance",
            "pass the product metadata (MTD_MSIL2A.xml / MTD_MSIL1C.xml or the Landsat MTL) or "
            "a raster with scale/offset set, as the correction step writes",
        )
    )


def output_nodata(band: BandConfig) -> int:
    """Return the int16 nodata of a harmonized band: the collection's, else -9999."""
    if band.nodata is not None and float(band.nodata).is_integer():
        value = int(band.nodata)
        if _INT16_MIN <= value <= _INT16_MAX:
            return value
    return OUTPUT_NODATA


def scene_center_latitude(path: Path) -> float:
    """Return the latitude (degrees) of a raster's centre.

    Raises:
        InvalidInputError: the raster has no CRS.
    """
    with rasterio.open(path) as ds:
        if ds.crs is None:
            raise InvalidInputError(
                FieldProblem(
                    f"files[{path.name}]", "has no CRS", "give georeferenced reflectance bands"
                )
            )
        left, bottom, right, top = ds.bounds
        _, lats = rasterio.warp.transform(
            ds.crs, "EPSG:4326", [(left + right) / 2], [(bottom + top) / 2]
        )
    return float(lats[0])


def block_windows(height: int, width: int, size: int) -> Iterator[Window]:
    """Yield ``size`` x ``size`` windows covering a raster, row by row."""
    for row in range(0, height, size):
        for col in range(0, width, size):
            yield Window(col, row, min(size, width - col), min(size, height - row))


@dataclass
class BandReport:
    """What happened to one band (kept in the result metadata)."""

    role: str
    scaling: InputScaling
    nodata_out: int
    c_min: float
    c_mean: float
    c_max: float
    bandpass: BandpassCoefficients | None
    valid_pixels: int = 0
    nodata_pixels: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        entry: dict[str, Any] = {
            "role": self.role,
            "input_scale": self.scaling.scale,
            "input_offset": self.scaling.offset,
            "scaling_source": self.scaling.source,
            "input_nodata": self.scaling.nodata,
            "output_nodata": self.nodata_out,
            "c_factor_min": round(self.c_min, 6),
            "c_factor_mean": round(self.c_mean, 6),
            "c_factor_max": round(self.c_max, 6),
            "valid_pixels": self.valid_pixels,
            "nodata_pixels": self.nodata_pixels,
        }
        if self.bandpass is not None:
            entry.update(
                bandpass_slope=self.bandpass.slope,
                bandpass_offset=self.bandpass.offset,
                bandpass_coefficients_source=self.bandpass.source,
            )
        return entry


def harmonize_band(
    job: BandJob,
    grid: AngleGrid,
    context: SceneContext,
    *,
    target_zenith: float,
    dest: Path,
    options: NbarOptions,
) -> BandReport:
    """Write ``job``'s band harmonized as an int16 x 10000 COG at ``dest``, window by window.

    Raises:
        InvalidInputError: the band is unreadable, in another CRS than the angle grid, or cannot
            be scaled to reflectance.
        ProcessingError: GDAL failed writing.
    """
    key = grid.view_key(job.grid_key)
    weights = weights_for(job.role)
    c_nodes = c_factor(
        weights,
        sun_zenith=grid.sun_zenith,
        view_zenith=grid.view_zenith[key],
        relative_azimuth=grid.view_azimuth[key] - grid.sun_azimuth,
        target_sun_zenith_deg=target_zenith,
    )
    nodata_out = output_nodata(job.band)
    with raster_output(dest, failure=f"harmonizing {job.source} failed") as tmp:
        with rasterio.open(job.source) as src:
            _check_crs(src, grid, job)
            scaling = input_scaling(src, job, context)
            seen = grid.view_seen.get(key)
            c_seen = c_nodes[seen] if seen is not None and seen.any() else c_nodes.ravel()
            report = BandReport(
                role=job.role,
                scaling=scaling,
                nodata_out=nodata_out,
                c_min=float(c_seen.min()),
                c_mean=float(c_seen.mean()),
                c_max=float(c_seen.max()),
                bandpass=job.bandpass,
            )
            slope = job.bandpass.slope if job.bandpass else 1.0
            shift = job.bandpass.offset if job.bandpass else 0.0
            a = np.float32(1e4 * slope * scaling.scale)
            b = np.float32(1e4 * slope * scaling.offset)
            k = np.float32(1e4 * shift)
            profile = {
                "driver": "GTiff",
                "dtype": "int16",
                "count": 1,
                "width": src.width,
                "height": src.height,
                "crs": src.crs,
                "transform": src.transform,
                "nodata": nodata_out,
                "tiled": True,
                "blockxsize": 512,
                "blockysize": 512,
                "BIGTIFF": "IF_SAFER",
                **intermediate_compression(options.cog.compress, options.cog.level),
            }
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.scales, dst.offsets = (OUTPUT_SCALE,), (0.0,)
                for window in block_windows(src.height, src.width, options.window_px):
                    row, col = int(window.row_off), int(window.col_off)
                    h, w = int(window.height), int(window.width)
                    interp = grid.interpolator(src.transform, row, col, h, w)
                    cfac = interp(c_nodes, np.float32)
                    data = src.read(1, window=window)
                    out, valid = _transform_window(data, cfac, a, b, k, scaling.nodata, nodata_out)
                    count = int(valid.sum())
                    report.valid_pixels += count
                    report.nodata_pixels += valid.size - count
                    dst.write(out, 1, window=window)
    return report


def _transform_window(
    data: npt.NDArray[Any],
    cfac: npt.NDArray[np.float32],
    a: np.float32,
    b: np.float32,
    k: np.float32,
    nodata_in: float | None,
    nodata_out: int,
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.bool_]]:
    """Return ``round(c (a DN + b) + k)`` as int16 and the valid mask; nodata stays nodata."""
    work = data.astype(np.float32)
    if nodata_in is None or np.isnan(nodata_in):
        valid = np.isfinite(work)
    else:
        valid = data != data.dtype.type(nodata_in)
        if work.dtype.kind == "f":
            valid &= np.isfinite(work)
    work *= a
    work += b
    work *= cfac
    work += k
    np.rint(work, out=work)
    np.clip(work, _INT16_MIN, _INT16_MAX, out=work, where=np.isfinite(work))
    out = np.where(valid, work, nodata_out).astype(np.int16)
    # a valid pixel never becomes nodata: move it one step (1e-4 reflectance) away
    clash = valid & (out == nodata_out)
    if clash.any():
        out[clash] = nodata_out + 1 if nodata_out < _INT16_MAX else nodata_out - 1
    return out, valid


def _check_crs(src: rasterio.io.DatasetReader, grid: AngleGrid, job: BandJob) -> None:
    try:
        grid_crs = CRS.from_user_input(grid.crs)
    except CRSError as err:
        raise InvalidInputError(
            FieldProblem("files", f"the angle grid's CRS {grid.crs!r} is unknown", "give MTD_TL")
        ) from err
    if src.crs is None or CRS.from_user_input(src.crs) != grid_crs:
        raise InvalidInputError(
            FieldProblem(
                f"files[{job.source.name}]",
                f"is in {src.crs}, the angle grid in {grid.crs}",
                "give bands on the product's own grid (not reprojected)",
            )
        )


@register("nbar")
class NbarProcessor(Processor):
    """Harmonize Sentinel-2 / Landsat surface reflectance: NBAR c-factor + HLS bandpass."""

    name: ClassVar[str] = "nbar"
    version: ClassVar[str] = NBAR_VERSION
    task_type: ClassVar[str] = "harmonization"

    def run(self, inputs: ProcessorInputs) -> ProcessorResult:
        """Harmonize the scene's bands into ``inputs.output_dir``.

        Raises:
            InvalidInputError: a missing band, angle source, scaling or bad option (named).
            ProcessingError: GDAL failed writing an output.
        """
        started = time.monotonic()
        collection = inputs.collection
        configured = collection.processors.get("harmonization")
        merged = {**(configured.options if configured else {}), **inputs.args}
        options = NbarOptions.from_args(merged)
        scene_id = safe_component(inputs.scene.scene_id, "scene.scene_id")
        inputs = unpacked_inputs(inputs)
        context = scene_context(inputs)
        jobs, quality, left_out = plan_bands(inputs, context, options)
        grid = angle_grid(context, jobs)
        grid = grid.refined(math.ceil(max(grid.geometry.dx, grid.geometry.dy) / C_FACTOR_NODE_M))
        for job in jobs:
            try:
                grid.view_key(job.grid_key)
            except KeyError as err:
                raise InvalidInputError(
                    FieldProblem("files", str(err.args[0]), "give the scene's own angle metadata")
                ) from err
        latitude = scene_center_latitude(jobs[0].source)
        if options.target_sun_zenith == "scene":
            target = grid.scene_sun_zenith()
        else:
            target = target_sun_zenith(latitude)
        out_dir = inputs.output_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        result_files: dict[str, Path] = {}
        reports: dict[str, BandReport] = {}
        total = len(jobs) + len(quality)

        def harmonize(job: BandJob) -> BandReport:
            band_started = time.monotonic()
            report = harmonize_band(
                job,
                grid,
                context,
                target_zenith=target,
                dest=out_dir / f"{scene_id}_{job.band.name}.tif",
                options=options,
            )
            log.info(
                "harmonization.band scene=%s band=%s role=%s c_mean=%.4f elapsed_s=%.2f",
                scene_id,
                job.band.name,
                job.role,
                report.c_mean,
                time.monotonic() - band_started,
            )
            return report

        def carry(band: BandConfig, path: Path) -> Path:
            dest = out_dir / f"{scene_id}_{safe_component(band.name, 'files')}.tif"
            return copy_band(path, dest)

        # bands are independent: GDAL I/O, compression and numpy release the GIL; the block
        # cache is process-wide, so it is set once here (rasterio reads an int as bytes)
        with (
            rasterio.Env(GDAL_CACHEMAX=options.gdal_cache_mb * 2**20),
            ThreadPoolExecutor(max_workers=options.workers) as pool,
        ):
            try:
                band_futures = {job.band.name: pool.submit(harmonize, job) for job in jobs}
                quality_futures = {band.name: pool.submit(carry, band, p) for band, p in quality}
                pending: list[Future[Any]] = [*band_futures.values(), *quality_futures.values()]
                for done, future in enumerate(as_completed(pending), start=1):
                    future.result()
                    if inputs.progress is not None:
                        inputs.progress(done, total)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        for job in jobs:
            reports[job.band.name] = band_futures[job.band.name].result()
            result_files[job.band.name] = out_dir / f"{scene_id}_{job.band.name}.tif"
        for name, future in quality_futures.items():
            result_files[name] = future.result()
        for key in sorted(context.metadata.keys):
            if key in inputs.files and inputs.files[key].is_file():
                result_files.setdefault(key, inputs.files[key])
        metadata = self._metadata(
            context, grid, options, target, latitude, reports, quality, left_out
        )
        log.info(
            "harmonization.done scene=%s collection=%s bands=%d target_sun_zenith=%.2f "
            "elapsed_s=%.1f",
            scene_id,
            collection.name,
            len(jobs),
            target,
            time.monotonic() - started,
        )
        return ProcessorResult(files=result_files, metadata=metadata)

    @staticmethod
    def _metadata(
        context: SceneContext,
        grid: AngleGrid,
        options: NbarOptions,
        target: float,
        latitude: float,
        reports: Mapping[str, BandReport],
        quality: list[tuple[BandConfig, Path]],
        left_out: list[str],
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "harmonization": "nbar",
            "harmonization_version": NBAR_VERSION,
            "platform": context.platform,
            "sensor": context.sensor,
            "angles_source": grid.source,
            "brdf_model": f"RossThick-LiSparseR (Lucht et al. 2000), b/r={BR_RATIO:g}, "
            f"h/b={HB_RATIO:g}",
            "brdf_coefficients_source": COEFFICIENTS_SOURCE,
            "target_view_zenith_deg": 0.0,
            "target_sun_zenith_method": options.target_sun_zenith,
            "target_sun_zenith_deg": round(target, 6),
            "scene_center_latitude_deg": round(latitude, 6),
            "output_data_type": "int16",
            "output_scale": OUTPUT_SCALE,
            "output_offset": 0.0,
            "bands": {name: report.to_dict() for name, report in reports.items()},
            "quality_bands": [band.name for band, _ in quality],
            "bands_not_harmonized": left_out,
        }
        if context.s2_product is not None:
            metadata["processing_baseline"] = context.s2_product.processing_baseline
            metadata["input_level"] = context.s2_product.level
        if context.family == "sentinel-2" and options.bandpass and context.unit is not None:
            metadata["bandpass"] = "MSI to OLI"
            metadata["bandpass_source"] = HLS_SOURCE
            metadata["bandpass_coefficients_source"] = coefficients_source(context.unit)
        elif context.family == "sentinel-2":
            metadata["bandpass"] = "off (option bandpass: false)"
        else:
            metadata["bandpass"] = "not applied (Landsat bands are not adjusted to OLI here)"
        return metadata


__all__ = [
    "BandJob",
    "InputScaling",
    "NbarOptions",
    "NbarProcessor",
    "find_band_file",
    "harmonize_band",
    "output_nodata",
]
