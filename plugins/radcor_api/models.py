"""Request and response models of the radcor API (pydantic, STYLE 2.4), shown in its OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from include.radcor.activities import ActivityState

TI_ONLY_STATES: tuple[str, ...] = (
    "up_for_retry",
    "up_for_reschedule",
    "queued",
    "scheduled",
    "deferred",
    "restarting",
    "removed",
)
"""Airflow task instance states that activities do not have; a ``status`` filter with one of
them matches the activity's current task instance state instead."""
STATUS_VALUES: tuple[str, ...] = (*(str(s) for s in ActivityState), *TI_ONLY_STATES)


class FieldError(BaseModel):
    """One problem: where, what is wrong, how to fix it."""

    field: str
    message: str
    fix: str


class ErrorResponse(BaseModel):
    """HTTP 400: every problem of the request, each with its field and fix."""

    errors: list[FieldError]


class DetailResponse(BaseModel):
    """HTTP 401/403/404/409/502/504: what went wrong and what to do."""

    detail: Any


class RunStarted(BaseModel):
    """A DAG run created by the API (HTTP 202): the scheduler picks it up."""

    dag_id: str
    run_id: str
    state: str
    ui_url: str = Field(description="The run in the Airflow UI")
    api_url: str = Field(description="The run in Airflow's REST API")
    paused: bool = Field(description="The DAG is paused: the run waits until it is unpaused")
    scenes: int | None = Field(default=None, description="Scenes of a gap run")


class ActivityLinks(BaseModel):
    """Where to look next."""

    log: str | None = Field(default=None, description="The task log (Airflow REST API)")
    ui: str | None = Field(default=None, description="The task instance in the Airflow UI")
    item: str | None = Field(default=None, description="The published STAC item")
    quicklook: str | None = None
    thumbnail: str | None = None


class SceneOut(BaseModel):
    """What the run knew about the activity's scene."""

    scene_id: str
    catalog: str | None = None
    tile: str | None = None
    date: str | None = None
    cloud: float | None = None
    footprint: dict[str, Any] | None = Field(default=None, description="GeoJSON, WGS84")


class ActivityOut(BaseModel):
    """One activity: a plan node (task type + collection) of one scene in one run."""

    id: int
    dag_id: str
    run_id: str
    scene_id: str
    node_id: str
    type: str
    collection: str
    status: str
    catalog: str | None = None
    provider: str | None = None
    task_instance: str | None = Field(
        default=None, description="dag/run/task/map_index/tryN of the last attempt"
    )
    ti_state: str | None = Field(
        default=None, description="The Airflow state of that task instance now"
    )
    attempts: int
    size_bytes: int | None = None
    checksum: str | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    scene: SceneOut | None = None
    tags: list[str] = Field(default_factory=list, description="The run's conf tags")
    links: ActivityLinks = Field(default_factory=ActivityLinks)


class ActivityDetail(ActivityOut):
    """One activity with its history of state changes."""

    history: list[dict[str, Any]] = Field(default_factory=list)


class ActivityList(BaseModel):
    """One page of activities, newest change first."""

    activities: list[ActivityOut]
    total: int = Field(description="Activities matching the filters in all")
    limit: int
    offset: int
    next: str | None = Field(default=None, description="The next page, when there is one")


def _split(value: Any) -> Any:
    """Accept ``"a,b"`` as well as ``["a", "b"]`` (query strings use the first form)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            out.extend(_split(item) if isinstance(item, str) else [item])
        return out
    return value


class RestartRequest(BaseModel):
    """Which activities to restart (all given filters must match) and whether to do it."""

    model_config = ConfigDict(extra="forbid")

    ids: list[int] | None = Field(default=None, description="Activity ids (comma-separated)")
    status: list[str] | None = Field(
        default=None,
        description="Activity states, or Airflow task instance states such as up_for_retry "
        "(comma-separated)",
    )
    scene_id: str | None = None
    collection: str | None = None
    type: str | None = Field(default=None, description="Task type: download, correction, ...")
    run_id: str | None = None
    dag_id: str | None = None
    start: datetime | None = Field(default=None, description="Scenes acquired at or after")
    end: datetime | None = Field(default=None, description="Scenes acquired at or before")
    since: datetime | None = Field(default=None, description="Activities changed at or after")
    until: datetime | None = Field(default=None, description="Activities changed at or before")
    action: Literal["preview", "start"] = Field(
        default="start", description="preview lists the matches; start (default) clears them"
    )
    limit: int = Field(default=1000, ge=1, le=10000, description="Most activities to act on")

    _split_lists = field_validator("ids", "status", mode="before")(_split)

    @field_validator("status")
    @classmethod
    def _known_states(cls, value: list[str] | None) -> list[str] | None:
        for state in value or []:
            if state not in STATUS_VALUES:
                raise ValueError(f"{state!r} is not a state")
        return value


class TaskInstanceOut(BaseModel):
    """One task instance selected or cleared by a restart."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    state: str | None = Field(description="The state before the restart")
    ui_url: str


class NotRestartable(BaseModel):
    """A matching activity that cannot be restarted, and why."""

    id: int
    reason: str


class RestartResponse(BaseModel):
    """The restart's matches (preview) or what was cleared (start, HTTP 202)."""

    action: Literal["preview", "start"]
    matched: int
    activities: list[ActivityOut]
    task_instances: list[TaskInstanceOut] = Field(
        description="The task instances of the matched activities"
    )
    cleared: list[TaskInstanceOut] = Field(
        default_factory=list,
        description="start: those task instances plus their downstream in the scene's chain",
    )
    not_restartable: list[NotRestartable] = Field(default_factory=list)


class GapCellOut(BaseModel):
    """One tile and month of the gap check."""

    tile: str
    month: str = Field(description="YYYY-MM")
    scenes: int = Field(description="Scenes the catalog has")
    published: dict[str, int] = Field(description="Collection -> scenes published there")
    missing: list[str] = Field(description="Scene ids not published in every collection")


class GapResponse(BaseModel):
    """The gap check: per tile and month, the catalog's scenes against what is published."""

    action: Literal["preview", "start"]
    collections: list[str]
    scenes: int
    missing: int
    cells: list[GapCellOut]
    runs: list[RunStarted] = Field(default_factory=list, description="start: the runs created")
