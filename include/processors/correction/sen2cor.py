"""``sen2cor``: run ESA's Sen2Cor on an L1C SAFE and keep its L2A in our band convention.

Contract of the program (Sen2Cor's own CLI): ``L2A_Process [--resolution R] --output_dir
<folder> <L1C .SAFE folder>`` writes one ``S2x_MSIL2A_*.SAFE`` folder (MTD_MSIL2A.xml,
``GRANULE/*/IMG_DATA/R{10,20,60}m/*_<band>_<res>m.jp2``, SCL) into ``<folder>``. The default
command is ``["L2A_Process", "--output_dir", "{output}", "{input}"]``; set ``command`` and/or
``image`` in ``collections.yaml`` (``processors.correction.options``, see
``correction.external``) for another install or a container.

The processor takes the parent's L1C (a SAFE ``.zip`` or folder), extracts it safely, runs the
program with a hard timeout, finds the L2A SAFE it wrote, checks that every expected band is
present, readable and georeferenced, and writes the bands as ``provider-l2`` does (BOA offset
from the L2A's own metadata). A program that fails, hangs or writes nothing fails the step with
its last error lines. A sun lower than ``min_sun_elevation_deg`` (default 20, Sen2Cor's LUTs end
at a 70 degree sun zenith) ends as succeeded with the flag ``sun_too_low``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, ClassVar

from include.common.errors import FieldProblem, InvalidInputError, ProcessingError
from include.processors.base import ProcessorInputs, ProcessorResult
from include.processors.correction.common import (
    FLAG_SUN_TOO_LOW,
    flagged_result,
    options_for,
    sun_elevation_of,
    sun_too_low,
)
from include.processors.correction.external import (
    ExternalOptions,
    ExternalProcessor,
    last_error_lines,
)
from include.processors.correction.l2 import missing_s2_l2a_bands, write_level2
from include.processors.products.archive import extract_archive, is_archive
from include.processors.products.sentinel2 import PRODUCT_METADATA_NAMES, Sentinel2Product
from include.processors.registry import register

log = logging.getLogger(__name__)

SEN2COR_VERSION = "0.1.0"
DEFAULT_COMMAND = ("L2A_Process", "--output_dir", "{output}", "{input}")


class Sen2CorOptions(ExternalOptions):
    """Options of ``sen2cor`` (see ``correction.external``)."""

    min_sun_elevation_deg: float | None = 20.0


def find_safe(root: Path, metadata_name: str) -> Path | None:
    """Return the ``*.SAFE`` folder at or below ``root`` (depth 3) holding ``metadata_name``."""
    candidates = [
        root,
        *sorted(root.glob("*")),
        *sorted(root.glob("*/*")),
        *sorted(root.glob("*/*/*")),
    ]
    for candidate in candidates:
        if candidate.is_dir() and (candidate / metadata_name).is_file():
            return candidate
    return None


def l1c_safe(inputs: ProcessorInputs, work: Path) -> Path:
    """Return the L1C SAFE folder of the parent's output (extracting an archive safely).

    Raises:
        InvalidInputError: the parent's output is not a SAFE (e.g. separate STAC assets).
    """
    for path in inputs.files.values():
        if path.is_file() and is_archive(path):
            root = extract_archive(path, work / "input" / path.name)
        elif path.is_dir():
            root = path
        else:
            continue
        safe = find_safe(root, PRODUCT_METADATA_NAMES[0])
        if safe is not None:
            return safe
    raise InvalidInputError(
        FieldProblem(
            "files",
            f"no Sentinel-2 L1C SAFE among {sorted(inputs.files)} (Sen2Cor needs the whole SAFE)",
            "download the L1C from a catalog that delivers SAFE archives (CDSE, S2MSI1C)",
        )
    )


@register("sen2cor")
class Sen2CorProcessor(ExternalProcessor):
    """Atmospheric correction with Sen2Cor (local command or container), validated outputs."""

    name: ClassVar[str] = "sen2cor"
    version: ClassVar[str] = SEN2COR_VERSION
    default_command: ClassVar[tuple[str, ...]] = DEFAULT_COMMAND

    def run(self, inputs: ProcessorInputs) -> ProcessorResult:
        """Run Sen2Cor on the parent's L1C and return the L2A bands.

        Raises:
            InvalidInputError: no L1C SAFE, bad options (command, aux_dir).
            ProcessingError: the program failed, timed out, or wrote no valid L2A.
        """
        started = time.monotonic()
        options = options_for(inputs, self.task_type, Sen2CorOptions, name=self.name)
        work = inputs.output_dir / ".sen2cor"
        safe = l1c_safe(inputs, work)
        l1c = Sentinel2Product.open(safe)
        common: dict[str, Any] = {
            "processor": self.name,
            "version": self.version,
            "l1c": l1c.metadata.product_uri,
        }
        sun_elevation = sun_elevation_of(l1c, inputs.scene.properties)
        common["sun_elevation_deg"] = sun_elevation
        if sun_too_low(sun_elevation, options.min_sun_elevation_deg):
            common["min_sun_elevation_deg"] = options.min_sun_elevation_deg
            return flagged_result([FLAG_SUN_TOO_LOW], common)
        program_out = work / "output"
        result = self.run_external(
            options, input_path=safe, output_dir=program_out, scene_id=inputs.scene.scene_id
        )
        l2a_safe = find_safe(program_out, "MTD_MSIL2A.xml")
        if l2a_safe is None:
            raise ProcessingError(
                "sen2cor: exited 0 but wrote no L2A SAFE (no MTD_MSIL2A.xml) in "
                f"{program_out}; last lines:\n" + last_error_lines(result)
            )
        try:
            l2a = Sentinel2Product.open(l2a_safe)
            missing = missing_s2_l2a_bands(l2a, inputs.collection)
            if missing:
                raise ProcessingError(f"bands {', '.join(missing)} are missing")
            files, radiometry = write_level2(
                l2a,
                inputs.collection,
                inputs.output_dir,
                progress=inputs.progress,
                processor=self.name,
            )
        except (InvalidInputError, ProcessingError) as err:
            raise ProcessingError(
                f"sen2cor: its output is not a valid L2A ({err}); last lines:\n"
                + last_error_lines(result)
            ) from err
        common.update(
            product_id=l2a.metadata.product_uri,
            processing_baseline=l2a.metadata.processing_baseline,
            boa_quantification_value=l2a.metadata.quantification_value,
            boa_add_offsets=dict(l2a.metadata.offsets),
            provider_cloud_cover=l2a.metadata.cloud_cover_pct,
            bands=sorted(files),
            radiometry=radiometry,
            program_elapsed_s=round(result.elapsed_s, 1),
            elapsed_s=round(time.monotonic() - started, 1),
        )
        return ProcessorResult(files=files, metadata=common)
