"""Offline scenes and faults through real ``dag.test()`` runs of the radcor DAG (PostgreSQL).

The loopback CDSE (tests/helpers/cdse_server) has products in its long-term archive: an order
flips one online after ``order_polls`` availability reads. Each test does one fault for real and
checks the task instances, the activities and the files. The DAG is parsed with one scene group
and one Airflow retry after 1 s (``[collection_builder] task_*`` from the environment), so the
retry paths run in seconds; ``fallback_online`` is off (the real S2_L1C-1 fallback is Earth
Search, on the internet).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.collectors.tokens import clear_token_cache
from include.radcor.activities import ActivityStore
from tests.helpers.cdse_server import CdseServer
from tests.helpers.offline import DEMO_SCENE, FOOTPRINT, ZIP

REPO = Path(__file__).resolve().parents[2]
ENV = {
    "COLLECTION_BUILDER_SCENE_GROUPS": "1",
    "AIRFLOW__COLLECTION_BUILDER__TASK_RETRIES": "1",
    "AIRFLOW__COLLECTION_BUILDER__TASK_RETRY_DELAY_S": "1",
    "AIRFLOW__COLLECTION_BUILDER__TASK_RETRY_EXPONENTIAL_BACKOFF": "0",
}


@pytest.fixture(scope="module")
def offline_dag() -> Iterator[Any]:
    """dags/radcor.py parsed with ENV (dag.test re-parses the folder with the same ENV)."""
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as patch:
        for name, value in ENV.items():
            patch.setenv(name, value)
        bag = DagBag(dag_folder=str(REPO / "dags" / "radcor.py"))
        assert bag.import_errors == {}
        yield bag.dags["radcor"]


@pytest.fixture
def cdse(monkeypatch: pytest.MonkeyPatch) -> Iterator[CdseServer]:
    clear_token_cache()
    monkeypatch.setenv(
        "AIRFLOW_CONN_CDSE_DEFAULT",
        json.dumps({"conn_type": "http", "login": "alice", "password": "s3cret"}),
    )
    server = CdseServer(order_polls=3)
    try:
        yield server
    finally:
        server.close()
        clear_token_cache()


def _product(server: CdseServer, *, online: bool = False, **kwargs: Any) -> str:
    entity = server.add_s2_product(
        DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT, online=online, **kwargs
    )
    return str(entity["Id"])


def _conf(server: CdseServer, **args: Any) -> dict[str, Any]:
    return {
        "scenes": [DEMO_SCENE],
        "catalog": "CDSE",
        "dataset": "S2MSI1C",
        "action": "start",
        "catalog_args": {"url": server.odata_url, "token_url": server.token_url},
        "tasks": [
            {
                "type": "download",
                "collection": "S2_L1C-1",
                "args": {"fallback_online": False, **args},
            }
        ],
    }


def _tis(run: Any) -> dict[str, Any]:
    return {ti.task_id: ti for ti in run.get_task_instances() if ti.task_id.startswith("scene.")}


def _activities(run: Any) -> dict[str, Any]:
    return {a.key.task_type: a for a in ActivityStore().for_run(run.run_id)}


def _archive(data_dir: Path) -> Path:
    return data_dir / "archive" / "S2_L1C-1" / "23LLF" / "2020" / "01" / DEMO_SCENE


def _reschedules(run: Any, task_id: str) -> int:
    import sqlalchemy as sa
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session

    (ti,) = [t for t in run.get_task_instances() if t.task_id == task_id]
    with create_session() as session:
        return int(
            session.scalar(
                sa.select(sa.func.count())
                .select_from(TaskReschedule)
                .where(TaskReschedule.ti_id == ti.id)
            )
            or 0
        )


def test_offline_scene_reschedule_mode_orders_once_waits_then_downloads(
    offline_dag: Any,
    cdse: CdseServer,
    data_dir: Path,
) -> None:
    product_id = _product(cdse)
    run = offline_dag.test(run_conf=_conf(cdse, wait_mode="reschedule", poll_interval_s=1))
    tis = _tis(run)
    assert str(run.state) == "success", {k: str(t.state) for k, t in tis.items()}
    assert str(tis["scene.wait_online"].state) == "success"
    assert tis["scene.wait_online"].try_number == 1
    assert _reschedules(run, "scene.wait_online") >= 1  # it was up_for_reschedule in between
    assert cdse.orders == [product_id]  # ordered once, whatever the number of pokes
    acts = _activities(run)
    wait, download = acts["wait_online"], acts["download"]
    assert str(wait.status) == "success" and wait.outputs["order"]["order_id"]
    assert wait.message and wait.message.startswith("online at cdse after")
    assert str(download.status) == "success" and download.provider == "cdse"
    assert (_archive(data_dir) / f"{DEMO_SCENE}.zip").read_bytes() == ZIP


def test_offline_scene_deferrable_mode_waits_in_the_trigger_then_downloads(
    offline_dag: Any,
    cdse: CdseServer,
    data_dir: Path,
) -> None:
    product_id = _product(cdse)
    run = offline_dag.test(run_conf=_conf(cdse, wait_mode="deferrable", poll_interval_s=1))
    tis = _tis(run)
    assert str(run.state) == "success", {k: str(t.state) for k, t in tis.items()}
    assert _reschedules(run, "scene.wait_online") == 0
    assert cdse.orders == [product_id]
    assert str(_activities(run)["wait_online"].status) == "success"
    assert (_archive(data_dir) / f"{DEMO_SCENE}.zip").read_bytes() == ZIP


def test_offline_scene_never_online_times_out_without_retry_and_fails_the_run(
    offline_dag: Any,
    cdse: CdseServer,
    data_dir: Path,
) -> None:
    cdse.order_polls = 10_000
    _product(cdse)
    run = offline_dag.test(run_conf=_conf(cdse, poll_interval_s=1, wait_timeout_s=3))
    tis = _tis(run)
    assert str(run.state) == "failed"
    assert str(tis["scene.wait_online"].state) == "failed"
    assert tis["scene.wait_online"].try_number == 1  # a timeout is not retried
    assert str(tis["scene.download_cdse"].state) == "upstream_failed"
    wait = _activities(run)["wait_online"]
    assert str(wait.status) == "failed"
    assert "still offline at cdse after 3 s" in (wait.error or "")
    assert not _archive(data_dir).exists()


@pytest.mark.parametrize("fault", ["unknown_scene_404", "wrong_password_401"])
def test_permanent_error_fails_at_once_without_retry(
    offline_dag: Any,
    cdse: CdseServer,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    _product(cdse)
    if fault == "unknown_scene_404":
        cdse.fail("product", 404, {"detail": "Product not found"})
    else:
        monkeypatch.setenv(
            "AIRFLOW_CONN_CDSE_DEFAULT",
            json.dumps({"conn_type": "http", "login": "alice", "password": "wrong"}),
        )
    run = offline_dag.test(run_conf=_conf(cdse, poll_interval_s=1))
    wait = _tis(run)["scene.wait_online"]
    assert str(run.state) == "failed"
    assert str(wait.state) == "failed" and wait.try_number == 1  # retries=1, not used
    assert cdse.orders == []


def test_transient_download_errors_are_retried_in_task_then_by_airflow(
    offline_dag: Any,
    cdse: CdseServer,
    data_dir: Path,
) -> None:
    _product(cdse, online=True)
    cdse.fail("zipper", 429, {"detail": "slow down"}, {"Retry-After": "1"})  # waited in the task
    cdse.fail("zipper", 503, b"unavailable", times=3)  # the task's 3 attempts -> Airflow retry
    run = offline_dag.test(run_conf=_conf(cdse))
    tis = _tis(run)
    assert str(run.state) == "success", {k: str(t.state) for k, t in tis.items()}
    assert tis["scene.download_cdse"].try_number == 2
    download = _activities(run)["download"]
    assert str(download.status) == "success" and download.attempts == 2
    history = [h["status"] for h in ActivityStore().history(download.id)]
    assert history == ["running", "failed", "running", "success"]
    assert (_archive(data_dir) / f"{DEMO_SCENE}.zip").read_bytes() == ZIP


def test_checksum_mismatch_leaves_nothing_in_the_archive_and_is_retried(
    offline_dag: Any,
    cdse: CdseServer,
    data_dir: Path,
) -> None:
    _product(cdse, online=True, wrong_checksums=("MD5", "BLAKE3"))
    run = offline_dag.test(run_conf=_conf(cdse))
    tis = _tis(run)
    assert str(run.state) == "failed"
    assert tis["scene.download_cdse"].try_number == 2  # an integrity error is retried by Airflow
    download = _activities(run)["download"]
    assert str(download.status) == "failed" and "ChecksumMismatchError" in (download.error or "")
    folder = _archive(data_dir)
    assert not folder.exists() or list(folder.iterdir()) == []  # no zip, no .part
    assert not (data_dir / "published").exists()
