"""Published collections' assets made before a run publishes, on Airflow's PostgreSQL metadata DB.

Two publish tasks ending together, the first time a collection gets events through the publish
alias, both insert the alias-to-asset link; Airflow's execution API then fails one of the task
instances (plugins/radcor_api/published_assets.py). These tests replay that with Airflow's own
``AssetManager.register_asset_change`` in two transactions, then check the listener's fix.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker


@pytest.fixture
def new_session() -> Iterator[Callable[[], Session]]:
    """Open independent sessions on the metadata DB (not Airflow's thread-local one)."""
    from airflow import settings

    made: list[Session] = []

    def make() -> Session:
        session = sessionmaker(bind=settings.engine, expire_on_commit=False)()
        made.append(session)
        return session

    yield make
    for session in made:
        session.rollback()
        session.close()


def _collection() -> str:
    return f"T{uuid.uuid4().hex[:10]}-1"


def _asset_with_aliases(session: Session, collection: str) -> Any:
    from airflow.models.asset import AssetModel
    from radcor_api.names import published_asset

    uri = published_asset(collection).uri
    return session.scalar(select(AssetModel).where(AssetModel.uri == uri))


def _register(session: Session, collection: str) -> None:
    """Add one event through the publish alias, as the execution API does for a publish task."""
    from airflow.assets.manager import AssetManager
    from airflow.serialization.definitions.assets import SerializedAsset
    from radcor_api.names import PUBLISHED_ALIAS, published_asset

    key = published_asset(collection)
    asset = SerializedAsset(name=key.name, uri=key.uri, group="asset", extra={}, watchers=[])
    event = AssetManager.register_asset_change(
        asset=asset, source_alias_names=[PUBLISHED_ALIAS], extra={"scene_id": "x"}, session=session
    )
    assert event is not None
    session.flush()


def _race(new_session: Callable[[], Session], collection: str) -> BaseException | None:
    """A's event flushed, not committed; B's event starts; A commits. Return B's error."""
    first = new_session()
    _register(first, collection)
    errors: list[BaseException] = []
    pids: list[int] = []

    def second() -> None:
        session = new_session()
        pids.append(session.scalar(text("select pg_backend_pid()")))
        try:
            _register(session, collection)
            session.commit()
        except BaseException as err:  # noqa: BLE001 - handed to the test thread
            session.rollback()
            errors.append(err)

    thread = threading.Thread(target=second)
    thread.start()
    watcher = new_session()
    deadline = time.monotonic() + 10
    while thread.is_alive() and time.monotonic() < deadline:  # until B waits on A's row lock
        waiting = pids and watcher.scalar(
            text("select count(*) from pg_locks where not granted and pid = :pid"),
            {"pid": pids[0]},
        )
        watcher.rollback()
        if waiting:
            break
        time.sleep(0.05)
    first.commit()
    thread.join(timeout=30)
    assert not thread.is_alive()
    return errors[0] if errors else None


def _make_asset_without_alias_link(session: Session, collection: str) -> None:
    from airflow.models.asset import AssetAliasModel, AssetModel
    from radcor_api.names import PUBLISHED_ALIAS, published_asset

    key = published_asset(collection)
    session.add(AssetModel(name=key.name, uri=key.uri, group="asset", extra={}))
    alias = select(AssetAliasModel).where(AssetAliasModel.name == PUBLISHED_ALIAS)
    if session.scalar(alias) is None:
        session.add(AssetAliasModel(name=PUBLISHED_ALIAS))
    session.commit()


def test_prime_makes_the_asset_and_its_alias_link_once(
    new_session: Callable[[], Session],
) -> None:
    from radcor_api.names import PUBLISHED_ALIAS
    from radcor_api.published_assets import prime

    collection = _collection()
    session = new_session()
    assert prime([collection, collection], session) == [collection]
    session.commit()
    assert prime([collection], session) == []  # already there: nothing made
    session.commit()
    asset = _asset_with_aliases(new_session(), collection)
    assert asset is not None and asset.group == "asset" and asset.extra == {}
    assert [alias.name for alias in asset.aliases] == [PUBLISHED_ALIAS]


def test_prime_links_an_existing_asset_to_the_alias(new_session: Callable[[], Session]) -> None:
    from radcor_api.names import PUBLISHED_ALIAS
    from radcor_api.published_assets import prime

    collection = _collection()
    _make_asset_without_alias_link(new_session(), collection)
    session = new_session()
    assert prime([collection], session) == [collection]
    session.commit()
    asset = _asset_with_aliases(new_session(), collection)
    assert [alias.name for alias in asset.aliases] == [PUBLISHED_ALIAS]


def test_first_events_at_once_clash_in_airflow_unless_primed(
    new_session: Callable[[], Session],
) -> None:
    from radcor_api.published_assets import prime

    unprimed = _collection()
    _make_asset_without_alias_link(new_session(), unprimed)
    error = _race(new_session, unprimed)
    # Airflow's behaviour this fix exists for; if an upgrade fixes it, this says so
    assert isinstance(error, IntegrityError), error
    assert "asset_alias_asset" in str(error)

    primed = _collection()
    session = new_session()
    prime([primed], session)
    session.commit()
    assert _race(new_session, primed) is None


@pytest.fixture
def test_collection(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A collection configured only for this test: the repository's config plus one entry."""
    import shutil

    from include.common.config import config_dir

    name = _collection()
    folder = tmp_path / "config"
    shutil.copytree(config_dir(), folder)
    with (folder / "collections.yaml").open("a") as out:
        out.write(
            f"\n  {name}:\n    title: a test collection\n    platform_family: sentinel-2\n"
            "    level: L1C\n    tile_system: mgrs\n    license: proprietary\n"
            "    bands: *s2_l1c_bands\n"
        )
    monkeypatch.setenv("COLLECTION_BUILDER_CONFIG_DIR", str(folder))
    return name


def _started_run(dag: Any, conf: dict[str, Any]) -> Any:
    from airflow.models.dagrun import DagRun
    from airflow.serialization.serialized_objects import DagSerialization

    run = DagRun(dag_id=dag.dag_id, run_id=f"manual__{uuid.uuid4().hex}", conf=conf)
    run.dag = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    return run


def test_run_start_listener_primes_the_collections_the_run_publishes(
    radcor_dag: Any, test_collection: str, new_session: Callable[[], Session]
) -> None:
    from radcor_api.listeners import on_dag_run_running
    from radcor_api.names import PUBLISHED_ALIAS

    not_configured = _collection()
    conf = {
        "tasks": [
            {
                "type": "download",
                "collection": "S2_L1C-1",
                "tasks": [
                    {"type": "publish", "collection": test_collection},
                    {"type": "publish", "collection": not_configured},
                ],
            }
        ]
    }
    on_dag_run_running(dag_run=_started_run(radcor_dag, conf), msg="started")
    session = new_session()
    asset = _asset_with_aliases(session, test_collection)
    assert asset is not None
    assert [alias.name for alias in asset.aliases] == [PUBLISHED_ALIAS]
    assert _asset_with_aliases(session, not_configured) is None  # a typo makes no asset


def test_run_start_listener_reads_the_dag_default_tasks_and_ignores_other_dags(
    test_collection: str, new_session: Callable[[], Session]
) -> None:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, Param
    from radcor_api.listeners import on_dag_run_running

    tasks = [{"type": "publish", "collection": test_collection}]
    with DAG("not_radcor", schedule=None, params={"tasks": Param(tasks)}) as other:
        EmptyOperator(task_id="publish")
    on_dag_run_running(dag_run=_started_run(other, {}), msg="started")
    assert _asset_with_aliases(new_session(), test_collection) is None

    from radcor_api.dag_factory import build_radcor_dag

    radcor = build_radcor_dag(
        f"radcor_{uuid.uuid4().hex[:6]}", doc_md="a pipeline", defaults={"tasks": tasks}
    )
    on_dag_run_running(dag_run=_started_run(radcor, {}), msg="started")
    assert _asset_with_aliases(new_session(), test_collection) is not None
