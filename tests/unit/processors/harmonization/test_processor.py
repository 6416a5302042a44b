"""The ``nbar`` processor end to end on small rasters laid out as the correction step writes them.

Sentinel-2 bands are built on the real T31TDH tile grid of the real eodag MTD_TL.xml (coarse
pixels so each test takes milliseconds); Landsat runs on the real (downsampled) Level-2 SR bands,
QA_PIXEL, MTL and ANG.txt of a real Landsat 8 scene. Expected values are recomputed here from the
formulas: per-pixel angles (``AngleGrid.pixel_angles``), ``brdf.c_factor`` and the DESIGN 5
coefficients, independently of the processor's node-grid interpolation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.warp
from affine import Affine

from include.common.errors import InvalidInputError
from include.processors.base import ProcessorResult
from include.processors.harmonization import NbarProcessor
from include.processors.harmonization.angles import (
    AngleGrid,
    read_landsat_ang,
    read_s2_tile_angles,
)
from include.processors.harmonization.brdf import c_factor, target_sun_zenith, weights_for
from include.processors.harmonization.processor import _transform_window
from include.processors.registry import processor_class

from .conftest import (
    LANDSAT_DIR,
    LANDSAT_ID,
    T31TDH_EPSG,
    T31TDH_ORIGIN,
    T31TDH_PRODUCT,
    T31TDH_TILE,
    MakeInputs,
    real,
    with_baseline_0400,
    write_raster,
)

S2A_ID = "S2A_MSIL1C_20180101T105441_N0206_R051_T31TDH_20180101T124911"
S2B_ID = "S2B_MSIL2A_20180101T105441_N0206_R051_T31TDH_20180101T124911"
S2C_ID = "S2C_MSIL2A_20250101T105441_N0511_R051_T31TDH_20250101T124911"
S2A_0400_ID = "S2A_MSIL1C_20180101T105441_N0400_R051_T31TDH_20180101T124911"
# band -> (pixel size m, role)
S2_TEST_BANDS = {"B02": (1220.0, "blue"), "B05": (1830.0, "rededge1"), "B12": (1830.0, "swir2")}
S2A_BANDPASS = {"B02": (0.9778, -0.004), "B12": (1.003, -0.0012)}


def s2_dn(size: int, seed: int) -> np.ndarray[Any, Any]:
    """DNs 300..6000 with a nodata (0) stripe on the west and a nodata block."""
    data = np.random.default_rng(seed).integers(300, 6000, (size, size)).astype("uint16")
    data[:, :4] = 0
    data[10:14, 20:30] = 0
    return data


@pytest.fixture
def s2_raw_bands(tmp_path: Path) -> dict[str, Path]:
    """Raw uint16 DN bands (nodata 0) on the real T31TDH grid, as a provider L1C/L2A has them."""
    files = {}
    for seed, (band, (pixel, _)) in enumerate(S2_TEST_BANDS.items()):
        size = round(109800 / pixel)
        files[band] = write_raster(
            tmp_path / f"{band}.tif",
            s2_dn(size, seed),
            origin=T31TDH_ORIGIN,
            pixel_m=pixel,
            epsg=T31TDH_EPSG,
            nodata=0,
        )
    return files


def read(path: Path) -> tuple[np.ndarray[Any, Any], Any]:
    with rasterio.open(path) as ds:
        return ds.read(1), ds.profile | {"scales": ds.scales, "offsets": ds.offsets}


def centre_latitude(path: Path) -> float:
    with rasterio.open(path) as ds:
        left, bottom, right, top = ds.bounds
        _, lat = rasterio.warp.transform(
            ds.crs, "EPSG:4326", [(left + right) / 2], [(bottom + top) / 2]
        )
    return float(lat[0])


def expected_output(
    grid: AngleGrid,
    band_key: str,
    role: str,
    source: Path,
    *,
    scale: float,
    offset: float,
    nodata_in: float,
    target: float,
    bandpass: tuple[float, float] = (1.0, 0.0),
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Return (expected int16 values, valid mask) computed per pixel from the formulas."""
    with rasterio.open(source) as ds:
        dn = ds.read(1).astype(np.float64)
        angles = grid.pixel_angles(band_key, ds.transform, 0, 0, ds.height, ds.width)
    c = c_factor(
        weights_for(role),
        sun_zenith=angles.sun_zenith,
        view_zenith=angles.view_zenith,
        relative_azimuth=angles.view_azimuth - angles.sun_azimuth,
        target_sun_zenith_deg=target,
    )
    reflectance = dn * scale + offset
    slope, shift = bandpass
    return np.rint(1e4 * (slope * c * reflectance + shift)), dn != nodata_in


def assert_matches(
    out: np.ndarray[Any, Any], expected: np.ndarray[Any, Any], valid: np.ndarray[Any, Any]
) -> None:
    assert np.abs(out[valid].astype(np.int64) - expected[valid]).max() <= 1
    assert (out[~valid] == -9999).all()
    assert (out[valid] != -9999).all()


def run(inputs: Any) -> ProcessorResult:
    return NbarProcessor().run(inputs)


def test_nbar_is_registered_as_harmonization_processor() -> None:
    cls = processor_class("nbar")
    assert cls is NbarProcessor
    assert (cls.task_type, cls.version) == ("harmonization", "1.0.0")


def test_nbar_s2_baseline_before_0400_scales_by_quantification(
    s2_raw_bands: dict[str, Path], make_inputs: MakeInputs
) -> None:
    files = {
        **s2_raw_bands,
        "granule_metadata": real(T31TDH_TILE),
        "product_metadata": real(f"{T31TDH_PRODUCT}/MTD_MSIL1C.xml"),
    }
    result = run(make_inputs("S2_NBAR-1", files, scene_id=S2A_ID))
    grid = read_s2_tile_angles(real(T31TDH_TILE))
    latitude = centre_latitude(s2_raw_bands["B02"])
    target = target_sun_zenith(latitude)
    meta = result.metadata
    assert meta["target_sun_zenith_deg"] == pytest.approx(target, abs=1e-5)
    assert meta["processing_baseline"] == "02.06"
    assert meta["input_level"] == "L1C"
    assert meta["bandpass_coefficients_source"] == "S2A"
    for band, (_, role) in S2_TEST_BANDS.items():
        entry = meta["bands"][band]
        assert (entry["input_scale"], entry["input_offset"]) == (1e-4, 0.0)
        assert "baseline 02.06" in entry["scaling_source"]
        expected, valid = expected_output(
            grid,
            band,
            role,
            s2_raw_bands[band],
            scale=1e-4,
            offset=0.0,
            nodata_in=0,
            target=target,
            bandpass=S2A_BANDPASS.get(band, (1.0, 0.0)),
        )
        out, profile = read(result.files[band])
        assert (profile["dtype"], profile["nodata"]) == ("int16", -9999.0)
        assert (profile["scales"], profile["offsets"]) == ((1e-4,), (0.0,))
        assert_matches(out, expected, valid)
    assert "bandpass_slope" not in meta["bands"]["B05"]  # no OLI counterpart
    assert meta["bands"]["B02"]["bandpass_offset"] == -0.004


def test_nbar_s2_baseline_0400_subtracts_the_offset(
    s2_raw_bands: dict[str, Path], make_inputs: MakeInputs, tmp_path: Path
) -> None:
    product = tmp_path / "MTD_MSIL1C.xml"
    product.write_text(with_baseline_0400(real(f"{T31TDH_PRODUCT}/MTD_MSIL1C.xml").read_text()))
    files = {**s2_raw_bands, "MTD_TL": real(T31TDH_TILE), "MTD_MSIL1C": product}
    result = run(make_inputs("S2_NBAR-1", files, scene_id=S2A_0400_ID))
    grid = read_s2_tile_angles(real(T31TDH_TILE))
    target = target_sun_zenith(centre_latitude(s2_raw_bands["B12"]))
    entry = result.metadata["bands"]["B12"]
    assert result.metadata["processing_baseline"] == "04.00"
    assert (entry["input_scale"], entry["input_offset"]) == (1e-4, -0.1)
    expected, valid = expected_output(
        grid,
        "B12",
        "swir2",
        s2_raw_bands["B12"],
        scale=1e-4,
        offset=-0.1,
        nodata_in=0,
        target=target,
        bandpass=S2A_BANDPASS["B12"],
    )
    out, _ = read(result.files["B12"])
    assert_matches(out, expected, valid)
    # DN 300 is below the 04.00 offset: negative reflectance is kept (HLS keeps it too)
    assert (out[valid] < 0).any()


def correction_like_bands(tmp_path: Path, *, offset: float = 0.0) -> dict[str, Path]:
    """int16 reflectance x 10000 with scale/offset in the raster and nodata -9999."""
    files = {}
    for seed, band in enumerate(("B02", "B12")):
        pixel = S2_TEST_BANDS[band][0]
        size = round(109800 / pixel)
        data = np.random.default_rng(seed).integers(-50, 6000, (size, size)).astype("int16")
        data[-3:, :] = -9999
        files[band] = write_raster(
            tmp_path / f"corr_{band}.tif",
            data,
            origin=T31TDH_ORIGIN,
            pixel_m=pixel,
            epsg=T31TDH_EPSG,
            nodata=-9999,
            scale=1e-4,
            offset=offset,
        )
    return files


def test_nbar_correction_outputs_use_raster_scale_over_product_metadata(
    make_inputs: MakeInputs, tmp_path: Path
) -> None:
    bands = correction_like_bands(tmp_path, offset=-0.05)
    product = tmp_path / "MTD_MSIL1C.xml"
    product.write_text(with_baseline_0400(real(f"{T31TDH_PRODUCT}/MTD_MSIL1C.xml").read_text()))
    files = {**bands, "granule_metadata": real(T31TDH_TILE), "product_metadata": product}
    result = run(make_inputs("S2_NBAR-1", files, scene_id=S2A_0400_ID))
    entry = result.metadata["bands"]["B02"]
    assert entry["scaling_source"] == "raster scale/offset"
    assert (entry["input_scale"], entry["input_offset"], entry["input_nodata"]) == (
        1e-4,
        -0.05,
        -9999.0,
    )
    grid = read_s2_tile_angles(real(T31TDH_TILE))
    expected, valid = expected_output(
        grid,
        "B02",
        "blue",
        bands["B02"],
        scale=1e-4,
        offset=-0.05,
        nodata_in=-9999,
        target=result.metadata["target_sun_zenith_deg"],
        bandpass=S2A_BANDPASS["B02"],
    )
    out, _ = read(result.files["B02"])
    assert_matches(out, expected, valid)
    assert entry["nodata_pixels"] == int((~valid).sum())
    assert entry["valid_pixels"] == int(valid.sum())


def test_nbar_s2c_uses_s2a_bandpass_and_records_it(make_inputs: MakeInputs, tmp_path: Path) -> None:
    files = {**correction_like_bands(tmp_path), "granule_metadata": real(T31TDH_TILE)}
    result = run(make_inputs("S2_NBAR-1", files, scene_id=S2C_ID))
    meta = result.metadata
    assert meta["platform"] == "sentinel-2c"
    assert meta["bandpass_coefficients_source"] == "S2A (no published S2C coefficients)"
    entry = meta["bands"]["B12"]
    assert (entry["bandpass_slope"], entry["bandpass_offset"]) == (1.003, -0.0012)
    assert entry["bandpass_coefficients_source"] == "S2A (no published S2C coefficients)"


def test_nbar_s2b_uses_s2b_bandpass(make_inputs: MakeInputs, tmp_path: Path) -> None:
    files = {**correction_like_bands(tmp_path), "granule_metadata": real(T31TDH_TILE)}
    result = run(make_inputs("S2_NBAR-1", files, scene_id=S2B_ID))
    entry = result.metadata["bands"]["B12"]
    assert (entry["bandpass_slope"], entry["bandpass_offset"]) == (0.9867, 0.0004)
    assert result.metadata["bandpass_coefficients_source"] == "S2B"


def test_nbar_bandpass_off_and_scene_target_options(
    make_inputs: MakeInputs, tmp_path: Path
) -> None:
    bands = correction_like_bands(tmp_path)
    files = {**bands, "granule_metadata": real(T31TDH_TILE)}
    args = {"bandpass": False, "target_sun_zenith": "scene"}
    result = run(make_inputs("S2_NBAR-1", files, scene_id=S2A_ID, args=args))
    meta = result.metadata
    assert meta["target_sun_zenith_method"] == "scene"
    assert meta["target_sun_zenith_deg"] == pytest.approx(67.0354071200132, abs=1e-6)
    assert meta["bandpass"] == "off (option bandpass: false)"
    assert "bandpass_slope" not in meta["bands"]["B02"]
    grid = read_s2_tile_angles(real(T31TDH_TILE))
    expected, valid = expected_output(
        grid,
        "B02",
        "blue",
        bands["B02"],
        scale=1e-4,
        offset=0.0,
        nodata_in=-9999,
        target=67.0354071200132,
    )
    out, _ = read(result.files["B02"])
    assert_matches(out, expected, valid)


def test_nbar_quality_band_is_carried_over_unchanged(
    s2_raw_bands: dict[str, Path], make_inputs: MakeInputs, tmp_path: Path
) -> None:
    scl = np.random.default_rng(9).integers(0, 12, (60, 60)).astype("uint8")
    scl_path = write_raster(
        tmp_path / "SCL.tif",
        scl,
        origin=T31TDH_ORIGIN,
        pixel_m=1830.0,
        epsg=T31TDH_EPSG,
        nodata=0,
    )
    files = {
        **s2_raw_bands,
        "scl": scl_path,
        "granule_metadata": real(T31TDH_TILE),
        "product_metadata": real(f"{T31TDH_PRODUCT}/MTD_MSIL1C.xml"),
    }
    result = run(make_inputs("S2_NBAR-1", files, scene_id=S2A_ID))
    out, profile = read(result.files["SCL"])
    assert profile["dtype"] == "uint8" and profile["nodata"] == 0
    np.testing.assert_array_equal(out, scl)
    assert result.metadata["quality_bands"] == ["SCL"]
    # metadata files are passed on for the next step
    assert result.files["granule_metadata"] == real(T31TDH_TILE)


def test_nbar_outputs_are_tiled_intermediates_and_a_rerun_is_identical(
    s2_raw_bands: dict[str, Path], make_inputs: MakeInputs
) -> None:
    files = {
        **s2_raw_bands,
        "granule_metadata": real(T31TDH_TILE),
        "product_metadata": real(f"{T31TDH_PRODUCT}/MTD_MSIL1C.xml"),
    }
    inputs = make_inputs("S2_NBAR-1", files, scene_id=S2A_ID, args={"window_px": 64})
    first = run(inputs)
    first_data = {band: read(first.files[band])[0] for band in S2_TEST_BANDS}
    second = run(inputs)
    assert first.files == second.files
    for band in S2_TEST_BANDS:
        # publish writes the COG once; nbar's outputs are tiled, compressed, scaled GeoTIFFs
        with rasterio.open(second.files[band]) as ds:
            assert ds.dtypes[0] == "int16" and ds.scales == (1e-4,) and ds.offsets == (0.0,)
            assert ds.profile["tiled"] and ds.compression is not None
            assert ds.overviews(1) == []
        np.testing.assert_array_equal(read(second.files[band])[0], first_data[band])
    leftovers = [p.name for p in inputs.output_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_nbar_window_size_and_workers_do_not_change_results(
    s2_raw_bands: dict[str, Path], make_inputs: MakeInputs
) -> None:
    files = {
        **s2_raw_bands,
        "granule_metadata": real(T31TDH_TILE),
        "product_metadata": real(f"{T31TDH_PRODUCT}/MTD_MSIL1C.xml"),
    }
    args = {"window_px": 64, "workers": 1}
    small = run(make_inputs("S2_NBAR-1", files, scene_id=S2A_ID, args=args))
    large = run(make_inputs("S2_NBAR-1", files, scene_id=S2A_ID, out="large", args={"workers": 3}))
    for band in S2_TEST_BANDS:
        np.testing.assert_array_equal(read(small.files[band])[0], read(large.files[band])[0])


def test_transform_window_keeps_nodata_and_never_makes_it() -> None:
    data = np.array([[0, 100, 5000], [7, 0, 65535]], dtype=np.uint16)
    cfac = np.full(data.shape, 1.0, dtype=np.float32)
    # a = 1, b = -100: DN 100 gives exactly 0, the output nodata here
    out, valid = _transform_window(
        data, cfac, np.float32(1.0), np.float32(-100.0), np.float32(0.0), 0.0, 0
    )
    assert valid.tolist() == [[False, True, True], [True, False, True]]
    assert out[0, 0] == 0 and out[1, 1] == 0  # nodata stays nodata, not adjusted
    assert out[0, 1] == 1  # a valid pixel landing on nodata moves one step away
    assert out[0, 2] == 4900 and out[1, 0] == -93
    assert out[1, 2] == 32767  # clipped to int16


def test_c_factor_from_refined_nodes_matches_per_pixel_values() -> None:
    # the processor evaluates c on the 5 km grid refined 4 times (1.25 km), then interpolates
    grid = read_s2_tile_angles(real(T31TDH_TILE)).refined(4)
    assert (grid.geometry.rows, grid.geometry.dx) == (89, 1250.0)
    weights = weights_for("nir")
    nodes = c_factor(
        weights,
        sun_zenith=grid.sun_zenith,
        view_zenith=grid.view_zenith["B8A"],
        relative_azimuth=grid.view_azimuth["B8A"] - grid.sun_azimuth,
        target_sun_zenith_deg=45.0,
    )
    transform = Affine(20.0, 0.0, T31TDH_ORIGIN[0], 0.0, -20.0, T31TDH_ORIGIN[1])
    for row, col in ((0, 0), (2000, 3100), (5000, 400)):
        interpolated = grid.interpolator(transform, row, col, 256, 256)(nodes)
        angles = grid.pixel_angles("B8A", transform, row, col, 256, 256)
        exact = c_factor(
            weights,
            sun_zenith=angles.sun_zenith,
            view_zenith=angles.view_zenith,
            relative_azimuth=angles.view_azimuth - angles.sun_azimuth,
            target_sun_zenith_deg=45.0,
        )
        assert float(np.abs(interpolated - exact).max()) < 5e-5


def landsat_files() -> dict[str, Path]:
    folder = real(LANDSAT_DIR)
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in (".TIF", ".txt")}


def test_nbar_landsat_l2sp_real_bands_with_ang(make_inputs: MakeInputs) -> None:
    files = landsat_files()
    result = run(make_inputs("LC8_NBAR-1", files, scene_id=LANDSAT_ID, tile="008059"))
    meta = result.metadata
    assert meta["platform"] == "landsat-8" and meta["sensor"] == "OLI"
    assert "ANG.txt: USGS angle coefficients" in meta["angles_source"]
    assert meta["bandpass"].startswith("not applied")
    assert sorted(result.files) == sorted(
        ["B2", "B3", "B4", "B5", "B6", "B7", "QA_PIXEL", f"{LANDSAT_ID}_MTL", f"{LANDSAT_ID}_ANG"]
    )
    mtl_facts = meta["bands"]["B5"]
    assert (mtl_facts["input_scale"], mtl_facts["input_offset"]) == (2.75e-05, -0.2)
    assert "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS" in mtl_facts["scaling_source"]
    grid = read_landsat_ang(real(f"{LANDSAT_DIR}/{LANDSAT_ID}_ANG.txt"), (2, 5, 7))
    target = target_sun_zenith(centre_latitude(files[f"{LANDSAT_ID}_SR_B5"]))
    assert meta["target_sun_zenith_deg"] == pytest.approx(target, abs=1e-5)
    for band, role in (("B2", "blue"), ("B5", "nir"), ("B7", "swir2")):
        expected, valid = expected_output(
            grid,
            band,
            role,
            files[f"{LANDSAT_ID}_SR_{band}"],
            scale=2.75e-05,
            offset=-0.2,
            nodata_in=0,
            target=target,
        )
        out, _ = read(result.files[band])
        assert valid.sum() > 100_000 and (~valid).sum() > 10_000  # real scene edges
        assert_matches(out, expected, valid)
    qa_out, _ = read(result.files["QA_PIXEL"])
    np.testing.assert_array_equal(qa_out, read(files[f"{LANDSAT_ID}_QA_PIXEL"])[0])


def test_nbar_landsat_prefers_angle_bands(make_inputs: MakeInputs, tmp_path: Path) -> None:
    files = landsat_files()
    with rasterio.open(files[f"{LANDSAT_ID}_SR_B4"]) as ds:
        transform, shape = ds.transform, (ds.height, ds.width)
    origin = (transform.c, transform.f)
    constants = {"SZA": 3300, "SAA": 13600, "VZA": 0, "VAA": 0}
    for kind, value in constants.items():
        files[kind.lower()] = write_raster(
            tmp_path / f"{LANDSAT_ID}_{kind}.TIF",
            np.full(shape, value, dtype="int16"),
            origin=origin,
            pixel_m=transform.a,
            epsg=32618,
            nodata=None,
        )
    args = {"target_sun_zenith": "scene"}
    result = run(make_inputs("LC8_NBAR-1", files, scene_id=LANDSAT_ID, tile="008059", args=args))
    meta = result.metadata
    assert meta["angles_source"].startswith("Landsat C2 angle bands")
    # scene target = MTL scene-centre sun zenith; observed sun 33, nadir view everywhere
    assert meta["target_sun_zenith_deg"] == pytest.approx(90 - 57.08727307, abs=1e-6)
    expected_c = float(
        c_factor(
            weights_for("red"),
            sun_zenith=33.0,
            view_zenith=0.0,
            relative_azimuth=-136.0,
            target_sun_zenith_deg=90 - 57.08727307,
        )
    )
    entry = meta["bands"]["B4"]
    assert entry["c_factor_min"] == pytest.approx(expected_c, abs=1e-6)
    assert entry["c_factor_max"] == pytest.approx(expected_c, abs=1e-6)


def tm_bands(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for number in (1, 2, 3, 4, 5, 7):
        data = np.random.default_rng(number).integers(7000, 20000, (50, 60)).astype("uint16")
        data[0, :] = 0
        files[f"LT05_L2SP_010067_19860424_20200918_02_T2_SR_B{number}"] = write_raster(
            tmp_path / f"LT05_SR_B{number}.TIF",
            data,
            origin=(600000.0, -900000.0),
            pixel_m=3000.0,
            epsg=32618,
            nodata=0,
        )
    files["mtl"] = real(
        "stactools-landsat/data-files/tm/LT05_L2SP_010067_19860424_20200918_02_T2_MTL.xml"
    )
    ang = tmp_path / "LT05_L2SP_010067_19860424_20200918_02_T2_ANG.txt"
    ang.write_text(
        'GROUP = FILE_HEADER\n  SPACECRAFT_ID = "LANDSAT_5"\nEND_GROUP = FILE_HEADER\n'
        'GROUP = PROJECTION\n  MAP_PROJECTION = "UTM"\n  UTM_ZONE = 18\n'
        "  UL_CORNER = ( 600000.000, -900000.000)\nEND_GROUP = PROJECTION\nEND\n"
    )
    files["ang"] = ang
    return files


def test_nbar_landsat5_tm_uses_tm_band_roles(make_inputs: MakeInputs, tmp_path: Path) -> None:
    files = tm_bands(tmp_path)
    scene_id = "LT05_L2SP_010067_19860424_20200918_02_T2"
    result = run(make_inputs("L57_NBAR-1", files, scene_id=scene_id, tile="010067"))
    meta = result.metadata
    assert (meta["platform"], meta["sensor"]) == ("landsat-5", "TM")
    assert "nadir view (approximation)" in meta["angles_source"]
    roles = {band: entry["role"] for band, entry in meta["bands"].items()}
    assert roles == {
        "B1": "blue",
        "B2": "green",
        "B3": "red",
        "B4": "nir",
        "B5": "swir1",
        "B7": "swir2",
    }
    # a TM scene never lands under OLI's numbering: refused naming the collection to use
    with pytest.raises(InvalidInputError, match="is a tm product; LC8_NBAR-1 .* use L57_NBAR-1"):
        run(make_inputs("LC8_NBAR-1", files, scene_id=scene_id, tile="010067", out="oli"))


def test_nbar_without_tile_metadata_names_what_to_pass(
    make_inputs: MakeInputs, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match="MTD_TL.xml"):
        run(make_inputs("S2_NBAR-1", correction_like_bands(tmp_path), scene_id=S2A_ID))


def test_nbar_raw_band_without_scaling_is_refused(
    s2_raw_bands: dict[str, Path], make_inputs: MakeInputs
) -> None:
    files = {**s2_raw_bands, "granule_metadata": real(T31TDH_TILE)}
    with pytest.raises(InvalidInputError, match="no product metadata says how"):
        run(make_inputs("S2_NBAR-1", files, scene_id=S2A_ID))


def test_nbar_product_metadata_of_another_unit_is_refused(
    s2_raw_bands: dict[str, Path], make_inputs: MakeInputs
) -> None:
    files = {
        **s2_raw_bands,
        "granule_metadata": real(T31TDH_TILE),
        "product_metadata": real(f"{T31TDH_PRODUCT}/MTD_MSIL1C.xml"),
    }
    with pytest.raises(InvalidInputError, match="describes S2A"):
        run(make_inputs("S2_NBAR-1", files, scene_id=S2B_ID))


def test_nbar_bands_in_another_crs_are_refused(make_inputs: MakeInputs, tmp_path: Path) -> None:
    band = write_raster(
        tmp_path / "B02.tif",
        np.full((10, 10), 500, dtype="int16"),
        origin=(399960.0, 4800000.0),
        pixel_m=100.0,
        epsg=32632,
        nodata=-9999,
        scale=1e-4,
    )
    files = {"B02": band, "granule_metadata": real(T31TDH_TILE)}
    with pytest.raises(InvalidInputError, match="EPSG:32632"):
        run(make_inputs("S2_NBAR-1", files, scene_id=S2A_ID))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"target_sun_zenith": "noon"}, "args.target_sun_zenith"),
        ({"bandpass": "yes"}, "args.bandpass"),
        ({"window_px": 10}, "args.window_px"),
        ({"workers": 0}, "args.workers"),
        ({"brdf": "ross"}, "unknown harmonization option"),
        ({"compress": "lzma"}, "args.compress"),
    ],
)
def test_nbar_bad_option_is_refused_with_field(
    args: dict[str, Any], message: str, make_inputs: MakeInputs, tmp_path: Path
) -> None:
    files = {**correction_like_bands(tmp_path), "granule_metadata": real(T31TDH_TILE)}
    with pytest.raises(InvalidInputError, match=message):
        run(make_inputs("S2_NBAR-1", files, scene_id=S2A_ID, args=args))


def test_nbar_without_reflectance_bands_lists_expected_keys(make_inputs: MakeInputs) -> None:
    with pytest.raises(InvalidInputError, match="give bands keyed like B02"):
        run(make_inputs("S2_NBAR-1", {"granule_metadata": real(T31TDH_TILE)}, scene_id=S2A_ID))


def test_nbar_finds_metadata_in_an_upstream_folder(make_inputs: MakeInputs, tmp_path: Path) -> None:
    # what the step runner adds for harmonization: the download's folder, where a STAC download
    # stored the granule metadata as <asset key>.xml
    download = tmp_path / "download"
    download.mkdir()
    (download / "granule_metadata.xml").write_bytes(real(T31TDH_TILE).read_bytes())
    files = {**correction_like_bands(tmp_path), "upstream_download_0": download}
    result = run(make_inputs("S2_NBAR-1", files, scene_id=S2A_ID))
    assert result.metadata["angles_source"].startswith("granule_metadata.xml: Sentinel-2 5 km")
    assert "upstream_download_0" not in result.files
