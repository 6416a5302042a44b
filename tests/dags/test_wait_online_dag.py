"""The wait_online step in every scene chain, and Airflow's retries taken from the config."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


def _radcor():  # noqa: ANN202 - an Airflow DAG
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_DIR / "radcor.py"))
    assert bag.import_errors == {}
    return bag.dags["radcor"]


def test_every_scene_group_waits_online_before_download_in_reschedule_mode() -> None:
    from radcor_api.sensors import SceneOnlineSensor

    dag = _radcor()
    wait = dag.get_task("scene.wait_online")
    downloads = {t.task_id for t in dag.tasks if t.task_id.startswith("scene.download_")}
    assert "scene.download_cdse" in downloads
    assert isinstance(wait, SceneOnlineSensor)
    assert wait.mode == "reschedule" and wait.reschedule
    assert wait.downstream_task_ids == downloads | {"report"}
    assert wait.pool == "default_pool"  # never a download slot while waiting
    assert wait.retries >= 2
    for task_id in downloads:
        download = dag.get_task(task_id)
        assert download.trigger_rule == "none_failed"  # a skipped wait lets download run
        assert wait.queue == download.queue == "download"


def test_task_retry_args_follow_the_airflow_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from radcor_api.settings import task_retry_args

    assert task_retry_args() == {
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=1800),
    }
    monkeypatch.setenv("AIRFLOW__COLLECTION_BUILDER__TASK_RETRIES", "5")
    monkeypatch.setenv("AIRFLOW__COLLECTION_BUILDER__TASK_RETRY_DELAY_S", "7.5")
    monkeypatch.setenv("AIRFLOW__COLLECTION_BUILDER__TASK_RETRY_EXPONENTIAL_BACKOFF", "0")
    monkeypatch.setenv("AIRFLOW__COLLECTION_BUILDER__TASK_MAX_RETRY_DELAY_S", "60")
    assert task_retry_args() == {
        "retries": 5,
        "retry_delay": timedelta(seconds=7.5),
        "retry_exponential_backoff": 0.0,
        "max_retry_delay": timedelta(seconds=60),
    }
    dag = _radcor()
    download = dag.get_task("scene.download_cdse")
    assert (download.retries, download.retry_delay) == (5, timedelta(seconds=7.5))
    assert dag.get_task("validate").retries == 0
