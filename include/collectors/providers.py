"""Provider priority and fallback for downloads (DESIGN 1.2, issue 3 "Provider priority").

``download_with_fallback`` tries, in order:

1. the scene's own catalog (the one the run searched), with the scene as found there;
2. each of the collection's ``providers`` (``config/collections.yaml``: catalog + dataset, highest
   priority first), skipping the catalog already tried. Such a provider must find the same scene
   by id through its own search (``SearchQuery(dataset, scene_ids=(scene_id,))``).

Each download attempt holds one of the provider's download slots (``limiter.slot``, sized by the
catalog's ``max_connections``; catalogs of one account share them through ``slot_group``). A
provider whose attempt raises ``TransientError``, ``ProviderError``, ``SceneOfflineError``,
``IntegrityError`` (a corrupt file) or ``ConfigError`` (the provider cannot serve this, e.g.
unsigned assets) is logged (``download.fallthrough``) and the next one is tried. Other errors
(bad input, a full disk, bugs) stop at once.

When every provider failed, the most relevant error is raised: a ``SceneOfflineError`` if any
provider had the scene offline (so the run waits for it); else the last error of a provider that
had the scene and failed to deliver it; else (nobody could even look the scene up) the last error.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from include.collectors.base import CatalogDriver, DownloadedFile, Scene, SearchQuery
from include.collectors.limiter import ProviderLimiter
from include.common.config import CatalogConfig, CollectionConfig, load_catalogs
from include.common.errors import (
    CollectionBuilderError,
    ConfigError,
    IntegrityError,
    ProviderError,
    SceneOfflineError,
    TransientError,
)
from include.common.progress import ProgressFn

log = logging.getLogger(__name__)

FALLTHROUGH_ERRORS: tuple[type[CollectionBuilderError], ...] = (
    TransientError,
    ProviderError,
    SceneOfflineError,
    IntegrityError,
    ConfigError,
)
"""Errors after which the next provider is tried."""

Stage = Literal["lookup", "download"]


@dataclass(frozen=True, slots=True)
class ProviderAttempt:
    """One provider tried for one scene and why it did not deliver."""

    catalog: str
    stage: Stage
    """``lookup``: finding the scene there failed; ``download``: it had the scene."""
    error: CollectionBuilderError


def candidates(
    scene: Scene, collection: CollectionConfig, *, prefer: str | None = None
) -> list[tuple[str, str | None]]:
    """Return ``(catalog, dataset)`` in the order to try; dataset None means "as searched".

    ``prefer`` (a provider of the collection the ``wait_online`` step found the scene online at)
    moves that provider to the front; the rest keep their order.
    """
    order: list[tuple[str, str | None]] = [(scene.catalog.lower(), None)]
    tried = {scene.catalog.lower()}
    for provider in collection.providers:
        name = provider.catalog.lower()
        if name not in tried:
            order.append((name, provider.dataset))
            tried.add(name)
    if prefer is not None:
        wanted = prefer.lower()
        order.sort(key=lambda entry: entry[0] != wanted)  # stable: only the preferred moves
    return order


def find_same_scene(driver: CatalogDriver, scene: Scene, dataset: str, catalog: str) -> Scene:
    """Return ``scene`` as provider ``catalog`` has it, searched by id in ``dataset``.

    Raises:
        ProviderError: when the provider has no scene with that id (HTTP-404-like).
        ProviderUnavailableError, RateLimitedError, ProviderError: from the provider's search.
    """
    found = driver.search(SearchQuery(dataset=dataset, scene_ids=(scene.scene_id,)))
    for candidate in found:
        if candidate.scene_id == scene.scene_id:
            return candidate
    raise ProviderError(
        f"{scene.scene_id}: provider {catalog!r} has no scene with this id in dataset "
        f"{dataset!r}; it cannot serve as a fallback for it",
        status_code=404,
    )


def most_relevant_error(attempts: list[ProviderAttempt]) -> CollectionBuilderError:
    """Pick the error to raise when no provider delivered (see the module docstring).

    Raises:
        ValueError: when ``attempts`` is empty.
    """
    if not attempts:
        raise ValueError("no provider was tried")
    for attempt in attempts:
        if isinstance(attempt.error, SceneOfflineError):
            return attempt.error
    delivered = [a for a in attempts if a.stage == "download"]
    return (delivered or attempts)[-1].error


def _max_slots(catalog: str, catalogs: Mapping[str, CatalogConfig]) -> int:
    config = catalogs.get(catalog)
    return config.max_connections if config is not None else 1


def slot_group(catalog: str, catalogs: Mapping[str, CatalogConfig]) -> str:
    """Return the name whose download slots ``catalog`` draws from (its ``slot_group``)."""
    config = catalogs.get(catalog)
    return (config.slot_group if config is not None else None) or catalog


def download_slot_groups(catalogs: Mapping[str, CatalogConfig]) -> dict[str, int]:
    """Return every slot group of ``catalogs`` with its download slots, in config order.

    A group's slots are the smallest ``max_connections`` of its catalogs: catalogs of one account
    (``cdse``, ``cdse-stac``) never connect more often together than the strictest of them says.
    The radcor DAG gives each group its own download task and Airflow pool of this size.
    """
    groups: dict[str, int] = {}
    for name, config in catalogs.items():
        group = slot_group(name, catalogs)
        groups[group] = min(groups.get(group, config.max_connections), config.max_connections)
    return groups


@contextlib.contextmanager
def _no_limit() -> Iterator[int]:
    yield 0


def download_with_fallback(
    scene: Scene,
    collection: CollectionConfig,
    dest: Path,
    *,
    driver_factory: Callable[[str], CatalogDriver],
    progress: ProgressFn | None = None,
    limiter: ProviderLimiter | None = None,
    catalogs: Mapping[str, CatalogConfig] | None = None,
    prefer: str | None = None,
    force: bool = False,
) -> tuple[DownloadedFile, str]:
    """Download ``scene`` into ``dest`` from the best provider; return the file and the provider.

    Args:
        scene: the scene as its own catalog (``scene.catalog``) found it.
        collection: the collection being built (its ``providers`` are the fallbacks).
        dest: the scene's archive folder.
        driver_factory: builds a driver by catalog name (the task layer adds credentials).
        progress: download progress callback.
        limiter: per-provider download slots (None: no limit).
        catalogs: the configured catalogs (default ``config/catalogs.yaml``), for slot counts.
        prefer: a provider to try first (the one ``wait_online`` found the scene online at).
        force: download again even when a valid copy is in ``dest`` (the conf's ``force``).

    Returns:
        ``(downloaded file, catalog name that delivered it)``.

    Raises:
        SceneOfflineError: when no provider delivered and one had the scene offline.
        TransientError, ProviderError, IntegrityError, ConfigError: the most relevant error
            when no provider delivered (see ``most_relevant_error``).
        CollectionBuilderError: other errors (bad input, a full disk) at once, without fallback.
    """
    configured = catalogs if catalogs is not None else load_catalogs()
    attempts: list[ProviderAttempt] = []
    order = candidates(scene, collection, prefer=prefer)
    for position, (catalog, dataset) in enumerate(order):
        stage: Stage = "lookup"
        try:
            with driver_factory(catalog) as driver:
                candidate = scene
                if dataset is not None:
                    candidate = find_same_scene(driver, scene, dataset, catalog)
                stage = "download"
                slots = None
                if limiter is not None:
                    group = slot_group(catalog, configured)
                    slots = limiter.slot(group, _max_slots(catalog, configured))
                with slots if slots is not None else _no_limit():
                    result = driver.download(candidate, dest, progress=progress, force=force)
        except FALLTHROUGH_ERRORS as err:
            attempts.append(ProviderAttempt(catalog, stage, err))
            following = order[position + 1][0] if position + 1 < len(order) else None
            log.warning(
                "download.fallthrough scene=%s provider=%s stage=%s error=%s: %s; %s",
                scene.scene_id,
                catalog,
                stage,
                type(err).__name__,
                err,
                f"trying {following}" if following else "no provider left",
            )
            continue
        if attempts:
            log.info(
                "download.fallback_used scene=%s provider=%s after=%s",
                scene.scene_id,
                catalog,
                ",".join(a.catalog for a in attempts),
            )
        return result, catalog
    error = most_relevant_error(attempts)
    log.error(
        "download.all_providers_failed scene=%s attempts=%s raised=%s",
        scene.scene_id,
        ",".join(f"{a.catalog}:{a.stage}:{type(a.error).__name__}" for a in attempts),
        type(error).__name__,
    )
    raise error


__all__ = [
    "FALLTHROUGH_ERRORS",
    "ProviderAttempt",
    "candidates",
    "download_slot_groups",
    "download_with_fallback",
    "find_same_scene",
    "most_relevant_error",
    "slot_group",
]
