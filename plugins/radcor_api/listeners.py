"""Airflow listener of the radcor plugin: runs in the scheduler when a DAG run starts.

Kept cheap to import: Airflow loads plugins, and so this module, in every component.
"""

from __future__ import annotations

from typing import Any

from airflow.listeners import hookimpl

from radcor_api.names import CHILD_SCENES_TASK_ID, PUBLISH_TASK_ID, SEARCH_TASK_ID


def run_tasks(dag_run: Any) -> dict[str, Any]:
    """Return the task tree a radcor run will execute: its conf's, else the DAG's default.

    A child run (``<dag_id>_scenes``) has neither: its parent run primed its collections when it
    started, before it started the child.
    """
    conf = dag_run.conf or {}
    if "tasks" in conf:
        return {"tasks": conf["tasks"]}
    dag = getattr(dag_run, "dag", None)
    if dag is not None and "tasks" in dag.params:
        return {"tasks": dag.params["tasks"]}
    return {"tasks": []}


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    """Before a radcor run's tasks queue, make its download pools and collections' assets exist.

    Download pools: ``pools.py``; published collections' assets: ``published_assets.py``.
    """
    dag = getattr(dag_run, "dag", None)
    if dag is None or not dag.has_task(SEARCH_TASK_ID) and not dag.has_task(CHILD_SCENES_TASK_ID):
        return
    from airflow import settings
    from sqlalchemy.orm import Session

    from radcor_api.pools import dag_download_pools, ensure_download_pools

    pools = dag_download_pools(dag)
    collections = _published_collections(dag, dag_run)
    if not pools and not collections:
        return
    # a connection of our own: the scheduler's session is mid-transaction (its locks, its
    # commit), and Airflow refuses a commit on it from here
    with Session(bind=settings.engine) as session, session.begin():
        ensure_download_pools(session, pools)
        if collections:
            from radcor_api.published_assets import prime

            prime(collections, session)


def _published_collections(dag: Any, dag_run: Any) -> list[str]:
    """Return the configured collections the run publishes (none in a child run)."""
    if not dag.has_task(PUBLISH_TASK_ID):
        return []
    from include.common.config import load_collections
    from include.radcor.conf import published_collections

    configured = load_collections()
    return [c for c in published_collections(run_tasks(dag_run)) if c in configured]
