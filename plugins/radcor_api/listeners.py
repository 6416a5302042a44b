"""Airflow listener of the radcor plugin: runs in the scheduler when a DAG run starts.

Kept cheap to import: Airflow loads plugins, and so this module, in every component.
"""

from __future__ import annotations

from typing import Any

from airflow.listeners import hookimpl

PUBLISH_TASK_ID = "scene.publish"


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
    """Before a radcor run publishes, make its collections' assets exist (published_assets.py)."""
    dag = getattr(dag_run, "dag", None)
    if dag is None or not dag.has_task(PUBLISH_TASK_ID):
        return
    from airflow import settings
    from sqlalchemy.orm import Session

    from include.common.config import load_collections
    from include.radcor.conf import published_collections
    from radcor_api.published_assets import prime

    configured = load_collections()
    collections = [c for c in published_collections(run_tasks(dag_run)) if c in configured]
    if not collections:
        return
    # a connection of our own: the scheduler's session is mid-transaction (its locks, its
    # commit), and Airflow refuses a commit on it from here
    with Session(bind=settings.engine) as session, session.begin():
        prime(collections, session)
