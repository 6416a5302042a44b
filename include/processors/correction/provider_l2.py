"""``provider-l2``: fetch the provider's own Level-2 product of the same acquisition.

For a Level-1 scene this finds, through the catalog drivers, the Level-2 product the provider
made of the same acquisition, downloads it, and writes its surface-reflectance bands (plus SCL
or QA_PIXEL) in the target collection's encoding:

- Sentinel-2 L1C ``S2A_MSIL1C_<sensing>_N<baseline>_R<orbit>_T<tile>_<generation>`` ->
  the ``S2A_MSIL2A_<same sensing>_N..._R<same orbit>_T<same tile>_...`` with the newest
  processing baseline (then the newest generation time); the BOA offset comes from that
  product's MTD_MSIL2A.xml (-1000 from baseline 04.00 on).
- Landsat Collection 2 Level-1 (``LC08_L1TP_<path><row>_<date>_...``) -> the Level-2 product of
  the same mission, path/row and acquisition date (L2SP preferred over L2SR, then the newest
  processing date); SR = DN * 2.75e-05 - 0.2 from its MTL.

Where to look: ``options.providers`` (``[{catalog, dataset}]``) or else the target collection's
own ``providers`` (the collection config already says where its Level-2 lives), the scene's own
catalog first. Searches go by tile and a time window around the acquisition (``window_h``,
default 12 h). Not found anywhere: ``ProcessingError`` (Level-2 appears hours to days after
Level-1; rerun later).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from include.collectors.base import Scene, SearchQuery
from include.common.errors import (
    ConfigError,
    FieldProblem,
    InvalidInputError,
    ProcessingError,
    ProviderError,
    TransientError,
)
from include.common.storage import safe_component
from include.processors.base import Processor, ProcessorInputs, ProcessorResult
from include.processors.correction.common import (
    ProcessorOptions,
    open_product,
    options_for,
)
from include.processors.correction.l2 import write_level2
from include.processors.products.landsat import LandsatProduct, parse_product_id
from include.processors.products.package import SceneHints
from include.processors.products.sentinel2 import Sentinel2Product
from include.processors.registry import register

log = logging.getLogger(__name__)

PROVIDER_L2_VERSION = "0.1.0"
_S2_ID = re.compile(
    r"^(S2[A-D])_MSI(L1C|L2A)_(\d{8}T\d{6})_N(\d{4})_R(\d{3})_T(\d{2}[A-Z]{3})_(\d{8}T\d{6})$"
)


class L2Provider(BaseModel):
    """Where to look for the Level-2 product."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    catalog: str
    dataset: str


class ProviderL2Options(ProcessorOptions):
    """Options of ``provider-l2``."""

    providers: list[L2Provider] | None = None
    window_h: float = Field(default=12.0, gt=0, le=96)


@dataclass(frozen=True, slots=True)
class Acquisition:
    """What identifies one acquisition across processing levels."""

    family: str
    """``sentinel-2`` or ``landsat``."""
    mission: str
    tile: str
    when: datetime
    key: tuple[str, ...]
    """Equal for every product of the acquisition (S2: mission, sensing, orbit, tile;
    Landsat: mission, path/row, date)."""


def acquisition_of(scene_id: str, when: datetime) -> Acquisition | None:
    """Return the acquisition a Sentinel-2 or Landsat product id names (None if neither)."""
    s2 = _S2_ID.match(scene_id)
    if s2:
        mission, _, sensing, _, orbit, tile, _ = s2.groups()
        return Acquisition("sentinel-2", mission, tile, when, (mission, sensing, orbit, tile))
    parts = parse_product_id(scene_id)
    if parts:
        pathrow = parts["path"] + parts["row"]
        return Acquisition(
            "landsat",
            parts["mission"],
            pathrow,
            when,
            (parts["mission"], pathrow, parts["acquired"]),
        )
    return None


def l2_rank(scene_id: str, wanted: Acquisition) -> tuple[Any, ...] | None:
    """Return a sort key (higher is better) when ``scene_id`` is a Level-2 of ``wanted``."""
    if wanted.family == "sentinel-2":
        match = _S2_ID.match(scene_id)
        if not match or match.group(2) != "L2A":
            return None
        mission, _, sensing, baseline, orbit, tile, generation = match.groups()
        if (mission, sensing, orbit, tile) != wanted.key:
            return None
        return (int(baseline), generation)
    parts = parse_product_id(scene_id)
    if parts is None or not parts["level"].startswith("L2"):
        return None
    if (parts["mission"], parts["path"] + parts["row"], parts["acquired"]) != wanted.key:
        return None
    return (parts["level"] == "L2SP", parts["collection"], parts["processed"])


def best_match(scenes: list[Scene], wanted: Acquisition) -> Scene | None:
    """Return the best Level-2 of ``wanted`` among ``scenes`` (newest baseline/processing)."""
    ranked = [(rank, scene) for scene in scenes if (rank := l2_rank(scene.scene_id, wanted))]
    if not ranked:
        return None
    ranked.sort(key=lambda pair: pair[0])
    return ranked[-1][1]


@register("provider-l2")
class ProviderL2Processor(Processor):
    """Fetch and convert the provider's Level-2 product of the scene's acquisition.

    Idempotent: the download is reused when complete (driver contract), outputs have fixed
    names. Needs ``inputs.driver_factory`` (given by the radcor step runner).
    """

    name: ClassVar[str] = "provider-l2"
    version: ClassVar[str] = PROVIDER_L2_VERSION
    task_type: ClassVar[str] = "correction"

    def run(self, inputs: ProcessorInputs) -> ProcessorResult:
        """Find, download and convert the matching Level-2 product.

        Raises:
            InvalidInputError: the scene id is neither an S2 L1C nor a Landsat L1 product id,
                no driver factory, no provider configured.
            ProcessingError: no provider has the Level-2 product.
            TransientError: a provider is unavailable (retry later).
        """
        started = time.monotonic()
        options = options_for(inputs, self.task_type, ProviderL2Options, name=self.name)
        scene = inputs.scene
        wanted = acquisition_of(scene.scene_id, scene.datetime)
        if wanted is None:
            raise InvalidInputError(
                FieldProblem(
                    "scene.scene_id",
                    f"{scene.scene_id!r} is neither a Sentinel-2 L1C nor a Landsat product id",
                    "provider-l2 matches by ESA/USGS product names; download from a catalog "
                    "that gives them",
                )
            )
        if inputs.driver_factory is None:
            raise InvalidInputError(
                FieldProblem(
                    "driver_factory",
                    "provider-l2 needs catalog access and got none",
                    "run it inside a radcor run (the step runner passes the drivers)",
                )
            )
        providers = self._providers(inputs, options)
        found, used, tried = self._search(inputs, providers, wanted, options)
        if found is None or used is None:
            raise ProcessingError(
                f"provider-l2: no Level-2 product of {scene.scene_id} at {', '.join(tried)}; "
                "providers publish Level-2 hours (Sentinel-2) to days (Landsat) after Level-1: "
                "rerun later, or use a local correction (sen2cor, lasrc)"
            )
        dest = inputs.output_dir / ".download" / safe_component(found.scene_id, "scene_id")
        with inputs.driver_factory(used.catalog) as driver:
            downloaded = driver.download(found, dest, progress=inputs.progress)
        files = {Path(p).stem: Path(p) for p in downloaded.files} or {
            found.scene_id: downloaded.path
        }
        product = open_product(
            files,
            inputs.collection,
            scene_id=found.scene_id,
            hints=SceneHints.of(found),  # the Level-2 scene's own catalog facts
        )
        if isinstance(product, Sentinel2Product):
            written, radiometry = write_level2(
                product, inputs.collection, inputs.output_dir, processor=self.name
            )
            details: dict[str, Any] = {
                "processing_baseline": product.metadata.processing_baseline,
                "boa_quantification_value": product.metadata.quantification_value,
                "boa_add_offsets": dict(product.metadata.offsets),
                "radiometry_source": product.metadata.source,
            }
        elif isinstance(product, LandsatProduct):
            written, radiometry = write_level2(
                product, inputs.collection, inputs.output_dir, processor=self.name
            )
            details = {"processing_level": product.metadata.processing_level}
        else:  # pragma: no cover - open_product returns one of the two
            raise ProcessingError(f"provider-l2: unexpected product {product!r}")
        elapsed = round(time.monotonic() - started, 2)
        log.info(
            "provider_l2.done scene=%s l2=%s catalog=%s bands=%d size_bytes=%d elapsed_s=%.2f",
            scene.scene_id,
            found.scene_id,
            used.catalog,
            len(written),
            downloaded.size_bytes,
            elapsed,
        )
        return ProcessorResult(
            files=written,
            metadata={
                "processor": self.name,
                "version": self.version,
                "l2_scene_id": found.scene_id,
                "l2_catalog": used.catalog,
                "l2_dataset": used.dataset,
                "l2_size_bytes": downloaded.size_bytes,
                "provider_cloud_cover": found.cloud_pct,
                "bands": sorted(written),
                "radiometry": radiometry,
                "elapsed_s": elapsed,
                **details,
            },
        )

    @staticmethod
    def _providers(inputs: ProcessorInputs, options: ProviderL2Options) -> list[L2Provider]:
        providers = options.providers or [
            L2Provider(catalog=p.catalog, dataset=p.dataset) for p in inputs.collection.providers
        ]
        if not providers:
            raise InvalidInputError(
                FieldProblem(
                    f"collections.{inputs.collection.name}.providers",
                    "is empty, so provider-l2 does not know where the Level-2 product lives",
                    "list its providers (catalog, dataset) or set processors.correction.options."
                    "providers",
                )
            )
        own = inputs.scene.catalog.lower()
        return sorted(providers, key=lambda p: p.catalog.lower() != own)

    @staticmethod
    def _search(
        inputs: ProcessorInputs,
        providers: list[L2Provider],
        wanted: Acquisition,
        options: ProviderL2Options,
    ) -> tuple[Scene | None, L2Provider | None, list[str]]:
        assert inputs.driver_factory is not None  # noqa: S101 - checked by the caller
        window = timedelta(hours=options.window_h)
        query_tile = inputs.scene.tile or wanted.tile
        tried: list[str] = []
        transient: TransientError | None = None
        for provider in providers:
            tried.append(f"{provider.catalog}/{provider.dataset}")
            query = SearchQuery(
                dataset=provider.dataset,
                tiles=(query_tile,),
                start=wanted.when - window,
                end=wanted.when + window,
            )
            try:
                with inputs.driver_factory(provider.catalog) as driver:
                    scenes = driver.search(query)
            except (InvalidInputError, ProviderError, ConfigError, KeyError) as err:
                log.warning(
                    "provider_l2.provider_skipped catalog=%s dataset=%s error=%s",
                    provider.catalog,
                    provider.dataset,
                    err,
                )
                continue
            except TransientError as err:
                transient = err
                log.warning(
                    "provider_l2.provider_unavailable catalog=%s error=%s", provider.catalog, err
                )
                continue
            match = best_match(scenes, wanted)
            log.info(
                "provider_l2.search catalog=%s dataset=%s tile=%s candidates=%d match=%s",
                provider.catalog,
                provider.dataset,
                query_tile,
                len(scenes),
                match.scene_id if match else None,
            )
            if match is not None:
                return match, provider, tried
        if transient is not None:
            raise transient
        return None, None, tried
