"""Is a scene online, where, and what to order: the decisions of the ``wait_online`` step.

Scenes in a provider's long-term archive are offline (CDSE ``Online: false``; USGS bundles being
prepared). Before ``download``, ``decide`` looks at the scene once (DESIGN 1.2 "Offline scenes"):

1. online at the catalog the run searched -> download from it, no wait;
2. else, when ``fallback_online`` is on, the first lower-priority provider of the collection
   (``config/collections.yaml``, as ``providers.candidates`` orders them) that finds the same scene
   by id *and* has it online -> download from that provider, no wait;
3. else order it at the searched catalog (``CatalogDriver.order``, idempotent; skipped when the
   provider already reports it ``ORDERED``) and wait: ``poll`` tells, one request per call,
   whether it is online yet.

A scene whose archive is already in place (``archive_in_place``: a verified ``<scene>.zip`` or
``.tar`` in its archive folder) needs no wait at all. Provider calls made once here retry
transient failures in the task (``retries.call_with_retries``); ``poll`` does not retry, it
reports a transient failure as "not online yet" so a long wait survives provider hiccups.
Nothing here knows Airflow: the sensor and the trigger in ``plugins/radcor_api`` call it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from include.collectors.base import Availability, CatalogDriver, Scene
from include.collectors.download import reuse_existing
from include.collectors.providers import FALLTHROUGH_ERRORS, candidates, find_same_scene
from include.collectors.retries import call_with_retries
from include.common.config import CollectionConfig
from include.common.errors import TransientError
from include.common.storage import safe_component

log = logging.getLogger(__name__)

DriverFactory = Callable[[str], CatalogDriver]
ARCHIVE_SUFFIXES = (".zip", ".tar")
"""File names a single-archive driver downloads to: ``<scene_id>.zip`` (CDSE), ``.tar`` (USGS)."""


@dataclass(frozen=True, slots=True)
class WaitDecision:
    """What ``decide`` found for one scene.

    ``providers`` maps each collection that can be downloaded now to the catalog that has the
    scene online (the searched catalog, or a fallback provider); the collections missing from it
    must wait for the order at ``catalog``.
    """

    catalog: str
    """The catalog the run searched (where an order is placed)."""
    state: Availability
    """The scene's availability at ``catalog`` when decided."""
    providers: dict[str, str] = field(default_factory=dict)
    ordered: bool = False
    order_id: str | None = None
    notes: tuple[str, ...] = ()
    """Why fallback providers could not be used (one line each), for the activity message."""

    def is_online_for(self, collection: str) -> bool:
        """Return whether ``collection``'s download can start now."""
        return collection in self.providers


@dataclass(frozen=True, slots=True)
class PollResult:
    """One availability check while waiting."""

    state: Availability | None
    """None when the check failed transiently (see ``transient_error``)."""
    transient_error: str | None = None

    @property
    def is_online(self) -> bool:
        """Whether the scene is online now."""
        return self.state == Availability.ONLINE


def _archive_checksum(scene: Scene) -> str | None:
    for asset in scene.assets:
        if "archive" in asset.roles and asset.checksum:
            return asset.checksum
    checksum = scene.properties.get("product_checksum")
    return checksum if isinstance(checksum, str) and checksum else None


def archive_in_place(scene: Scene, dest: Path) -> Path | None:
    """Return the scene's verified archive in ``dest`` (``<scene_id>.zip`` or ``.tar``), or None.

    Verified as the download engine does before reusing a file: the size the catalog gave and the
    archive's checksum when known, under the same per-file lock.

    Raises:
        InvalidInputError: when the scene id cannot be a file name.
        ProviderError: when the catalog's checksum is malformed.
    """
    name = safe_component(scene.scene_id, "scene_id")
    for suffix in ARCHIVE_SUFFIXES:
        path = Path(dest) / f"{name}{suffix}"
        if (
            path.exists()
            and reuse_existing(
                path, expected_size=scene.size_bytes, checksum=_archive_checksum(scene)
            )
            is not None
        ):
            return path
    return None


def availability_of(
    driver: CatalogDriver, scene: Scene, *, sleep: Callable[[float], None] = time.sleep
) -> Availability:
    """Return ``driver.availability(scene)``, retrying transient failures in the task.

    Raises:
        TransientError: still failing after the in-task attempts.
        ProviderError: the provider refused (404 unknown scene, 401/403 credentials).
    """
    return call_with_retries(
        lambda: driver.availability(scene),
        what=f"{scene.catalog} availability {scene.scene_id}",
        sleep=sleep,
    )


def find_online_fallback(
    scene: Scene,
    collection: CollectionConfig,
    *,
    driver_factory: DriverFactory,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str | None, list[str]]:
    """Return the first lower-priority provider having ``scene`` online, and why others did not.

    Returns:
        ``(catalog or None, notes)``; a provider that fails (lookup or availability) is noted
        and skipped, as ``download_with_fallback`` does.
    """
    notes: list[str] = []
    for catalog, dataset in candidates(scene, collection)[1:]:
        if dataset is None:  # pragma: no cover - only the first candidate is "as searched"
            continue
        try:
            with driver_factory(catalog) as driver:
                candidate = call_with_retries(
                    functools.partial(find_same_scene, driver, scene, dataset, catalog),
                    what=f"{catalog} lookup {scene.scene_id}",
                    sleep=sleep,
                )
                state = availability_of(driver, candidate, sleep=sleep)
        except FALLTHROUGH_ERRORS as err:
            notes.append(f"{catalog}: {type(err).__name__}: {err}")
            log.info(
                "wait.fallback_unusable scene=%s provider=%s error=%s: %s",
                scene.scene_id,
                catalog,
                type(err).__name__,
                err,
            )
            continue
        if state == Availability.ONLINE:
            return catalog, notes
        notes.append(f"{catalog}: {state}")
    return None, notes


def decide(
    scene: Scene,
    collections: Sequence[CollectionConfig],
    *,
    driver_factory: DriverFactory,
    use_fallback: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitDecision:
    """Check ``scene`` once for the collections to download; order it if some must wait.

    Args:
        scene: the scene as the run's catalog (``scene.catalog``) found it.
        collections: the collections of the scene's download nodes still to do.
        driver_factory: builds a driver by catalog name (the task layer adds credentials).
        use_fallback: look for a lower-priority provider that has the scene online.
        sleep: the wait between in-task retries.

    Returns:
        The decision; ``ordered`` when an order was placed (or found in progress).

    Raises:
        SceneOfflineError: the provider says the scene cannot be ordered (never online there).
        ProviderError: 404 unknown scene, 401/403 credentials, other refusals (no retry helps).
        TransientError: the provider kept failing after the in-task retries.
    """
    catalog = scene.catalog.lower()
    with driver_factory(catalog) as driver:
        state = availability_of(driver, scene, sleep=sleep)
    if state == Availability.ONLINE:
        return WaitDecision(catalog, state, {c.name: catalog for c in collections})
    providers: dict[str, str] = {}
    notes: list[str] = []
    if use_fallback:
        for collection in collections:
            found, why = find_online_fallback(
                scene, collection, driver_factory=driver_factory, sleep=sleep
            )
            notes.extend(note for note in why if note not in notes)
            if found is not None:
                providers[collection.name] = found
                log.info(
                    "wait.fallback_online scene=%s collection=%s offline_at=%s provider=%s",
                    scene.scene_id,
                    collection.name,
                    catalog,
                    found,
                )
    if all(c.name in providers for c in collections):
        return WaitDecision(catalog, state, providers, notes=tuple(notes))
    order_id: str | None = None
    if state != Availability.ORDERED:
        with driver_factory(catalog) as driver:
            order_id = call_with_retries(
                lambda: driver.order(scene),
                what=f"{catalog} order {scene.scene_id}",
                sleep=sleep,
            )
    log.info(
        "wait.ordered scene=%s catalog=%s state=%s order_id=%s",
        scene.scene_id,
        catalog,
        state,
        order_id or "-",
    )
    return WaitDecision(
        catalog, state, providers, ordered=True, order_id=order_id, notes=tuple(notes)
    )


def poll(scene: Scene, driver: CatalogDriver) -> PollResult:
    """Check once whether ``scene`` is online at ``driver``'s catalog (no in-task retry).

    A transient failure is reported in the result rather than raised: while waiting hours for a
    long-term archive, a provider's 503 only means "ask again at the next poll".

    Raises:
        ProviderError: the provider refused (the scene is gone, credentials are wrong).
        SceneOfflineError: the provider says the scene can never be online there.
    """
    try:
        return PollResult(driver.availability(scene))
    except TransientError as err:
        log.warning(
            "wait.poll_failed scene=%s error=%s; asking again at the next poll", scene.scene_id, err
        )
        return PollResult(None, transient_error=str(err))


def describe(decision: WaitDecision) -> str:
    """Return a one-line account of ``decision`` for the activity's message."""
    parts = [f"{decision.state} at {decision.catalog}"]
    for collection, provider in sorted(decision.providers.items()):
        if provider != decision.catalog:
            parts.append(f"{collection}: online at {provider}, downloaded from there")
    if decision.ordered:
        parts.append(
            f"ordered at {decision.catalog}"
            + (f" (order {decision.order_id})" if decision.order_id else "")
        )
    return "; ".join(parts)


__all__ = [
    "ARCHIVE_SUFFIXES",
    "PollResult",
    "WaitDecision",
    "archive_in_place",
    "availability_of",
    "decide",
    "describe",
    "find_online_fallback",
    "poll",
]
