"""The radcor-compatible REST API, mounted in the Airflow API server at ``/radcor-api``.

Upstream clients called ``/api/radcor``, ``/api/radcor/restart`` and ``/api/activities``; here they
are ``/radcor-api/radcor``, ``/radcor-api/radcor/restart`` and ``/radcor-api/radcor/activities``
(docs/api.md). Every data endpoint needs Airflow's authentication (bearer token or the UI's
session cookie) and the caller's DAG permissions; the page and its static files are public and
hold no data.

Routes validate with the DAG's own ``validate_request``, call ``include/radcor`` for the domain
work and ``airflow_ops`` for Airflow's (trigger, clear). Status codes (STYLE 2.3): 202 accepted,
400 invalid input with ``{"errors": [{field, message, fix}]}`` (a body that is not a JSON
object and FastAPI's own request checks too: ``app.py``), 401 no valid token, 403 not allowed,
404 unknown id, 409 conflicting state, 502 the catalog failed, 504 the synchronous search ran
out of time.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote, urlencode

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, status
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, JSONResponse
from pydantic import ValidationError

from include.catalog.registry import default_backend
from include.collectors.base import Scene
from include.common.config import data_dir
from include.common.errors import (
    FieldProblem,
    InvalidInputError,
    ProviderError,
    TransientError,
)
from include.radcor.activities import (
    Activity,
    ActivityPage,
    ActivityQuery,
    ActivityStore,
    parse_task_instance,
)
from include.radcor.conf import Action, RadcorConf, conf_object
from include.radcor.conf_limits import text_problems
from include.radcor.gaps import check_gaps, gap_confs
from include.radcor.preview import preview
from include.radcor.search import search_scenes
from include.radcor.validation import validate_request
from radcor_api import airflow_ops
from radcor_api.airflow_ops import TaskInstanceKey
from radcor_api.hooks import CatalogHook, server_connection
from radcor_api.models import (
    STATUS_VALUES,
    TI_ONLY_STATES,
    ActivityDetail,
    ActivityLinks,
    ActivityList,
    ActivityOut,
    DetailResponse,
    ErrorResponse,
    GapCellOut,
    GapResponse,
    NotRestartable,
    RestartRequest,
    RestartResponse,
    RunStarted,
    SceneOut,
    TaskInstanceOut,
)
from radcor_api.names import URL_PREFIX

log = logging.getLogger(__name__)

RADCOR_DAG_ID = "radcor"
SEARCH_TIMEOUT_ENV = "RADCOR_API_SEARCH_TIMEOUT_S"
DEFAULT_SEARCH_TIMEOUT_S = 60.0
RESTART_SCAN_LIMIT = 10_000
"""Most activities a restart filtered by a task-instance-only state looks at."""
STATIC_DIR = Path(__file__).resolve().parent / "static"
QUICKLOOK_SIZES = ("thumbnail", "quicklook")
PAGE_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
    "style-src 'self' 'unsafe-inline'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'self'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

_search_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="radcor-search")
T = TypeVar("T")

UserDep = Annotated[BaseUser, Depends(airflow_ops.authenticated_user)]
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": DetailResponse, "description": "No valid token (bearer or UI cookie)"},
    403: {"model": DetailResponse, "description": "The user lacks the DAG permission"},
}
BODY_FIX = "send a JSON object with Content-Type: application/json (docs/api.md)"
EXAMPLE_SCENE_ID = "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429"
CONF_EXAMPLE = {
    "w": -45.9, "s": -12.74, "e": -45.8, "n": -12.6,
    "catalog": "demo", "dataset": "S2MSI1C",
    "start": "2020-01-09T00:00:00", "end": "2020-01-31T23:59:59",
    "cloud": 100, "action": "preview",
    "tasks": [{"type": "download", "collection": "S2_L1C-1", "args": {},
               "tasks": [{"type": "publish", "collection": "S2_L1C-1", "args": {}}]}],
}  # fmt: skip


def check_plain_text(values: Iterable[tuple[str, Any]]) -> None:
    """Refuse control characters and oversize strings in request values (400, never shown).

    The conf's limits (``include.radcor.conf_limits``) for the filters, path and query values
    that reach the database (PostgreSQL refuses NUL) or a file path.

    Raises:
        InvalidInputError: naming each value past the limits.
    """
    problems = [problem for key, value in values for problem in text_problems({key: value})[0]]
    if problems:
        raise InvalidInputError(problems)


def plain_request_text(request: Request) -> None:
    """FastAPI dependency: ``check_plain_text`` on the path and every query value."""
    check_plain_text([*request.path_params.items(), *request.query_params.multi_items()])


router = APIRouter(prefix="/radcor", tags=["radcor"], dependencies=[Depends(plain_request_text)])


# --- helpers -----------------------------------------------------------------------------------


def search_timeout_s() -> float:
    """Return the synchronous search budget from ``$RADCOR_API_SEARCH_TIMEOUT_S`` (default 60)."""
    raw = os.environ.get(SEARCH_TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_SEARCH_TIMEOUT_S
    except ValueError:
        log.warning(
            "radcor_api.bad_timeout %s=%r; using %s",
            SEARCH_TIMEOUT_ENV,
            raw,
            DEFAULT_SEARCH_TIMEOUT_S,
        )
        return DEFAULT_SEARCH_TIMEOUT_S
    return value if value > 0 else DEFAULT_SEARCH_TIMEOUT_S


def _search(conf: RadcorConf) -> list[Scene]:
    with CatalogHook.for_conf(conf, lookup=server_connection).get_driver(conf.catalog) as driver:
        return search_scenes(conf, driver)


def _bounded(work: Callable[[], T], what: str) -> T:
    """Run ``work`` in the search pool; 504 past the budget, 502 when the catalog fails."""
    timeout_s = search_timeout_s()
    future = _search_pool.submit(work)
    try:
        return future.result(timeout=timeout_s)
    except FutureTimeoutError as err:
        future.cancel()
        raise HTTPException(
            status.HTTP_504_GATEWAY_TIMEOUT,
            f"{what} did not finish within {timeout_s:.0f} s (${SEARCH_TIMEOUT_ENV}); narrow the "
            "area or period, or send action 'start' and read the preview from the run",
        ) from err
    except (ProviderError, TransientError) as err:
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY,
            f"{what} failed at the catalog: {type(err).__name__}: {err}; retry later or check "
            "the catalog's URL and credentials",
        ) from err


class Links:
    """Builds absolute links from the request: this API's and Airflow's."""

    def __init__(self, request: Request) -> None:
        # base_url is the root app's (Starlette keeps app_root_path) or, in older versions,
        # includes the mount prefix: accept both
        self.airflow = str(request.base_url).rstrip("/").removesuffix(URL_PREFIX)
        self.api = f"{self.airflow}{URL_PREFIX}"

    def run(self, dag_id: str, run_id: str) -> tuple[str, str]:
        """Return the run's UI and REST URLs."""
        dag, run = quote(dag_id, safe=""), quote(run_id, safe="")
        return (
            f"{self.airflow}/dags/{dag}/runs/{run}",
            f"{self.airflow}/api/v2/dags/{dag}/dagRuns/{run}",
        )

    def task_instance(self, key: TaskInstanceKey) -> str:
        """Return the task instance's page (its logs) in the Airflow UI."""
        ui, _ = self.run(key.dag_id, key.run_id)
        mapped = f"/mapped/{key.map_index}" if key.map_index >= 0 else ""
        return f"{ui}/tasks/{quote(key.task_id, safe='')}{mapped}"

    def activity(self, activity: Activity) -> ActivityLinks:
        """Return the links of one activity."""
        links = ActivityLinks()
        if activity.task_instance:
            try:
                ref = parse_task_instance(activity.task_instance)
            except ValueError:
                ref = None
            if ref is not None:
                key = TaskInstanceKey(ref.dag_id, ref.run_id, ref.task_id, ref.map_index)
                _, api = self.run(ref.dag_id, ref.run_id)
                query = f"?map_index={ref.map_index}" if ref.map_index >= 0 else ""
                links.log = (
                    f"{api}/taskInstances/{quote(ref.task_id, safe='')}/logs/"
                    f"{max(ref.try_number, 1)}{query}"
                )
                links.ui = self.task_instance(key)
        item_id = activity.outputs.get("item_id")
        if item_id:
            links.item = (
                f"{self.api}/radcor/items/{quote(activity.key.collection, safe='')}/"
                f"{quote(str(item_id), safe='')}"
            )
        files = activity.outputs.get("files") or {}
        for size in QUICKLOOK_SIZES:
            if size in files:
                url = f"{self.api}/radcor/activities/{activity.id}/quicklook?size={size}"
                setattr(links, size, url)
        return links


def _ti_key(activity: Activity) -> TaskInstanceKey | None:
    if not activity.task_instance:
        return None
    try:
        ref = parse_task_instance(activity.task_instance)
    except ValueError:
        return None
    return TaskInstanceKey(ref.dag_id, ref.run_id, ref.task_id, ref.map_index)


def _activity_out(
    activity: Activity, links: Links, ti_states: Mapping[TaskInstanceKey, str | None]
) -> ActivityOut:
    data = activity.to_dict()
    scene = data.pop("scene")
    key = _ti_key(activity)
    return ActivityOut(
        **data,
        scene=SceneOut(**scene) if scene else None,
        ti_state=ti_states.get(key) if key is not None else None,
        links=links.activity(activity),
    )


def request_problems(
    errors: Sequence[Mapping[str, Any]], *, known: Sequence[str] = ()
) -> list[FieldProblem]:
    """Return pydantic's or FastAPI's errors of a request as problems (the input never shown).

    Args:
        errors: ``ValidationError.errors()`` or ``RequestValidationError.errors()``.
        known: the accepted names, for the fix of an unknown one.
    """
    return [_request_problem(error, known) for error in errors]


def _location(loc: Sequence[Any]) -> str:
    """``("body", "tasks", 0, "type")`` -> ``tasks[0].type``; the body itself is ``body``."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path") else loc)
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)
    return text.lstrip(".") or "body"


def _request_problem(error: Mapping[str, Any], known: Sequence[str]) -> FieldProblem:
    if error["type"] == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "not JSON")
        position = error["loc"][-1]
        return FieldProblem(
            "body", f"is not valid JSON ({reason} at character {position})", BODY_FIX
        )
    where = _location(error["loc"])
    if error["type"] == "extra_forbidden":
        return FieldProblem(
            where, "is not a known filter", f"remove it (known: {', '.join(known)})"
        )
    if error["type"] == "missing" and where == "body":
        return FieldProblem(where, "is empty (or null)", BODY_FIX)
    message = re.sub(r"^(Value error, )?Input should be", "must be", error["msg"])
    message = re.sub(r"^Value error, ", "", message)
    default_fix = BODY_FIX if where == "body" else "see docs/api.md"
    return FieldProblem(
        where, message, _FILTER_FIXES.get(re.split(r"[.\[]", where)[0], default_fix)
    )


_FILTER_FIXES = {
    "ids": "give activity ids as whole numbers, e.g. ids=12,13",
    "status": f"use one or more of {', '.join(STATUS_VALUES)}",
    "start": "give an ISO 8601 date or datetime such as 2020-01-09T00:00:00Z",
    "end": "give an ISO 8601 date or datetime such as 2020-01-31T23:59:59Z",
    "since": "give an ISO 8601 datetime such as 2026-01-01T00:00:00Z",
    "until": "give an ISO 8601 datetime such as 2026-01-02T00:00:00Z",
    "action": "use preview or start",
    "limit": "give a whole number from 1 to 10000",
}


def _run_started(
    links: Links, run: airflow_ops.TriggeredRun, scenes: int | None = None
) -> RunStarted:
    ui, api = links.run(run.dag_id, run.run_id)
    return RunStarted(
        dag_id=run.dag_id,
        run_id=run.run_id,
        state=run.state,
        ui_url=ui,
        api_url=api,
        paused=run.is_paused,
        scenes=scenes,
    )


# --- POST /radcor ------------------------------------------------------------------------------


@router.post(
    "",
    summary="Preview a radcor conf (search now) or start a radcor DAG run",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {
            "description": "action preview: the scenes keyed by scene id, plus Results",
            "content": {
                "application/json": {
                    "example": {
                        EXAMPLE_SCENE_ID: {
                            "sceneid": EXAMPLE_SCENE_ID,
                            "type": "MSIL1C",
                            "date": "2020-01-09T13:22:31+00:00",
                            "cloud": 0.0,
                            "footprint": "POLYGON ((...))",
                            "tileid": "23LLF",
                            "size": "1.2 MB",
                            "link": "http://...",
                            "icon": None,
                            "online": True,
                            "provider": "demo",
                        },
                        "Results": 1,
                    }
                }
            },
        },
        202: {"model": RunStarted, "description": "action start: the run was created"},
        400: {"model": ErrorResponse, "description": "The conf is invalid"},
        **COMMON_ERRORS,
        404: {"model": DetailResponse, "description": "The radcor DAG is not loaded"},
        409: {"model": DetailResponse, "description": "The DAG has import errors"},
        502: {"model": DetailResponse, "description": "The catalog failed (preview)"},
        504: {"model": DetailResponse, "description": "The search ran out of time (preview)"},
    },
)
def post_radcor(
    request: Request,
    user: UserDep,
    conf: Annotated[Any, Body(description="A radcor conf (DESIGN 1.1)", examples=[CONF_EXAMPLE])],
) -> Any:
    """Validate the conf exactly as the DAG does, then search (preview) or trigger (start).

    The body is typed ``Any`` so that whatever JSON arrives gets ``validate_request``'s answer
    (400 ``conf: must be a JSON object``), the same as the DAG's ``validate`` task gives.
    """
    validated = validate_request(conf)
    if validated.action == Action.PREVIEW:
        airflow_ops.authorize_dags(user, "GET", DagAccessEntity.RUN, [RADCOR_DAG_ID])
        scenes = _bounded(lambda: _search(validated), "the search")
        return JSONResponse(preview(scenes), status_code=status.HTTP_200_OK)
    airflow_ops.authorize_dags(user, "POST", DagAccessEntity.RUN, [RADCOR_DAG_ID])
    run = airflow_ops.trigger_run(RADCOR_DAG_ID, dict(conf), user)
    return _run_started(Links(request), run)


# --- activities --------------------------------------------------------------------------------


def readable_activities(
    user: BaseUser, query: ActivityQuery, *, limit: int, offset: int = 0
) -> ActivityPage:
    """Return one page of ``query``'s activities among those of the DAGs ``user`` may read."""
    scoped = replace(query, dag_ids=airflow_ops.readable_dag_ids(user))
    return ActivityStore().query(scoped, limit=limit, offset=offset)


def _statuses(raw: str | None) -> tuple[str, ...]:
    values = tuple(part.strip() for part in (raw or "").split(",") if part.strip())
    unknown = [v for v in values if v not in STATUS_VALUES]
    if unknown:
        raise InvalidInputError(
            FieldProblem("status", f"{', '.join(unknown)} is not a state", _FILTER_FIXES["status"])
        )
    return values


@router.get(
    "/activities",
    summary="List activities (one per scene, task type and collection of a run)",
    response_model=ActivityList,
    responses={400: {"model": ErrorResponse}, **COMMON_ERRORS},
)
def list_activities(
    request: Request,
    user: UserDep,
    status_: Annotated[
        str | None, Query(alias="status", description="Comma-separated states")
    ] = None,
    scene_id: str | None = None,
    collection: str | None = None,
    type_: Annotated[str | None, Query(alias="type", description="Task type")] = None,
    run_id: str | None = None,
    dag_id: str | None = None,
    start: Annotated[datetime | None, Query(description="Scenes acquired at or after")] = None,
    end: Annotated[datetime | None, Query(description="Scenes acquired at or before")] = None,
    since: Annotated[datetime | None, Query(description="Changed at or after")] = None,
    until: Annotated[datetime | None, Query(description="Changed at or before")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ActivityList:
    """Return one page of activities, newest change first, with links to log, item, quicklook."""
    statuses = _statuses(status_)
    activity_states = tuple(s for s in statuses if s not in TI_ONLY_STATES)
    if len(activity_states) != len(statuses):
        allowed = ", ".join(s for s in STATUS_VALUES if s not in TI_ONLY_STATES)
        raise InvalidInputError(
            FieldProblem(
                "status",
                "task instance states filter restarts, not listings",
                f"use activity states here: {allowed}",
            )
        )
    query = ActivityQuery(
        statuses=statuses,
        scene_id=scene_id,
        collection=collection,
        task_type=type_,
        run_id=run_id,
        dag_id=dag_id,
        start=start,
        end=end,
        since=since,
        until=until,
    )
    page = readable_activities(user, query, limit=limit, offset=offset)
    keys = [k for k in (_ti_key(a) for a in page.activities) if k is not None]
    ti_states = airflow_ops.task_instance_states(keys)
    links = Links(request)
    next_url = None
    if offset + len(page.activities) < page.total:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "offset"]
        query_text = urlencode([*params, ("offset", offset + limit)])
        next_url = f"{links.api}/radcor/activities?{query_text}"
    return ActivityList(
        activities=[_activity_out(a, links, ti_states) for a in page.activities],
        total=page.total,
        limit=limit,
        offset=offset,
        next=next_url,
    )


def _one_activity(user: BaseUser, activity_id: int) -> Activity:
    found = readable_activities(user, ActivityQuery(ids=(activity_id,)), limit=1).activities
    if not found:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"activity {activity_id} does not exist (or its DAG is not readable "
            "by you); list them at /radcor-api/radcor/activities",
        )
    return found[0]


@router.get(
    "/activities/{activity_id}",
    summary="One activity with its history of attempts",
    response_model=ActivityDetail,
    responses={404: {"model": DetailResponse}, **COMMON_ERRORS},
)
def get_activity(request: Request, user: UserDep, activity_id: int) -> ActivityDetail:
    """Return the activity, its links and every state change it went through."""
    activity = _one_activity(user, activity_id)
    key = _ti_key(activity)
    states = airflow_ops.task_instance_states([key] if key else [])
    out = _activity_out(activity, Links(request), states)
    history = jsonable_encoder(ActivityStore().history(activity_id))
    return ActivityDetail(**out.model_dump(), history=history)


@router.get(
    "/activities/{activity_id}/quicklook",
    summary="The quicklook or thumbnail PNG a publish activity made",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/png": {}}},
        404: {"model": DetailResponse},
        **COMMON_ERRORS,
    },
)
def get_quicklook(
    user: UserDep,
    activity_id: int,
    size: Annotated[Literal["thumbnail", "quicklook"], Query()] = "thumbnail",
) -> FileResponse:
    """Serve the PNG, only from under ``DATA_DIR/published``."""
    activity = _one_activity(user, activity_id)
    raw = (activity.outputs.get("files") or {}).get(size)
    if not raw:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"activity {activity_id} ({activity.key.task_type}) has no {size}; "
            "publish activities do",
        )
    published = (data_dir() / "published").resolve()
    path = Path(str(raw)).resolve()
    if not path.is_relative_to(published) or path.suffix.lower() != ".png" or not path.is_file():
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"the {size} of activity {activity_id} is not a PNG under "
            "DATA_DIR/published (moved or removed?)",
        )
    return FileResponse(
        path, media_type="image/png", headers={"Cache-Control": "private, max-age=300"}
    )


@router.get(
    "/items/{collection}/{item_id}",
    summary="A published STAC item",
    responses={
        200: {"content": {"application/geo+json": {}}},
        404: {"model": DetailResponse},
        **COMMON_ERRORS,
    },
)
def get_item(
    user: UserDep,
    collection: Annotated[str, PathParam(max_length=128)],
    item_id: Annotated[str, PathParam(max_length=250)],
) -> JSONResponse:
    """Return the item as the catalog backend has it."""
    airflow_ops.authorize_dags(user, "GET", DagAccessEntity.RUN, [RADCOR_DAG_ID])
    item = default_backend().get(collection, item_id)
    if item is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no item {item_id!r} in collection {collection!r}"
        )
    return JSONResponse(item, media_type="application/geo+json")


# --- restart -----------------------------------------------------------------------------------


def _restart_query(
    filters: RestartRequest, user: BaseUser, activity_states: tuple[str, ...], ti_only: bool
) -> ActivityQuery:
    """Return the activities query of a restart's filters.

    With a task-instance-only state (``ti_only``) no activity state filters the query: the
    task instances' states are looked at afterwards.
    """
    query = ActivityQuery(
        ids=tuple(filters.ids or ()),
        statuses=() if ti_only else activity_states,
        scene_id=filters.scene_id,
        collection=filters.collection,
        task_type=filters.type,
        run_id=filters.run_id,
        dag_id=filters.dag_id,
        start=filters.start,
        end=filters.end,
        since=filters.since,
        until=filters.until,
        dag_ids=airflow_ops.readable_dag_ids(user),
    )
    if query.is_empty():
        raise InvalidInputError(
            FieldProblem(
                "filters",
                "no filter given",
                "give at least one of ids, status, scene_id, "
                "collection, type, run_id, dag_id, start, end, since, until",
            )
        )
    return query


def _restart_candidates(
    filters: RestartRequest,
    query: ActivityQuery,
    ti_only: tuple[str, ...],
    *,
    strict_ids: bool = True,
) -> list[Activity]:
    """Return the activities the filters select before task-instance states are looked at."""
    scan = RESTART_SCAN_LIMIT if ti_only else filters.limit
    page = ActivityStore().query(query, limit=scan)
    if ti_only and page.total > RESTART_SCAN_LIMIT:
        raise InvalidInputError(
            FieldProblem(
                "status",
                f"{page.total} activities must be checked for task states {ti_only}",
                "narrow the filters (run_id, collection, since) to under "
                f"{RESTART_SCAN_LIMIT} activities",
            )
        )
    if filters.ids and strict_ids:
        unknown = sorted(set(filters.ids) - {a.id for a in page.activities})
        if unknown and len(filters.ids) <= scan:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"activities {', '.join(map(str, unknown))} do not exist (or match "
                "no other filter, or their DAG is not readable by you)",
            )
    return list(page.activities)


def _restartable(
    matched: list[Activity],
    keys: Mapping[int, TaskInstanceKey | None],
    states: Mapping[TaskInstanceKey, str | None],
) -> tuple[dict[TaskInstanceKey, str | None], list[NotRestartable]]:
    """Split the matched activities into task instances to clear and those that cannot be."""
    selected: dict[TaskInstanceKey, str | None] = {}
    not_restartable = []
    for activity in matched:
        key = keys[activity.id]
        if key is None:
            not_restartable.append(
                NotRestartable(id=activity.id, reason="no task instance recorded for it")
            )
        elif key not in states:
            not_restartable.append(
                NotRestartable(
                    id=activity.id,
                    reason=f"task instance {activity.task_instance} no longer exists",
                )
            )
        else:
            selected[key] = states[key]
    return selected, not_restartable


def _ti_out(key: TaskInstanceKey, state: str | None, links: Links) -> TaskInstanceOut:
    return TaskInstanceOut(
        dag_id=key.dag_id,
        run_id=key.run_id,
        task_id=key.task_id,
        map_index=key.map_index,
        state=state,
        ui_url=links.task_instance(key),
    )


def _clear(
    user: BaseUser,
    selected: Mapping[TaskInstanceKey, str | None],
    parent_dag_ids: set[str],
    matched_count: int,
) -> list[tuple[TaskInstanceKey, str | None]]:
    """Clear the selected task instances: 404 when none, 403 without rights, 409 when busy."""
    if not selected:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no restartable task instance matches ({matched_count} activities "
            "matched); preview with action=preview",
        )
    airflow_ops.authorize_dags(
        user, "PUT", DagAccessEntity.TASK_INSTANCE, {k.dag_id for k in selected} | parent_dag_ids
    )
    busy = [
        f"{k.task_id}[{k.map_index}] of {k.run_id} is {s}"
        for k, s in selected.items()
        if s in airflow_ops.ACTIVE_TI_STATES
    ]
    if busy:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "task instances are still at work: "
            + "; ".join(busy)
            + "; wait until they finish, then restart",
        )
    return airflow_ops.clear_task_instances(selected, user)


@dataclass
class RestartPlan:
    """What a restart's filters matched, and which task instances can be cleared."""

    matched: list[Activity]
    states: Mapping[TaskInstanceKey, str | None]
    selected: dict[TaskInstanceKey, str | None]
    not_restartable: list[NotRestartable]

    @property
    def parent_dag_ids(self) -> set[str]:
        """Return the DAGs of the matched activities whose task instances are selected.

        A child run's parent DAG is among them: its wait for the child run is cleared too.
        """
        return {a.key.dag_id for a in self.matched if _ti_key(a) in self.selected}


def plan_restart(
    user: BaseUser, filters: RestartRequest, *, strict_ids: bool = True
) -> RestartPlan:
    """Find the activities the filters select and split them into restartable or not.

    ``strict_ids``: unknown ``ids`` answer 404 (this API); the upstream API skips them.
    """
    statuses = tuple(filters.status or ())
    ti_only = tuple(s for s in statuses if s in TI_ONLY_STATES)
    activity_states = tuple(s for s in statuses if s not in TI_ONLY_STATES)
    query = _restart_query(filters, user, activity_states, bool(ti_only))
    candidates = _restart_candidates(filters, query, ti_only, strict_ids=strict_ids)
    keys = {a.id: _ti_key(a) for a in candidates}
    states = airflow_ops.task_instance_states(k for k in keys.values() if k is not None)

    def matches(activity: Activity) -> bool:
        if not statuses or str(activity.status) in activity_states:
            return True
        key = keys[activity.id]
        return key is not None and (states.get(key) or "") in ti_only

    matched = [a for a in candidates if matches(a)][: filters.limit]
    selected, not_restartable = _restartable(matched, keys, states)
    return RestartPlan(matched, states, selected, not_restartable)


def restart_filters(raw: Mapping[str, Any]) -> RestartRequest:
    """Parse restart filters; 400 naming each bad one."""
    check_plain_text(raw.items())
    try:
        return RestartRequest.model_validate(dict(raw))
    except ValidationError as err:
        raise InvalidInputError(
            request_problems(err.errors(), known=tuple(RestartRequest.model_fields))
        ) from err


def clear_plan(user: BaseUser, plan: RestartPlan, links: Links) -> list[TaskInstanceOut]:
    """Clear the plan's task instances: 404 when none, 403 without rights, 409 when busy."""
    cleared = _clear(user, plan.selected, plan.parent_dag_ids, len(plan.matched))
    return [_ti_out(k, state, links) for k, state in cleared]


def _restart(request: Request, user: BaseUser, raw: Mapping[str, Any]) -> JSONResponse:
    filters = restart_filters(raw)
    plan = plan_restart(user, filters)
    links = Links(request)
    body = RestartResponse(
        action=filters.action,
        matched=len(plan.matched),
        activities=[_activity_out(a, links, plan.states) for a in plan.matched],
        task_instances=[
            _ti_out(k, state, links)
            for k, state in sorted(
                plan.selected.items(),
                key=lambda kv: (kv[0].run_id, kv[0].task_id, kv[0].map_index),
            )
        ],
        not_restartable=plan.not_restartable,
    )
    if filters.action == "preview":
        return JSONResponse(jsonable_encoder(body), status_code=status.HTTP_200_OK)
    body.cleared = clear_plan(user, plan, links)
    return JSONResponse(jsonable_encoder(body), status_code=status.HTTP_202_ACCEPTED)


_RESTART_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": RestartResponse, "description": "action preview: what matches"},
    202: {"model": RestartResponse, "description": "action start: what was cleared"},
    400: {"model": ErrorResponse, "description": "Bad filters"},
    **COMMON_ERRORS,
    404: {"model": DetailResponse, "description": "Unknown ids, or nothing to restart"},
    409: {"model": DetailResponse, "description": "A matched task instance is still at work"},
}


@router.get(
    "/restart",
    summary="Restart activities (upstream-compatible GET)",
    responses=_RESTART_RESPONSES,
    response_model=None,
)
def restart_get(
    request: Request,
    user: UserDep,
    ids: Annotated[str | None, Query(description="Activity ids, comma-separated")] = None,
    status_: Annotated[
        str | None, Query(alias="status", description="States, comma-separated")
    ] = None,
    scene_id: str | None = None,
    collection: str | None = None,
    type_: Annotated[str | None, Query(alias="type")] = None,
    run_id: str | None = None,
    dag_id: str | None = None,
    start: Annotated[str | None, Query(description="Scenes acquired at or after")] = None,
    end: Annotated[str | None, Query(description="Scenes acquired at or before")] = None,
    since: str | None = None,
    until: str | None = None,
    action: Annotated[str | None, Query(description="preview or start (default)")] = None,
    limit: str | None = None,
) -> JSONResponse:
    """Find activities by the filters and clear their task instances (``action=start``).

    As upstream, ``GET /radcor/restart?ids=1,2`` restarts activities 1 and 2.
    """
    raw = {
        "ids": ids,
        "status": status_,
        "scene_id": scene_id,
        "collection": collection,
        "type": type_,
        "run_id": run_id,
        "dag_id": dag_id,
        "start": start,
        "end": end,
        "since": since,
        "until": until,
        "action": action,
        "limit": limit,
    }
    return _restart(request, user, {k: v for k, v in raw.items() if v is not None})


@router.post(
    "/restart",
    summary="Restart activities (filters in a JSON body)",
    responses=_RESTART_RESPONSES,
    response_model=None,
)
def restart_post(
    request: Request,
    user: UserDep,
    body: Annotated[
        dict[str, Any],
        Body(examples=[{"status": ["failed"], "run_id": "manual__...", "action": "preview"}]),
    ],
) -> JSONResponse:
    """Same as the GET form, with the filters (RestartRequest) in a JSON object."""
    return _restart(request, user, body)


# --- gap check ---------------------------------------------------------------------------------


@router.post(
    "/check",
    summary="Gap check: the catalog's scenes against what is published, per tile and month",
    response_model=None,
    responses={
        200: {"model": GapResponse, "description": "action preview (default), or nothing missing"},
        202: {"model": GapResponse, "description": "action start: runs created for the gaps"},
        400: {"model": ErrorResponse, "description": "The conf is invalid or has no publish node"},
        **COMMON_ERRORS,
        502: {"model": DetailResponse},
        504: {"model": DetailResponse},
    },
)
def post_check(
    request: Request,
    user: UserDep,
    conf: Annotated[
        Any, Body(description="A radcor conf; action defaults to preview", examples=[CONF_EXAMPLE])
    ],
) -> JSONResponse:
    """Search the catalog with the conf, compare with its publish collections, report the gaps.

    ``action: start`` triggers radcor runs for the missing scenes (area by scene id).
    """
    raw = dict(conf_object(conf))
    raw.setdefault("action", "preview")
    validated = validate_request(raw)
    airflow_ops.authorize_dags(user, "GET", DagAccessEntity.RUN, [RADCOR_DAG_ID])
    backend = default_backend()
    report = _bounded(
        lambda: check_gaps(validated, _search(validated), backend.exists), "the gap check"
    )
    summary = report.to_dict()
    body = GapResponse(
        action="start" if validated.action == Action.START else "preview",
        collections=summary["collections"],
        scenes=summary["scenes"],
        missing=summary["missing"],
        cells=[GapCellOut(**c) for c in summary["cells"]],
    )
    if validated.action != Action.START or not report.missing_scenes:
        return JSONResponse(jsonable_encoder(body), status_code=status.HTTP_200_OK)
    airflow_ops.authorize_dags(user, "POST", DagAccessEntity.RUN, [RADCOR_DAG_ID])
    links = Links(request)
    for gap_conf in gap_confs(validated, report.missing_scenes):
        validate_request(gap_conf)  # the DAG will: fail here, before any run exists
        run = airflow_ops.trigger_run(RADCOR_DAG_ID, gap_conf, user)
        body.runs.append(_run_started(links, run, scenes=len(gap_conf["scenes"])))
    return JSONResponse(jsonable_encoder(body), status_code=status.HTTP_202_ACCEPTED)


# --- the page ----------------------------------------------------------------------------------

page_router = APIRouter(tags=["page"])


@page_router.get("/ui/activities", include_in_schema=False)
def activities_page() -> FileResponse:
    """The activities page (static HTML; its data comes from the authenticated endpoints)."""
    return FileResponse(
        STATIC_DIR / "activities.html", media_type="text/html", headers=PAGE_SECURITY_HEADERS
    )
