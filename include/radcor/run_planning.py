"""Plan a run: search, preview, one plan per scene, stored, split into child runs if large.

The ``search`` task wraps ``plan_run`` and hands its result to Airflow (XComs, mapped scene
references); everything it decides is here, free of Airflow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from include.catalog.base import CatalogBackend
from include.collectors.base import Scene
from include.radcor.conf import Action, RadcorConf
from include.radcor.context import DriverFactory
from include.radcor.plan import plan_scene
from include.radcor.preview import preview, store_preview
from include.radcor.run_scenes import RunScenes, split_into_runs
from include.radcor.search import search_scenes

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


def plan_scenes(
    conf: RadcorConf, scenes: list[Scene], backend: CatalogBackend
) -> list[dict[str, Any]]:
    """Return one JSON-ready scene plan per scene (empty for ``action: preview``)."""
    if conf.action == Action.PREVIEW:
        return []
    return [plan_scene(conf, scene, is_published=backend.exists).to_dict() for scene in scenes]


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
        scenes = search_scenes(conf, driver)
    stored_preview = store_preview(run_id, preview(scenes), scenes_store)
    plans = plan_scenes(conf, scenes, backend)
    ranges = split_into_runs(len(plans), scenes_per_run, max_runs)
    scenes_store.save(run_id, "plan", plans)
    run_plan = RunPlan(run_id=run_id, preview=stored_preview, scene_count=len(plans))
    if len(ranges) > 1:
        run_plan.child_ranges.extend(ranges)
    else:
        run_plan.scene_refs.extend(
            {"run_id": run_id, "idx": i, "scene_id": plan["scene"]["scene_id"]}
            for i, plan in enumerate(plans)
        )
    log.info(
        "search.planned scenes=%d action=%s child_runs=%d scenes_per_run=%d",
        len(plans),
        conf.action,
        len(run_plan.child_ranges),
        scenes_per_run,
    )
    return run_plan


__all__ = ["RunPlan", "plan_run", "plan_scenes"]
