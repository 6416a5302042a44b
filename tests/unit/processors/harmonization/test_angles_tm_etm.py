"""TM/ETM+ (Landsat 4-7) angle coefficient files: per-scan-direction rational polynomials.

No real TM/ETM+ ``ANG.txt`` is in ``../shared/realdata``, so the files are built here in the
layout USGS defines and its tools read:
- the reader and tracer of the USGS Landsat 4-7 angle tool, ``gxx_angle_gen_read_ang.c``,
  ``gxx_angle_gen_find_dir.c`` and ``gxx_angle_gen_calculate_angles_rpc.c`` in
  USGS-EROS/espa-product-formatter (fork BeamIO-Inc/espa-product-formatter@547af82,
  ``raw_binary/per_pixel_angles_libs/landsat_ias_lib/``): groups FILE_HEADER (adds WRS_PATH,
  WRS_ROW, MODE, FIRST_SCAN_DIRECTION), SCAN_TIME_POLY, PROJECTION, EPHEMERIS, SOLAR_VECTOR and
  RPC_BANDnn with BANDnn_NUMBER_OF_DIRECTIONS, BANDnn_LINES_PER_SCAN and per direction
  BANDnn_DIRnn_MEAN_HEIGHT / MEAN_L1R_LINE_SAMP / MEAN_L1T_LINE_SAMP / LINE_NUM_COEF (5) /
  LINE_DEN_COEF (4) / SAMP_NUM_COEF / SAMP_DEN_COEF; ETM+ band 6 is filed as 61 and 62;
- the headers of real Collection 2 files (Digital Earth Africa's copies of
  LT05_L2SP_201036_19850618_20200918_02_T1_ANG.txt and
  LE07_L2SP_170079_20200516_20200820_02_T1_ANG.txt): SPACECRAFT_ID "L5_TM" / "L7_ETM",
  MODE "SLC_ON" / "SLC_OFF", BAND_LIST (1, 2, 3, 4, 5, 6, 7) / (1, 2, 3, 4, 5, 61, 62, 7, 8).

The TM file keeps the real PROJECTION, EPHEMERIS, SOLAR_VECTOR and satellite/sun vector
polynomials of a real OLI ANG.txt and replaces its 14 per-SCA polynomials by two per-direction
ones fitted to them, so its angles are real ones and the MTL's scene-centre sun angles apply.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from affine import Affine

from include.common.errors import InvalidInputError
from include.processors.harmonization.angles import read_landsat_ang
from include.processors.harmonization.metadata import parse_ang, read_landsat_mtl

from .conftest import LANDSAT_DIR, LANDSAT_ID, real

OLI_ANG = f"{LANDSAT_DIR}/{LANDSAT_ID}_ANG.txt"
TM_BANDS = (1, 2, 3, 4, 5, 6, 7)
ETM_BANDS = (1, 2, 3, 4, 5, 61, 62, 7, 8)
# detectors per scan (L1R lines one mirror sweep images): TM 16 reflective, 4 thermal (120 m);
# ETM+ 16 reflective, 8 thermal (60 m), 32 pan (15 m)
TM_LINES_PER_SCAN = {6: 4}
ETM_LINES_PER_SCAN = {61: 8, 62: 8, 8: 32}
DIR01_LINE_SHIFT = 0.4
"""DIR01 sees a point 0.4 L1R line later than DIR00: scans overlap and leave gaps, as real ones."""


class Raw(str):
    """An ODL value written as is (an integer list such as ``BAND_LIST``)."""

    __slots__ = ()


Value = str | int | float | tuple[float, ...]


def odl(groups: list[tuple[str, list[tuple[str, Value]]]]) -> str:
    """Write ODL groups as the USGS files do (``GROUP = X``, indented ``KEY = value``)."""
    lines = []
    for name, items in groups:
        lines.append(f"GROUP = {name}")
        for key, value in items:
            if isinstance(value, Raw):
                text = str(value)
            elif isinstance(value, str):
                text = f'"{value}"'
            elif isinstance(value, tuple):
                text = "(" + ", ".join(f"{v:.9e}" for v in value) + ")"
            else:
                text = str(value)
            lines.append(f"  {key} = {text}")
        lines.append(f"END_GROUP = {name}")
    return "\n".join(lines) + "\n"


def verbatim(text: str, first: str, last: str) -> str:
    """Return the real file's groups ``first`` .. ``last`` unchanged."""
    start = text.index(f"GROUP = {first}\n")
    end = text.index(f"END_GROUP = {last}\n") + len(f"END_GROUP = {last}\n")
    return text[start:end]


def image_rpc(terms: dict[str, Any], prefix: str, line: float, samp: float) -> tuple[float, float]:
    """L1T -> L1R as ``gxx_angle_gen_find_dir`` (height term 0 at the mean height)."""
    dl = line - terms[f"{prefix}MEAN_L1T_LINE_SAMP"][0]
    ds = samp - terms[f"{prefix}MEAN_L1T_LINE_SAMP"][1]
    out = []
    for axis, mean in (("LINE", 0), ("SAMP", 1)):
        n, d = terms[f"{prefix}{axis}_NUM_COEF"], terms[f"{prefix}{axis}_DEN_COEF"]
        value = (n[0] + n[1] * dl + n[2] * ds + n[4] * dl * ds) / (
            1.0 + d[0] * dl + d[1] * ds + d[3] * dl * ds
        )
        out.append(value + terms[f"{prefix}MEAN_L1R_LINE_SAMP"][mean])
    return out[0], out[1]


def fit_scan_model(oli: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Fit L1T -> swath L1R (line, sample) to the 14 OLI SCA polynomials of band 4.

    Returns the affine (1, dl, ds) coefficients of line and sample, offsets from the band's
    mean L1T and L1R positions, as a whiskbroom's per-direction polynomial is written.
    """
    l1t_mean, l1r_mean = oli["BAND04_MEAN_L1T_LINE_SAMP"], oli["BAND04_MEAN_L1R_LINE_SAMP"]
    rows, targets = [], []
    for line in range(0, oli["BAND04_NUM_L1T_LINES"], 150):
        for samp in range(0, oli["BAND04_NUM_L1T_SAMPS"], 150):
            for index, sca in enumerate(oli["BAND04_SCA_LIST"]):
                r_line, r_samp = image_rpc(oli, f"BAND04_SCA{int(sca):02d}_", line, samp)
                if 0 <= r_samp <= oli["BAND04_NUM_L1R_SAMPS"] - 1 and 0 <= r_line:
                    rows.append((1.0, line - l1t_mean[0], samp - l1t_mean[1]))
                    swath = r_samp + index * oli["BAND04_NUM_L1R_SAMPS"]
                    targets.append((r_line - l1r_mean[0], swath - l1r_mean[1]))
    design, goal = np.array(rows), np.array(targets)
    line_coef, *_ = np.linalg.lstsq(design, goal[:, 0], rcond=None)
    samp_coef, *_ = np.linalg.lstsq(design, goal[:, 1], rcond=None)
    return line_coef, samp_coef


def scan_band_group(
    oli: dict[str, Any],
    number: int,
    lines_per_scan: int,
    fit: tuple[np.ndarray, np.ndarray],
    l1r_lines: int,
    l1r_samps: int,
) -> tuple[str, list[tuple[str, Value]]]:
    """RPC_BANDnn of a whiskbroom band: OLI band 4's vector polynomials, two scan directions."""
    p = f"BAND{number:02d}_"
    copied = [
        "NUM_L1T_LINES",
        "NUM_L1T_SAMPS",
        "PIXEL_SIZE",
        "START_TIME",
        "LINE_TIME",
        "MEAN_HEIGHT",
        "MEAN_L1R_LINE_SAMP",
        "MEAN_L1T_LINE_SAMP",
        "MEAN_SAT_VECTOR",
        *(f"SAT_{a}_{t}_COEF" for a in "XYZ" for t in ("NUM", "DEN")),
        "MEAN_SUN_VECTOR",
        *(f"SUN_{a}_{t}_COEF" for a in "XYZ" for t in ("NUM", "DEN")),
    ]
    items: list[tuple[str, Value]] = [(p + key, oli[f"BAND04_{key}"]) for key in copied[:2]]
    items += [(f"{p}NUM_L1R_LINES", l1r_lines), (f"{p}NUM_L1R_SAMPS", l1r_samps)]
    items += [(p + key, oli[f"BAND04_{key}"]) for key in copied[2:]]
    items += [(f"{p}NUMBER_OF_DIRECTIONS", 2), (f"{p}LINES_PER_SCAN", lines_per_scan)]
    line_coef, samp_coef = fit
    for direction, shift in ((0, 0.0), (1, DIR01_LINE_SHIFT)):
        d = f"{p}DIR{direction:02d}_"
        items += [
            (f"{d}MEAN_HEIGHT", oli["BAND04_MEAN_HEIGHT"]),
            (f"{d}MEAN_L1R_LINE_SAMP", oli["BAND04_MEAN_L1R_LINE_SAMP"]),
            (f"{d}MEAN_L1T_LINE_SAMP", oli["BAND04_MEAN_L1T_LINE_SAMP"]),
            (f"{d}LINE_NUM_COEF", (line_coef[0] + shift, line_coef[1], line_coef[2], 0.0, 0.0)),
            (f"{d}LINE_DEN_COEF", (0.0, 0.0, 0.0, 0.0)),
            (f"{d}SAMP_NUM_COEF", (samp_coef[0], samp_coef[1], samp_coef[2], 0.0, 0.0)),
            (f"{d}SAMP_DEN_COEF", (0.0, 0.0, 0.0, 0.0)),
        ]
    return f"RPC_BAND{number:02d}", items


def scan_time_poly() -> tuple[str, list[tuple[str, Value]]]:
    """SCAN_TIME_POLY (read by the USGS tool, unused by the polynomial evaluation)."""
    items: list[tuple[str, Value]] = [
        ("SCAN_TIME_POLY_NCOEFF", 4),
        ("SCAN_TIME_POLY_NUMBER_DIRECTIONS", 2),
    ]
    for direction in (0, 1):
        items += [
            (f"SCAN_TIME{direction:02d}_MEAN_ACTIVESCAN", 0.060743),
            (f"SCAN_TIME{direction:02d}_MEAN_EOL", 0.010724),
            (f"SCAN_TIME{direction:02d}_POLY_COEFF", (0.0, 1.0, 0.0, 0.0)),
        ]
    return "SCAN_TIME_POLY", items


def tm_ang_from_oli(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """Write a Landsat 5 TM ANG.txt derived from the real OLI one (see the module docstring)."""
    text = real(OLI_ANG).read_text()
    oli = parse_ang(text)["RPC_BAND04"]
    fit = fit_scan_model(oli)
    l1r_lines = math.ceil(oli["BAND04_NUM_L1R_LINES"] / 16) * 16
    l1r_samps = oli["BAND04_NUM_L1R_SAMPS"] * len(oli["BAND04_SCA_LIST"])
    header = (
        "FILE_HEADER",
        [
            ("LANDSAT_SCENE_ID", "LT50080591991335CUB00"),
            ("SPACECRAFT_ID", "L5_TM"),
            ("WRS_PATH", 8),
            ("WRS_ROW", 59),
            ("MODE", "SLC_ON"),
            ("FIRST_SCAN_DIRECTION", "R"),
            ("NUMBER_OF_BANDS", 7),
            ("BAND_LIST", Raw("(1, 2, 3, 4, 5, 6, 7)")),
        ],
    )
    bands = [
        scan_band_group(oli, n, TM_LINES_PER_SCAN.get(n, 16), fit, l1r_lines, l1r_samps)
        for n in TM_BANDS
    ]
    body = (
        odl([header])
        + verbatim(text, "PROJECTION", "SOLAR_VECTOR")
        + odl([scan_time_poly(), *bands])
    )
    path = tmp_path / "LT05_L1TP_008059_19911201_20200916_02_T1_ANG.txt"
    path.write_text(body + "END\n")
    return path, parse_ang(path.read_text())


def reference_angles(
    groups: dict[str, Any], number: int, line: float, samp: float
) -> tuple[tuple[float, float, float, float], int]:
    """((sun zenith, sun azimuth, view zenith, view azimuth), claiming directions) at a point.

    A scalar transcription of ``gxx_angle_gen_find_dir`` and
    ``gxx_angle_gen_calculate_angles_rpc`` (last claiming direction wins; a point no direction
    claims uses the first direction inside the frame), with the vector normalised.
    """
    band = groups[f"RPC_BAND{number:02d}"]
    p = f"BAND{number:02d}_"
    chosen, nearest, claims = None, None, 0
    for direction in range(band[f"{p}NUMBER_OF_DIRECTIONS"]):
        r_line, r_samp = image_rpc(band, f"{p}DIR{direction:02d}_", line, samp)
        inside = 0 < r_line < band[f"{p}NUM_L1R_LINES"] and 0 < r_samp < band[f"{p}NUM_L1R_SAMPS"]
        if inside and int(r_line / band[f"{p}LINES_PER_SCAN"]) % 2 == direction:
            chosen, claims = (r_line, r_samp), claims + 1
        if inside and nearest is None:
            nearest = (r_line, r_samp)
    r_line, r_samp = chosen or nearest or (math.nan, math.nan)
    dl = line - band[f"{p}MEAN_L1T_LINE_SAMP"][0]
    ds = samp - band[f"{p}MEAN_L1T_LINE_SAMP"][1]
    rl = r_line - band[f"{p}MEAN_L1R_LINE_SAMP"][0]
    rs = r_samp - band[f"{p}MEAN_L1R_LINE_SAMP"][1]
    result = []
    for vector in ("SUN", "SAT"):
        xyz = []
        for axis, mean in zip("XYZ", band[f"{p}MEAN_{vector}_VECTOR"], strict=True):
            n, d = band[f"{p}{vector}_{axis}_NUM_COEF"], band[f"{p}{vector}_{axis}_DEN_COEF"]
            num = n[0] + n[1] * dl + n[2] * ds + n[4] * rl + n[5] * dl * dl + n[6] * ds * dl
            num += n[7] * ds * ds + n[8] * rs * rl * rl + n[9] * rl * rl * rl
            den = 1.0 + d[0] * dl + d[1] * ds + d[3] * rl + d[4] * dl * dl + d[5] * dl * ds
            den += d[6] * ds * ds + d[7] * rs * rl * rl + d[8] * rl * rl * rl
            xyz.append(mean + num / den)
        x, y, z = xyz
        result.append(math.degrees(math.acos(z / math.sqrt(x * x + y * y + z * z))))
        result.append(math.degrees(math.atan2(x, y)) % 360.0)
    return (result[0], result[1], result[2], result[3]), claims


def test_tm_ang_is_read_per_scan_direction(tmp_path: Path) -> None:
    path, groups = tm_ang_from_oli(tmp_path)
    step = 37  # node lines fall at every position within the 16-line scans
    grid = read_landsat_ang(path, TM_BANDS, step_px=step)
    assert set(grid.view_zenith) == {f"B{n}" for n in TM_BANDS}
    assert "per scan direction" in grid.source
    # DIR01 lands 0.4 L1R line after DIR00: a few points are claimed by both directions (the
    # later wins, as USGS), a few by neither (traced through DIR00); check some of each
    wanted = {0: 5, 1: 15, 2: 5}
    rows, cols = np.nonzero(grid.view_seen["B4"])
    for index in np.random.default_rng(0).permutation(rows.size):
        row, col = int(rows[index]), int(cols[index])
        expected, claims = reference_angles(groups, 4, row * float(step), col * float(step))
        if wanted[claims] == 0:
            continue
        wanted[claims] -= 1
        sun_zen, sun_az, view_zen, view_az = expected
        assert grid.sun_zenith[row, col] == pytest.approx(sun_zen, abs=1e-9)
        assert grid.sun_azimuth[row, col] == pytest.approx(sun_az, abs=1e-9)
        assert grid.view_zenith["B4"][row, col] == pytest.approx(view_zen, abs=1e-9)
        assert grid.view_azimuth["B4"][row, col] == pytest.approx(view_az, abs=1e-7)
        if not any(wanted.values()):
            break
    assert wanted == {0: 0, 1: 0, 2: 0}


def test_tm_sun_at_scene_centre_equals_mtl(tmp_path: Path) -> None:
    path, _ = tm_ang_from_oli(tmp_path)
    mtl = read_landsat_mtl(real(f"{LANDSAT_DIR}/{LANDSAT_ID}_MTL.txt"))
    assert mtl.sun_elevation is not None and mtl.sun_azimuth is not None
    grid = read_landsat_ang(path, TM_BANDS, mtl=mtl)
    g = grid.geometry
    transform = Affine(30.0, 0.0, g.x0 - 15.0, 0.0, -30.0, g.y0 + 15.0)
    rows = round((g.rows - 1) * g.dy / 30.0)
    cols = round((g.cols - 1) * g.dx / 30.0)
    centre = grid.pixel_angles("B4", transform, rows // 2, cols // 2, 1, 1)
    # USGS computes the MTL sun angles at the scene centre from the same ephemeris; the sun
    # zenith changes ~0.01 degree per km across a scene, so 0.05 covers the pixel's position
    assert float(centre.sun_zenith[0, 0]) == pytest.approx(90.0 - mtl.sun_elevation, abs=0.05)
    assert float(centre.sun_azimuth[0, 0]) % 360 == pytest.approx(mtl.sun_azimuth, abs=0.05)
    # TM looks at most 7.5 degrees off nadir (about 8.7 at the ground): near nadir at the centre
    assert float(centre.view_zenith[0, 0]) < 1.5
    for band in ("B1", "B6", "B7"):
        seen = grid.view_seen[band]
        assert 0.95 * seen.size > seen.sum() > 0.5 * seen.size
        assert float(grid.view_zenith[band][seen].max()) < 9.0


def test_tm_angles_match_the_oli_trace_of_the_same_polynomials(tmp_path: Path) -> None:
    path, _ = tm_ang_from_oli(tmp_path)
    tm = read_landsat_ang(path, (4,))
    oli = read_landsat_ang(real(OLI_ANG), (4,))
    seen = tm.view_seen["B4"] & oli.view_seen["B4"]
    # the fitted whiskbroom trace lands ~50 L1R lines (0.2 s) from either OLI SCA row: the sun
    # moves far less than 0.01 degree in that time
    np.testing.assert_allclose(tm.sun_zenith[seen], oli.sun_zenith[seen], atol=0.01)
    np.testing.assert_allclose(tm.sun_azimuth[seen], oli.sun_azimuth[seen], atol=0.01)
    # the satellite polynomials were fitted on OLI's staggered odd/even SCA (L1T, L1R) pairs;
    # between them they differ by up to ~0.5 degree, mostly in azimuth
    diff_zenith = np.abs(tm.view_zenith["B4"] - oli.view_zenith["B4"])[seen]
    assert float(np.median(diff_zenith)) < 0.05
    assert float(diff_zenith.max()) < 0.6


# --------------------------------------------------------------------------- documented layout

SUN_ZENITH, SUN_AZIMUTH = 40.0, 135.0
VIEW_TILT_PER_SAMPLE = 1.0e-5
"""SAT_X grows 1e-5 per 30 m L1T sample east of the scene's mean sample (~7.5 deg at the edge)."""


def etm_ang_from_documented_layout(tmp_path: Path) -> Path:
    """Write a Landsat 7 ETM+ ANG.txt with simple coefficients whose angles are known exactly.

    Sun vector constant (zenith 40, azimuth 135); satellite vector (x, 0, 1) with x linear in
    the L1T sample; L1R = L1T. The pan band (15 m) has twice the lines/samples, half the
    per-sample tilt and 32 lines per scan.
    """
    sun = (
        math.sin(math.radians(SUN_ZENITH)) * math.sin(math.radians(SUN_AZIMUTH)),
        math.sin(math.radians(SUN_ZENITH)) * math.cos(math.radians(SUN_AZIMUTH)),
        math.cos(math.radians(SUN_ZENITH)),
    )
    zeros9, zeros4 = (0.0,) * 9, (0.0,) * 4
    bands = []
    for number in ETM_BANDS:
        factor = 2 if number == 8 else 1
        lines, samps = 6961 * factor - (factor - 1), 7821 * factor - (factor - 1)
        mean_t = (3480.0 * factor, 3910.0 * factor)
        p = f"BAND{number:02d}_"
        tilt = (0.0, 0.0, VIEW_TILT_PER_SAMPLE / factor, *(0.0,) * 7)
        items: list[tuple[str, Value]] = [
            (f"{p}NUM_L1T_LINES", lines),
            (f"{p}NUM_L1T_SAMPS", samps),
            (f"{p}NUM_L1R_LINES", 6976 * factor),
            (f"{p}NUM_L1R_SAMPS", 7900 * factor),
            (f"{p}PIXEL_SIZE", 30.0 / factor),
            (f"{p}START_TIME", 2.5),
            (f"{p}LINE_TIME", 0.00386 / factor),
            (f"{p}NUMBER_OF_DIRECTIONS", 2),
            (f"{p}LINES_PER_SCAN", ETM_LINES_PER_SCAN.get(number, 16)),
            (f"{p}MEAN_HEIGHT", 120.0),
            (f"{p}MEAN_L1R_LINE_SAMP", mean_t),
            (f"{p}MEAN_L1T_LINE_SAMP", mean_t),
            (f"{p}MEAN_SAT_VECTOR", (0.0, 0.0, 1.0)),
            (f"{p}SAT_X_NUM_COEF", tilt),
            (f"{p}SAT_X_DEN_COEF", zeros9),
            (f"{p}SAT_Y_NUM_COEF", (0.0,) * 10),
            (f"{p}SAT_Y_DEN_COEF", zeros9),
            (f"{p}SAT_Z_NUM_COEF", (0.0,) * 10),
            (f"{p}SAT_Z_DEN_COEF", zeros9),
            (f"{p}MEAN_SUN_VECTOR", sun),
            *((f"{p}SUN_{a}_NUM_COEF", (0.0,) * 10) for a in "XYZ"),
            *((f"{p}SUN_{a}_DEN_COEF", zeros9) for a in "XYZ"),
        ]
        for direction in (0, 1):
            d = f"{p}DIR{direction:02d}_"
            items += [
                (f"{d}MEAN_HEIGHT", 120.0),
                (f"{d}MEAN_L1R_LINE_SAMP", mean_t),
                (f"{d}MEAN_L1T_LINE_SAMP", mean_t),
                (f"{d}LINE_NUM_COEF", (0.0, 1.0, 0.0, 0.0, 0.0)),
                (f"{d}LINE_DEN_COEF", zeros4),
                (f"{d}SAMP_NUM_COEF", (0.0, 0.0, 1.0, 0.0, 0.0)),
                (f"{d}SAMP_DEN_COEF", zeros4),
            ]
        bands.append((f"RPC_BAND{number:02d}", items))
    header = (
        "FILE_HEADER",
        [
            ("LANDSAT_SCENE_ID", "LE71700792020137SG100"),
            ("SPACECRAFT_ID", "L7_ETM"),
            ("WRS_PATH", 170),
            ("WRS_ROW", 79),
            ("MODE", "SLC_OFF"),
            ("FIRST_SCAN_DIRECTION", "F"),
            ("NUMBER_OF_BANDS", 9),
            ("BAND_LIST", Raw("(1, 2, 3, 4, 5, 61, 62, 7, 8)")),
        ],
    )
    projection = (
        "PROJECTION",
        [
            ("ELLIPSOID_AXES", (6378137.0, 6356752.3142)),
            ("MAP_PROJECTION", "UTM"),
            ("PROJECTION_UNITS", "METERS"),
            ("DATUM", "WGS84"),
            ("ELLIPSOID", "WGS84"),
            ("UTM_ZONE", 35),
            ("PROJECTION_PARAMETERS", (0.0,) * 15),
            ("UL_CORNER", (496200.0, -2928600.0)),
            ("UR_CORNER", (730800.0, -2928600.0)),
            ("LL_CORNER", (496200.0, -3137400.0)),
            ("LR_CORNER", (730800.0, -3137400.0)),
        ],
    )
    text = odl([header, projection, scan_time_poly(), *bands])
    path = tmp_path / "LE07_L1TP_170079_20200516_20200820_02_T1_ANG.txt"
    path.write_text(text + "END\n")
    return path


def test_etm_ang_gives_the_documented_angles(tmp_path: Path) -> None:
    path = etm_ang_from_documented_layout(tmp_path)
    grid = read_landsat_ang(path, (3, 4, 61, 62, 8), step_px=30)
    assert grid.crs == "EPSG:32635"
    assert (grid.geometry.x0, grid.geometry.y0, grid.geometry.dx) == (496200.0, -2928600.0, 900.0)
    assert set(grid.view_zenith) == {"B3", "B4", "B61", "B62", "B8"}
    np.testing.assert_allclose(grid.sun_zenith, SUN_ZENITH, atol=1e-9)
    np.testing.assert_allclose(grid.sun_azimuth, SUN_AZIMUTH, atol=1e-9)
    transform = Affine(30.0, 0.0, 496200.0 - 15.0, 0.0, -30.0, -2928600.0 + 15.0)
    for band in ("B4", "B61", "B62", "B8"):
        # 2000 samples east of the mean sample 3910: x = 1e-5 * 2000 -> atan(0.02), looking east
        angles = grid.pixel_angles(band, transform, 3000, 5910, 1, 1)
        assert float(angles.view_zenith[0, 0]) == pytest.approx(math.degrees(math.atan(0.02)))
        assert float(angles.view_azimuth[0, 0]) == pytest.approx(90.0, abs=1e-4)
        west = grid.pixel_angles(band, transform, 100, 910, 1, 1)
        assert float(west.view_zenith[0, 0]) == pytest.approx(math.degrees(math.atan(0.03)))
        assert float(west.view_azimuth[0, 0]) == pytest.approx(270.0, abs=1e-4)
        assert float(west.sun_zenith[0, 0]) == pytest.approx(SUN_ZENITH, abs=1e-5)


def test_etm_band_6_reads_vcid_1_and_missing_bands_are_named(tmp_path: Path) -> None:
    path = etm_ang_from_documented_layout(tmp_path)
    grid = read_landsat_ang(path, (6,), step_px=60)
    assert set(grid.view_zenith) == {"B6"}
    vcid1 = read_landsat_ang(path, (61,), step_px=60)
    np.testing.assert_array_equal(grid.view_zenith["B6"], vcid1.view_zenith["B61"])
    with pytest.raises(InvalidInputError, match=r"RPC_BAND09.*61, 62, 7, 8"):
        read_landsat_ang(path, (9,))


def test_band_group_without_scas_or_directions_is_refused(tmp_path: Path) -> None:
    path = etm_ang_from_documented_layout(tmp_path)
    text = path.read_text().replace("BAND04_NUMBER_OF_DIRECTIONS", "BAND04_DIRECTION_COUNT")
    path.write_text(text)
    with pytest.raises(InvalidInputError, match="NUMBER_OF_DIRECTIONS"):
        read_landsat_ang(path, (4,))


# --------------------------------------------------------------------------- OLI unchanged


def test_oli_ang_gives_the_same_angles_as_before(tmp_path: Path) -> None:
    grid = read_landsat_ang(real(OLI_ANG), (1, 2, 3, 4, 5, 6, 7))
    assert grid.source.endswith("USGS angle coefficients (rational polynomials, mean scene height)")
    # values of the per-SCA reader before TM/ETM+ support (commit 6f6869a), at two seen nodes
    expected = {
        (118, 115): (32.90462766427027, 136.30761844992324, 0.1677105272612561, 228.93225618192056),
        (78, 154): (32.94432830989096, 137.05813244421074, 2.849412525620837, 268.51984077187853),
    }
    for (row, col), (sun_zen, sun_az, view_zen, view_az) in expected.items():
        assert grid.view_seen["B4"][row, col]
        assert float(grid.sun_zenith[row, col]) == pytest.approx(sun_zen, abs=1e-12)
        assert float(grid.sun_azimuth[row, col]) == pytest.approx(sun_az, abs=1e-12)
        assert float(grid.view_zenith["B4"][row, col]) == pytest.approx(view_zen, abs=1e-12)
        assert float(grid.view_azimuth["B4"][row, col]) == pytest.approx(view_az, abs=1e-10)
