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

from include.common.config import data_dir

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
        }


def default_db_url() -> str:
    """Return ``$COLLECTION_BUILDER_DB_URL`` or a SQLite file under DATA_DIR."""
    url = os.environ.get(ACTIVITIES_DB_ENV)
    if url:
        return url
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'activities.sqlite'}"


@cache
def _engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url, pool_pre_ping=True, future=True)
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
            conn.execute(
                history_table.insert().values(
                    activity_id=activity_id,
                    status=str(status),
                    task_instance=task_instance,
                    message=message,
                    error=error,
                    at=now,
                )
            )
        return int(activity_id)

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


def _to_activity(row: sa.Row[Any]) -> Activity:
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
    )
