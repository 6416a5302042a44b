"""The scenes of a run, stored in the database so XComs carry small references, not plans.

A search can match 10,000+ scenes; their plans (footprints, assets) would make a multi-megabyte
XCom. ``search`` saves them here once; each mapped task loads its own plan by (run, index);
``report`` reads them all back in pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa

from include.radcor.activities import default_db_url

metadata = sa.MetaData()

run_scenes_table = sa.Table(
    "radcor_run_scenes",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("scene_id", sa.String(250), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)
"""One row per scene of a run and kind: ``plan`` (what the mapped tasks load) or ``preview``
(a preview of more than 1,000 scenes); a start run of that size stores both."""

PAGE_SIZE = 1000


@cache
def _engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url, pool_pre_ping=True)
    metadata.create_all(engine, checkfirst=True)
    _key_by_kind(engine)
    return engine


def _key_by_kind(engine: sa.Engine) -> None:
    """Give a table made before ``kind`` was part of its primary key the key (run_id, kind, idx).

    With the old key (run_id, idx) a start run of more than 1,000 scenes could not store its
    plans beside its stored preview. PostgreSQL alters the key under a table lock (the first
    task process to get there does it); SQLite, which cannot alter a key, copies the table.
    """
    table = run_scenes_table.name
    if "kind" in sa.inspect(engine).get_pk_constraint(table)["constrained_columns"]:
        return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
            key = sa.inspect(conn).get_pk_constraint(table)
            if "kind" not in key["constrained_columns"]:
                conn.execute(
                    sa.text(
                        f'ALTER TABLE {table} DROP CONSTRAINT "{key["name"]}", '
                        "ADD PRIMARY KEY (run_id, kind, idx)"
                    )
                )
            return
        conn.execute(sa.text(f"ALTER TABLE {table} RENAME TO {table}_old"))
        run_scenes_table.create(conn)
        old = sa.Table(f"{table}_old", sa.MetaData(), autoload_with=conn)
        columns = [column.name for column in run_scenes_table.columns]
        copied = sa.select(*(old.c[name] for name in columns))
        conn.execute(run_scenes_table.insert().from_select(columns, copied))
        old.drop(conn)


class RunScenes:
    """Saves and loads the JSON bodies (scene plans or preview entries) of one run's scenes."""

    def __init__(self, url: str | None = None) -> None:
        self.engine = _engine(url or default_db_url())

    def save(self, run_id: str, kind: str, bodies: Sequence[dict[str, Any]]) -> int:
        """Replace the run's stored bodies of ``kind`` with ``bodies``; return how many.

        Bodies carry ``scene_id`` at the top level or under ``scene``. Saving again (a retried
        search) replaces, never duplicates.
        """
        with self.engine.begin() as conn:
            self._delete(conn, run_id, kind)
            self._insert(conn, run_id, kind, enumerate(bodies))
        return len(bodies)

    def clear(self, run_id: str, kind: str) -> None:
        """Remove the run's stored bodies of ``kind``."""
        with self.engine.begin() as conn:
            self._delete(conn, run_id, kind)

    def put(self, run_id: str, kind: str, rows: Iterable[tuple[int, dict[str, Any]]]) -> None:
        """Store ``(idx, body)`` rows of ``kind`` beside those stored (a page of a stream).

        Raises:
            sqlalchemy.exc.IntegrityError: an index is stored already (``clear`` first).
        """
        with self.engine.begin() as conn:
            self._insert(conn, run_id, kind, rows)

    @staticmethod
    def _delete(conn: sa.Connection, run_id: str, kind: str) -> None:
        table = run_scenes_table
        conn.execute(table.delete().where(table.c.run_id == run_id, table.c.kind == kind))

    @staticmethod
    def _insert(
        conn: sa.Connection, run_id: str, kind: str, rows: Iterable[tuple[int, dict[str, Any]]]
    ) -> None:
        page: list[dict[str, Any]] = []
        for idx, body in rows:
            page.append(
                {
                    "run_id": run_id,
                    "idx": idx,
                    "scene_id": _scene_id(body),
                    "kind": kind,
                    "body": json.dumps(body, default=str),
                }
            )
            if len(page) >= PAGE_SIZE:
                conn.execute(run_scenes_table.insert(), page)
                page = []
        if page:
            conn.execute(run_scenes_table.insert(), page)

    def load(self, run_id: str, kind: str, idx: int) -> dict[str, Any]:
        """Return one stored body.

        Raises:
            KeyError: when the run has no body at ``idx`` (the search did not store it).
        """
        table = run_scenes_table
        query = sa.select(table.c.body).where(
            table.c.run_id == run_id, table.c.kind == kind, table.c.idx == idx
        )
        with self.engine.connect() as conn:
            body = conn.execute(query).scalar_one_or_none()
        if body is None:
            raise KeyError(f"run {run_id!r} has no {kind} #{idx}; rerun its search task")
        result: dict[str, Any] = json.loads(body)
        return result

    def iterate(
        self, run_id: str, kind: str, *, start: int = 0, stop: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield the run's stored bodies of ``kind`` in index order, a page at a time.

        ``start`` and ``stop`` (excluded) select a range of indices.
        """
        table = run_scenes_table
        last = start - 1
        bounds = [table.c.idx < stop] if stop is not None else []
        while True:
            query = (
                sa.select(table.c.idx, table.c.body)
                .where(table.c.run_id == run_id, table.c.kind == kind, table.c.idx > last, *bounds)
                .order_by(table.c.idx)
                .limit(PAGE_SIZE)
            )
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            if not rows:
                return
            for row in rows:
                yield json.loads(row.body)
            last = rows[-1].idx

    def scene_ids(self, run_id: str, kind: str, indices: range) -> list[str]:
        """Return the scene ids stored at ``indices`` (a range), in index order.

        Raises:
            KeyError: when some index has no stored body.
        """
        table = run_scenes_table
        query = (
            sa.select(table.c.idx, table.c.scene_id)
            .where(
                table.c.run_id == run_id,
                table.c.kind == kind,
                table.c.idx >= indices.start,
                table.c.idx < indices.stop,
            )
            .order_by(table.c.idx)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        if [row.idx for row in rows] != list(indices):
            raise KeyError(
                f"run {run_id!r} has {len(rows)} of the {len(indices)} {kind}s "
                f"{indices.start}..{indices.stop - 1}; rerun its search task"
            )
        return [str(row.scene_id) for row in rows]

    def count(self, run_id: str, kind: str) -> int:
        """Return how many bodies of ``kind`` the run has stored."""
        table = run_scenes_table
        query = sa.select(sa.func.count()).where(table.c.run_id == run_id, table.c.kind == kind)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def resolve_plan(plan_or_ref: dict[str, Any], store: RunScenes | None = None) -> dict[str, Any]:
    """Return a scene plan dict: itself, or the stored plan a reference ``{run_id, idx}`` names.

    Raises:
        KeyError: when the reference names no stored plan.
    """
    if "scene" in plan_or_ref:
        return plan_or_ref
    return (store or RunScenes()).load(str(plan_or_ref["run_id"]), "plan", int(plan_or_ref["idx"]))


def _scene_id(body: dict[str, Any]) -> str:
    if "scene" in body and isinstance(body["scene"], dict):
        return str(body["scene"]["scene_id"])
    return str(body.get("scene_id") or body.get("sceneid") or "")


class TooManyScenesError(ValueError):
    """More scenes than one run and its child runs can hold; the message names the settings."""


def split_into_runs(count: int, scenes_per_run: int, max_runs: int) -> list[range]:
    """Split scene indices ``0..count-1`` into consecutive ranges of at most ``scenes_per_run``.

    A run with more scenes than ``scenes_per_run`` hands each range to a child DAG run
    (docs/scale.md); the parent maps one task per child run, so there can be at most
    ``max_runs`` of them (Airflow's ``max_map_length``).

    Raises:
        TooManyScenesError: when ``count`` needs more than ``max_runs`` ranges, naming the
            settings.
    """
    if scenes_per_run < 1 or max_runs < 1:
        raise ValueError("scenes_per_run and max_runs must be at least 1")
    capacity = scenes_per_run * max_runs
    if count > capacity:
        raise TooManyScenesError(
            f"{count} scenes exceed the {capacity} one run can hold ({max_runs} child runs x "
            f"{scenes_per_run} scenes); narrow the area or dates, or raise [collection_builder] "
            "scenes_per_run or [core] max_map_length"
        )
    starts = range(0, count, scenes_per_run)
    return [range(start, min(start + scenes_per_run, count)) for start in starts]
