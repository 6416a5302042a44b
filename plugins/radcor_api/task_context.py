"""What a running radcor task takes from Airflow's context: who runs, and which scene.

``run_context`` turns the running task instance into ``include.radcor``'s opaque ids;
``label_scene`` names the task instance by its scene (the ``map_index_template``).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from airflow.sdk import get_current_context

from include.radcor.context import RunContext


def run_context(plan_ref: Mapping[str, Any] | None = None) -> RunContext:
    """Return the ids the activities are recorded under, and the running task instance.

    The activities of a scene belong to the radcor run that searched it: a scene reference
    ``{dag_id, run_id, idx}`` handed to a child run (``<dag_id>_scenes``) names that run.
    """
    ti = get_current_context()["ti"]
    ref = plan_ref if plan_ref is not None and "idx" in plan_ref else {}
    return RunContext(
        dag_id=str(ref.get("dag_id") or ti.dag_id),
        run_id=str(ref.get("run_id") or ti.run_id),
        task_instance=f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{ti.map_index}/try{ti.try_number}",
    )


def scene_id_of(plan: Mapping[str, Any]) -> str:
    """Return the scene id of a scene plan or of a scene reference ``{run_id, idx, scene_id}``."""
    return str(plan.get("scene_id") or plan.get("scene", {}).get("scene_id"))


def label_scene(scene_id: str, context: MutableMapping[str, Any] | None = None) -> None:
    """Name the running (mapped) task instance by its scene: ``map_index_template``."""
    target: MutableMapping[str, Any] = (
        context if context is not None else get_current_context()  # type: ignore[assignment]
    )
    target["scene_id"] = scene_id
