"""Bandpass adjustment of Sentinel-2 MSI to Landsat-8 OLI (HLS v2.0; DESIGN 5).

``OLI-like = slope * MSI + offset`` per band and per satellite, in reflectance units: apply it
after scaling the digital numbers to reflectance, never to DN. Bands without an OLI counterpart
(B05, B06, B07, B08, B09) are not adjusted. Sentinel-2C (and later units) has no published HLS
coefficients: Sentinel-2A's are used and the fallback is named in ``source``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

HLS_SOURCE: Final = "HLS v2.0 (Claverie et al. 2018; HLS v2.0 user guide), MSI to OLI"


@dataclass(frozen=True, slots=True)
class BandpassCoefficients:
    """One band's linear MSI -> OLI adjustment, reflectance units."""

    slope: float
    offset: float
    source: str
    """Which satellite's coefficients these are, e.g. ``S2A`` or ``S2A (no published S2C ...)``."""


HLS_V2_BANDPASS: Final[dict[str, dict[str, tuple[float, float]]]] = {
    "S2A": {
        "B01": (0.9959, -0.0002),
        "B02": (0.9778, -0.004),
        "B03": (1.0053, -0.0009),
        "B04": (0.9765, 0.0009),
        "B8A": (0.9983, -0.0001),
        "B11": (0.9987, -0.0011),
        "B12": (1.003, -0.0012),
    },
    "S2B": {
        "B01": (0.9959, -0.0002),
        "B02": (0.9778, -0.004),
        "B03": (1.0075, -0.0008),
        "B04": (0.9761, 0.001),
        "B8A": (0.9966, 0.000),
        "B11": (1.000, -0.0003),
        "B12": (0.9867, 0.0004),
    },
}
"""(slope, offset) per satellite and band, DESIGN 5 (S2B B12's offset is +0.0004)."""


def coefficients_source(unit: str) -> str:
    """Return whose coefficients a Sentinel-2 unit gets, e.g. ``S2A (no published S2C ...)``.

    Args:
        unit: the satellite, ``S2A``, ``S2B``, ``S2C``... (case-insensitive).

    Returns:
        ``S2A`` or ``S2B`` for those units; for any other unit the S2A fallback, named.
    """
    key = unit.strip().upper()
    if key in HLS_V2_BANDPASS:
        return key
    return f"S2A (no published {key} coefficients)"


def bandpass_coefficients(unit: str, band: str) -> BandpassCoefficients | None:
    """Return the MSI -> OLI coefficients of ``band`` for Sentinel-2 ``unit``, or None.

    Args:
        unit: ``S2A``, ``S2B``, ``S2C``...; units without published coefficients get S2A's.
        band: the MSI band name, ``B02`` ... ``B12`` or ``B8A``.

    Returns:
        The coefficients, or None when the band has no OLI counterpart (B05-B08, B09, B10).
    """
    key = unit.strip().upper()
    table = HLS_V2_BANDPASS.get(key, HLS_V2_BANDPASS["S2A"])
    pair = table.get(band.strip().upper())
    if pair is None:
        return None
    return BandpassCoefficients(slope=pair[0], offset=pair[1], source=coefficients_source(key))
