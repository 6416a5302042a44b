"""The USGS angle coefficient file (``_ANG.txt``) as its DFCB lays it out, for OLI and TM/ETM+.

OLI/TIRS (real files): FILE_HEADER (NUMBER_OF_BANDS, BAND_LIST), PROJECTION, EPHEMERIS and
SOLAR_VECTOR (NUMBER_OF_POINTS samples each), RPC_BANDnn with 10-term numerators and 9-term
denominators for the satellite and sun vectors, and per SCA (14 OLI, 3 TIRS) 5/4-term image
polynomials. TM/ETM+ (built by ``tests.helpers.packages.tm_etm_ang`` to the same DFCB): BAND_LIST
with ETM+ band 6 as 61/62, SCAN_TIME_POLY, two scan directions per band.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from include.common.errors import InvalidInputError
from include.processors.harmonization.angles import read_landsat_ang
from include.processors.harmonization.metadata import parse_ang
from tests.helpers.packages import landsat_l1_etm, landsat_l2sp_tm
from tests.helpers.realdata import realdata

REAL_ANG = (
    "stactools-landsat/data-files/assets3/LC08_L2SP_008059_20191201_20200825_02_T1_ANG.txt",
    "stactools-landsat/data-files/oli-tirs/LC08_L2SR_084024_20160111_20201016_02_T1_ANG.txt",
    "eo-datasets/LC08_L1GT_089074_20220506_20220512_02_T2/"
    "LC08_L1GT_089074_20220506_20220512_02_T2_ANG.txt",
)


def _length(value: Any) -> int:
    return len(value) if isinstance(value, tuple) else 1


@pytest.mark.parametrize("relative", REAL_ANG)
def test_real_oli_ang_has_the_dfcb_structure(relative: str) -> None:
    groups = parse_ang(realdata(relative).read_text(encoding="utf-8"))
    header = groups["FILE_HEADER"]
    assert header["BAND_LIST"] == tuple(range(1, 12))
    assert header["NUMBER_OF_BANDS"] == 11
    for group, keys in (
        (
            "EPHEMERIS",
            ("EPHEMERIS_TIME", "EPHEMERIS_ECEF_X", "EPHEMERIS_ECEF_Y", "EPHEMERIS_ECEF_Z"),
        ),
        ("SOLAR_VECTOR", ("SAMPLE_TIME", "SOLAR_ECEF_X", "SOLAR_ECEF_Y", "SOLAR_ECEF_Z")),
    ):
        points = groups[group]["NUMBER_OF_POINTS"]
        assert points > 10 and all(_length(groups[group][key]) == points for key in keys)
    assert _length(groups["PROJECTION"]["UL_CORNER"]) == 2
    for band in header["BAND_LIST"]:
        rpc = groups[f"RPC_BAND{band:02d}"]
        p = f"BAND{band:02d}_"
        scas = rpc[f"{p}SCA_LIST"]
        assert len(scas) == rpc[f"{p}NUMBER_OF_SCAS"] == (3 if band >= 10 else 14)
        for vector in ("SAT", "SUN"):
            assert _length(rpc[f"{p}MEAN_{vector}_VECTOR"]) == 3
            for axis in "XYZ":
                assert _length(rpc[f"{p}{vector}_{axis}_NUM_COEF"]) == 10
                assert _length(rpc[f"{p}{vector}_{axis}_DEN_COEF"]) == 9
        for sca in scas:
            s = f"{p}SCA{sca:02d}_"
            for kind in ("LINE", "SAMP"):
                assert _length(rpc[f"{s}{kind}_NUM_COEF"]) == 5
                assert _length(rpc[f"{s}{kind}_DEN_COEF"]) == 4
        assert _length(rpc[f"{p}L1T_IMAGE_CORNER_LINES"]) == 4


def test_real_ang_with_byte_order_mark_and_crlf_parses_the_same() -> None:
    text = realdata(REAL_ANG[0]).read_text(encoding="utf-8")
    assert parse_ang("\ufeff" + text.replace("\n", "\r\n")) == parse_ang(text)


def test_landsat9_ang_evaluates_like_landsat8(tmp_path: Path) -> None:
    """OLI-2/TIRS-2 files differ only in SPACECRAFT_ID (and scene id): the same evaluation."""
    real = realdata(REAL_ANG[2])
    relabelled = tmp_path / real.name.replace("LC08", "LC09")
    relabelled.write_text(
        real.read_text(encoding="utf-8")
        .replace('"LANDSAT_8"', '"LANDSAT_9"')
        .replace('"LC8', '"LC9')
    )
    assert parse_ang(relabelled.read_text())["FILE_HEADER"]["SPACECRAFT_ID"] == "LANDSAT_9"
    eight = read_landsat_ang(real, (4, 10), step_px=400)
    nine = read_landsat_ang(relabelled, (4, 10), step_px=400)
    np.testing.assert_array_equal(eight.view_zenith["B10"], nine.view_zenith["B10"])
    seen = nine.view_seen["B4"]
    assert seen.any()
    # OLI looks 7.5 degrees off nadir at most; Earth's curvature adds ~0.8 at the swath edge
    assert float(nine.view_zenith["B4"][seen].max()) < 9.5


@pytest.mark.parametrize(
    ("builder", "bands", "spacecraft"),
    [
        (landsat_l2sp_tm, (1, 2, 3, 4, 5, 6, 7), "L5_TM"),
        (landsat_l1_etm, (1, 2, 3, 4, 5, 61, 62, 7, 8), "L7_ETM"),
    ],
)
def test_tm_etm_ang_band_lists_and_scan_directions(
    builder: Any, bands: tuple[int, ...], spacecraft: str
) -> None:
    package = builder()
    groups = parse_ang(package.files[f"{package.product_id}_ANG.txt"].decode())
    header = groups["FILE_HEADER"]
    assert header["BAND_LIST"] == bands and header["NUMBER_OF_BANDS"] == len(bands)
    assert header["SPACECRAFT_ID"] == spacecraft and header["FIRST_SCAN_DIRECTION"] in ("F", "R")
    assert groups["SCAN_TIME_POLY"]["SCAN_TIME_POLY_NUMBER_DIRECTIONS"] == 2
    for band in bands:
        rpc = groups[f"RPC_BAND{band:02d}"]
        p = f"BAND{band:02d}_"
        assert rpc[f"{p}NUMBER_OF_DIRECTIONS"] == 2
        expected_lines = {6: 4, 61: 8, 62: 8, 8: 32}.get(band, 16)
        assert rpc[f"{p}LINES_PER_SCAN"] == expected_lines
        for direction in ("DIR00_", "DIR01_"):
            assert _length(rpc[f"{p}{direction}LINE_NUM_COEF"]) == 5
            assert _length(rpc[f"{p}{direction}SAMP_DEN_COEF"]) == 4


def test_truncated_ang_is_refused_naming_the_file(tmp_path: Path) -> None:
    text = realdata(REAL_ANG[0]).read_text(encoding="utf-8")
    path = tmp_path / "LC08_L2SP_008059_20191201_20200825_02_T1_ANG.txt"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="never closed"):
        parse_ang(path.read_text())
    with pytest.raises(InvalidInputError, match=r"_ANG\.txt.*cannot be read as an ANG\.txt"):
        read_landsat_ang(path, (4,))
