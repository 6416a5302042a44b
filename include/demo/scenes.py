"""The demo catalog's pieces: scene specs, band files, the L1C item and the collection.

``include.demo.build`` (the catalog) and ``include.demo.extras`` (its optional parts) both
build on these; the shape of the scenes is described in ``include/demo/build.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pystac
import rasterio
from affine import Affine
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.grid import GridExtension
from pystac.extensions.mgrs import MgrsExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from pystac.extensions.sat import OrbitState, SatExtension

from include.common.errors import FieldProblem, InvalidInputError, ProcessingError
from include.processors.publish.cog import COG_MEDIA_TYPE
from include.processors.publish.quicklook import PNG_MEDIA_TYPE, write_quicklook
from include.processors.publish.stac_item import (
    PROCESSING_LINEAGE_PROP,
    PROCESSING_SCHEMA_URI,
    PROCESSING_SOFTWARE_PROP,
    SOFTWARE_NAME,
    bbox_of,
    file_checksum,
    footprint,
)

DEMO_VERSION = "0.1.0"
COLLECTION_ID = "sentinel-2-l1c"
TILE = "23LLF"
EPSG = 32723
TILE_ORIGIN = (399960.0, 8700040.0)
"""Upper-left corner of the real MGRS 23LLF tile (EPSG:32723)."""
SCENE_ORIGIN = (399960.0, 8610760.0)
"""Upper-left corner of the demo subset: the tile's south-west corner, on the 240 m lattice."""
SCENE_EXTENT_M = 20480.0
FILES_DIR = "files"
SENTINEL2_SCHEMA_URI = "https://stac-extensions.github.io/sentinel-2/v1.0.0/schema.json"
LICENSE_URL = "https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice"

_Float = npt.NDArray[np.float64]
_Bool = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class DemoBand:
    """One band of the demo scenes: names and wavelengths (um)."""

    name: str
    common_name: str
    center_wavelength: float
    full_width_half_max: float
    coarse: bool
    """True for the 20 m-class band, written on a grid twice as coarse."""


BANDS: tuple[DemoBand, ...] = (
    DemoBand("B02", "blue", 0.490, 0.098, False),
    DemoBand("B03", "green", 0.560, 0.045, False),
    DemoBand("B04", "red", 0.665, 0.038, False),
    DemoBand("B08", "nir", 0.842, 0.145, False),
    DemoBand("B11", "swir16", 1.610, 0.143, True),
)
# TOA reflectance by land cover and band (B02, B03, B04, B08, B11): typical dry-season values.
_COVER_REFLECTANCE: dict[str, tuple[float, float, float, float, float]] = {
    "cerrado": (0.085, 0.095, 0.110, 0.250, 0.270),
    "soil": (0.120, 0.150, 0.200, 0.270, 0.360),
    "crop": (0.065, 0.085, 0.050, 0.380, 0.180),
    "water": (0.075, 0.060, 0.040, 0.020, 0.010),
    "cloud": (0.560, 0.540, 0.530, 0.560, 0.420),
}


@dataclass(frozen=True, slots=True)
class DemoSceneSpec:
    """What one demo scene is: its product name and the features it shows."""

    product_name: str
    cloud_target_pct: float
    nodata_corner: bool

    @property
    def platform(self) -> str:
        """Return ``sentinel-2a`` / ``sentinel-2b``."""
        return f"sentinel-2{self.product_name[2].lower()}"

    @property
    def sensing_time(self) -> datetime:
        """Return the sensing start in UTC, from the product name."""
        return datetime.strptime(self.product_name[11:26], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)

    @property
    def generation_time(self) -> datetime:
        """Return the product discriminator (generation time) in UTC."""
        return datetime.strptime(self.product_name[-15:], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)

    @property
    def baseline(self) -> str:
        """Return the processing baseline, e.g. ``02.08``."""
        digits = self.product_name[28:32]
        return f"{digits[:2]}.{digits[2:]}"

    @property
    def relative_orbit(self) -> int:
        """Return the relative orbit number."""
        return int(self.product_name[34:37])

    @property
    def radiometric_offset(self) -> int:
        """Return the DN offset: 1000 from baseline 04.00 on, else 0 (DESIGN 5)."""
        return 1000 if float(self.baseline) >= 4.0 else 0


_FIRST_SCENES = (
    DemoSceneSpec("S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429", 0.0, False),
    DemoSceneSpec("S2B_MSIL1C_20200110T131239_N0208_R138_T23LLF_20200110T150351", 8.0, True),
    DemoSceneSpec("S2B_MSIL1C_20200114T132229_N0208_R038_T23LLF_20200114T150103", 55.0, False),
    DemoSceneSpec("S2A_MSIL1C_20200119T132231_N0500_R038_T23LLF_20230612T101536", 20.0, False),
)
_NAME_RE = re.compile(r"^S2[AB]_MSIL1C_\d{8}T\d{6}_N\d{4}_R\d{3}_T23LLF_\d{8}T\d{6}$")


def demo_scene_specs(count: int, *, seed: int = 0) -> list[DemoSceneSpec]:
    """Return ``count`` scene specs: the four fixed ones, then one every five days.

    Raises:
        InvalidInputError: when ``count`` is not between 1 and 100.
    """
    if not 1 <= count <= 100:
        raise InvalidInputError(FieldProblem("scenes", f"{count} is out of range", "use 1..100"))
    specs = list(_FIRST_SCENES[:count])
    rng = np.random.default_rng(seed + 7919)
    when = datetime(2020, 1, 24, 13, 22, 31, tzinfo=UTC)
    while len(specs) < count:
        index = len(specs)
        unit = "B" if index % 2 == 0 else "A"
        generated = when + timedelta(hours=1, minutes=int(rng.integers(20, 50)), seconds=7)
        name = f"S2{unit}_MSIL1C_{when:%Y%m%dT%H%M%S}_N0208_R038_T23LLF_{generated:%Y%m%dT%H%M%S}"
        specs.append(DemoSceneSpec(name, float(rng.choice([0.0, 5.0, 15.0, 35.0, 70.0])), False))
        when += timedelta(days=5)
    for spec in specs:
        if not _NAME_RE.match(spec.product_name):  # pragma: no cover - guards the table above
            raise ProcessingError(f"demo: bad product name {spec.product_name}")
    return specs


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> _Float:
    """Return Gaussian-filtered white noise (periodic), scaled to mean 0 and std 1."""
    white = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    kernel = np.exp(-2.0 * (np.pi * sigma_px) ** 2 * (fx**2 + fy**2))
    field = np.fft.irfft2(np.fft.rfft2(white) * kernel, s=shape)
    std = float(field.std()) or 1.0
    result: _Float = (field - field.mean()) / std
    return result


def _landscape(size_px: int, pixel_m: float, seed: int) -> dict[str, _Float]:
    """Return land-cover weights (cerrado, soil, crop, water) per pixel, summing to 1."""
    rng = np.random.default_rng(seed)
    shape = (size_px, size_px)
    rows, cols = np.mgrid[0:size_px, 0:size_px].astype(np.float64) * pixel_m
    base = _smooth_noise(rng, shape, 2500.0 / pixel_m)
    soil = 1.0 / (1.0 + np.exp(-3.0 * (base - 0.3)))
    crop = np.zeros(shape)
    for _ in range(14):
        cy, cx = rng.uniform(0, SCENE_EXTENT_M, 2)
        radius = rng.uniform(400.0, 800.0)
        inside = (rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2
        if rng.random() < 0.65:
            crop[inside] = 1.0
        else:
            soil[inside] = 1.0
    # a meandering river across the scene and a few lakes
    meander = SCENE_EXTENT_M * 0.55 + 1200.0 * np.sin(cols / 2300.0 + rng.uniform(0, 6.28))
    meander += 400.0 * _smooth_noise(rng, shape, 1500.0 / pixel_m)
    river = np.clip(1.0 - np.abs(rows - meander) / max(90.0, pixel_m), 0.0, 1.0)
    lakes_noise = _smooth_noise(rng, shape, 600.0 / pixel_m)
    lakes = (lakes_noise > np.quantile(lakes_noise, 0.985)).astype(np.float64)
    water = np.maximum(river, lakes)
    crop = crop * (1.0 - water)
    soil = np.clip(soil, 0.0, 1.0) * (1.0 - crop) * (1.0 - water)
    cerrado = (1.0 - soil) * (1.0 - crop) * (1.0 - water)
    return {"cerrado": cerrado, "soil": soil, "crop": crop, "water": water}


def _clouds(size_px: int, pixel_m: float, target_pct: float, seed: int) -> tuple[_Float, _Float]:
    """Return (cloud opacity 0..1, shadow opacity 0..1) covering about ``target_pct`` percent."""
    if target_pct <= 0:
        zeros = np.zeros((size_px, size_px))
        return zeros, zeros
    rng = np.random.default_rng(seed)
    field = _smooth_noise(rng, (size_px, size_px), 1200.0 / pixel_m)
    field += 0.35 * _smooth_noise(rng, (size_px, size_px), 300.0 / pixel_m)
    threshold = float(np.quantile(field, 1.0 - target_pct / 100.0))
    opacity = np.clip((field - threshold) / 0.25 + 0.5, 0.0, 1.0)
    shift = max(1, round(500.0 / pixel_m))
    shadow = np.roll(opacity, (shift, -shift), axis=(0, 1)) * (1.0 - opacity)
    return opacity, shadow


def _valid_mask(size_px: int, nodata_corner: bool) -> _Bool:
    """Return the valid-pixel mask; a partial swath leaves a triangle on the western edge."""
    if not nodata_corner:
        return np.ones((size_px, size_px), dtype=bool)
    rows, cols = np.mgrid[0:size_px, 0:size_px] / size_px
    valid: _Bool = cols + 0.35 * rows >= 0.3
    return valid


def _scene_reflectance(
    spec: DemoSceneSpec, index: int, size_px: int, seed: int
) -> tuple[dict[str, _Float], _Bool, float]:
    """Return per band TOA reflectance at the fine grid, the valid mask and the cloud cover %."""
    pixel_m = SCENE_EXTENT_M / size_px
    cover = _landscape(size_px, pixel_m, seed)
    opacity, shadow = _clouds(size_px, pixel_m, spec.cloud_target_pct, seed * 1000 + index + 1)
    rng = np.random.default_rng(seed * 1000 + index + 500)
    texture = _smooth_noise(rng, (size_px, size_px), 0.7)
    valid = _valid_mask(size_px, spec.nodata_corner)
    jitter = 1.0 + 0.02 * np.sin(index + np.arange(len(BANDS)))
    bands: dict[str, _Float] = {}
    for band_index, band in enumerate(BANDS):
        surface = sum(
            cover[name] * _COVER_REFLECTANCE[name][band_index]
            for name in ("cerrado", "soil", "crop", "water")
        )
        surface = surface * (1.0 + 0.04 * texture) * jitter[band_index]
        surface = surface * (1.0 - 0.55 * shadow)
        cloud = _COVER_REFLECTANCE["cloud"][band_index] * (1.0 + 0.015 * texture)
        bands[band.name] = (1.0 - opacity) * surface + opacity * cloud
    cloud_pct = float(100.0 * (opacity[valid] >= 0.5).mean()) if valid.any() else 0.0
    return bands, valid, round(cloud_pct, 2)


def _to_dn(reflectance: _Float, valid: _Bool, offset: int) -> npt.NDArray[np.uint16]:
    dn = np.clip(np.rint(reflectance * 10000.0) + offset, 1, 65535)
    return np.where(valid, dn, 0).astype(np.uint16)


def _coarse(values: _Float, valid: _Bool) -> tuple[_Float, _Bool]:
    """Return 2x2 block means and a mask valid only where all four pixels are valid."""
    rows, cols = values.shape
    blocks = values.reshape(rows // 2, 2, cols // 2, 2)
    mask_blocks = valid.reshape(rows // 2, 2, cols // 2, 2)
    means: _Float = blocks.mean(axis=(1, 3))
    all_valid: _Bool = np.asarray(mask_blocks.all(axis=(1, 3)), dtype=bool)
    return means, all_valid


def write_cog(
    path: Path,
    data: npt.NDArray[Any],
    transform: Affine,
    crs: Any,
    dtype: str,
    *,
    predictor: int | None = None,
) -> None:
    """Write one band as a deflate COG with nodata 0 and 512 px blocks (L1C and L2A files).

    Args:
        path: the file to write.
        data: the band, cast to ``dtype``.
        transform: the band's affine transform.
        crs: the band's CRS.
        dtype: the file's data type (``uint16``, ``uint8``).
        predictor: the deflate predictor (2 for the L1C bands), none when ``None``.
    """
    options = {} if predictor is None else {"predictor": predictor}
    with rasterio.open(
        path,
        "w",
        driver="COG",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=dtype,
        crs=crs,
        transform=transform,
        nodata=0,
        compress="deflate",
        blocksize=512,
        **options,
    ) as dst:
        dst.write(data.astype(dtype, copy=False), 1)


def _write_band(path: Path, data: npt.NDArray[np.uint16], pixel_m: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    transform = Affine(pixel_m, 0.0, SCENE_ORIGIN[0], 0.0, -pixel_m, SCENE_ORIGIN[1])
    write_cog(path, data, transform, f"EPSG:{EPSG}", "uint16", predictor=2)


def write_scene_files(
    spec: DemoSceneSpec, dest: Path, *, index: int = 0, size_px: int = 256, seed: int = 0
) -> tuple[dict[str, Path], float]:
    """Write one scene's band COGs (``<band>.tif``) and ``thumbnail.png`` into ``dest``.

    Args:
        spec: the scene.
        dest: the scene's folder.
        index: the scene's position (varies clouds and radiometric jitter).
        size_px: pixels per side of the fine grid (even, 32..4096).
        seed: the landscape seed (the same for every scene of a catalog).

    Returns:
        ``(files by asset key, eo:cloud_cover)``.

    Raises:
        InvalidInputError: when ``size_px`` is odd or out of range.
    """
    if not 32 <= size_px <= 4096 or size_px % 2:
        raise InvalidInputError(
            FieldProblem("size_px", f"{size_px} is not valid", "use an even number in 32..4096")
        )
    pixel_m = SCENE_EXTENT_M / size_px
    reflectance, valid, cloud_pct = _scene_reflectance(spec, index, size_px, seed)
    files: dict[str, Path] = {}
    for band in BANDS:
        values, mask, band_pixel = reflectance[band.name], valid, pixel_m
        if band.coarse:
            values, mask = _coarse(values, valid)
            band_pixel = pixel_m * 2
        path = dest / f"{band.name}.tif"
        _write_band(path, _to_dn(values, mask, spec.radiometric_offset), band_pixel)
        files[band.name] = path
    thumbnail = dest / "thumbnail.png"
    write_quicklook(
        [files["B04"], files["B03"], files["B02"]],
        thumbnail,
        size_px=min(256, size_px),
        percentiles=(2.0, 98.0),
        nodata=[0, 0, 0],
    )
    files["thumbnail"] = thumbnail
    return files, cloud_pct


def demo_collection() -> dict[str, Any]:
    """Return the ``sentinel-2-l1c`` collection dict (Earth Search-like, marked as demo)."""
    collection = pystac.Collection(
        id=COLLECTION_ID,
        title="Sentinel-2 Level-1C (synthetic demo)",
        description=(
            "Synthetic Sentinel-2 L1C-like scenes over MGRS tile 23LLF made by "
            "include.demo.build for offline demos and tests; not real data."
        ),
        license="proprietary",
        extent=pystac.Extent(
            pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
            pystac.TemporalExtent([[datetime(2015, 6, 27, tzinfo=UTC), None]]),
        ),
        providers=[
            pystac.Provider(
                name="ESA", roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.LICENSOR]
            ),
            pystac.Provider(name="collection-builder demo", roles=[pystac.ProviderRole.HOST]),
        ],
        keywords=["sentinel-2", "l1c", "demo"],
    )
    collection.summaries.add("platform", ["sentinel-2a", "sentinel-2b"])
    collection.summaries.add("constellation", ["sentinel-2"])
    collection.summaries.add("instruments", ["msi"])
    collection.summaries.add(
        "eo:bands",
        [
            {"name": b.name, "common_name": b.common_name, "center_wavelength": b.center_wavelength}
            for b in BANDS
        ],
    )
    collection.add_link(pystac.Link("license", LICENSE_URL, title="Sentinel Data Legal Notice"))
    return collection.to_dict(include_self_link=False, transform_hrefs=False)


def _file_fields(asset: pystac.Asset, path: Path) -> None:
    checksum, size = file_checksum(path)
    file_ext = FileExtension.ext(asset, add_if_missing=True)
    file_ext.checksum = checksum
    file_ext.size = size


def build_item(
    spec: DemoSceneSpec, files: dict[str, Path], cloud_pct: float, *, seed: int
) -> dict[str, Any]:
    """Return the STAC Item dict of a demo scene whose files are in ``files``.

    Raises:
        ProcessingError: when the scene has no valid pixel.
    """
    name = spec.product_name
    geometry = footprint(files["B04"], nodata=0)
    if geometry is None:
        raise ProcessingError(f"demo: {name} has no valid pixel")
    item = pystac.Item(
        id=name,
        geometry=geometry,
        bbox=bbox_of(geometry),
        datetime=spec.sensing_time,
        properties={},
        collection=COLLECTION_ID,
    )
    common = item.common_metadata
    common.platform = spec.platform
    common.constellation = "sentinel-2"
    common.instruments = ["msi"]
    EOExtension.ext(item, add_if_missing=True).cloud_cover = cloud_pct
    with rasterio.open(files["B04"]) as fine:
        fine_shape = [fine.height, fine.width]
        fine_transform = list(fine.transform)[:6]
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.epsg = EPSG
    proj.shape = fine_shape
    proj.transform = fine_transform
    mgrs = MgrsExtension.ext(item, add_if_missing=True)
    mgrs.utm_zone, mgrs.latitude_band, mgrs.grid_square = 23, "L", "LF"
    GridExtension.ext(item, add_if_missing=True).code = f"MGRS-{TILE}"
    sat = SatExtension.ext(item, add_if_missing=True)
    sat.relative_orbit = spec.relative_orbit
    sat.orbit_state = OrbitState.DESCENDING
    item.stac_extensions.extend([SENTINEL2_SCHEMA_URI, PROCESSING_SCHEMA_URI])
    item.properties.update(
        {
            "s2:product_uri": f"{name}.SAFE",
            "s2:product_type": "S2MSI1C",
            "s2:mgrs_tile": TILE,
            "s2:processing_baseline": spec.baseline,
            "s2:generation_time": spec.generation_time.isoformat().replace("+00:00", "Z"),
            PROCESSING_SOFTWARE_PROP: {SOFTWARE_NAME: DEMO_VERSION},
            PROCESSING_LINEAGE_PROP: (
                f"Synthetic scene made by include.demo.build (seed {seed}) on the real "
                f"MGRS {TILE} grid; not real Sentinel-2 data"
            ),
        }
    )
    offset = -spec.radiometric_offset / 10000.0
    for band in BANDS:
        path = files[band.name]
        with rasterio.open(path) as ds:
            resolution = float(ds.res[0])
            shape, transform = [ds.height, ds.width], list(ds.transform)[:6]
        asset = pystac.Asset(
            href=f"/{FILES_DIR}/{name}/{path.name}",
            title=f"{band.name} ({band.common_name}) - {resolution:g} m",
            media_type=COG_MEDIA_TYPE,
            roles=["data"],
        )
        item.add_asset(band.name, asset)
        EOExtension.ext(asset, add_if_missing=True).bands = [
            Band.create(
                name=band.name,
                common_name=band.common_name,
                center_wavelength=band.center_wavelength,
                full_width_half_max=band.full_width_half_max,
            )
        ]
        RasterExtension.ext(asset, add_if_missing=True).bands = [
            RasterBand.create(
                nodata=0,
                data_type=DataType.UINT16,
                spatial_resolution=resolution,
                scale=0.0001,
                offset=offset,
            )
        ]
        if shape != fine_shape:
            asset_proj = ProjectionExtension.ext(asset, add_if_missing=True)
            asset_proj.shape = shape
            asset_proj.transform = transform
        _file_fields(asset, path)
    thumbnail = pystac.Asset(
        href=f"/{FILES_DIR}/{name}/{files['thumbnail'].name}",
        title="Thumbnail (B04/B03/B02)",
        media_type=PNG_MEDIA_TYPE,
        roles=["thumbnail"],
    )
    item.add_asset("thumbnail", thumbnail)
    _file_fields(thumbnail, files["thumbnail"])
    item.add_link(pystac.Link("license", LICENSE_URL))
    return item.to_dict(include_self_link=False, transform_hrefs=False)
