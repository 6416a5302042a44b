"""Quality-mask kinds: which values are nodata, cloud and clear, for each mask we meet.

- ``scl`` (Sentinel-2 L2A Scene Classification, ESA L2A product spec): 0 no data,
  1 saturated/defective, 2 dark features, 3 cloud shadow, 4 vegetation, 5 not vegetated,
  6 water, 7 unclassified, 8 cloud medium probability, 9 cloud high probability, 10 thin cirrus,
  11 snow/ice. Cloud = 8, 9, 10 (as ESA's CLOUDY_PIXEL_PERCENTAGE); clear = 4, 5, 6, 7, 11.
- ``qa_pixel`` (Landsat Collection 2 QA_PIXEL bits, LSDS-1619): bit 0 fill, 1 dilated cloud,
  2 cirrus, 3 cloud, 4 cloud shadow, 5 snow, 6 clear, 7 water. Cloud = bits 1, 2 or 3;
  clear = not fill, cloud or shadow. Nodata value 1 (the fill bit alone).
- ``fmask`` (Fmask 4 / LaSRC output): 0 clear land, 1 clear water, 2 cloud shadow, 3 snow,
  4 cloud, 255 fill.
- ``cloud_mask`` (written by ``s2cloudless``): 0 clear, 1 cloud, 255 nodata.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_Bool = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class MaskKind:
    """How to read one kind of quality mask."""

    name: str
    nodata: int
    keys: tuple[str, ...]
    """Asset keys / band names that carry this mask (upper case)."""

    def valid(self, values: npt.NDArray[np.integer]) -> _Bool:
        """Return where the mask has data."""
        if self.name == "qa_pixel":
            result: _Bool = (values & 1) == 0
            return result
        return np.asarray(values != self.nodata, dtype=bool)

    def cloud(self, values: npt.NDArray[np.integer]) -> _Bool:
        """Return where the mask says cloud (cirrus included)."""
        if self.name == "scl":
            return np.asarray(np.isin(values, (8, 9, 10)), dtype=bool)
        if self.name == "qa_pixel":
            return np.asarray((values & 0b1110) != 0, dtype=bool) & self.valid(values)
        if self.name == "fmask":
            return np.asarray(values == 4, dtype=bool)
        return np.asarray(values == 1, dtype=bool)

    def clear(self, values: npt.NDArray[np.integer]) -> _Bool:
        """Return where the mask says clear (no cloud, no shadow, data)."""
        if self.name == "scl":
            return np.asarray(np.isin(values, (4, 5, 6, 7, 11)), dtype=bool)
        if self.name == "qa_pixel":
            return np.asarray(self.valid(values) & ((values & 0b11110) == 0), dtype=bool)
        if self.name == "fmask":
            return np.asarray(np.isin(values, (0, 1, 3)), dtype=bool)
        return np.asarray(values == 0, dtype=bool)


SCL = MaskKind("scl", 0, ("SCL",))
QA_PIXEL = MaskKind("qa_pixel", 1, ("QA_PIXEL",))
FMASK = MaskKind("fmask", 255, ("FMASK", "FMASK4"))
CLOUD_MASK = MaskKind("cloud_mask", 255, ("CLOUD_MASK",))
KINDS: tuple[MaskKind, ...] = (SCL, QA_PIXEL, FMASK, CLOUD_MASK)


def kind_for_key(key: str) -> MaskKind | None:
    """Return the mask kind an asset key or band name carries (case-insensitive), if any."""
    upper = key.upper()
    for kind in KINDS:
        if upper in kind.keys:
            return kind
    return None


def kind_by_name(name: str) -> MaskKind | None:
    """Return the mask kind called ``name`` (``scl``, ``qa_pixel``, ``fmask``, ``cloud_mask``)."""
    return next((kind for kind in KINDS if kind.name == name.lower()), None)
