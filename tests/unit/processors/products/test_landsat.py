"""Landsat MTL parsing (ODL text, JSON, XML; Collection 1 and 2; L1 and L2) on real files.

Expected values were read by hand from the MTL files in ../shared/realdata.
"""

from __future__ import annotations

import dataclasses
import math
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.common.errors import InvalidInputError
from include.processors.products import LandsatProduct, landsat_metadata, parse_mtl
from include.processors.products.landsat import parse_odl, parse_product_id
from tests.helpers.realdata import realdata

L1TP_C2 = "eo-datasets/LC08_L1TP_090084_20160121_20200907_02_T1"
L1TP_C1 = "eo-datasets/LC08_L1TP_090084_20160121_20170405_01_T1"
L1GT = (
    "eo-datasets/LC08_L1GT_089074_20220506_20220512_02_T2/LC08_L1GT_089074_20220506_20220512_02_T2"
)
L2SP = "stactools-landsat/data-files/assets3/LC08_L2SP_008059_20191201_20200825_02_T1"
L2SR = "stactools-landsat/data-files/oli-tirs/LC08_L2SR_084024_20160111_20201016_02_T1"
TM = "stactools-landsat/data-files/tm/LT05_L2SP_010067_19860424_20200918_02_T2_MTL.xml"
MSS = "stactools-landsat/data-files/mss/LM05_L1GS_001001_19850524_20210918_02_T2_MTL.xml"


def test_mtl_c2_l1tp_text_reads_every_group() -> None:
    meta = landsat_metadata(parse_mtl(realdata(f"{L1TP_C2}/{L1TP_C2.split('/')[1]}_MTL.txt")))
    assert meta.collection == 2 and meta.mtl_format == "odl"
    assert meta.product_id == "LC08_L1TP_090084_20160121_20200907_02_T1"
    assert meta.scene_id == "LC80900842016021LGN02"
    assert meta.processing_level == "L1TP" and not meta.is_level2
    assert (meta.spacecraft, meta.sensor) == ("LANDSAT_8", "OLI_TIRS")
    assert (meta.wrs_path, meta.wrs_row, meta.pathrow) == (90, 84, "090084")
    assert meta.acquired == datetime(2016, 1, 21, 23, 50, 23, 54435, tzinfo=UTC)
    assert meta.cloud_cover_pct == 93.28
    assert meta.sun_elevation_deg == 55.486483 and meta.sun_azimuth_deg == 74.0074438
    assert meta.earth_sun_distance_au == 0.984075
    assert meta.toa_mult["4"] == 2.0e-05 and meta.toa_add["4"] == -0.1
    assert sorted(meta.toa_mult, key=int) == [str(n) for n in range(1, 10)]  # no thermal
    assert meta.sr_mult == {}
    assert meta.band_files["4"] == "LC08_L1TP_090084_20160121_20200907_02_T1_B4.TIF"
    assert len(meta.band_files) == 11
    assert meta.qa_pixel_file == "LC08_L1TP_090084_20160121_20200907_02_T1_QA_PIXEL.TIF"
    assert meta.angle_files["SZA"] == "LC08_L1TP_090084_20160121_20200907_02_T1_SZA.TIF"
    assert set(meta.angle_files) == {"SZA", "SAA", "VZA", "VAA"}
    assert meta.ang_file == "LC08_L1TP_090084_20160121_20200907_02_T1_ANG.txt"


def test_mtl_toa_scale_offset_divides_by_sine_of_sun_elevation() -> None:
    meta = landsat_metadata(parse_mtl(realdata(f"{L1TP_C2}/{L1TP_C2.split('/')[1]}_MTL.txt")))
    gain, bias = meta.toa_scale_offset("4")
    # sin(55.486483 deg) = 0.8239925413: 2e-5 / 0.82399 and -0.1 / 0.82399
    assert gain == pytest.approx(2.4272064366e-05, rel=1e-9)
    assert bias == pytest.approx(-0.12136032183, rel=1e-9)
    assert gain == pytest.approx(2.0e-05 / math.sin(math.radians(55.486483)))
    with pytest.raises(InvalidInputError, match="REFLECTANCE_MULT_BAND_10"):
        meta.toa_scale_offset("10")
    with pytest.raises(InvalidInputError, match="Level-2"):
        meta.sr_scale_offset("4")


def test_mtl_c1_text_reads_collection1_groups() -> None:
    path = realdata(f"{L1TP_C1}/{L1TP_C1.split('/')[1]}_MTL.txt")
    document = parse_mtl(path)
    assert document.root_name == "L1_METADATA_FILE"
    meta = landsat_metadata(document)
    assert meta.collection == 1
    assert meta.product_id == "LC08_L1TP_090084_20160121_20170405_01_T1"
    assert meta.processing_level == "L1TP"  # PRODUCT_METADATA.DATA_TYPE in Collection 1
    assert (meta.spacecraft, meta.wrs_path, meta.wrs_row) == ("LANDSAT_8", 90, 84)
    assert meta.cloud_cover_pct == 93.22
    assert meta.sun_elevation_deg == 55.486483
    assert meta.toa_mult["7"] == 2.0e-05 and meta.toa_add["7"] == -0.1
    assert meta.qa_pixel_file == "LC08_L1TP_090084_20160121_20170405_01_T1_BQA.TIF"
    assert meta.ang_file == "LC08_L1TP_090084_20160121_20170405_01_T1_ANG.txt"
    assert meta.angle_files == {}  # Collection 1 has no per-pixel angle bands
    assert "QUALITY" not in meta.band_files and len(meta.band_files) == 11


@pytest.mark.parametrize("other", ["json", "xml"])
def test_mtl_l1gt_json_and_xml_read_like_the_text(other: str) -> None:
    text = landsat_metadata(parse_mtl(realdata(f"{L1GT}_MTL.txt")))
    alternative = landsat_metadata(parse_mtl(realdata(f"{L1GT}_MTL.{other}")))
    assert alternative.mtl_format == other
    assert dataclasses.replace(alternative, mtl_format="odl") == text
    assert text.sun_elevation_deg == 43.24426868
    assert text.cloud_cover_pct == 86.35 and text.processing_level == "L1GT"


@pytest.mark.parametrize("suffix", ["txt", "json", "xml"])
def test_mtl_l2sp_reads_level2_and_level1_rescaling_apart(suffix: str) -> None:
    meta = landsat_metadata(parse_mtl(realdata(f"{L2SP}_MTL.{suffix}")))
    assert meta.is_level2 and meta.processing_level == "L2SP"
    assert meta.sr_mult["4"] == 2.75e-05 and meta.sr_add["4"] == -0.2
    assert meta.toa_mult["4"] == 2.0e-05 and meta.toa_add["4"] == -0.1
    assert meta.sr_scale_offset("7") == (2.75e-05, -0.2)
    assert meta.sun_elevation_deg == 57.08727307
    assert meta.band_files["4"] == "LC08_L2SP_008059_20191201_20200825_02_T1_SR_B4.TIF"
    assert meta.band_files["ST_B10"] == "LC08_L2SP_008059_20191201_20200825_02_T1_ST_B10.TIF"
    assert meta.qa_pixel_file == "LC08_L2SP_008059_20191201_20200825_02_T1_QA_PIXEL.TIF"
    # angle bands are listed in the Level-1 processing record of a Level-2 MTL
    assert meta.angle_files["VZA"] == "LC08_L1TP_008059_20191201_20200825_02_T1_VZA.TIF"


def test_mtl_l2sr_text_and_xml_agree_and_sun_is_low() -> None:
    text = landsat_metadata(parse_mtl(realdata(f"{L2SR}_MTL.txt")))
    xml = landsat_metadata(parse_mtl(realdata(f"{L2SR}_MTL.xml")))
    assert dataclasses.replace(xml, mtl_format="odl") == text
    assert text.processing_level == "L2SR" and text.sun_elevation_deg == 14.78250544
    assert "ST_B10" not in text.band_files


def test_mtl_tm_and_mss_sensors() -> None:
    tm = landsat_metadata(parse_mtl(realdata(TM)))
    assert (tm.spacecraft, tm.sensor, tm.collection_category) == ("LANDSAT_5", "TM", "T2")
    assert sorted(tm.sr_mult) == ["1", "2", "3", "4", "5", "7"]  # band 6 is thermal
    assert tm.sun_elevation_deg == 46.93006922
    mss = landsat_metadata(parse_mtl(realdata(MSS)))
    assert (mss.sensor, mss.processing_level) == ("MSS", "L1GS")
    assert mss.toa_mult["4"] == 1.8155e-03 and mss.toa_add["4"] == 0.004022
    assert mss.sun_elevation_deg == 28.86981221
    assert mss.ang_file is None


def test_parse_odl_reads_arrays_over_lines_and_objects() -> None:
    text = (
        'GROUP = A\n  OBJECT = B\n    X = ( 1, 2,\n      3 )\n    S = "q"\n  END_OBJECT = B\n'
        "  N = 02\nEND_GROUP = A\nEND\n"
    )
    assert parse_odl(text) == {"A": {"B": {"X": "( 1, 2, 3 )", "S": "q"}, "N": "02"}}


@pytest.mark.parametrize(
    "text",
    ["GROUP = A\n X = 1\n", "GROUP = A\nEND_GROUP = B\n", "GROUP = A\n this is not odl\n"],
)
def test_parse_odl_broken_structure_raises(text: str) -> None:
    with pytest.raises(ValueError):
        parse_odl(text)


def test_parse_mtl_of_another_file_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "x_MTL.txt"
    path.write_text("GROUP = SOMETHING_ELSE\n  A = 1\nEND_GROUP = SOMETHING_ELSE\nEND\n")
    with pytest.raises(InvalidInputError, match="not a Landsat MTL"):
        parse_mtl(path)
    path.write_text("{not json")
    with pytest.raises(InvalidInputError, match="not a readable MTL"):
        parse_mtl(path)


def test_parse_product_id_splits_the_parts() -> None:
    assert parse_product_id("LC08_L2SP_008059_20191201_20200825_02_T1") == {
        "mission": "LC08",
        "level": "L2SP",
        "path": "008",
        "row": "059",
        "acquired": "20191201",
        "processed": "20200825",
        "collection": "02",
        "category": "T1",
    }
    assert parse_product_id("S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429") is None


def test_product_from_folder_finds_bands_qa_and_no_angles() -> None:
    folder = realdata(L1TP_C2)
    product = LandsatProduct.open(folder)
    assert product.band_path("B4").name.endswith("_B4.TIF")
    assert product.band_path("4") == product.band_path("red")
    assert product.qa_pixel is not None and product.qa_pixel.name.endswith("_QA_PIXEL.TIF")
    assert product.angles == {} and product.ang_path is None  # not among the sample files
    assert len(product.bands) == 11


def test_product_open_tar_bundle_finds_sr_bands_qa_and_ang(tmp_path: Path) -> None:
    folder = realdata(f"{L2SP}_MTL.txt").parent
    bundle = tmp_path / "LC08_L2SP_008059_20191201_20200825_02_T1.tar"
    with tarfile.open(bundle, "w") as handle:
        for path in sorted(folder.glob("LC08_L2SP_008059_*")):
            if path.suffix != ".json":
                handle.add(path, arcname=path.name)
    product = LandsatProduct.open(bundle, work_dir=tmp_path / "work")
    assert product.metadata.is_level2
    assert product.band_path("SR_B4").name == "LC08_L2SP_008059_20191201_20200825_02_T1_SR_B4.TIF"
    assert product.qa_pixel is not None
    assert product.ang_path is not None and product.ang_path.name.endswith("_ANG.txt")
    assert product.mtl_path.parent == tmp_path / "work" / f"{bundle.name}.d"


def test_product_from_stac_keys_maps_common_names() -> None:
    folder = realdata(f"{L2SP}_MTL.txt").parent
    stem = "LC08_L2SP_008059_20191201_20200825_02_T1"
    files = {
        "red": folder / f"{stem}_SR_B4.TIF",
        "nir08": folder / f"{stem}_SR_B5.TIF",
        "qa_pixel": folder / f"{stem}_QA_PIXEL.TIF",
        "mtl.txt": folder / f"{stem}_MTL.txt",
    }
    product = LandsatProduct.from_files(files)
    assert product.band_path("B4") == files["red"]
    assert product.band_path("5") == files["nir08"]
    assert product.qa_pixel == files["qa_pixel"]
    with pytest.raises(InvalidInputError, match="has no band 2 file"):
        product.band_path("B2")


def test_product_without_mtl_is_invalid() -> None:
    folder = realdata(L1TP_C2)
    with pytest.raises(InvalidInputError, match="no Landsat MTL"):
        LandsatProduct.from_files({"B4": next(folder.glob("*_B4.TIF"))})
