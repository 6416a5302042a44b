"""Angle grids from the real Sentinel-2 MTD_TL.xml files and Landsat ANG.txt / angle bands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from include.common.errors import InvalidInputError
from include.processors.harmonization.angles import (
    ALL_BANDS,
    angles_from_components,
    fill_plane,
    read_landsat_ang,
    read_landsat_angle_bands,
    read_s2_tile_angles,
    view_components,
)
from include.processors.harmonization.metadata import read_landsat_mtl

from .conftest import LANDSAT_DIR, LANDSAT_ID, T31TDH_TILE, real, write_raster

# (file, EPSG, mean sun zenith, mean sun azimuth) as SOURCES.md quotes them
S2_TILES = [
    (T31TDH_TILE, 32631, 67.0354071200132, 166.328513490143),
    (
        "eo-datasets/sinergise_s2_l1c/S2B_MSIL1C_20201011T000249_N0209_R030_T55HFA_20201011T011446/"
        "metadata.xml",
        32755,
        37.3713908882192,
        46.3307328858312,
    ),
    (
        "stactools-sentinel2/S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248.SAFE/"
        "GRANULE/L1C_T46RER_A032448_20210908T043714/MTD_TL.xml",
        32646,
        26.4931642669439,
        142.987598836457,
    ),
    (
        "stactools-sentinel2/S2A_MSIL1C_20200717T221941_R029_T01LAC_20200717T234135.SAFE/"
        "GRANULE/L1C_T01LAC_A026481_20200717T221944/MTD_TL.xml",
        32701,
        45.183085206095,
        36.1960474596642,
    ),
    (
        "stactools-sentinel2/S2A_MSIL2A_20190212T192651_N0212_R013_T07HFE_20201007T160857.SAFE/"
        "GRANULE/L2A_T07HFE_A019029_20190212T192646/MTD_TL.xml",
        32707,
        32.707073851362,
        62.3286549448294,
    ),
    (
        "stactools-sentinel2/esa_S2B_MSIL2A_20210122T133229_N0214_R081_T22HBD_20210122T155500.SAFE/"
        "GRANULE/L2A_T22HBD_A020270_20210122T133224/MTD_TL.xml",
        32722,
        32.3712311857264,
        64.9495240978383,
    ),
    (
        "stactools-sentinel2/S2A_OPER_MSI_L2A_TL_SGS__20181231T210250_A018414_T10SDG/metadata.xml",
        32610,
        62.900929056568,
        161.105709274255,
    ),
]
T01LAC = S2_TILES[3][0]
LANDSAT_ANGS = [
    f"{LANDSAT_DIR}/{LANDSAT_ID}_ANG.txt",
    "stactools-landsat/data-files/oli-tirs/LC08_L2SR_084024_20160111_20201016_02_T1_ANG.txt",
    "eo-datasets/LC08_L1GT_089074_20220506_20220512_02_T2/"
    "LC08_L1GT_089074_20220506_20220512_02_T2_ANG.txt",
]
S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11"]


@pytest.mark.parametrize(("relative", "epsg", "zenith", "azimuth"), S2_TILES)
def test_s2_tile_sun_grid_mean_equals_published_mean(
    relative: str, epsg: int, zenith: float, azimuth: float
) -> None:
    grid = read_s2_tile_angles(real(relative))
    assert grid.crs == f"EPSG:{epsg}"
    assert (grid.geometry.rows, grid.geometry.cols) == (23, 23)
    assert (grid.geometry.dx, grid.geometry.dy) == (5000.0, 5000.0)
    assert grid.mean_sun == (zenith, azimuth)
    assert grid.scene_sun_zenith() == zenith
    assert float(np.mean(grid.sun_zenith)) == pytest.approx(zenith, abs=1e-3)
    mean_azimuth = np.degrees(
        np.arctan2(
            np.mean(np.sin(np.radians(grid.sun_azimuth))),
            np.mean(np.cos(np.radians(grid.sun_azimuth))),
        )
    )
    assert mean_azimuth % 360 == pytest.approx(azimuth, abs=0.05)


@pytest.mark.parametrize(("relative", "epsg", "zenith", "azimuth"), S2_TILES)
def test_s2_tile_view_grids_match_published_band_means(
    relative: str, epsg: int, zenith: float, azimuth: float
) -> None:
    grid = read_s2_tile_angles(real(relative))
    assert set(S2_BANDS) | {"B12"} == set(grid.view_zenith)
    for band in S2_BANDS:
        seen = grid.view_seen[band]
        view_zenith = grid.view_zenith[band]
        assert np.isfinite(view_zenith).all()  # gaps filled
        published_zenith, published_azimuth = grid.mean_view[band]
        # detectors combined: the mean over the nodes the metadata covers is the published mean
        assert float(view_zenith[seen].mean()) == pytest.approx(published_zenith, abs=0.1)
        if view_zenith[seen].min() > 1.0:  # azimuth means are only defined away from nadir
            az = np.radians(grid.view_azimuth[band][seen])
            mean_az = np.degrees(np.arctan2(np.sin(az).mean(), np.cos(az).mean())) % 360
            assert mean_az == pytest.approx(published_azimuth, abs=0.5)


def test_s2_tile_pixel_angles_at_nodes_equal_the_grid() -> None:
    grid = read_s2_tile_angles(real(T31TDH_TILE))
    # 5 km pixels whose centres sit on the nodes
    g = grid.geometry
    transform = Affine(5000.0, 0.0, g.x0 - 2500.0, 0.0, -5000.0, g.y0 + 2500.0)
    angles = grid.pixel_angles("B04", transform, 0, 0, g.rows, g.cols)
    np.testing.assert_allclose(angles.sun_zenith, grid.sun_zenith, atol=1e-4)
    np.testing.assert_allclose(angles.view_zenith, grid.view_zenith["B04"], atol=1e-4)
    diff = (angles.view_azimuth - grid.view_azimuth["B04"] + 180) % 360 - 180
    assert np.abs(diff).max() < 1e-3


def test_s2_tile_pixel_angles_across_nadir_interpolate_view_vectors() -> None:
    grid = read_s2_tile_angles(real(T01LAC))
    nodes = grid.view_zenith["B04"]
    assert nodes.min() < 0.5  # this tile contains the satellite track
    g = grid.geometry
    transform = Affine(625.0, 0.0, g.x0 - 312.5, 0.0, -625.0, g.y0 + 312.5)
    angles = grid.pixel_angles("B04", transform, 0, 0, 177, 177)  # 8 pixels per node step
    # a convex combination of view vectors is never longer than the longest: each pixel's
    # zenith stays below the largest of its four nodes (interpolating azimuths would not)
    for row in range(0, 176, 7):
        for col in range(0, 176, 5):
            i, j = row // 8, col // 8
            corner_max = nodes[i : i + 2, j : j + 2].max()
            assert angles.view_zenith[row, col] <= corner_max + 1e-4
    assert float(angles.view_zenith.min()) < 0.5
    # both sides of the track are there, azimuths about 180 degrees apart
    az = angles.view_azimuth[angles.view_zenith > 2.0]
    assert (np.abs(((az - 104.0) + 180) % 360 - 180) < 20).any()
    assert (np.abs(((az - 284.0) + 180) % 360 - 180) < 20).any()


def test_s2_tile_without_sun_grid_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "MTD_TL.xml"
    path.write_text("<Level-1C_Tile_ID><Geometric_Info/></Level-1C_Tile_ID>")
    with pytest.raises(InvalidInputError, match="Sun_Angles_Grid"):
        read_s2_tile_angles(path)


def test_fill_plane_extrapolates_a_plane_exactly() -> None:
    rows, cols = np.indices((6, 7), dtype=float)
    plane = 2.0 + 0.5 * cols - 0.25 * rows
    holed = plane.copy()
    holed[:, :3] = np.nan
    holed[5, 6] = np.nan
    np.testing.assert_allclose(fill_plane(holed), plane, atol=1e-12)
    with pytest.raises(ValueError, match="no finite node"):
        fill_plane(np.full((2, 2), np.nan))


def test_view_components_round_trip() -> None:
    zenith = np.array([0.5, 5.0, 11.0])
    azimuth = np.array([10.0, 200.0, 359.0])
    back_zenith, back_azimuth = angles_from_components(*view_components(zenith, azimuth))
    np.testing.assert_allclose(back_zenith, zenith, atol=1e-12)
    np.testing.assert_allclose(back_azimuth, azimuth, atol=1e-9)


@pytest.mark.parametrize("relative", LANDSAT_ANGS)
def test_landsat_ang_sun_at_scene_centre_equals_mtl(relative: str) -> None:
    ang = real(relative)
    mtl = read_landsat_mtl(ang.with_name(ang.name.replace("_ANG.txt", "_MTL.txt")))
    assert mtl.sun_elevation is not None and mtl.sun_azimuth is not None
    grid = read_landsat_ang(ang, (2, 3, 4, 5, 6, 7), mtl=mtl)
    g = grid.geometry
    # the scene centre of the L1T frame: MTL SUN_ELEVATION/SUN_AZIMUTH are given there
    transform = Affine(30.0, 0.0, g.x0 - 15.0, 0.0, -30.0, g.y0 + 15.0)
    rows = round((g.rows - 1) * g.dy / 30.0)
    cols = round((g.cols - 1) * g.dx / 30.0)
    centre = grid.pixel_angles("B4", transform, rows // 2, cols // 2, 1, 1)
    assert float(centre.sun_zenith[0, 0]) == pytest.approx(90.0 - mtl.sun_elevation, abs=0.05)
    assert float(centre.sun_azimuth[0, 0]) % 360 == pytest.approx(mtl.sun_azimuth, abs=0.05)
    # OLI looks at most 7.5 degrees off nadir (about 8.7 at the ground, Earth's curvature);
    # near nadir at the centre
    assert float(centre.view_zenith[0, 0]) < 1.5
    for band in ("B2", "B4", "B7"):
        seen = grid.view_seen[band]
        assert 0.95 * seen.size > seen.sum() > 0.5 * seen.size
        assert float(grid.view_zenith[band][seen].max()) < 9.0
    assert grid.mean_sun == (90.0 - mtl.sun_elevation, mtl.sun_azimuth)


def test_landsat_ang_grid_is_on_the_scene_grid() -> None:
    grid = read_landsat_ang(real(LANDSAT_ANGS[0]), (4,))
    assert grid.crs == "EPSG:32618"
    assert (grid.geometry.x0, grid.geometry.y0) == (378300.0, 275700.0)  # UL pixel centre
    assert set(grid.view_zenith) == {"B4"}


def test_landsat_ang_missing_band_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="RPC_BAND12"):
        read_landsat_ang(real(LANDSAT_ANGS[0]), (12,))


def test_landsat_ang_without_polynomials_falls_back_to_scene_centre(tmp_path: Path) -> None:
    mtl = read_landsat_mtl(
        real("stactools-landsat/data-files/tm/LT05_L2SP_010067_19860424_20200918_02_T2_MTL.xml")
    )
    ang = tmp_path / "LT05_ANG.txt"
    ang.write_text(
        'GROUP = FILE_HEADER\n  SPACECRAFT_ID = "LANDSAT_5"\nEND_GROUP = FILE_HEADER\n'
        'GROUP = PROJECTION\n  MAP_PROJECTION = "UTM"\n  UTM_ZONE = 18\n'
        "  UL_CORNER = ( 600000.000, -900000.000)\nEND_GROUP = PROJECTION\nEND\n"
    )
    grid = read_landsat_ang(ang, (1, 2, 3), mtl=mtl)
    assert grid.crs == "EPSG:32618"
    assert "nadir view (approximation)" in grid.source
    assert float(grid.sun_zenith.mean()) == pytest.approx(90.0 - 46.93006922)
    assert float(grid.view_zenith[ALL_BANDS].max()) == 0.0
    with pytest.raises(InvalidInputError, match="no RPC_BANDnn"):
        read_landsat_ang(ang, (1,))


def test_landsat_angle_bands_are_read_in_hundredths_of_degree(tmp_path: Path) -> None:
    rows, cols = np.indices((300, 400))
    sza = (3000 + rows).astype("int16")  # 30.00 .. 32.99 degrees
    saa = np.full((300, 400), 13500, dtype="int16")  # 135 degrees
    vza = (cols * 2).astype("int16")  # 0 .. 7.98 degrees
    vaa = np.full((300, 400), -7850, dtype="int16")  # -78.5 degrees
    paths = {}
    for kind, data in (("SZA", sza), ("SAA", saa), ("VZA", vza), ("VAA", vaa)):
        paths[kind] = write_raster(
            tmp_path / f"X_{kind}.TIF",
            data,
            origin=(500000.0, 4000000.0),
            pixel_m=30.0,
            epsg=32618,
            nodata=None,
        )
    grid = read_landsat_angle_bands(paths, step_px=10)
    assert set(grid.view_zenith) == {ALL_BANDS}
    transform = Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 4000000.0)
    angles = grid.pixel_angles("B4", transform, 100, 200, 3, 3)
    assert float(angles.sun_zenith[1, 1]) == pytest.approx(31.01, abs=0.06)
    assert float(angles.sun_azimuth[1, 1]) == pytest.approx(135.0, abs=1e-3)
    assert float(angles.view_zenith[1, 1]) == pytest.approx(4.02, abs=0.1)
    assert float(angles.view_azimuth[1, 1]) == pytest.approx(360 - 78.5, abs=1e-3)
    with pytest.raises(InvalidInputError, match="VAA are missing"):
        read_landsat_angle_bands({k: v for k, v in paths.items() if k != "VAA"})
