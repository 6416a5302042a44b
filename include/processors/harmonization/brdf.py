"""BRDF kernels and the NBAR c-factor (Roy et al. 2016, 2017; DESIGN 5).

The surface BRDF is modelled with the semi-empirical RossThick-LiSparse-Reciprocal model
(Lucht et al. 2000, the MODIS BRDF/albedo model):

    BRDF(sun, view, relative azimuth) = f_iso + f_vol * K_vol + f_geo * K_geo

with fixed, global kernel weights per band (Roy et al. 2016 for blue..swir2 from MODIS; Roy et al.
2017 for the Sentinel-2 red-edge bands). The c-factor brings an observed reflectance to nadir view
and a target sun zenith:

    c = BRDF(target sun zenith, view zenith 0) / BRDF(observed sun zenith, view zenith, azimuth)
    NBAR = c * reflectance

Angles are in degrees at this module's interface; the relative azimuth is view azimuth minus sun
azimuth, so 0 means the sensor looks from the sun's side (backscatter, where the hot spot is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ArrayLike = float | FloatArray

BR_RATIO: Final = 1.0
"""Li-Sparse crown shape b/r (Lucht et al. 2000, MODIS): spherical crowns."""
HB_RATIO: Final = 2.0
"""Li-Sparse crown height h/b (Lucht et al. 2000, MODIS)."""


@dataclass(frozen=True, slots=True)
class KernelWeights:
    """The RossThick-LiSparseR weights of one band, in reflectance units."""

    f_iso: float
    f_geo: float
    f_vol: float


ROY_COEFFICIENTS: Final[dict[str, KernelWeights]] = {
    "blue": KernelWeights(f_iso=0.0774, f_geo=0.0079, f_vol=0.0372),
    "green": KernelWeights(f_iso=0.1306, f_geo=0.0178, f_vol=0.0580),
    "red": KernelWeights(f_iso=0.1690, f_geo=0.0227, f_vol=0.0574),
    "nir": KernelWeights(f_iso=0.3093, f_geo=0.0330, f_vol=0.1535),
    "swir1": KernelWeights(f_iso=0.3430, f_geo=0.0453, f_vol=0.1154),
    "swir2": KernelWeights(f_iso=0.2658, f_geo=0.0387, f_vol=0.0639),
    "rededge1": KernelWeights(f_iso=0.2085, f_geo=0.0256, f_vol=0.0845),
    "rededge2": KernelWeights(f_iso=0.2316, f_geo=0.0273, f_vol=0.1003),
    "rededge3": KernelWeights(f_iso=0.2599, f_geo=0.0294, f_vol=0.1197),
}
"""Roy et al. 2016 (blue..swir2) and Roy et al. 2017 (S2 B05, B06, B07 as rededge1..3), DESIGN 5.

S2 B08 and B8A both use ``nir``; Landsat OLI B5 and TM/ETM+ B4 are ``nir``.
"""

COEFFICIENTS_SOURCE: Final = (
    "Roy et al. 2016 (RSE 176:255-271) blue..swir2; Roy et al. 2017 (RSE 199:25-38) S2 red-edge"
)

_POLYNOMIAL: Final = (31.0076, -0.1272, 0.01187, 2.40e-5, -9.48e-7, -1.95e-9, 6.15e-11)
"""HLS v1.4 / sen2like target sun zenith polynomial of latitude (degrees), lowest power first."""


def target_sun_zenith(latitude_deg: float) -> float:
    """Return the NBAR target sun zenith (degrees) for a latitude, by the HLS polynomial.

    ``31.0076 - 0.1272 lat + 0.01187 lat^2 + 2.40e-5 lat^3 - 9.48e-7 lat^4 - 1.95e-9 lat^5
    + 6.15e-11 lat^6`` (DESIGN 5).

    Args:
        latitude_deg: the latitude in degrees, -90..90.

    Returns:
        The target sun zenith in degrees.

    Raises:
        ValueError: when the latitude is outside -90..90.
    """
    if not -90.0 <= latitude_deg <= 90.0:
        raise ValueError(f"latitude {latitude_deg} is outside -90..90")
    return float(sum(c * latitude_deg**power for power, c in enumerate(_POLYNOMIAL)))


def _radians(value: ArrayLike) -> FloatArray:
    return np.radians(np.asarray(value, dtype=np.float64))


def ross_thick(
    sun_zenith: ArrayLike, view_zenith: ArrayLike, relative_azimuth: ArrayLike
) -> FloatArray:
    """Return the RossThick volume-scattering kernel (Lucht et al. 2000, eq. 38).

    ``K_vol = ((pi/2 - xi) cos xi + sin xi) / (cos ts + cos tv) - pi/4`` with the phase angle
    ``cos xi = cos ts cos tv + sin ts sin tv cos phi``.

    Args:
        sun_zenith: sun zenith angle(s), degrees.
        view_zenith: view zenith angle(s), degrees.
        relative_azimuth: view azimuth minus sun azimuth, degrees.

    Returns:
        The kernel values (broadcast of the inputs).
    """
    ts, tv, phi = _radians(sun_zenith), _radians(view_zenith), _radians(relative_azimuth)
    cos_xi = np.clip(np.cos(ts) * np.cos(tv) + np.sin(ts) * np.sin(tv) * np.cos(phi), -1.0, 1.0)
    xi = np.arccos(cos_xi)
    result: FloatArray = ((np.pi / 2 - xi) * cos_xi + np.sin(xi)) / (
        np.cos(ts) + np.cos(tv)
    ) - np.pi / 4
    return result


def li_sparse_r(
    sun_zenith: ArrayLike,
    view_zenith: ArrayLike,
    relative_azimuth: ArrayLike,
    *,
    br: float = BR_RATIO,
    hb: float = HB_RATIO,
) -> FloatArray:
    """Return the LiSparse-Reciprocal geometric kernel (Lucht et al. 2000, eqs. 39-44).

    With the equivalent angles ``t' = atan(b/r tan t)``:
    ``D^2 = tan^2 ts' + tan^2 tv' - 2 tan ts' tan tv' cos phi``,
    ``cos t = h/b sqrt(D^2 + (tan ts' tan tv' sin phi)^2) / (sec ts' + sec tv')`` (clipped to
    [-1, 1]), ``O = (t - sin t cos t)(sec ts' + sec tv') / pi``,
    ``K_geo = O - sec ts' - sec tv' + (1 + cos xi')/2 sec ts' sec tv'``.

    Args:
        sun_zenith: sun zenith angle(s), degrees.
        view_zenith: view zenith angle(s), degrees.
        relative_azimuth: view azimuth minus sun azimuth, degrees.
        br: crown shape ratio b/r (1 in MODIS and here).
        hb: crown height ratio h/b (2 in MODIS and here).

    Returns:
        The kernel values (broadcast of the inputs).
    """
    phi = _radians(relative_azimuth)
    ts = np.arctan(br * np.tan(_radians(sun_zenith)))
    tv = np.arctan(br * np.tan(_radians(view_zenith)))
    tan_s, tan_v = np.tan(ts), np.tan(tv)
    sec_s, sec_v = 1.0 / np.cos(ts), 1.0 / np.cos(tv)
    d_squared = np.maximum(tan_s**2 + tan_v**2 - 2.0 * tan_s * tan_v * np.cos(phi), 0.0)
    cos_t = np.clip(
        hb * np.sqrt(d_squared + (tan_s * tan_v * np.sin(phi)) ** 2) / (sec_s + sec_v), -1.0, 1.0
    )
    t = np.arccos(cos_t)
    overlap = (t - np.sin(t) * cos_t) * (sec_s + sec_v) / np.pi
    cos_xi = np.cos(ts) * np.cos(tv) + np.sin(ts) * np.sin(tv) * np.cos(phi)
    result: FloatArray = overlap - sec_s - sec_v + 0.5 * (1.0 + cos_xi) * sec_s * sec_v
    return result


def brdf(
    weights: KernelWeights,
    sun_zenith: ArrayLike,
    view_zenith: ArrayLike,
    relative_azimuth: ArrayLike,
) -> FloatArray:
    """Return the modelled reflectance ``f_iso + f_vol K_vol + f_geo K_geo``.

    Args:
        weights: the band's kernel weights.
        sun_zenith: degrees.
        view_zenith: degrees.
        relative_azimuth: view azimuth minus sun azimuth, degrees.

    Returns:
        The modelled reflectance (broadcast of the inputs).
    """
    k_vol = ross_thick(sun_zenith, view_zenith, relative_azimuth)
    k_geo = li_sparse_r(sun_zenith, view_zenith, relative_azimuth)
    result: FloatArray = weights.f_iso + weights.f_vol * k_vol + weights.f_geo * k_geo
    return result


def c_factor(
    weights: KernelWeights,
    *,
    sun_zenith: ArrayLike,
    view_zenith: ArrayLike,
    relative_azimuth: ArrayLike,
    target_sun_zenith_deg: ArrayLike,
) -> FloatArray:
    """Return ``BRDF(target sun zenith, nadir view) / BRDF(observed sun and view)``.

    Args:
        weights: the band's kernel weights.
        sun_zenith: the observed sun zenith, degrees.
        view_zenith: the observed view zenith, degrees.
        relative_azimuth: observed view azimuth minus sun azimuth, degrees.
        target_sun_zenith_deg: the sun zenith to normalise to, degrees (scalar or per value).

    Returns:
        The multiplicative c-factor (broadcast of the inputs).
    """
    target = brdf(weights, target_sun_zenith_deg, 0.0, 0.0)
    observed = brdf(weights, sun_zenith, view_zenith, relative_azimuth)
    result: FloatArray = target / observed
    return result


def weights_for(role: str) -> KernelWeights:
    """Return the Roy weights of a band role (``blue`` ... ``swir2``, ``rededge1..3``).

    Raises:
        KeyError: naming the known roles when ``role`` has no coefficients.
    """
    try:
        return ROY_COEFFICIENTS[role]
    except KeyError:
        known = ", ".join(ROY_COEFFICIENTS)
        raise KeyError(f"no NBAR coefficients for band role {role!r}; known: {known}") from None
