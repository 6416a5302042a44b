"""The upstream collection builder's request and answer vocabulary, mapped onto ours.

Upstream clients (``bdc-collection-builder``'s guide, its restart and activities calls) keep
their names here: restart's ``id``/``ids``/``sceneid``/``collection_id``/``activity_type`` and
Celery status names; activities as the upstream dumped them (``collection_id``,
``activity_type``, ``sceneid``, ``last_execution``). The mapping lives in one place so the
API routes only translate, never decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from include.common.errors import FieldProblem, InvalidInputError
from include.radcor.activities import Activity, ActivityState

UPSTREAM_DEFAULT_ACTION = "preview"
"""The upstream's ``/api/radcor`` (and its restart) only search when ``action`` is absent."""

CELERY_STATES: dict[str, tuple[str, ...]] = {
    "FAILURE": ("failed", "invalid"),
    "SUCCESS": ("success", "reused", "skipped"),
    "PENDING": ("pending", "queued", "scheduled"),
    "STARTED": ("running",),
    "RETRY": ("up_for_retry", "up_for_reschedule"),
}
"""Celery task states (the upstream's ``status``) -> activity or Airflow task instance states."""

_CELERY_OF: dict[str, str] = {
    ActivityState.PENDING: "PENDING",
    ActivityState.RUNNING: "STARTED",
    ActivityState.SUCCESS: "SUCCESS",
    ActivityState.REUSED: "SUCCESS",
    ActivityState.SKIPPED: "SUCCESS",
    ActivityState.FAILED: "FAILURE",
    ActivityState.INVALID: "FAILURE",
    ActivityState.UPSTREAM_FAILED: "FAILURE",
}

_RESTART_FIELDS = ("id", "ids", "status", "sceneid", "collection_id", "activity_type", "action")
_IGNORED_RESTART_FIELDS = ("use_aws",)
"""Upstream restart parameters with no meaning here (its AWS download switch)."""


def celery_status(state: ActivityState | str) -> str:
    """Return the Celery name the upstream would show for an activity state."""
    return _CELERY_OF.get(str(state), str(state).upper())


def _listed(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def statuses_from_upstream(value: Any) -> list[str]:
    """Return our state names for upstream ``status`` values (Celery names or ours).

    Raises:
        InvalidInputError: for a name that is neither.
    """
    out: list[str] = []
    for name in _listed(value):
        if name.upper() in CELERY_STATES:
            out.extend(CELERY_STATES[name.upper()])
        else:
            out.append(name.lower())
    return list(dict.fromkeys(out))


def restart_filters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Translate an upstream restart request into this API's restart filters.

    ``id``/``ids`` (a comma string, a number or a list), ``status`` (Celery names such as
    ``FAILURE``, or ours), ``sceneid`` (needs ``collection_id`` and ``activity_type``, as
    upstream), ``collection_id`` (``Name-Version``), ``activity_type`` and ``action`` (absent:
    preview, the upstream default). Scene ids come back as ``scene_ids`` (a list): the caller
    restarts scene by scene, as this API's filters take one scene id.

    Raises:
        InvalidInputError: naming each field that is wrong and its fix.
    """
    problems: list[FieldProblem] = []
    args = {k: v for k, v in raw.items() if v is not None and k not in _IGNORED_RESTART_FIELDS}
    for key in [k for k in args if k not in _RESTART_FIELDS]:
        problems.append(
            FieldProblem(
                key,
                "is not an upstream restart parameter",
                f"use some of: {', '.join(_RESTART_FIELDS)} (or /radcor-api/radcor/restart "
                "for this project's filters)",
            )
        )
    out: dict[str, Any] = {}
    ids = [*_listed(args.get("id", "")), *_listed(args.get("ids", ""))]
    if ids:
        out["ids"] = ids
    if "status" in args:
        out["status"] = statuses_from_upstream(args["status"])
    if "collection_id" in args:
        out["collection"] = str(args["collection_id"])
    if "activity_type" in args:
        out["type"] = str(args["activity_type"])
    if "sceneid" in args:
        if "collection_id" not in args or "activity_type" not in args:
            problems.append(
                FieldProblem(
                    "sceneid",
                    "needs collection_id and activity_type (as upstream)",
                    "add collection_id (e.g. 'S2_L1C-1') and activity_type (e.g. 'download')",
                )
            )
        out["scene_ids"] = _listed(args["sceneid"])
    if not ids and not {"status", "activity_type", "sceneid", "collection_id"} & set(args):
        problems.append(
            FieldProblem(
                "filters",
                'Invalid restart. Requires "ids", "activity_type" or "status"',
                "give ids (e.g. ids=1,2), status (e.g. FAILURE) or activity_type",
            )
        )
    action = str(args.get("action") or UPSTREAM_DEFAULT_ACTION).lower()
    if action not in ("preview", "start"):
        problems.append(
            FieldProblem("action", f"{action!r} is not an action", "use preview or start")
        )
    out["action"] = action
    if problems:
        raise InvalidInputError(problems)
    return out


def restart_action_label(raw: Mapping[str, Any]) -> str:
    """Return ``action`` as the upstream echoed it: ``PREVIEW`` when absent, else as given."""
    given = raw.get("action")
    return "PREVIEW" if given in (None, "") else str(given)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def upstream_activity(activity: Activity) -> dict[str, Any]:
    """Return an activity as the upstream dumped it, then this project's own fields."""
    key = activity.key
    return {
        "id": activity.id,
        "collection_id": key.collection,
        "activity_type": key.task_type,
        "sceneid": key.scene_id,
        "scene_type": "SCENE",
        "tags": list(activity.tags),
        "args": {"catalog": activity.catalog},
        "created": _iso(activity.started_at),
        "updated": _iso(activity.updated_at),
        "status": celery_status(activity.status),
        "last_execution": {
            "status": celery_status(activity.status),
            "task_id": activity.task_instance,
            # a node skipped or kept without running starts and ends when that was decided
            "start": _iso(activity.started_at or activity.finished_at),
            "end": _iso(activity.finished_at) or "",
            "traceback": activity.error,
        },
        "state": str(activity.status),
        "dag_id": key.dag_id,
        "run_id": key.run_id,
        "provider": activity.provider,
    }


__all__ = [
    "CELERY_STATES",
    "UPSTREAM_DEFAULT_ACTION",
    "celery_status",
    "restart_action_label",
    "restart_filters",
    "statuses_from_upstream",
    "upstream_activity",
]
