"""The provider-package builders (tests/helpers/packages.py) make what the providers send."""

from __future__ import annotations

import io
import math
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.errors

from include.processors.products.landsat import LandsatProduct
from include.processors.products.sentinel2 import Sentinel2Product
from tests.helpers import packages as pk

N0509 = pk.S2Relocation(
    "S2B_MSIL1C_20230601T094549_N0509_R079_T34UDD_20230601T115221",
    epsg=32634,
    upper_left=(399960, 5900040),
    utm_zone="34N",
)


@pytest.mark.parametrize(
    "source",
    [pk.S2_L1C_N0206_T31TDH, pk.S2_L1C_N0209_T01LAC, pk.S2_L1C_N0301_T46RER],
)
def test_s2_l1c_safe_zip_opens_with_its_bands_at_the_mtd_tl_grid(
    source: str, tmp_path: Path
) -> None:
    package = pk.s2_package(source)

    with zipfile.ZipFile(io.BytesIO(package.zip_bytes)) as archive:
        names = archive.namelist()
    assert {n.split("/")[0] for n in names} == {f"{package.name}.SAFE"}
    for image_file in package.metadata.image_files:  # the MTD's IMAGE_FILE paths, followed
        assert f"{package.name}.SAFE/{image_file}.jp2" in names
    product = Sentinel2Product.open(package.write_zip(tmp_path), work_dir=tmp_path / "x")
    assert product.level == "L1C"
    assert set(product.bands) >= set(pk.S2_BANDS)
    ulx, uly = package.grid.upper_left[10]
    with rasterio.open(product.band_path("B04")) as src:
        assert src.crs.to_epsg() == package.grid.epsg
        assert src.shape == (120, 120)
        assert src.transform == package.transforms[10]
        assert (src.transform.c - ulx) % 60 == 0 and (uly - src.transform.f) % 60 == 0
        assert (src.read(1) == package.dn["B04"]).all()  # lossless
        assert src.tags(ns="IMAGE_STRUCTURE").get("COMPRESSION_REVERSIBILITY") in (
            None,
            "LOSSLESS",
            "LOSSLESS (possibly)",
        )
    with rasterio.open(product.band_path("B01")) as src:
        assert src.shape == (20, 20) and src.transform == package.transforms[60]
    assert (package.dn["B02"] == 0).any() and (package.dn["B02"] != 0).any()
    assert product.metadata_path is not None
    mtd = package.write_safe(tmp_path / "safe") / product.metadata_path.name
    with warnings.catch_warnings():  # the top level is a list of subdatasets, without a grid
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(mtd) as src:
            assert src.driver == "SENTINEL2" and src.subdatasets  # GDAL reads it as a SAFE


def test_s2_l1c_n0509_has_offsets_and_a_tile_metadata_on_its_own_grid(tmp_path: Path) -> None:
    package = pk.s2_package(
        pk.S2_L1C_N0509_T34UDD, tile_source=pk.S2_L1C_N0301_T46RER, tile_relocation=N0509
    )

    assert package.metadata.baseline == "05.09"
    assert package.metadata.offsets == dict.fromkeys(pk.S2_BANDS, -1000.0)
    assert package.grid.epsg == 32634 and package.grid.upper_left[10] == (399960, 5900040)
    reflectance = package.reflectance("B04")
    valid = package.valid("B04")
    assert np.allclose(reflectance[valid], (package.dn["B04"][valid] - 1000) / 10000)
    product = Sentinel2Product.open(package.write_zip(tmp_path), work_dir=tmp_path / "x")
    assert product.metadata.offset("B04") == -1000
    assert product.has_band("MSK_CLASSI")


@pytest.mark.parametrize("source", [pk.S2_L2A_N0212_T07HFE, pk.S2_L2A_N0214_T22HBD])
def test_s2_l2a_safe_zip_has_resolution_folders_and_scl(source: str, tmp_path: Path) -> None:
    package = pk.s2_package(source)

    product = Sentinel2Product.open(package.write_zip(tmp_path), work_dir=tmp_path / "x")
    assert product.level == "L2A"
    assert product.band_path("B04").parent.name == "R10m"
    assert product.band_path("SCL").name.endswith("_SCL_20m.jp2")
    assert "B10" not in product.bands


def test_s2_relocated_l2a_with_boa_offsets_reads_back(tmp_path: Path) -> None:
    relocation = pk.S2Relocation(
        "S2A_MSIL2A_20200109T132231_N0400_R038_T23LLF_20200109T160000",
        epsg=32723,
        upper_left=(399960, 8700040),
        utm_zone="23S",
        boa_offset=-1000,
    )
    package = pk.s2_package(pk.S2_L2A_N0214_T22HBD, relocation=relocation)

    product = Sentinel2Product.open(package.write_zip(tmp_path), work_dir=tmp_path / "x")
    assert product.metadata.product_uri == relocation.product_uri
    assert product.metadata.processing_baseline == "04.00"
    assert product.metadata.offset("B8A") == -1000
    assert product.tile_metadata is not None and product.tile_metadata.epsg == 32723
    with rasterio.open(product.band_path("B04")) as src:
        assert src.crs.to_epsg() == 32723


@pytest.mark.parametrize(
    "build",
    [pk.landsat_l1tp_oli, pk.landsat_l2sp_oli, pk.landsat_l2sp_tm, pk.landsat_l2sp_etm],
)
def test_landsat_bundle_members_are_the_mtl_file_names(build: object, tmp_path: Path) -> None:
    package = build()  # type: ignore[operator]

    with tarfile.open(fileobj=io.BytesIO(package.tar_bytes)) as archive:
        members = archive.getnames()
    named = {v for k, v in package.mtl.items() if k.startswith("FILE_NAME_")}
    assert all("/" not in m for m in members)  # flat, as USGS bundles are
    assert set(members) <= named | {f"{package.product_id}_MTL.json"}
    product = LandsatProduct.open(package.write_tar(tmp_path), work_dir=tmp_path / "x")
    assert product.metadata.product_id == package.product_id
    assert product.qa_pixel is not None
    level2 = "_L2S" in package.product_id
    for band in ("1", "2", "3", "4", "5", "7"):
        with rasterio.open(product.band_path(band)) as src:
            key = f"SR_B{band}" if level2 else f"B{band}"
            assert (src.read(1) == package.dn[key]).all()
            assert str(src.crs) == package.crs and src.transform == package.transform


def test_landsat_etm_mtl_says_landsat_7_etm() -> None:
    package = pk.landsat_l2sp_etm()

    assert package.product_id.startswith("LE07_L2SP_010067_2003")
    assert package.mtl["SPACECRAFT_ID"] == "LANDSAT_7"
    assert package.mtl["SENSOR_ID"] == "ETM"
    assert "FILE_NAME_BAND_ST_B6" in package.mtl
    assert float(package.mtl["REFLECTANCE_MULT_BAND_4"]) == pytest.approx(2.75e-05)


def test_landsat_moved_l2sp_is_on_the_asked_path_row_and_zone() -> None:
    package = pk.landsat_l2sp_oli_at(
        path=221, row=69, acquired="2024-01-05", center_lonlat=(-45.4, -12.9), zone=23
    )

    assert package.product_id == "LC08_L2SP_221069_20240105_20240114_02_T1"
    assert (package.mtl["WRS_PATH"], package.mtl["WRS_ROW"]) == ("221", "69")
    assert package.crs == "EPSG:32623"
    from shapely.geometry import Point, shape

    assert shape(package.footprint).contains(Point(-45.4, -12.9))


def test_landsat_reference_formulas_match_design_section_5() -> None:
    """The independent formulas the journeys compare with (DESIGN 5), on one pixel each."""
    l2 = pk.landsat_l2sp_oli()
    dn = float(l2.dn["SR_B4"][100, 100])
    assert l2.sr_reflectance(4)[100, 100] == pytest.approx(dn * 2.75e-5 - 0.2)
    st = float(l2.dn["ST_B10"][100, 100])
    assert l2.temperature_k("ST_B10")[100, 100] == pytest.approx(st * 0.00341802 + 149.0)
    l1 = pk.landsat_l1tp_oli()
    dn1 = float(l1.dn["B4"][30, 30])
    mult, add = float(l1.mtl["REFLECTANCE_MULT_BAND_4"]), float(l1.mtl["REFLECTANCE_ADD_BAND_4"])
    sine = math.sin(math.radians(float(l1.mtl["SUN_ELEVATION"])))
    assert l1.toa_reflectance(4)[30, 30] == pytest.approx((dn1 * mult + add) / sine)
