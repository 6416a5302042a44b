"""``fmask``: post-process the Fmask mask that LaSRC/Fmask wrote, like ``qa-post``.

The parent (``lasrc`` with Fmask enabled, or any step passing an ``FMASK`` file through) must
provide the Fmask 4 classification (0 clear land, 1 clear water, 2 cloud shadow, 3 snow,
4 cloud, 255 fill). It is resampled (nearest) onto the reflectance grid, set to nodata where
reflectance is nodata, written as a COG, and the cloud cover is recomputed from it. Options are
those of ``qa-post``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from include.processors.base import Processor, ProcessorInputs, ProcessorResult
from include.processors.correction.common import options_for
from include.processors.post.masks import FMASK
from include.processors.post.qa import PostOptions, find_mask, post_process
from include.processors.products.package import band_inputs
from include.processors.registry import register

FMASK_VERSION = "0.1.0"


@register("fmask")
class FmaskProcessor(Processor):
    """Use the LaSRC/Fmask output (key ``FMASK``) as the scene's quality mask.

    Idempotent: fixed output names, atomic writes; inputs are only read.
    """

    name: ClassVar[str] = "fmask"
    version: ClassVar[str] = FMASK_VERSION
    task_type: ClassVar[str] = "post"

    def run(self, inputs: ProcessorInputs) -> ProcessorResult:
        """Resample the Fmask output onto the reflectance grid and recompute the cloud cover.

        Raises:
            InvalidInputError: no FMASK file (run lasrc with Fmask) or no reflectance band.
            ProcessingError: GDAL failed.
        """
        inputs = replace(
            inputs,
            files=band_inputs(inputs.files, inputs.collection, inputs.scene.scene_id),
        )
        options = options_for(inputs, self.task_type, PostOptions, name=self.name)
        key, path, kind = find_mask(inputs.files, options.mask_band, kinds=(FMASK,))
        return post_process(
            inputs,
            options,
            mask_key=key,
            mask_path=path,
            kind=kind,
            processor=self.name,
            version=self.version,
        )
