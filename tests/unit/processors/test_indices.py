"""Spectral indices: catalog (spyndex) resolution, band mapping, windowed computation as COGs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS as CRS_
from rasterio.enums import Resampling
from rasterio.warp import reproject

from include.collectors.base import Scene
from include.common.config import CollectionConfig, IndexConfig, load_collections
from include.common.errors import ConfigError
from include.processors.base import ProcessorInputs
from include.processors.grid import Grid
from include.processors.publish import PublishProcessor
from include.processors.publish.cog import CogOptions, validate_cog
from include.processors.publish.indices import (
    INT16_NODATA,
    band_for_symbol,
    catalog_indices,
    resolve_index,
    resolve_indices,
    write_index,
    write_indices,
)
from tests.helpers.realdata import realdata_dir

REPO = Path(__file__).resolve().parents[3]
LANDSAT_SR = "stactools-landsat/data-files/assets3"
LANDSAT_ID = "LC08_L2SP_008059_20191201_20200825_02_T1"
CRS = "EPSG:32723"


@pytest.fixture(scope="module")
def collections() -> dict[str, CollectionConfig]:
    return load_collections()


def write_band(
    path: Path,
    data: np.ndarray,
    *,
    res: float = 10.0,
    nodata: float | None = 0,
    scale: float | None = None,
    offset: float | None = None,
    origin: tuple[float, float] = (300000, 8600000),
) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=str(data.dtype),
        crs=CRS,
        transform=Affine(res, 0, origin[0], 0, -res, origin[1]),
        nodata=nodata,
    ) as ds:
        ds.write(data, 1)
        if scale is not None:
            ds.scales = (scale,)
        if offset is not None:
            ds.offsets = (offset,)
    return path


# -- the catalog and the band mapping -------------------------------------------------------------


def test_spyndex_ships_the_catalog_offline() -> None:
    indices = catalog_indices()
    assert len(indices) > 200
    assert indices["NDVI"]["formula"].replace(" ", "") == "(N-R)/(N+R)"


def test_resolve_index_by_catalog_name_maps_symbols_to_band_names(
    collections: dict[str, CollectionConfig],
) -> None:
    s2 = collections["S2_L2A-1"]
    assert resolve_index("NDVI", IndexConfig(), s2).expression.text == "(B08 - B04) / (B08 + B04)"
    assert resolve_index("NBR", IndexConfig(), s2).expression.bands == ("B08", "B12")
    assert resolve_index("CIRE", IndexConfig(), s2).expression.bands == ("B08", "B05")
    savi = resolve_index("SAVI", IndexConfig(params={"L": 0.5}), s2)
    assert savi.expression.text == "(1.0 + 0.5) * (B08 - B04) / (B08 + B04 + 0.5)"
    assert savi.source == "Awesome Spectral Indices" and savi.title.startswith("SAVI: ")


def test_band_for_symbol_landsat_nir_found_by_wavelength(
    collections: dict[str, CollectionConfig],
) -> None:
    landsat = collections["LC8_SR-1"]
    nir = band_for_symbol("N", landsat)
    assert nir is not None and nir.name == "B5"  # OLI B5 is nir08, inside N's 760-900 nm
    assert resolve_index("NDVI", IndexConfig(), landsat).expression.text == "(B5 - B4) / (B5 + B4)"


@pytest.mark.parametrize(
    ("key", "config", "message"),
    [
        ("NOPE", IndexConfig(), "'NOPE' is not in the Awesome Spectral Indices catalog"),
        ("CIRE", IndexConfig(), "CIRE needs band RE1 (rededge071), which LC8_SR-1 lacks"),
        ("kNDVI", IndexConfig(), "indices.kNDVI.params.kNN"),
        ("SAVI", IndexConfig(params={"Q": 1.0}), "['Q'] are not constants of SAVI"),
        ("X", IndexConfig(expression="B5 + B99"), "name 'B99' is not a band of LC8_SR-1"),
    ],
)
def test_resolve_index_bad_config_raises_config_error_naming_index(
    collections: dict[str, CollectionConfig], key: str, config: IndexConfig, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_index(key, config, collections["LC8_SR-1"])
    assert f"collections.LC8_SR-1.indices.{key}" in str(caught.value)
    assert message in str(caught.value)


def test_index_config_name_and_expression_together_is_refused() -> None:
    with pytest.raises(ValueError, match="either expression or name"):
        IndexConfig(name="NDVI", expression="B04")


def test_every_configured_index_resolves(collections: dict[str, CollectionConfig]) -> None:
    declared = 0
    for collection in collections.values():
        definitions = resolve_indices(collection)
        declared += len(definitions)
        assert [d.key for d in definitions] == list(collection.indices)
    assert declared > 0


# -- computation ---------------------------------------------------------------------------------


def test_write_index_int16_propagates_nodata_and_division_by_zero(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    red = np.array([[1000, 2000, 0, 500], [3000, 0, 1500, 1200]], dtype=np.uint16)
    nir = np.array([[3000, 2000, 4000, 0], [1000, 0, 1500, 2400]], dtype=np.uint16)
    # red=0 and nir=0 are nodata; [1,1] is both 0 (nodata and 0/0)
    files = {
        "B04": write_band(tmp_path / "B04.tif", red, scale=0.0001),
        "B08": write_band(tmp_path / "B08.tif", nir, scale=0.0001),
    }
    definition = resolve_index("NDVI", IndexConfig(), collections["S2_L2A-1"])
    info = write_index(definition, files, tmp_path / "ndvi.tif", options=CogOptions(blocksize=128))
    with rasterio.open(info.path) as ds:
        stored = ds.read(1)
        assert ds.dtypes[0] == "int16" and ds.nodata == INT16_NODATA
        assert ds.scales[0] == pytest.approx(0.0001) and ds.offsets[0] == 0.0
    r, n = red.astype(np.float32) / 1e4, nir.astype(np.float32) / 1e4
    with np.errstate(all="ignore"):
        expected = np.rint((n - r) / (n + r) / 1e-4)
    valid = (red != 0) & (nir != 0)
    assert (stored[~valid] == INT16_NODATA).all()
    np.testing.assert_array_equal(stored[valid], expected[valid].astype(np.int16))
    validate_cog(info.path, blocksize=128)


def test_write_index_zero_denominator_with_valid_inputs_is_nodata(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    # valid DNs (not the nodata value) whose reflectances cancel exactly: 0.5 + -0.5 == 0
    red = np.full((4, 4), 3, dtype=np.uint16)
    nir = np.full((4, 4), 1, dtype=np.uint16)
    nir[0, 0] = 4  # one ordinary pixel: nir 1.0, red 0.5 -> NDVI 1/3
    files = {
        "B04": write_band(tmp_path / "B04.tif", red, scale=0.5, offset=-1.0),
        "B08": write_band(tmp_path / "B08.tif", nir, scale=0.5, offset=-1.0),
    }
    definition = resolve_index("NDVI", IndexConfig(), collections["S2_L2A-1"])
    info = write_index(definition, files, tmp_path / "ndvi.tif", options=CogOptions(blocksize=128))
    with rasterio.open(info.path) as ds:
        stored = ds.read(1)
    assert stored[0, 0] == 3333
    assert (stored.ravel()[1:] == INT16_NODATA).all()


def test_write_index_float32_on_mixed_resolutions_matches_numpy(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    rng = np.random.default_rng(7)
    nir = rng.integers(1, 6000, (40, 40), dtype=np.uint16)
    swir = rng.integers(1, 6000, (20, 20), dtype=np.uint16)
    files = {
        "B08": write_band(tmp_path / "B08.tif", nir, scale=0.0001),
        "B11": write_band(tmp_path / "B11.tif", swir, res=20.0, scale=0.0001),
    }
    definition = resolve_index("NDMI", IndexConfig(data_type="float32"), collections["S2_L2A-1"])
    info = write_index(definition, files, tmp_path / "ndmi.tif", options=CogOptions(blocksize=128))
    with rasterio.open(info.path) as ds:
        assert (ds.width, ds.height, ds.dtypes[0]) == (40, 40, "float32")
        result = ds.read(1)
    n = nir.astype(np.float32) / 1e4
    s = np.repeat(np.repeat(swir, 2, axis=0), 2, axis=1).astype(np.float32) / 1e4
    np.testing.assert_allclose(result, (n - s) / (n + s), rtol=1e-5, atol=1e-6)


def _nearest_onto(src: Path, like: Path) -> np.ndarray:
    """The band at ``src`` resampled onto ``like``'s grid by GDAL's nearest-neighbour warp."""
    with rasterio.open(src) as coarse, rasterio.open(like) as fine:
        out = np.zeros((fine.height, fine.width), dtype=coarse.dtypes[0])
        reproject(
            coarse.read(1),
            out,
            src_transform=coarse.transform,
            src_crs=coarse.crs,
            src_nodata=coarse.nodata,
            dst_transform=fine.transform,
            dst_crs=fine.crs,
            dst_nodata=coarse.nodata,
            resampling=Resampling.nearest,
        )
    return out


@pytest.mark.parametrize(
    ("swir_res", "swir_origin", "shape"),
    [
        (20.0, (300000, 8600000), (22, 23)),  # tiles the 10 m grid: pixels repeated
        (20.0, (300005, 8600000), (23, 23)),  # shifted by half a pixel: warped
        (30.0, (300000, 8600000), (15, 16)),  # three times coarser: repeated 3 x 3
        (25.0, (300000, 8600000), (18, 19)),  # 2.5: warped
    ],
)
def test_coarse_band_on_the_fine_grid_equals_gdal_nearest_warp(
    tmp_path: Path,
    collections: dict[str, CollectionConfig],
    swir_res: float,
    swir_origin: tuple[float, float],
    shape: tuple[int, int],
) -> None:
    # 45 x 45 at 10 m read in strips of 16 rows: strips start on odd coarse rows too
    rng = np.random.default_rng(11)
    nir = rng.integers(1, 6000, (45, 45), dtype=np.uint16)
    swir = rng.integers(0, 6000, shape, dtype=np.uint16)  # some 0: nodata
    files = {
        "B08": write_band(tmp_path / "B08.tif", nir, scale=0.0001),
        "B11": write_band(
            tmp_path / "B11.tif", swir, res=swir_res, scale=0.0001, origin=swir_origin
        ),
    }
    definition = resolve_index("NDMI", IndexConfig(data_type="float32"), collections["S2_L2A-1"])
    info = write_index(definition, files, tmp_path / "ndmi.tif", options=CogOptions(blocksize=16))
    with rasterio.open(info.path) as ds:
        assert (ds.width, ds.height) == (45, 45)
        result = ds.read(1)
    s_dn = _nearest_onto(files["B11"], files["B08"])
    n, s = nir.astype(np.float32) / 1e4, s_dn.astype(np.float32) / 1e4
    valid = s_dn != 0
    assert (result[~valid] == -9999.0).all()
    np.testing.assert_allclose(result[valid], ((n - s) / (n + s))[valid], rtol=1e-5, atol=1e-6)


def test_upsampling_factor_only_for_grids_that_tile_exactly() -> None:
    def grid(res: float, x0: float = 300000, size: int = 10, crs: str = CRS) -> Grid:
        return Grid(CRS_.from_string(crs), Affine(res, 0, x0, 0, -res, 8600000), size, size)

    fine = grid(10, size=20)
    assert grid(20).upsampling_factor(fine) == 2
    assert grid(60, size=4).upsampling_factor(fine) == 6
    assert grid(20, x0=300005).upsampling_factor(fine) is None  # origins differ
    assert grid(25).upsampling_factor(fine) is None  # not a whole ratio
    assert grid(20, size=9).upsampling_factor(fine) is None  # does not cover the fine grid
    assert grid(20, crs="EPSG:32724").upsampling_factor(fine) is None
    assert grid(10, size=20).upsampling_factor(fine) is None  # the same grid: nothing to repeat
    rotated = Grid(CRS_.from_string(CRS), Affine(20, 1, 300000, 0, -20, 8600000), 10, 10)
    assert rotated.upsampling_factor(fine) is None


def test_indices_written_together_equal_each_written_alone(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    rng = np.random.default_rng(5)
    grid_10m = {
        name: rng.integers(0, 6000, (60, 60), dtype=np.uint16)
        for name in ("B02", "B03", "B04", "B08")
    }
    grid_20m = {
        name: rng.integers(0, 6000, (30, 30), dtype=np.uint16)
        for name in ("B05", "B8A", "B11", "B12")
    }
    files = {
        name: write_band(tmp_path / f"{name}.tif", data, scale=0.0001)
        for name, data in grid_10m.items()
    }
    files |= {
        name: write_band(tmp_path / f"{name}.tif", data, res=20.0, scale=0.0001)
        for name, data in grid_20m.items()
    }
    definitions = resolve_indices(collections["S2_NBAR-1"])
    together = write_indices(
        definitions,
        files,
        {d.key: tmp_path / "together" / f"{d.key}.tif" for d in definitions},
        options=CogOptions(blocksize=32),
        workers=2,
    )
    assert sorted(together) == sorted(d.key for d in definitions)
    for definition in definitions:
        alone = write_index(
            definition,
            files,
            tmp_path / "alone" / f"{definition.key}.tif",
            options=CogOptions(blocksize=32),
        )
        with rasterio.open(alone.path) as a, rasterio.open(together[definition.key].path) as b:
            np.testing.assert_array_equal(a.read(1), b.read(1))
            assert (a.width, a.transform) == (b.width, b.transform)
    assert together["NDRE"].resolution_m == 20.0  # B8A and B05: their own 20 m grid
    assert together["NBR"].resolution_m == 10.0  # B08 with B12: the finer grid


def test_publish_real_landsat_sr_writes_indices_on_reflectance(tmp_path: Path) -> None:
    folder = realdata_dir() / LANDSAT_SR
    if not folder.is_dir():
        pytest.skip(f"real Landsat SR bands not found at {folder} (set REALDATA_DIR)")
    files = {f"SR_B{i}": folder / f"{LANDSAT_ID}_SR_B{i}.TIF" for i in range(1, 8)}
    scene = Scene(
        scene_id=LANDSAT_ID,
        catalog="usgs",
        dataset="landsat_ot_c2_l2",
        datetime=datetime(2019, 12, 1, 15, 17, tzinfo=UTC),
        cloud_pct=29.0,
        tile="008059",
        footprint=None,
    )
    result = PublishProcessor().run(
        ProcessorInputs(
            scene=scene,
            collection=load_collections()["LC8_SR-1"],
            files=files,
            output_dir=tmp_path,
            args={"indices": ["NDVI", "EVI"], "quicklook": False},
        )
    )
    assert result.item is not None
    assert result.metadata["indices"] == ["NDVI", "EVI"]
    ndvi_asset = result.item["assets"]["NDVI"]
    assert ndvi_asset["raster:bands"][0]["scale"] == 0.0001
    assert ndvi_asset["raster:bands"][0]["data_type"] == "int16"
    assert result.item["assets"]["B4"]["raster:bands"][0]["offset"] == -0.2
    with rasterio.open(files["SR_B4"]) as red_ds, rasterio.open(files["SR_B5"]) as nir_ds:
        red, nir = red_ds.read(1), nir_ds.read(1)
    r = red.astype(np.float32) * np.float32(2.75e-5) - np.float32(0.2)
    n = nir.astype(np.float32) * np.float32(2.75e-5) - np.float32(0.2)
    with np.errstate(all="ignore"):
        expected = np.clip(np.rint((n - r) / (n + r) / np.float32(1e-4)), -32767, 32767)
    valid = (red != 0) & (nir != 0) & np.isfinite(expected)
    with rasterio.open(result.files["NDVI"]) as ds:
        stored = ds.read(1)
    assert valid.mean() > 0.5
    assert (stored[~valid] == INT16_NODATA).all()
    assert np.abs(stored[valid].astype(np.int32) - expected[valid]).max() <= 1
    ndvi = stored[valid] * 1e-4
    assert -1.0 <= np.percentile(ndvi, 1) and np.percentile(ndvi, 99) <= 1.0
