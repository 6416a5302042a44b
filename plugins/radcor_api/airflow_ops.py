"""What the radcor API asks of Airflow: who calls, may they, trigger a run, clear task instances.

This runs inside the Airflow API server (the plugin's FastAPI app is mounted there), so it uses
Airflow's own internals with a metadata DB session, as Airflow's core API routes do:
``trigger_dag`` for new runs and ``DAG.clear`` + ``clear_task_instances`` for restarts. Nothing
here knows radcor confs or activities beyond the ids it is given.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import bearer_scheme, get_user, oauth2_scheme
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials

from radcor_api.names import CHILD_SUFFIX, SCENE_RUNS_TASK_ID

log = logging.getLogger(__name__)

ACTIVE_TI_STATES = frozenset(
    {"queued", "scheduled", "running", "deferred", "up_for_reschedule", "restarting"}
)
"""Task instance states that a restart refuses to clear (409): work is under way."""


async def authenticated_user(
    request: Request,
    oauth_token: Annotated[str | None, Depends(oauth2_scheme)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> BaseUser:
    """Return the caller, authenticated by Airflow's own rules (bearer token or UI cookie).

    Airflow's ``get_user`` answers 403 for a token that does not verify; a request without a
    valid token is unauthenticated, so this answers 401 for both a missing and a bad token.

    Raises:
        HTTPException: 401 when the request carries no valid token.
    """
    try:
        return await get_user(request, oauth_token, bearer)
    except HTTPException as err:
        if err.status_code in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                f"{err.detail}: send 'Authorization: Bearer <token>' (POST /auth/token) "
                "or log in to the Airflow UI",
                headers={"WWW-Authenticate": "Bearer"},
            ) from err
        raise


def authorize_dags(
    user: BaseUser, method: str, entity: DagAccessEntity, dag_ids: Iterable[str]
) -> None:
    """Require ``user`` to be allowed ``method`` on ``entity`` of every DAG in ``dag_ids``.

    Raises:
        HTTPException: 403 naming the first DAG the user may not act on.
    """
    manager = get_auth_manager()
    for dag_id in sorted(set(dag_ids)):
        if not manager.is_authorized_dag(
            method=method,  # type: ignore[arg-type]  # a ResourceMethod literal
            access_entity=entity,
            details=DagDetails(id=dag_id),
            user=user,
        ):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"user {user.get_name()!r} may not {method} {entity.value.lower()} of DAG "
                f"{dag_id!r}; ask an admin for that permission",
            )


def readable_dag_ids(user: BaseUser) -> frozenset[str]:
    """Return the DAG ids whose task instances ``user`` may read."""
    from airflow.utils.session import create_session

    with create_session() as session:
        return frozenset(get_auth_manager().get_authorized_dag_ids(user=user, session=session))


@dataclass(frozen=True, slots=True)
class TriggeredRun:
    """A DAG run just created."""

    dag_id: str
    run_id: str
    state: str
    is_paused: bool


def trigger_run(dag_id: str, conf: dict[str, Any], user: BaseUser) -> TriggeredRun:
    """Create a manual run of ``dag_id`` with ``conf``, as ``POST /api/v2/dags/{id}/dagRuns`` does.

    Raises:
        HTTPException: 404 when the DAG is not parsed (yet); 409 when it has import errors or
            the run exists; 400 when the DAG's Params refuse the conf.
    """
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound, DagRunAlreadyExists, ParamValidationError
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType

    with create_session() as session:
        model = session.get(DagModel, dag_id)
        if model is None or model.is_stale:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"DAG {dag_id!r} is not loaded; check that the dag-processor runs and that "
                "`airflow dags list-import-errors` is empty",
            )
        if model.has_import_errors:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"DAG {dag_id!r} has import errors; fix them (airflow dags list-import-errors)",
            )
        try:
            run = trigger_dag(
                dag_id,
                triggered_by=DagRunTriggeredByType.REST_API,
                triggering_user_name=user.get_name(),
                conf=conf,
                session=session,
            )
        except DagNotFound as err:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from err
        except DagRunAlreadyExists as err:
            raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from err
        except (ParamValidationError, ValueError) as err:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                {"errors": [{"field": "conf", "message": str(err), "fix": "correct the conf"}]},
            ) from err
        if run is None:  # trigger_dag's contract allows it; nothing was created
            raise HTTPException(status.HTTP_409_CONFLICT, f"no run of {dag_id!r} was created")
        log.info(
            "radcor_api.triggered dag_id=%s run_id=%s user=%s", dag_id, run.run_id, user.get_name()
        )
        return TriggeredRun(
            dag_id=dag_id,
            run_id=run.run_id,
            state=str(run.state),
            is_paused=bool(model.is_paused),
        )


@dataclass(frozen=True, slots=True)
class TaskInstanceKey:
    """One task instance: ``map_index`` -1 for an unmapped task."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int


def task_instance_states(keys: Iterable[TaskInstanceKey]) -> dict[TaskInstanceKey, str | None]:
    """Return the current state of each task instance that exists (None = no state yet)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select, tuple_

    wanted = list(set(keys))
    found: dict[TaskInstanceKey, str | None] = {}
    if not wanted:
        return found
    columns = (
        TaskInstance.dag_id,
        TaskInstance.run_id,
        TaskInstance.task_id,
        TaskInstance.map_index,
    )
    with create_session() as session:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = session.execute(
                select(*columns, TaskInstance.state).where(
                    tuple_(*columns).in_(
                        [(k.dag_id, k.run_id, k.task_id, k.map_index) for k in chunk]
                    )
                )
            )
            for dag_id, run_id, task_id, map_index, state in rows:
                key = TaskInstanceKey(dag_id, run_id, task_id, map_index)
                found[key] = None if state is None else str(state)
    return found


def clear_task_instances(
    keys: Iterable[TaskInstanceKey], user: BaseUser
) -> list[tuple[TaskInstanceKey, str | None]]:
    """Clear ``keys`` and their downstream task instances so the scheduler runs them again.

    For a mapped task instance the downstream is the same map index of the later tasks of its
    group (the scene's chain) plus the unmapped tasks after the group (the run's report), as
    ``POST /api/v2/dags/{id}/clearTaskInstances`` with ``include_downstream`` computes it.
    Finished runs go back to queued. A task of a child run (``<dag_id>_scenes``, docs/scale.md)
    also clears the parent run's wait for that child (``scene_runs``) and the parent's report,
    so the parent waits for the child again and reports the new totals.

    Args:
        keys: the task instances to clear.
        user: the caller (logged).

    Returns:
        Every cleared task instance with its state before clearing.

    Raises:
        HTTPException: 404 when a run or DAG version is gone; 409 when Airflow refuses to clear
            a running task instance.
    """
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session

    by_run: dict[tuple[str, str], list[TaskInstanceKey]] = {}
    for key in keys:
        by_run.setdefault((key.dag_id, key.run_id), []).append(key)
    cleared: list[tuple[TaskInstanceKey, str | None]] = []
    dag_bag = DBDagBag()
    with create_session() as session:
        parents: dict[tuple[str, str], list[TaskInstanceKey]] = {}
        for (dag_id, run_id), run_keys in sorted(by_run.items()):
            parent_key, before = _clear_run(session, dag_bag, dag_id, run_id, run_keys, user)
            cleared.extend(before)
            if parent_key is not None and parent_key not in by_run.get(
                (parent_key.dag_id, parent_key.run_id), []
            ):
                parents.setdefault((parent_key.dag_id, parent_key.run_id), []).append(parent_key)
        for (dag_id, run_id), run_keys in sorted(parents.items()):
            cleared.extend(_clear_run(session, dag_bag, dag_id, run_id, run_keys, user)[1])
    return cleared


def _clear_run(
    session: Any,
    dag_bag: Any,
    dag_id: str,
    run_id: str,
    run_keys: list[TaskInstanceKey],
    user: BaseUser,
) -> tuple[TaskInstanceKey | None, list[tuple[TaskInstanceKey, str | None]]]:
    """Clear ``run_keys`` of one run with their downstream; return the parent's wait, if any."""
    from airflow.exceptions import AirflowClearRunningTaskException
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import clear_task_instances as airflow_clear
    from airflow.models.taskinstance import find_relevant_relatives
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    dag_run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    if dag_run is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"run {run_id!r} of DAG {dag_id!r} no longer exists"
        )
    dag = dag_bag.get_dag_for_run(dag_run, session=session)
    if dag is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"DAG {dag_id!r} of run {run_id!r} is not loaded"
        )
    mapped = {(k.task_id, k.map_index) for k in run_keys if k.map_index >= 0}
    normal = {k.task_id for k in run_keys if k.map_index < 0}
    relatives = find_relevant_relatives(
        normal, mapped, direction="downstream", dag=dag, run_id=run_id, session=session
    )
    markers: list[str | tuple[str, int]] = [*normal, *mapped]
    markers += [r for r in relatives if r not in markers]
    tis = dag.clear(dry_run=True, task_ids=markers, run_id=run_id, session=session)
    before = [
        (
            TaskInstanceKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index),
            str(ti.state) if ti.state is not None else None,
        )
        for ti in tis
    ]
    try:
        airflow_clear(list(tis), session, DagRunState.QUEUED)
    except AirflowClearRunningTaskException as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from err
    log.info(
        "radcor_api.cleared dag_id=%s run_id=%s task_instances=%d user=%s",
        dag_id,
        run_id,
        len(before),
        user.get_name(),
    )
    conf = dag_run.conf or {}
    if not dag_id.endswith(CHILD_SUFFIX) or not {"parent_dag_id", "parent_run_id"} <= set(conf):
        return None, before
    parent = TaskInstanceKey(
        str(conf["parent_dag_id"]),
        str(conf["parent_run_id"]),
        SCENE_RUNS_TASK_ID,
        int(conf["part"]),
    )
    return parent, before
