"""Ross-Thick / Li-Sparse-R kernels and the c-factor against values computed by hand.

Every expected value below is computed in the test from the published formulas (Lucht et al.
2000 eqs. 38-44 with b/r = 1, h/b = 2) with scalar ``math``, independently of the vectorised
implementation under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from include.processors.harmonization.brdf import (
    ROY_COEFFICIENTS,
    KernelWeights,
    brdf,
    c_factor,
    li_sparse_r,
    ross_thick,
    target_sun_zenith,
    weights_for,
)


def hand_ross_thick(ts_deg: float, tv_deg: float, phi_deg: float) -> float:
    ts, tv, phi = math.radians(ts_deg), math.radians(tv_deg), math.radians(phi_deg)
    cos_xi = math.cos(ts) * math.cos(tv) + math.sin(ts) * math.sin(tv) * math.cos(phi)
    xi = math.acos(cos_xi)
    return ((math.pi / 2 - xi) * cos_xi + math.sin(xi)) / (
        math.cos(ts) + math.cos(tv)
    ) - math.pi / 4


def hand_li_sparse_r(ts_deg: float, tv_deg: float, phi_deg: float) -> float:
    # b/r = 1: the equivalent angles are the angles themselves; h/b = 2
    ts, tv, phi = math.radians(ts_deg), math.radians(tv_deg), math.radians(phi_deg)
    sec_s, sec_v = 1 / math.cos(ts), 1 / math.cos(tv)
    d = math.sqrt(
        math.tan(ts) ** 2 + math.tan(tv) ** 2 - 2 * math.tan(ts) * math.tan(tv) * math.cos(phi)
    )
    cos_t = (
        2 * math.sqrt(d**2 + (math.tan(ts) * math.tan(tv) * math.sin(phi)) ** 2) / (sec_s + sec_v)
    )
    cos_t = max(-1.0, min(1.0, cos_t))
    t = math.acos(cos_t)
    overlap = (t - math.sin(t) * cos_t) * (sec_s + sec_v) / math.pi
    cos_xi = math.cos(ts) * math.cos(tv) + math.sin(ts) * math.sin(tv) * math.cos(phi)
    return overlap - sec_s - sec_v + 0.5 * (1 + cos_xi) * sec_s * sec_v


def test_kernels_at_nadir_sun_and_view_are_zero() -> None:
    # xi = 0: K_vol = (pi/2 * 1 + 0) / 2 - pi/4 = 0
    # D = 0, cos t = 0, t = pi/2, O = (pi/2)(2)/pi = 1: K_geo = 1 - 1 - 1 + (1 + 1)/2 = 0
    assert float(ross_thick(0.0, 0.0, 0.0)) == pytest.approx(0.0, abs=1e-15)
    assert float(li_sparse_r(0.0, 0.0, 0.0)) == pytest.approx(0.0, abs=1e-15)


def test_kernels_at_hot_spot_equal_closed_form() -> None:
    # ts = tv = 30, phi = 0: xi = 0 -> K_vol = (pi/2) / (2 cos 30) - pi/4
    expected_vol = (math.pi / 2) / (2 * math.cos(math.radians(30))) - math.pi / 4
    # D = 0 and sin phi = 0 -> cos t = 0, t = pi/2, O = sec30; cos xi' = 1
    # K_geo = sec30 - 2 sec30 + sec30^2 = sec30^2 - sec30 = 4/3 - 2/sqrt(3)
    expected_geo = 4 / 3 - 2 / math.sqrt(3)
    assert float(ross_thick(30.0, 30.0, 0.0)) == pytest.approx(expected_vol, rel=1e-12)
    assert float(li_sparse_r(30.0, 30.0, 0.0)) == pytest.approx(expected_geo, rel=1e-12)
    assert expected_geo == pytest.approx(0.178632, abs=1e-6)


def test_kernels_with_sun_45_and_nadir_view_equal_hand_values() -> None:
    # tv = 0: cos xi = cos 45, K_vol = ((pi/4) cos45 + sin45) / (cos45 + 1) - pi/4
    root = math.sqrt(2) / 2
    expected_vol = ((math.pi / 4) * root + root) / (root + 1) - math.pi / 4
    # D = tan45 = 1; cos t = 2 * 1 / (sqrt2 + 1); O = (t - sin t cos t)(sqrt2 + 1)/pi
    cos_t = 2 / (math.sqrt(2) + 1)
    t = math.acos(cos_t)
    overlap = (t - math.sin(t) * cos_t) * (math.sqrt(2) + 1) / math.pi
    expected_geo = overlap - math.sqrt(2) - 1 + 0.5 * (1 + root) * math.sqrt(2)
    for phi in (0.0, 90.0, 180.0):  # the azimuth does not matter at nadir view
        assert float(ross_thick(45.0, 0.0, phi)) == pytest.approx(expected_vol, rel=1e-12)
        assert float(li_sparse_r(45.0, 0.0, phi)) == pytest.approx(expected_geo, rel=1e-12)


@pytest.mark.parametrize(
    ("ts", "tv", "phi"),
    [(40.0, 8.0, 70.0), (25.0, 10.0, 180.0), (60.0, 7.5, 15.0), (35.0, 11.0, 300.0)],
)
def test_kernels_at_oblique_geometry_equal_hand_formulas(ts: float, tv: float, phi: float) -> None:
    assert float(ross_thick(ts, tv, phi)) == pytest.approx(hand_ross_thick(ts, tv, phi), rel=1e-12)
    assert float(li_sparse_r(ts, tv, phi)) == pytest.approx(
        hand_li_sparse_r(ts, tv, phi), rel=1e-12
    )


def test_kernels_vectorised_equal_scalar_and_are_reciprocal() -> None:
    ts = np.array([10.0, 30.0, 55.0])
    tv = np.array([0.0, 6.0, 11.0])
    phi = np.array([0.0, 120.0, 250.0])
    vol, geo = ross_thick(ts, tv, phi), li_sparse_r(ts, tv, phi)
    for i in range(3):
        assert vol[i] == pytest.approx(hand_ross_thick(ts[i], tv[i], phi[i]), rel=1e-12)
        assert geo[i] == pytest.approx(hand_li_sparse_r(ts[i], tv[i], phi[i]), rel=1e-12)
    # reciprocity: exchanging sun and view leaves both kernels unchanged
    np.testing.assert_allclose(ross_thick(tv, ts, phi), vol, rtol=1e-12)
    np.testing.assert_allclose(li_sparse_r(tv, ts, phi), geo, rtol=1e-12)


def test_c_factor_at_nadir_view_with_target_sun_is_one() -> None:
    for role, weights in ROY_COEFFICIENTS.items():
        for target in (20.0, 31.0076, 45.0, 60.0):
            for phi in (0.0, 77.0, 180.0):
                value = c_factor(
                    weights,
                    sun_zenith=target,
                    view_zenith=0.0,
                    relative_azimuth=phi,
                    target_sun_zenith_deg=target,
                )
                assert float(value) == pytest.approx(1.0, abs=1e-14), role


def test_c_factor_equals_ratio_of_hand_brdf_values() -> None:
    w = weights_for("red")  # 0.1690, 0.0227, 0.0574 (DESIGN 5)
    ts, tv, phi, target = 55.0, 9.0, 40.0, 35.0

    def hand_brdf(s: float, v: float, p: float) -> float:
        return 0.1690 + 0.0574 * hand_ross_thick(s, v, p) + 0.0227 * hand_li_sparse_r(s, v, p)

    expected = hand_brdf(target, 0.0, 0.0) / hand_brdf(ts, tv, phi)
    value = c_factor(
        w, sun_zenith=ts, view_zenith=tv, relative_azimuth=phi, target_sun_zenith_deg=target
    )
    assert float(value) == pytest.approx(expected, rel=1e-12)
    assert float(brdf(w, ts, tv, phi)) == pytest.approx(hand_brdf(ts, tv, phi), rel=1e-12)


def test_roy_coefficients_equal_design_table() -> None:
    design = {
        "blue": (0.0774, 0.0079, 0.0372),
        "green": (0.1306, 0.0178, 0.0580),
        "red": (0.1690, 0.0227, 0.0574),
        "nir": (0.3093, 0.0330, 0.1535),
        "swir1": (0.3430, 0.0453, 0.1154),
        "swir2": (0.2658, 0.0387, 0.0639),
        "rededge1": (0.2085, 0.0256, 0.0845),
        "rededge2": (0.2316, 0.0273, 0.1003),
        "rededge3": (0.2599, 0.0294, 0.1197),
    }
    assert {k: (w.f_iso, w.f_geo, w.f_vol) for k, w in ROY_COEFFICIENTS.items()} == design
    assert isinstance(weights_for("nir"), KernelWeights)
    with pytest.raises(KeyError, match="known: blue"):
        weights_for("coastal")


def test_target_sun_zenith_polynomial_equals_hand_values() -> None:
    def hand(lat: float) -> float:
        return (
            31.0076
            - 0.1272 * lat
            + 0.01187 * lat**2
            + 2.40e-5 * lat**3
            - 9.48e-7 * lat**4
            - 1.95e-9 * lat**5
            + 6.15e-11 * lat**6
        )

    assert target_sun_zenith(0.0) == pytest.approx(31.0076, abs=1e-12)
    for lat in (-60.0, -12.7, 42.86, 70.0):
        assert target_sun_zenith(lat) == pytest.approx(hand(lat), rel=1e-12)
    # 31.0076 - 5.724 + 24.03675 + 2.187 - 3.88739 - 0.35983 + 0.51068
    assert target_sun_zenith(45.0) == pytest.approx(47.77081, abs=1e-4)
    with pytest.raises(ValueError, match="outside"):
        target_sun_zenith(91.0)
