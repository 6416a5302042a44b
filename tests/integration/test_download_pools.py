"""Each provider's download pool in Airflow's metadata DB: made when missing, never resized."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def session() -> Iterator[Any]:
    from airflow.utils.session import create_session

    with create_session() as session:
        yield session


def _slots(session: Any, name: str) -> int | None:
    from airflow.models.pool import Pool

    pool = Pool.get_pool(name, session=session)
    return None if pool is None else int(pool.slots)


def test_ensure_download_pools_creates_missing_ones_and_keeps_existing_sizes(session: Any) -> None:
    from airflow.models.pool import Pool
    from radcor_api.pools import ensure_download_pools

    tag = uuid.uuid4().hex[:8]
    kept, made = f"download_kept_{tag}", f"download_made_{tag}"
    Pool.create_or_update_pool(kept, 9, "an operator's size", False, session=session)
    session.commit()
    try:
        created = ensure_download_pools(session, {kept: 2, made: 3})
        session.commit()
        assert created == [made]
        assert (_slots(session, kept), _slots(session, made)) == (9, 3)
        assert ensure_download_pools(session, {kept: 2, made: 5}) == []  # idempotent
        assert _slots(session, made) == 3
    finally:
        for name in (kept, made):
            Pool.delete_pool(name, session=session)
        session.commit()


def test_dag_download_pools_are_the_providers_of_catalogs_yaml(radcor_dag: Any) -> None:
    from radcor_api.pools import dag_download_pools

    assert dag_download_pools(radcor_dag) == {
        "download_demo": 4,
        "download_earthsearch": 4,
        "download_planetarycomputer": 4,
        "download_cdse": 4,  # cdse and cdse-stac: one account, one pool
        "download_usgs": 2,
    }


def test_pools_module_creates_every_provider_pool_and_leaves_sizes_alone(session: Any) -> None:
    from airflow.models.pool import Pool

    Pool.create_or_update_pool("download_usgs", 1, "set by an operator", False, session=session)
    if _slots(session, "download_cdse") is not None:
        Pool.delete_pool("download_cdse", session=session)
    session.commit()
    done = subprocess.run(
        [sys.executable, "-m", "radcor_api.pools"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pool download_cdse: created with 4 slots" in done.stdout
    assert "pool download_usgs: exists, size kept" in done.stdout
    session.expire_all()
    assert (_slots(session, "download_cdse"), _slots(session, "download_usgs")) == (4, 1)
    Pool.create_or_update_pool("download_usgs", 2, "downloads from usgs", False, session=session)
    session.commit()


def test_a_provider_the_dag_does_not_know_yet_fails_validate_saying_why(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import shutil

    import yaml
    from airflow.dag_processing.dagbag import DagBag

    # the DAG was parsed before usgs was in catalogs.yaml; the worker's config now has it
    old = tmp_path / "config"
    shutil.copytree(REPO / "config", old)
    catalogs = yaml.safe_load((old / "catalogs.yaml").read_text())
    del catalogs["catalogs"]["usgs"]
    (old / "catalogs.yaml").write_text(yaml.safe_dump(catalogs))
    monkeypatch.setenv("COLLECTION_BUILDER_CONFIG_DIR", str(old))
    bag = DagBag(dag_folder=str(REPO / "dags" / "radcor.py"))
    assert bag.import_errors == {}
    dag = bag.dags["radcor"]
    assert not dag.has_task("scene.download_usgs")
    monkeypatch.delenv("COLLECTION_BUILDER_CONFIG_DIR")
    run = dag.test(
        run_conf={
            "tiles": ["090084"],
            "catalog": "USGS",
            "dataset": "landsat_ot_c2_l1",
            "start": "2016-01-01",
            "end": "2016-01-31",
            "action": "start",
            "tasks": [{"type": "download", "collection": "LC8_DN-1", "args": {}}],
        }
    )
    assert str(run.state) == "failed"
    (validate,) = [ti for ti in run.get_task_instances() if ti.task_id == "validate"]
    assert str(validate.state) == "failed"
    said = caplog.text + capsys.readouterr().out
    assert "catalog: 'usgs' downloads in task scene.download_usgs" in said
    assert "airflow dags reserialize" in said
    assert {ti.task_id for ti in run.get_task_instances() if str(ti.state) == "success"} == set()
