"""Scaling facts and metadata discovery, on the real product metadata in ../shared/realdata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from include.common.errors import InvalidInputError
from include.processors.harmonization.metadata import (
    find_metadata,
    parse_ang,
    read_landsat_mtl,
    read_s2_product_metadata,
    s2_unit,
)

from .conftest import (
    LANDSAT_DIR,
    LANDSAT_ID,
    T31TDH_PRODUCT,
    T31TDH_TILE,
    real,
    with_baseline_0400,
    write_raster,
)

ESA_L2A = (
    "stactools-sentinel2/S2A_MSIL2A_20190212T192651_N0212_R013_T07HFE_20201007T160857.SAFE/"
    "MTD_MSIL2A.xml"
)
EARTH_SEARCH_L1C = "eodag/safe_build_earth_search/MTD_MSIL1C.xml"


@pytest.mark.parametrize(
    ("relative", "level", "baseline", "spacecraft"),
    [
        (f"{T31TDH_PRODUCT}/MTD_MSIL1C.xml", "L1C", "02.06", "Sentinel-2A"),
        (EARTH_SEARCH_L1C, "L1C", "03.01", "Sentinel-2B"),
        (ESA_L2A, "L2A", "02.12", "Sentinel-2A"),
    ],
)
def test_s2_product_before_baseline_0400_has_no_offset(
    relative: str, level: str, baseline: str, spacecraft: str
) -> None:
    facts = read_s2_product_metadata(real(relative))
    assert (facts.level, facts.processing_baseline, facts.spacecraft) == (
        level,
        baseline,
        spacecraft,
    )
    assert facts.offsets == {}
    assert facts.reflectance_scale_offset("B04") == (1e-4, 0.0)


def test_s2_product_from_baseline_0400_subtracts_1000(tmp_path: Path) -> None:
    text = with_baseline_0400(real(f"{T31TDH_PRODUCT}/MTD_MSIL1C.xml").read_text())
    path = tmp_path / "MTD_MSIL1C.xml"
    path.write_text(text)
    facts = read_s2_product_metadata(path)
    assert facts.processing_baseline == "04.00"
    assert set(facts.offsets) == {f"B{n:02d}" for n in range(1, 13)} | {"B8A"}
    scale, offset = facts.reflectance_scale_offset("B8A")
    # reflectance = (DN - 1000) / 10000: DN 2500 -> 0.15
    assert 2500 * scale + offset == pytest.approx(0.15, abs=1e-12)


def test_s2_product_from_baseline_0400_without_offsets_is_refused(tmp_path: Path) -> None:
    text = real(f"{T31TDH_PRODUCT}/MTD_MSIL1C.xml").read_text()
    path = tmp_path / "MTD_MSIL1C.xml"
    path.write_text(text.replace(">02.06<", ">04.00<"))
    with pytest.raises(InvalidInputError, match="has RADIO_ADD_OFFSET values but the file lists"):
        read_s2_product_metadata(path)


def test_s2_unit_from_spacecraft_name() -> None:
    assert s2_unit("Sentinel-2C") == "S2C"
    assert s2_unit("Sentinel-2A") == "S2A"
    assert s2_unit("LANDSAT_8") is None
    assert s2_unit(None) is None


@pytest.mark.parametrize("suffix", ["txt", "xml", "json"])
def test_landsat_mtl_in_each_format_gives_the_same_facts(suffix: str) -> None:
    facts = read_landsat_mtl(real(f"{LANDSAT_DIR}/{LANDSAT_ID}_MTL.{suffix}"))
    assert (facts.spacecraft, facts.sensor, facts.processing_level) == (
        "LANDSAT_8",
        "OLI_TIRS",
        "L2SP",
    )
    assert facts.is_oli
    assert facts.sun_elevation == pytest.approx(57.08727307)
    assert facts.sun_azimuth == pytest.approx(136.31696044)
    assert facts.sr_scaling == {band: (2.75e-05, -0.2) for band in range(1, 8)}


def test_landsat_tm_mtl_has_tm_bands() -> None:
    facts = read_landsat_mtl(
        real("stactools-landsat/data-files/tm/LT05_L2SP_010067_19860424_20200918_02_T2_MTL.xml")
    )
    assert (facts.spacecraft, facts.sensor) == ("LANDSAT_5", "TM")
    assert not facts.is_oli
    assert sorted(facts.sr_scaling) == [1, 2, 3, 4, 5, 7]


def test_landsat_collection1_mtl_is_refused() -> None:
    path = real(
        "eo-datasets/LC08_L1TP_090084_20160121_20170405_01_T1/"
        "LC08_L1TP_090084_20160121_20170405_01_T1_MTL.txt"
    )
    with pytest.raises(InvalidInputError, match="Collection 1"):
        read_landsat_mtl(path)


def test_parse_ang_reads_lists_as_numbers() -> None:
    groups = parse_ang(real(f"{LANDSAT_DIR}/{LANDSAT_ID}_ANG.txt").read_text())
    assert groups["FILE_HEADER"]["BAND_LIST"] == tuple(range(1, 12))
    assert groups["PROJECTION"]["UL_CORNER"] == (378300.0, 275700.0)
    assert groups["PROJECTION"]["UTM_ZONE"] == 18
    band4 = groups["RPC_BAND04"]
    assert len(band4["BAND04_SAT_X_NUM_COEF"]) == 10
    assert len(band4["BAND04_SAT_X_DEN_COEF"]) == 9
    assert band4["BAND04_PIXEL_SIZE"] == 30.0


def test_find_metadata_in_a_real_product_folder() -> None:
    folder = real(T31TDH_PRODUCT)
    found = find_metadata({"product": folder})
    assert found.tile_metadata == real(T31TDH_TILE)
    assert found.product_metadata == folder / "MTD_MSIL1C.xml"
    assert found.mtl is None and found.ang is None


def test_find_metadata_by_content_under_provider_keys(tmp_path: Path) -> None:
    tile = real(T31TDH_TILE)
    landsat = real(LANDSAT_DIR)
    angle = write_raster(
        tmp_path / f"{LANDSAT_ID}_VZA.TIF",
        np.zeros((4, 4), dtype="int16"),
        origin=(0.0, 0.0),
        pixel_m=30.0,
        epsg=32618,
        nodata=None,
    )
    found = find_metadata(
        {
            "granule_metadata": tile,
            "mtl.txt": landsat / f"{LANDSAT_ID}_MTL.txt",
            "ang": landsat / f"{LANDSAT_ID}_ANG.txt",
            "B04": landsat / f"{LANDSAT_ID}_SR_B4.TIF",
            "vza": angle,
        }
    )
    assert found.tile_metadata == tile
    assert found.mtl == landsat / f"{LANDSAT_ID}_MTL.txt"
    assert found.ang == landsat / f"{LANDSAT_ID}_ANG.txt"
    assert found.angle_bands == {"VZA": angle}
    assert found.keys == {"granule_metadata", "mtl.txt", "ang", "vza"}
