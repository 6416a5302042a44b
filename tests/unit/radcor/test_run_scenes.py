from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from include.radcor.run_scenes import RunScenes, split_into_runs


@pytest.mark.parametrize(
    ("count", "expected_sizes"),
    [(0, []), (1, [1]), (9, [9]), (10, [10]), (11, [10, 1]), (29, [10, 10, 9]), (30, [10, 10, 10])],
)
def test_split_into_runs_under_at_and_over_the_limit_covers_each_scene_once(
    count: int, expected_sizes: list[int]
) -> None:
    ranges = split_into_runs(count, scenes_per_run=10, max_runs=3)
    assert [len(r) for r in ranges] == expected_sizes
    assert [i for r in ranges for i in r] == list(range(count))


def test_split_into_runs_beyond_capacity_names_the_settings() -> None:
    with pytest.raises(ValueError, match=r"30 one run can hold .*scenes_per_run.*max_map_length"):
        split_into_runs(31, scenes_per_run=10, max_runs=3)


def test_run_scenes_save_twice_replaces_and_pages_in_order(tmp_path) -> None:
    store = RunScenes(f"sqlite:///{tmp_path / 's.sqlite'}")
    bodies = [{"scene": {"scene_id": f"S{i:05d}"}, "i": i} for i in range(2500)]
    store.save("run-1", "plan", bodies[:10])
    assert store.save("run-1", "plan", bodies) == 2500
    assert store.count("run-1", "plan") == 2500
    assert store.load("run-1", "plan", 1234)["i"] == 1234
    assert [b["i"] for b in store.iterate("run-1", "plan")] == list(range(2500))
    assert store.count("run-2", "plan") == 0
    with pytest.raises(KeyError, match="rerun its search"):
        store.load("run-2", "plan", 0)
    assert [b["i"] for b in store.iterate("run-1", "plan", start=998, stop=1003)] == list(
        range(998, 1003)
    )
    assert store.scene_ids("run-1", "plan", range(1999, 2001)) == ["S01999", "S02000"]
    with pytest.raises(KeyError, match="has 1 of the 2 plans 2499..2500"):
        store.scene_ids("run-1", "plan", range(2499, 2501))


def test_a_run_stores_its_plans_beside_a_large_preview(tmp_path) -> None:
    store = RunScenes(f"sqlite:///{tmp_path / 's.sqlite'}")
    previews = [{"scene_id": f"S{i:05d}", "kind": "preview"} for i in range(1500)]
    plans = [{"scene": {"scene_id": f"S{i:05d}"}, "kind": "plan"} for i in range(1500)]
    store.save("run-1", "preview", previews)
    store.save("run-1", "plan", plans)  # same run, same indexes, other kind
    assert store.load("run-1", "preview", 7) == previews[7]
    assert store.load("run-1", "plan", 7) == plans[7]
    assert store.count("run-1", "preview") == store.count("run-1", "plan") == 1500


def _old_keyed_table(engine: sa.Engine) -> None:
    """The table as made before ``kind`` was part of its primary key, with one stored row."""
    old = sa.Table(
        "radcor_run_scenes",
        sa.MetaData(),
        sa.Column("run_id", sa.String(250), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("scene_id", sa.String(250), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    with engine.begin() as conn:
        old.create(conn)
        conn.execute(
            old.insert(),
            [
                {
                    "run_id": "old-run",
                    "idx": 0,
                    "scene_id": "S1",
                    "kind": "plan",
                    "body": json.dumps({"scene_id": "S1"}),
                }
            ],
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.sqlite'}"
        return
    url = os.environ.get("COLLECTION_BUILDER_DB_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("COLLECTION_BUILDER_DB_URL is not PostgreSQL (make test sets it)")
    name = f"cb_run_scenes_{uuid.uuid4().hex[:12]}"
    server = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def test_a_table_keyed_the_old_way_is_rekeyed_and_keeps_its_rows(fresh_db_url: str) -> None:
    engine = sa.create_engine(fresh_db_url)
    _old_keyed_table(engine)
    store = RunScenes(fresh_db_url)
    key = sa.inspect(store.engine).get_pk_constraint("radcor_run_scenes")
    assert key["constrained_columns"] == ["run_id", "kind", "idx"]
    assert store.load("old-run", "plan", 0) == {"scene_id": "S1"}
    store.save("old-run", "preview", [{"scene_id": "S1"}])  # the old key refused this
    assert store.count("old-run", "preview") == 1
    store.engine.dispose()
    engine.dispose()
