"""The totals of a run (found, done, skipped, failed, bytes), counted from its activities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from include.radcor.activities import BAD_STATES, Activity, ActivityState, ActivityStore
from include.radcor.conf import TaskType
from include.radcor.plan import ScenePlan


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The totals of one run, logged and returned by the last task."""

    found: int
    done: int
    skipped: int
    failed: int
    bytes_downloaded: int
    duration_s: float
    failed_scenes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "found": self.found,
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "bytes": self.bytes_downloaded,
            "duration_s": round(self.duration_s, 1),
            "failed_scenes": list(self.failed_scenes),
        }


def summarize(
    plans: list[ScenePlan], run_id: str, store: ActivityStore, duration_s: float
) -> RunSummary:
    """Count scenes done, skipped and failed from the activities of the run.

    A scene failed when any node failed, or when some node has no finished activity (its task
    was killed or never ran); it is skipped when every node was skipped as already published.
    """
    done = skipped = 0
    failed: list[str] = []
    bytes_downloaded = 0
    by_scene: dict[str, dict[str, Activity]] = {}
    for activity in store.for_run(run_id):
        by_scene.setdefault(activity.key.scene_id, {})[activity.key.node_id] = activity
    for plan in plans:
        activities = by_scene.get(plan.scene.scene_id, {})
        states = [
            activities[n.node_id].status if n.node_id in activities else None for n in plan.nodes
        ]
        bytes_downloaded += sum(
            a.size_bytes or 0
            for a in activities.values()
            if a.key.task_type == TaskType.DOWNLOAD and a.status == ActivityState.SUCCESS
        )
        if any(s is None or s in BAD_STATES or s == ActivityState.RUNNING for s in states):
            failed.append(plan.scene.scene_id)
        elif all(s == ActivityState.SKIPPED for s in states):
            skipped += 1
        else:
            done += 1
    return RunSummary(
        found=len(plans),
        done=done,
        skipped=skipped,
        failed=len(failed),
        bytes_downloaded=bytes_downloaded,
        duration_s=duration_s,
        failed_scenes=tuple(failed),
    )
