"""The processor contract: inputs (a scene and its parent's files) -> outputs + metadata.

Processors implement one task type (correction, harmonization, post, publish) and are chosen by
name from the target collection's config (``config/collections.yaml``: ``processor``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from include.collectors.base import CatalogDriver, Scene
from include.common.config import CollectionConfig
from include.common.progress import ProgressFn


@dataclass(frozen=True, slots=True)
class ProcessorInputs:
    """What a processor gets.

    ``files`` are the parent node's outputs keyed by asset key (band names such as ``B04``, plus
    provider keys); ``output_dir`` is empty or holds a previous attempt's outputs, which the
    processor may overwrite (it must write through temporary names and rename into place).
    """

    scene: Scene
    collection: CollectionConfig
    files: Mapping[str, Path]
    output_dir: Path
    args: Mapping[str, Any] = field(default_factory=dict)
    source_collection: str | None = None
    progress: ProgressFn | None = None
    lineage: Mapping[str, Any] = field(default_factory=dict)
    """What made the input files, root first: ``{"steps": [{"task_type", "collection",
    "provider", "software"}, ...]}`` as the upstream activities recorded it (may be empty)."""
    driver_factory: Callable[[str], CatalogDriver] | None = None
    """Builds a catalog driver by catalog name (credentials included), for processors that fetch
    (``provider-l2``); None outside a run."""
    parent_metadata: Mapping[str, Any] = field(default_factory=dict)
    """The parent node's result metadata (e.g. ``cloud_cover`` and ``flags`` from post)."""


@dataclass(frozen=True, slots=True)
class ProcessorResult:
    """What a processor made: files by asset key, metadata, and (for publish) a STAC item dict."""

    files: dict[str, Path]
    metadata: dict[str, Any] = field(default_factory=dict)
    item: dict[str, Any] | None = None


class Processor(abc.ABC):
    """One processing step.

    Contract: ``run`` is idempotent (running twice on the same inputs gives the same outputs and
    leaves no duplicates); it never modifies its input files; it raises ``InvalidInputError`` when
    the inputs lack something it needs (named), ``ProcessingError`` when its work failed, and
    ``TransientError`` only for failures worth retrying.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    task_type: ClassVar[str] = ""

    @abc.abstractmethod
    def run(self, inputs: ProcessorInputs) -> ProcessorResult:
        """Process ``inputs`` and return the outputs."""
