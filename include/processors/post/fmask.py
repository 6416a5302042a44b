"""``fmask``: post-process the Fmask mask that LaSRC/Fmask wrote, like ``qa-post``.

The parent (``lasrc`` with Fmask enabled, or any step passing an ``FMASK`` file through) must
provide the Fmask 4 classification (0 clear land, 1 clear water, 2 cloud shadow, 3 snow,
4 cloud, 255 fill). It is resampled (nearest) onto the reflectance grid, set to nodata where
reflectance is nodata, written as a COG, and the cloud cover is recomputed from it. Options are
those of ``qa-post``.
"""

from __future__ import annotations

from typing import ClassVar

from include.processors.post.masks import FMASK, MaskKind
from include.processors.post.qa import QaPostProcessor
from include.processors.registry import register

FMASK_VERSION = "0.1.0"


@register("fmask")
class FmaskProcessor(QaPostProcessor):
    """Use the LaSRC/Fmask output (key ``FMASK``) as the scene's quality mask.

    It runs as ``qa-post`` does but takes no other kind of mask. Idempotent: fixed output
    names, atomic writes; inputs are only read.
    """

    name: ClassVar[str] = "fmask"
    version: ClassVar[str] = FMASK_VERSION
    mask_kinds: ClassVar[tuple[MaskKind, ...]] = (FMASK,)
