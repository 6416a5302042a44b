"""HLS v2.0 MSI -> OLI bandpass coefficients (DESIGN 5) and the Sentinel-2C fallback."""

from __future__ import annotations

import pytest

from include.processors.harmonization.bandpass import (
    HLS_V2_BANDPASS,
    bandpass_coefficients,
    coefficients_source,
)

DESIGN = {
    "B01": ((0.9959, -0.0002), (0.9959, -0.0002)),
    "B02": ((0.9778, -0.004), (0.9778, -0.004)),
    "B03": ((1.0053, -0.0009), (1.0075, -0.0008)),
    "B04": ((0.9765, 0.0009), (0.9761, 0.001)),
    "B8A": ((0.9983, -0.0001), (0.9966, 0.000)),
    "B11": ((0.9987, -0.0011), (1.000, -0.0003)),
    "B12": ((1.003, -0.0012), (0.9867, 0.0004)),
}


def test_bandpass_table_equals_design_for_s2a_and_s2b() -> None:
    assert HLS_V2_BANDPASS["S2A"] == {band: pair[0] for band, pair in DESIGN.items()}
    assert HLS_V2_BANDPASS["S2B"] == {band: pair[1] for band, pair in DESIGN.items()}


def test_bandpass_s2b_swir2_offset_is_positive() -> None:
    coefficients = bandpass_coefficients("S2B", "B12")
    assert coefficients is not None
    assert (coefficients.slope, coefficients.offset, coefficients.source) == (0.9867, 0.0004, "S2B")


@pytest.mark.parametrize("band", list(DESIGN))
def test_bandpass_s2c_uses_s2a_coefficients_and_says_so(band: str) -> None:
    coefficients = bandpass_coefficients("s2c", band)
    assert coefficients is not None
    assert (coefficients.slope, coefficients.offset) == DESIGN[band][0]
    assert coefficients.source == "S2A (no published S2C coefficients)"


def test_bandpass_sources_name_the_unit() -> None:
    assert coefficients_source("S2A") == "S2A"
    assert coefficients_source("S2B") == "S2B"
    assert coefficients_source("S2C") == "S2A (no published S2C coefficients)"


@pytest.mark.parametrize("band", ["B05", "B06", "B07", "B08", "B09", "B10"])
def test_bandpass_band_without_oli_counterpart_is_none(band: str) -> None:
    assert bandpass_coefficients("S2A", band) is None
