"""The activities store: one row per (run, scene, plan node) with its state and facts.

It is the join between orchestrator task instances and EO scenes (DESIGN 1.3). The orchestrator's
ids (DAG, run, task instance) are opaque strings here; nothing in this module knows Airflow.
Every change also appends a row to the history table, so attempts can be audited.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Any

import sqlalchemy as sa

from include.collectors.base import Scene
from include.common.config import data_dir
from include.common.errors import TransientError

ACTIVITIES_DB_ENV = "COLLECTION_BUILDER_DB_URL"


class ActivityState(StrEnum):
    """The state of one activity (a plan node for one scene)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    REUSED = "reused"
    """Done by reusing a valid output already in place (a downloaded file, say)."""
    SKIPPED = "skipped"
    """Not run: its output is already published and ``force`` was not asked."""
    FAILED = "failed"
    INVALID = "invalid"
    """The input can never succeed as given; not retried."""
    UPSTREAM_FAILED = "upstream_failed"
    """Not run because its parent node did not succeed."""


DONE_STATES = frozenset({ActivityState.SUCCESS, ActivityState.REUSED})
FINISHED_STATES = DONE_STATES | {
    ActivityState.SKIPPED,
    ActivityState.FAILED,
    ActivityState.INVALID,
    ActivityState.UPSTREAM_FAILED,
}
BAD_STATES = frozenset({ActivityState.FAILED, ActivityState.INVALID, ActivityState.UPSTREAM_FAILED})

metadata = sa.MetaData()

activities_table = sa.Table(
    "radcor_activities",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dag_id", sa.String(250), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("scene_id", sa.String(250), nullable=False),
    sa.Column("node_id", sa.String(64), nullable=False),
    sa.Column("task_type", sa.String(32), nullable=False),
    sa.Column("collection", sa.String(128), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("catalog", sa.String(64)),
    sa.Column("provider", sa.String(64)),
    sa.Column("task_instance", sa.String(500)),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("checksum", sa.String(200)),
    sa.Column("outputs", sa.Text),
    sa.Column("message", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("run_id", "scene_id", "node_id", name="uq_radcor_activity"),
    sa.Index("ix_radcor_activities_scene", "scene_id", "task_type", "collection"),
)

history_table = sa.Table(
    "radcor_activity_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("activity_id", sa.Integer, nullable=False, index=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("task_instance", sa.String(500)),
    sa.Column("message", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

run_tags_table = sa.Table(
    "radcor_run_tags",
    metadata,
    sa.Column("dag_id", sa.String(250), primary_key=True),
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("tags", sa.Text, nullable=False),
)
"""The conf's ``tags`` of each run that has some (a JSON list); every activity of the run shows
them, as the upstream kept ``tags`` on each activity."""

scenes_table = sa.Table(
    "radcor_scenes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("scene_id", sa.String(250), nullable=False),
    sa.Column("catalog", sa.String(64)),
    sa.Column("tile", sa.String(32)),
    sa.Column("acquired_at", sa.DateTime(timezone=True)),
    sa.Column("cloud_pct", sa.Float),
    sa.Column("footprint", sa.Text),
    sa.UniqueConstraint("run_id", "scene_id", name="uq_radcor_scene"),
)
"""The scene facts of each run (date, tile, cloud, footprint), joined into activity listings."""


@dataclass(frozen=True, slots=True)
class ActivityKey:
    """Identifies one activity: a plan node of one scene in one run."""

    dag_id: str
    run_id: str
    scene_id: str
    node_id: str
    task_type: str
    collection: str


@dataclass(frozen=True, slots=True)
class SceneFacts:
    """What a run knew about an activity's scene: acquisition time, tile, cloud, footprint."""

    scene_id: str
    catalog: str | None = None
    tile: str | None = None
    acquired_at: datetime | None = None
    cloud_pct: float | None = None
    footprint: dict[str, Any] | None = None
    """GeoJSON geometry in WGS84."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "scene_id": self.scene_id,
            "catalog": self.catalog,
            "tile": self.tile,
            "date": self.acquired_at.isoformat() if self.acquired_at else None,
            "cloud": self.cloud_pct,
            "footprint": self.footprint,
        }


@dataclass(frozen=True, slots=True)
class Activity:
    """One activity row as read back."""

    id: int
    key: ActivityKey
    status: ActivityState
    catalog: str | None
    provider: str | None
    task_instance: str | None
    attempts: int
    size_bytes: int | None
    checksum: str | None
    outputs: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    scene: SceneFacts | None = None
    """The scene's facts, when read through ``ActivityStore.query``."""
    tags: tuple[str, ...] = ()
    """The run's tags (the conf's ``tags``), when read through ``ActivityStore.query``."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "id": self.id,
            "dag_id": self.key.dag_id,
            "run_id": self.key.run_id,
            "scene_id": self.key.scene_id,
            "node_id": self.key.node_id,
            "type": self.key.task_type,
            "collection": self.key.collection,
            "status": str(self.status),
            "catalog": self.catalog,
            "provider": self.provider,
            "task_instance": self.task_instance,
            "attempts": self.attempts,
            "size_bytes": self.size_bytes,
            "checksum": self.checksum,
            "outputs": self.outputs,
            "message": self.message,
            "error": self.error,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "scene": self.scene.to_dict() if self.scene else None,
            "tags": list(self.tags),
        }


@dataclass(frozen=True, slots=True)
class ActivityQuery:
    """Filters of an activity listing; empty fields do not filter. All given filters must match.

    ``start``/``end`` bound the scene's acquisition time (as a conf's ``start``/``end`` do);
    ``since``/``until`` bound when the activity last changed.
    """

    ids: tuple[int, ...] = ()
    statuses: tuple[str, ...] = ()
    scene_id: str | None = None
    collection: str | None = None
    task_type: str | None = None
    run_id: str | None = None
    dag_id: str | None = None
    dag_ids: frozenset[str] | None = None
    """Only these DAGs (the ones the caller may read); None means any."""
    start: datetime | None = None
    end: datetime | None = None
    since: datetime | None = None
    until: datetime | None = None

    def is_empty(self) -> bool:
        """Return whether no filter is set (``dag_ids`` does not count)."""
        return not (
            self.ids
            or self.statuses
            or any(
                value is not None
                for value in (
                    self.scene_id,
                    self.collection,
                    self.task_type,
                    self.run_id,
                    self.dag_id,
                    self.start,
                    self.end,
                    self.since,
                    self.until,
                )
            )
        )


@dataclass(frozen=True, slots=True)
class ActivityPage:
    """One page of a listing and the number of rows matching in all."""

    activities: list[Activity]
    total: int


@dataclass(frozen=True, slots=True)
class TaskInstanceRef:
    """The orchestrator task instance an activity was last recorded by."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int


def parse_task_instance(value: str) -> TaskInstanceRef:
    """Parse the ``dag/run/task/map_index/tryN`` string the task layer records.

    The DAG id and task id never contain ``/``; the run id may, so it is the middle part.

    Raises:
        ValueError: when ``value`` is not in that form.
    """
    dag_id, sep, rest = value.partition("/")
    parts = rest.rsplit("/", 3)
    if not sep or len(parts) != 4 or not parts[3].startswith("try"):
        raise ValueError(f"task instance {value!r} is not dag/run/task/map_index/tryN")
    run_id, task_id, map_index, try_text = parts
    if not (dag_id and run_id and task_id):
        raise ValueError(f"task instance {value!r} has an empty dag, run or task id")
    try:
        return TaskInstanceRef(
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            map_index=int(map_index),
            try_number=int(try_text[3:]),
        )
    except ValueError as err:
        raise ValueError(f"task instance {value!r}: map index or try is not a number") from err


def default_db_url() -> str:
    """Return ``$COLLECTION_BUILDER_DB_URL`` or a SQLite file under DATA_DIR."""
    url = os.environ.get(ACTIVITIES_DB_ENV)
    if url:
        return url
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'activities.sqlite'}"


class DatabaseUnavailableError(TransientError):
    """The activities database cannot be reached (down, restarting, wrong URL); retried later."""

    def __init__(self, where: str, detail: str) -> None:
        self.where = where
        super().__init__(
            f"database {where} unreachable ({detail}); check {ACTIVITIES_DB_ENV} and that "
            "PostgreSQL runs and accepts connections there (the task is retried)"
        )


def database_location(url: str) -> str:
    """Return ``host:port/database`` of a database URL (a SQLite file's path); never secrets."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


def _report_unreachable(engine: sa.Engine, url: str) -> None:
    """Turn failed connections (at connect or a dropped one) into ``DatabaseUnavailableError``.

    Pre-ping failures are left alone: the pool replaces a stale connection by itself.
    """

    @sa.event.listens_for(engine, "handle_error")
    def _unreachable(context: sa.engine.ExceptionContext) -> None:
        if context.is_pre_ping or not (context.is_disconnect or context.connection is None):
            return
        detail = " ".join(str(context.original_exception).split())[:200]
        raise DatabaseUnavailableError(database_location(url), detail) from (
            context.original_exception
        )


@cache
def _engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url, pool_pre_ping=True, future=True)
    _report_unreachable(engine, url)
    metadata.create_all(engine, checkfirst=True)
    return engine


def _now() -> datetime:
    return datetime.now(UTC)


class ActivityStore:
    """Reads and writes activities in a SQL database (PostgreSQL in production, SQLite embedded)."""

    def __init__(self, url: str | None = None) -> None:
        self.engine = _engine(url or default_db_url())

    def record(
        self,
        key: ActivityKey,
        status: ActivityState,
        *,
        catalog: str | None = None,
        provider: str | None = None,
        task_instance: str | None = None,
        size_bytes: int | None = None,
        checksum: str | None = None,
        outputs: Mapping[str, Any] | None = None,
        message: str | None = None,
        error: str | None = None,
    ) -> int:
        """Insert or update the activity of ``key`` and append the change to its history.

        Returns:
            The activity id.
        """
        now = _now()
        values: dict[str, Any] = {"status": str(status), "updated_at": now}
        for name, value in (
            ("catalog", catalog),
            ("provider", provider),
            ("task_instance", task_instance),
            ("size_bytes", size_bytes),
            ("checksum", checksum),
            ("message", message),
        ):
            if value is not None:
                values[name] = value
        if outputs is not None:
            values["outputs"] = json.dumps(dict(outputs), default=str)
        values["error"] = error
        if status == ActivityState.RUNNING:
            values["started_at"] = now
            values["finished_at"] = None
        elif status in FINISHED_STATES:
            values["finished_at"] = now
        table = activities_table
        where = sa.and_(
            table.c.run_id == key.run_id,
            table.c.scene_id == key.scene_id,
            table.c.node_id == key.node_id,
        )
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(table.c.id, table.c.attempts).where(where)).first()
            attempts_bump = 1 if status == ActivityState.RUNNING else 0
            if row is None:
                inserted = conn.execute(
                    table.insert().values(
                        dag_id=key.dag_id,
                        run_id=key.run_id,
                        scene_id=key.scene_id,
                        node_id=key.node_id,
                        task_type=key.task_type,
                        collection=key.collection,
                        attempts=attempts_bump,
                        **values,
                    )
                ).inserted_primary_key
                assert inserted is not None  # noqa: S101 - SQLAlchemy always returns it on insert
                activity_id = inserted[0]
            else:
                activity_id = row.id
                conn.execute(
                    table.update()
                    .where(table.c.id == activity_id)
                    .values(attempts=row.attempts + attempts_bump, **values)
                )
            _append_history(conn, activity_id, status, task_instance, message, error, now)
        return int(activity_id)

    def note(
        self, activity_id: int, status: ActivityState, *, task_instance: str, message: str
    ) -> None:
        """Append a history row to an activity without changing the activity itself.

        For a later try that looked at the activity and left it as it was (a cleared task that
        keeps its finished nodes): the audit trail names that try, while the activity keeps the
        attempt count and the task instance (the log link) of the try that did the work.
        """
        with self.engine.begin() as conn:
            _append_history(conn, activity_id, status, task_instance, message, None, _now())

    def for_run(self, run_id: str, scene_id: str | None = None) -> list[Activity]:
        """Return the activities of a run (optionally one scene), in node order."""
        query = sa.select(activities_table).where(activities_table.c.run_id == run_id)
        if scene_id is not None:
            query = query.where(activities_table.c.scene_id == scene_id)
        query = query.order_by(activities_table.c.scene_id, activities_table.c.node_id)
        with self.engine.connect() as conn:
            return [_to_activity(row) for row in conn.execute(query)]

    def search(
        self,
        *,
        filters: Mapping[str, Any] | None = None,
        ids: Sequence[int] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Activity]:
        """Return activities matching equality ``filters`` on column names, newest first."""
        query = sa.select(activities_table)
        for name, value in (filters or {}).items():
            if value is not None:
                query = query.where(activities_table.c[name] == value)
        if ids:
            query = query.where(activities_table.c.id.in_(list(ids)))
        query = query.order_by(activities_table.c.updated_at.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return [_to_activity(row) for row in conn.execute(query)]

    def history(self, activity_id: int) -> list[dict[str, Any]]:
        """Return the state changes of one activity, oldest first."""
        query = (
            sa.select(history_table)
            .where(history_table.c.activity_id == activity_id)
            .order_by(history_table.c.id)
        )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def describe_scene(self, run_id: str, scene: Scene) -> None:
        """Remember ``scene``'s facts for ``run_id`` (once; later calls change nothing)."""
        table = scenes_table
        where = sa.and_(table.c.run_id == run_id, table.c.scene_id == scene.scene_id)
        values = {
            "run_id": run_id,
            "scene_id": scene.scene_id,
            "catalog": scene.catalog,
            "tile": scene.tile,
            "acquired_at": scene.datetime,
            "cloud_pct": scene.cloud_pct,
            "footprint": json.dumps(scene.footprint) if scene.footprint else None,
        }
        with self.engine.connect() as conn:
            if conn.execute(sa.select(table.c.id).where(where)).first() is not None:
                return
        try:
            with self.engine.begin() as conn:
                conn.execute(table.insert().values(**values))
        except sa.exc.IntegrityError:  # another task of the same scene wrote it first
            return

    def tag_run(self, dag_id: str, run_id: str, tags: Sequence[str]) -> None:
        """Keep a run's tags (the conf's ``tags``); its activities are listed with them.

        Idempotent: a later call (a task tried again) replaces the run's tags. No tags, no row.
        """
        table = run_tags_table
        where = sa.and_(table.c.dag_id == dag_id, table.c.run_id == run_id)
        with self.engine.begin() as conn:
            conn.execute(table.delete().where(where))
            if tags:
                conn.execute(
                    table.insert().values(dag_id=dag_id, run_id=run_id, tags=json.dumps(list(tags)))
                )

    def query(self, query: ActivityQuery, *, limit: int = 100, offset: int = 0) -> ActivityPage:
        """Return the activities matching ``query``, newest change first, with scene facts.

        Args:
            query: the filters.
            limit: rows per page (at most this many are returned).
            offset: rows to skip.

        Returns:
            The page and the total number of matching rows.
        """
        table, scenes = activities_table, scenes_table
        same_scene = sa.and_(
            scenes.c.run_id == table.c.run_id, scenes.c.scene_id == table.c.scene_id
        )
        same_run = sa.and_(
            run_tags_table.c.dag_id == table.c.dag_id, run_tags_table.c.run_id == table.c.run_id
        )
        joined = table.outerjoin(scenes, same_scene).outerjoin(run_tags_table, same_run)
        conditions = _conditions(query)
        select = (
            sa.select(
                table,
                scenes.c.tile.label("scene_tile"),
                scenes.c.acquired_at.label("scene_acquired_at"),
                scenes.c.cloud_pct.label("scene_cloud_pct"),
                scenes.c.footprint.label("scene_footprint"),
                scenes.c.catalog.label("scene_catalog"),
                run_tags_table.c.tags.label("run_tags"),
            )
            .select_from(joined)
            .where(*conditions)
            .order_by(table.c.updated_at.desc(), table.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        count = sa.select(sa.func.count()).select_from(joined).where(*conditions)
        with self.engine.connect() as conn:
            total = int(conn.execute(count).scalar_one())
            rows = [_to_activity(row, with_scene=True) for row in conn.execute(select)]
        return ActivityPage(activities=rows, total=total)


def _conditions(query: ActivityQuery) -> list[sa.ColumnElement[bool]]:
    table, scenes = activities_table, scenes_table
    conditions: list[sa.ColumnElement[bool]] = []
    if query.ids:
        conditions.append(table.c.id.in_(list(query.ids)))
    if query.statuses:
        conditions.append(table.c.status.in_(list(query.statuses)))
    for column, value in (
        (table.c.scene_id, query.scene_id),
        (table.c.collection, query.collection),
        (table.c.task_type, query.task_type),
        (table.c.run_id, query.run_id),
        (table.c.dag_id, query.dag_id),
    ):
        if value is not None:
            conditions.append(column == value)
    if query.dag_ids is not None:
        conditions.append(table.c.dag_id.in_(sorted(query.dag_ids)))
    if query.start is not None:
        conditions.append(scenes.c.acquired_at >= query.start)
    if query.end is not None:
        conditions.append(scenes.c.acquired_at <= query.end)
    if query.since is not None:
        conditions.append(table.c.updated_at >= query.since)
    if query.until is not None:
        conditions.append(table.c.updated_at <= query.until)
    return conditions


def _scene_facts(data: sa.RowMapping) -> SceneFacts | None:
    if data["scene_acquired_at"] is None and data["scene_tile"] is None:
        return None
    acquired_at = data["scene_acquired_at"]
    if acquired_at is not None and acquired_at.tzinfo is None:  # SQLite drops the zone
        acquired_at = acquired_at.replace(tzinfo=UTC)
    return SceneFacts(
        scene_id=data["scene_id"],
        catalog=data["scene_catalog"],
        tile=data["scene_tile"],
        acquired_at=acquired_at,
        cloud_pct=data["scene_cloud_pct"],
        footprint=json.loads(data["scene_footprint"]) if data["scene_footprint"] else None,
    )


def _to_activity(row: sa.Row[Any], *, with_scene: bool = False) -> Activity:
    data = row._mapping
    return Activity(
        id=data["id"],
        key=ActivityKey(
            dag_id=data["dag_id"],
            run_id=data["run_id"],
            scene_id=data["scene_id"],
            node_id=data["node_id"],
            task_type=data["task_type"],
            collection=data["collection"],
        ),
        status=ActivityState(data["status"]),
        catalog=data["catalog"],
        provider=data["provider"],
        task_instance=data["task_instance"],
        attempts=data["attempts"],
        size_bytes=data["size_bytes"],
        checksum=data["checksum"],
        outputs=json.loads(data["outputs"]) if data["outputs"] else {},
        message=data["message"],
        error=data["error"],
        started_at=data["started_at"],
        finished_at=data["finished_at"],
        updated_at=data["updated_at"],
        scene=_scene_facts(data) if with_scene else None,
        tags=tuple(json.loads(data["run_tags"])) if with_scene and data["run_tags"] else (),
    )


def _append_history(
    conn: sa.Connection,
    activity_id: int,
    status: ActivityState,
    task_instance: str | None,
    message: str | None,
    error: str | None,
    at: datetime,
) -> None:
    """Insert one row of an activity's history (its audit trail of attempts and notes)."""
    conn.execute(
        history_table.insert().values(
            activity_id=activity_id,
            status=str(status),
            task_instance=task_instance,
            message=message,
            error=error,
            at=at,
        )
    )
