"""The ``[collection_builder]`` Airflow settings the radcor DAG and its tasks read.

Set them in ``airflow.cfg`` or as ``AIRFLOW__COLLECTION_BUILDER__<NAME>`` (docs/faults.md,
docs/scale.md). Read when the DAG file is parsed (retries, queues) or when a task runs (scenes
per run); never a Connection, Variable or database read.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.sdk import conf as airflow_conf

from include.radcor.conf import TaskType

SECTION = "collection_builder"

STEP_QUEUES = {TaskType.DOWNLOAD: "download"}
"""Celery queue per step; every other step runs on ``processing``."""
STEP_POOLS: dict[TaskType, str] = {}
"""Airflow pool per step, over ``default_pool``. Downloads are not here: each provider's
download task has its own pool (``names.download_pool``)."""


def task_retry_args() -> dict[str, Any]:
    """Return Airflow's retry arguments of the tasks from ``[collection_builder]`` (docs/faults.md).

    ``task_retries`` (default 2), ``task_retry_delay_s`` (30), ``task_retry_exponential_backoff``
    (the delay multiplier, 2.0; 0 turns it off) and ``task_max_retry_delay_s`` (1800); set them in
    ``airflow.cfg`` or as ``AIRFLOW__COLLECTION_BUILDER__TASK_RETRIES`` and so on. ``validate``
    and ``report`` never retry; permanent errors fail without retry whatever these say.
    """
    return {
        "retries": airflow_conf.getint(SECTION, "task_retries", fallback=2),
        "retry_delay": timedelta(
            seconds=airflow_conf.getfloat(SECTION, "task_retry_delay_s", fallback=30.0)
        ),
        "retry_exponential_backoff": airflow_conf.getfloat(
            SECTION, "task_retry_exponential_backoff", fallback=2.0
        ),
        "max_retry_delay": timedelta(
            seconds=airflow_conf.getfloat(SECTION, "task_max_retry_delay_s", fallback=1800.0)
        ),
    }


def processing_queue() -> str:
    """Return the Celery queue of every task but the downloads (``processing_queue``)."""
    return airflow_conf.get(SECTION, "processing_queue", fallback="processing")


def step_queues(overrides: Mapping[str, str] | None = None) -> dict[TaskType, str]:
    """Return the Celery queue of every step: overrides, else the Airflow config, else defaults.

    ``[collection_builder] download_queue`` (default ``download``) takes the download step;
    ``processing_queue`` (default ``processing``) every other step and the DAG's other tasks.
    Set them in ``airflow.cfg`` or as ``AIRFLOW__COLLECTION_BUILDER__DOWNLOAD_QUEUE``.
    """
    download = airflow_conf.get(SECTION, "download_queue", fallback="download")
    processing = processing_queue()
    queues = {t: download if STEP_QUEUES.get(t) == "download" else processing for t in TaskType}
    queues.update({TaskType(step): queue for step, queue in (overrides or {}).items()})
    return queues


def step_pools(overrides: Mapping[str, str] | None = None) -> dict[TaskType, str]:
    """Return the Airflow pool of the steps that have one: ``STEP_POOLS`` and the overrides."""
    return {**STEP_POOLS, **{TaskType(step): pool for step, pool in (overrides or {}).items()}}


def max_map_length() -> int:
    """Return Airflow's ``[core] max_map_length``: the most instances one mapped task has."""
    return airflow_conf.getint("core", "max_map_length", fallback=1024)


def scenes_per_run() -> int:
    """Return how many scenes one DAG run maps at most (``[collection_builder] scenes_per_run``).

    A run with more scenes hands ranges of this many to child runs of ``<dag_id>_scenes``
    (docs/scale.md). Default 100; never more than Airflow's ``[core] max_map_length``.
    """
    wanted = airflow_conf.getint(SECTION, "scenes_per_run", fallback=100)
    return max(1, min(wanted, max_map_length()))


def scene_runs_active() -> int:
    """Return how many child runs of one radcor DAG run at once (``scene_runs_active``, 4)."""
    return max(1, airflow_conf.getint(SECTION, "scene_runs_active", fallback=4))
