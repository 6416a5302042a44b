"""Plan a run: search, preview, one plan per scene, stored, split into child runs if large.

The ``search`` task wraps ``plan_run`` and hands its result to Airflow (XComs, mapped scene
references); everything it decides is here, free of Airflow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from include.catalog.base import CatalogBackend
from include.collectors.base import CatalogDriver, Scene
from include.collectors.retries import call_with_retries
from include.collectors.split import newest_of
from include.radcor.conf import Action, RadcorConf
from include.radcor.context import DriverFactory
from include.radcor.plan import plan_scene
from include.radcor.preview import is_large, preview_entry, write_preview_file
from include.radcor.run_scenes import PAGE_SIZE, RunScenes, split_into_runs
from include.radcor.search import iter_scene_pages

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What planning decided for one run.

    ``scene_refs`` are the scenes this run maps itself; when the run is too large for one DAG
    run they are empty and ``child_ranges`` name the scene indices each child run takes.
    """

    run_id: str
    preview: dict[str, Any]
    """The preview, inline, or a reference to where it is stored when large."""
    scene_count: int
    scene_refs: list[dict[str, Any]] = field(default_factory=list)
    child_ranges: list[range] = field(default_factory=list)


FOUND = "found"
"""The run-scenes kind of a streamed search's scenes, as the catalog lists them (then ordered)."""


@dataclass(frozen=True, slots=True)
class FoundScene:
    """What ordering keeps of one staged scene (not the scene: its id, time and row)."""

    scene_id: str
    when: datetime
    staged: int
    """Its index among the staged (kind ``found``) rows."""


def stage_search(
    conf: RadcorConf, driver: CatalogDriver, run_id: str, store: RunScenes
) -> list[FoundScene]:
    """Store the conf's scenes page by page as the catalog lists them (kind ``found``).

    Holds one page of scenes and, per scene, its id and time: memory stays flat whatever the
    search's size. Staging again (a retried search) starts over.

    Returns:
        The scenes to plan, each product once (its newest processing), oldest first.
    """
    store.clear(run_id, FOUND)
    found: list[FoundScene] = []
    for page in iter_scene_pages(conf, driver):
        first = len(found)
        store.put(run_id, FOUND, ((first + i, scene.to_dict()) for i, scene in enumerate(page)))
        found.extend(
            FoundScene(scene.scene_id, scene.datetime, first + i) for i, scene in enumerate(page)
        )
    kept = newest_of(found, lambda entry: entry.scene_id)
    log.info(
        "search.done catalog=%s scenes=%d older_processings=%d",
        conf.catalog,
        len(kept),
        len(found) - len(kept),
    )
    return sorted(kept, key=lambda entry: (entry.when, entry.scene_id))


def plan_run(
    conf: RadcorConf,
    *,
    run_id: str,
    driver_factory: DriverFactory,
    backend: CatalogBackend,
    scenes_per_run: int,
    max_runs: int,
    store: RunScenes | None = None,
) -> RunPlan:
    """Search the conf's catalog, store the preview and the scene plans; split large runs.

    The search streams into the run-scenes table (``stage_search``); previews and plans are
    then made and stored a page at a time, so no list of every scene is held.

    Args:
        conf: the validated conf.
        run_id: the run the plans are stored under.
        driver_factory: builds the catalog's driver (with its credentials).
        backend: the catalog backend (what is published already).
        scenes_per_run: the most scenes one run maps; more go to child runs.
        max_runs: the most child runs (Airflow's ``max_map_length``).
        store: the run-scenes table (default: the activities database).

    Returns:
        The run's plan.

    Raises:
        InvalidInputError, ProviderError: the catalog refused the search.
        TransientError: the catalog kept failing.
        TooManyScenesError: more scenes than ``max_runs`` child runs can hold.
    """
    scenes_store = store or RunScenes()
    with driver_factory(conf.catalog) as driver:
        order = call_with_retries(
            lambda: stage_search(conf, driver, run_id, scenes_store),
            what=f"{conf.catalog} search",
        )
    plan_count = 0 if conf.action == Action.PREVIEW else len(order)
    ranges = split_into_runs(plan_count, scenes_per_run, max_runs)
    stored_preview = _store_plans(conf, run_id, order, backend, scenes_store)
    run_plan = RunPlan(run_id=run_id, preview=stored_preview, scene_count=plan_count)
    if len(ranges) > 1:
        run_plan.child_ranges.extend(ranges)
    else:
        run_plan.scene_refs.extend(
            {"run_id": run_id, "idx": i, "scene_id": order[i].scene_id} for i in range(plan_count)
        )
    log.info(
        "search.planned scenes=%d action=%s child_runs=%d scenes_per_run=%d",
        plan_count,
        conf.action,
        len(run_plan.child_ranges),
        scenes_per_run,
    )
    return run_plan


def _store_plans(
    conf: RadcorConf,
    run_id: str,
    order: list[FoundScene],
    backend: CatalogBackend,
    store: RunScenes,
) -> dict[str, Any]:
    """Store the plans (kind ``plan``) and the preview of the staged scenes, page by page.

    Returns:
        The preview: inline when small, else a reference (``preview.write_preview_file``).
    """
    final = {entry.staged: idx for idx, entry in enumerate(order)}
    large = is_large(len(order))
    planned = conf.action != Action.PREVIEW
    inline: dict[int, dict[str, Any]] = {}
    plans: list[tuple[int, dict[str, Any]]] = []
    entries: list[tuple[int, dict[str, Any]]] = []
    store.clear(run_id, "plan")
    store.clear(run_id, "preview")
    for staged, body in enumerate(store.iterate(run_id, FOUND)):
        idx = final.get(staged)
        if idx is None:  # an older processing of a product found again
            continue
        scene = Scene.from_dict(body)
        entry = preview_entry(scene)
        if large:
            entries.append((idx, entry))
        else:
            inline[idx] = entry
        if planned:
            plans.append((idx, plan_scene(conf, scene, is_published=backend.exists).to_dict()))
        if len(plans) >= PAGE_SIZE or len(entries) >= PAGE_SIZE:
            store.put(run_id, "plan", plans)
            store.put(run_id, "preview", entries)
            plans, entries = [], []
    store.put(run_id, "plan", plans)
    store.put(run_id, "preview", entries)
    store.clear(run_id, FOUND)
    if large:
        return write_preview_file(run_id, store.iterate(run_id, "preview"), len(order))
    result: dict[str, Any] = {inline[i]["sceneid"]: inline[i] for i in sorted(inline)}
    result["Results"] = len(order)
    return result


__all__ = ["FoundScene", "RunPlan", "plan_run", "stage_search"]
