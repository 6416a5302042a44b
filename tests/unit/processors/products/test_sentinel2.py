"""Sentinel-2 product metadata and band files, on real MTD files of several baselines.

Expected values were read by hand from the files in ../shared/realdata (see SOURCES.md); the
04.00+ layouts come from the specification-shaped fixtures in tests/fixtures/sentinel2 (no real
04.00+ product metadata is among the real samples).
"""

from __future__ import annotations

import shutil
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import rasterio

from include.common.errors import InvalidInputError
from include.processors.products import (
    Sentinel2Product,
    parse_product_metadata,
    parse_tile_metadata,
)
from include.processors.products.sentinel2 import canonical_band
from tests.helpers.realdata import realdata

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "sentinel2"
EODAG_N0206 = "eodag/products/S2A_MSIL1C_20180101T105441_N0206_R051_T31TDH_20180101T124911"
N0209 = "stactools-sentinel2/S2A_MSIL1C_20200717T221941_R029_T01LAC_20200717T234135.SAFE"
N0301 = "stactools-sentinel2/S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248.SAFE"
L2A_N0212 = "stactools-sentinel2/S2A_MSIL2A_20190212T192651_N0212_R013_T07HFE_20201007T160857.SAFE"
L2A_N0214 = (
    "stactools-sentinel2/esa_S2B_MSIL2A_20210122T133229_N0214_R081_T22HBD_20210122T155500.SAFE"
)
SINERGISE = (
    "eo-datasets/sinergise_s2_l1c/S2B_MSIL1C_20201011T000249_N0209_R030_T55HFA_20201011T011446"
)


@pytest.mark.parametrize(
    ("relative", "baseline", "spacecraft", "orbit", "cloud", "sensing"),
    [
        (f"{EODAG_N0206}/MTD_MSIL1C.xml", "02.06", "Sentinel-2A", 51, 11.9204,
         datetime(2018, 1, 1, 10, 54, 41, 26000, tzinfo=UTC)),
        (f"{N0209}/MTD_MSIL1C.xml", "02.09", "Sentinel-2A", 29, 5.4828,
         datetime(2020, 7, 17, 22, 19, 41, 24000, tzinfo=UTC)),
        (f"{N0301}/MTD_MSIL1C.xml", "03.01", "Sentinel-2A", 133, 88.2972,
         datetime(2021, 9, 8, 4, 27, 1, 24000, tzinfo=UTC)),
        ("eodag/safe_build_earth_search/MTD_MSIL1C.xml", "03.01", "Sentinel-2B", 116, 76.585,
         datetime(2021, 11, 30, 23, 59, 39, 24000, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_parse_l1c_metadata_before_0400_has_quantification_and_no_offsets(
    relative: str,
    baseline: str,
    spacecraft: str,
    orbit: int,
    cloud: float,
    sensing: datetime,
) -> None:
    meta = parse_product_metadata(realdata(relative))
    assert meta.level == "L1C"
    assert meta.processing_baseline == baseline
    assert meta.quantification_value == 10000.0
    assert meta.offsets == {}
    assert meta.offset("B04") == 0.0
    assert meta.spacecraft == spacecraft
    assert meta.relative_orbit == orbit
    assert meta.cloud_cover_pct == cloud
    assert meta.sensing_time == sensing
    assert meta.nodata_value == 0 and meta.saturated_value == 65535
    assert len(meta.image_files) == 14  # 13 bands + TCI
    # (DN + 0) / 10000: DN 1234 is reflectance 0.1234
    scale, offset = meta.reflectance_scale_offset("B04")
    assert 1234 * scale + offset == pytest.approx(0.1234)


def test_parse_l1c_metadata_datatake_and_uri_from_the_real_file() -> None:
    meta = parse_product_metadata(realdata(f"{EODAG_N0206}/MTD_MSIL1C.xml"))
    assert meta.datatake_id == "GS2A_20180101T105441_013204_N02.06"
    assert meta.product_uri == "S2A_MSIL1C_20180101T105441_N0206_R051_T31TDH_20180101T124911"
    assert meta.product_type == "S2MSI1C"
    assert meta.platform == "sentinel-2a"
    assert meta.reflectance_conversion_u == pytest.approx(1.03415884488937)
    assert meta.source == "product metadata"


@pytest.mark.parametrize(
    ("relative", "baseline", "cloud", "files"),
    [
        (f"{L2A_N0212}/MTD_MSIL2A.xml", "02.12", 51.580326, 35),
        (f"{L2A_N0214}/MTD_MSIL2A.xml", "02.14", 0.447807, 35),
    ],
)
def test_parse_l2a_metadata_before_0400_reads_boa_quantification(
    relative: str, baseline: str, cloud: float, files: int
) -> None:
    meta = parse_product_metadata(realdata(relative))
    assert meta.level == "L2A"
    assert meta.processing_baseline == baseline
    assert meta.quantification_value == 10000.0
    assert meta.offsets == {}
    assert meta.cloud_cover_pct == cloud
    assert len(meta.image_files) == files


def test_parse_l1c_metadata_0511_reads_radio_add_offset_per_band() -> None:
    meta = parse_product_metadata(FIXTURES / "MTD_MSIL1C_N0511.xml")
    assert meta.processing_baseline == "05.11"
    assert meta.baseline == 5.11
    assert meta.offsets == {
        band: -1000.0
        for band in ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09",
                     "B10", "B11", "B12")
    }  # fmt: skip
    # (DN - 1000) / 10000: DN 2000 is reflectance 0.1, DN 1000 is 0, DN 500 is -0.05
    scale, offset = meta.reflectance_scale_offset("B8A")
    assert (scale, offset) == (pytest.approx(1e-4), pytest.approx(-0.1))
    assert 2000 * scale + offset == pytest.approx(0.1)
    assert 500 * scale + offset == pytest.approx(-0.05)


def test_parse_l2a_metadata_0400_reads_boa_add_offset() -> None:
    meta = parse_product_metadata(FIXTURES / "MTD_MSIL2A_N0400.xml")
    assert meta.level == "L2A"
    assert meta.spacecraft == "Sentinel-2B"
    assert meta.offsets["B12"] == -1000.0 and len(meta.offsets) == 13
    assert meta.reflectance_scale_offset("B02") == (pytest.approx(1e-4), pytest.approx(-0.1))


def test_parse_metadata_maps_band_id_8_to_b8a(tmp_path: Path) -> None:
    text = (FIXTURES / "MTD_MSIL1C_N0511.xml").read_text()
    text = text.replace('band_id="8">-1000<', 'band_id="8">-1234<')
    path = tmp_path / "MTD_MSIL1C.xml"
    path.write_text(text)
    meta = parse_product_metadata(path)
    assert meta.offsets["B8A"] == -1234.0
    assert meta.offsets["B08"] == -1000.0 and meta.offsets["B09"] == -1000.0


def test_parse_metadata_band_id_out_of_range_is_invalid(tmp_path: Path) -> None:
    text = (FIXTURES / "MTD_MSIL1C_N0511.xml").read_text().replace('band_id="12"', 'band_id="13"')
    path = tmp_path / "MTD_MSIL1C.xml"
    path.write_text(text)
    with pytest.raises(InvalidInputError, match="band_id '13' is not 0..12"):
        parse_product_metadata(path)


def test_parse_metadata_with_a_doctype_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "MTD_MSIL1C.xml"
    path.write_text(
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
        "<n1:Level-1C_User_Product xmlns:n1='x'>&a;</n1:Level-1C_User_Product>"
    )
    with pytest.raises(InvalidInputError, match="declares a DTD"):
        parse_product_metadata(path)


def test_parse_metadata_of_another_document_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "other.xml"
    path.write_text("<root><QUANTIFICATION_VALUE>1</QUANTIFICATION_VALUE></root>")
    with pytest.raises(InvalidInputError, match="not Sentinel-2 L1C or L2A product metadata"):
        parse_product_metadata(path)


def test_parse_tile_metadata_reads_sun_angles_epsg_and_baseline() -> None:
    path = realdata(f"{EODAG_N0206}/GRANULE/L1C_T31TDH_A013204_20180101T105435/MTD_TL.xml")
    tile = parse_tile_metadata(path)
    assert tile.tile_id == "S2A_OPER_MSI_L1C_TL_SGS__20180101T124911_A013204_T31TDH_N02.06"
    assert tile.processing_baseline == "02.06"
    assert tile.epsg == 32631
    assert tile.mean_sun_zenith_deg == pytest.approx(67.0354071200132)
    assert tile.sun_elevation_deg == pytest.approx(22.9645928799868)
    assert tile.mean_sun_azimuth_deg == pytest.approx(166.328513490143)
    assert tile.sensing_time == datetime(2018, 1, 1, 10, 54, 35, 457000, tzinfo=UTC)
    assert tile.cloud_cover_pct == 11.9204


def test_canonical_band_accepts_names_common_names_and_file_stems() -> None:
    assert canonical_band("red") == "B04"
    assert canonical_band("nir08") == "B8A"
    assert canonical_band("T31TDH_20180101T105441_B01") == "B01"
    assert canonical_band("T22HBD_20210122T133229_B8A_20m") == "B8A"
    assert canonical_band("SCL") == "SCL"
    assert canonical_band("MSK_CLASSI_B00") == "MSK_CLASSI"
    assert canonical_band("MSK_CLDPRB_20m") == "CLD" and canonical_band("cloud") == "CLD"
    assert canonical_band("MSK_SNWPRB_60m") == "SNW" and canonical_band("snow") == "SNW"
    assert canonical_band("L2A_T34VFJ_20170823T094031_CLD_20m") == "CLD"  # Sen2Cor 2.4
    assert canonical_band("S2A_OPER_MSI_L1C_TL_SGS__20161201T124911_A007500_T31TDH_B8A") == "B8A"
    assert canonical_band("MSK_DETFOO_B04") is None  # a quality mask, not band 4
    assert canonical_band("MSK_QUALIT_B8A") is None
    assert canonical_band("red-jp2") == "B04"
    assert canonical_band("thumbnail") is None
    assert canonical_band("granule_metadata") is None


def _safe_copy(tmp_path: Path) -> Path:
    source = realdata(EODAG_N0206)
    safe = tmp_path / "S2A_MSIL1C_20180101T105441_N0206_R051_T31TDH_20180101T124911.SAFE"
    shutil.copytree(source, safe)
    return safe


def test_product_open_safe_zip_extracts_and_finds_bands_and_tile_metadata(tmp_path: Path) -> None:
    safe = _safe_copy(tmp_path / "src")
    archive = tmp_path / f"{safe.stem}.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(safe.rglob("*")):
            handle.write(path, path.relative_to(safe.parent).as_posix())
    product = Sentinel2Product.open(archive, work_dir=tmp_path / "work")
    assert product.level == "L1C"
    assert product.metadata.processing_baseline == "02.06"
    assert product.tile_metadata_path is not None
    assert product.tile_metadata_path.name == "MTD_TL.xml"
    b01 = product.band_path("B01")
    assert b01.name == "T31TDH_20180101T105441_B01.jp2"
    with rasterio.open(b01) as ds:
        assert (ds.width, ds.height, ds.dtypes[0]) == (1830, 1830, "uint16")
    with pytest.raises(InvalidInputError, match="has no B04 band"):
        product.band_path("B04")


def test_product_from_stac_assets_without_product_metadata_uses_spec_defaults() -> None:
    folder = realdata(SINERGISE)
    files = {path.stem: path for path in folder.iterdir()}
    product = Sentinel2Product.from_files(files)
    assert product.metadata.source == "specification default"
    assert product.metadata.processing_baseline == "02.09"  # from the tile id in metadata.xml
    assert product.metadata.quantification_value == 10000.0 and product.metadata.offsets == {}
    assert product.band_path("red").name == "B04.jp2"
    assert product.tile_metadata is not None
    assert product.tile_metadata.mean_sun_zenith_deg == pytest.approx(37.3713908882192)


def test_product_without_metadata_at_baseline_0400_is_invalid(tmp_path: Path) -> None:
    folder = realdata(SINERGISE)
    files = {"B04": folder / "B04.jp2"}
    with pytest.raises(InvalidInputError, match="carries per-band offsets"):
        Sentinel2Product.from_files(files, baseline_hint="04.00")
    with pytest.raises(InvalidInputError, match="no processing baseline is known"):
        Sentinel2Product.from_files(files)


def test_product_from_files_reads_l2a_resolutions(tmp_path: Path) -> None:
    band = realdata(f"{SINERGISE}/B04.jp2")
    files = {
        "product_metadata": FIXTURES / "MTD_MSIL2A_N0400.xml",
        "B04_10m": band,
        "B04_20m": band,
        "scl": band,
    }
    product = Sentinel2Product.from_files(files)
    assert product.level == "L2A"
    assert set(product.bands["B04"]) == {10.0, 20.0}
    assert product.band_path("B04") == band
    assert product.has_band("SCL")
