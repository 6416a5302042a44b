"""The upstream collection builder's endpoints, with its request names and answer shapes.

Served at ``/radcor-api/upstream/...`` and, through ``upstream_paths``, at the upstream's own
``/api/radcor``, ``/api/radcor/restart``, ``/api/activities``, ``/api/collections`` and
``/api/providers``. They answer 200 as the upstream did; invalid input answers 400 with
``{"errors": [{field, message, fix}]}`` (the upstream answered 200 with its form errors).
Authentication and permissions are Airflow's, as on every radcor API route.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, time
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from fastapi import APIRouter, Body, Depends, Query, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from include.common.config import load_catalogs, load_collections
from include.common.errors import FieldProblem, InvalidInputError
from include.radcor.activities import Activity, ActivityQuery
from include.radcor.conf import Action, conf_object
from include.radcor.preview import preview
from include.radcor.upstream import (
    UPSTREAM_DEFAULT_ACTION,
    restart_action_label,
    upstream_activity,
)
from include.radcor.upstream import restart_filters as upstream_restart_filters
from include.radcor.validation import validate_request
from radcor_api import airflow_ops
from radcor_api.models import ErrorResponse, NotRestartable
from radcor_api.routes import (
    COMMON_ERRORS,
    CONF_EXAMPLE,
    RADCOR_DAG_ID,
    Links,
    RestartPlan,
    UserDep,
    _bounded,
    _run_started,
    _search,
    check_plain_text,
    clear_plan,
    plain_request_text,
    plan_restart,
    readable_activities,
    restart_filters,
)

router = APIRouter(
    prefix="/upstream", tags=["upstream"], dependencies=[Depends(plain_request_text)]
)
UPSTREAM_EXAMPLE = {k: v for k, v in CONF_EXAMPLE.items() if k != "action"}


@router.post(
    "/radcor",
    summary="POST /api/radcor as the upstream: preview by default; start adds the run",
    responses={400: {"model": ErrorResponse}, **COMMON_ERRORS},
)
def upstream_radcor(
    request: Request,
    user: UserDep,
    conf: Annotated[
        Any, Body(description="An upstream radcor request", examples=[UPSTREAM_EXAMPLE])
    ],
) -> JSONResponse:
    """Search now and answer the scenes keyed by scene id plus ``Results``.

    Without ``action`` this is a preview (the upstream default). ``action: start`` also
    creates a ``radcor`` run with the request and adds ``runs`` (one entry: its ids and
    links); the scene entries are the same as the preview's.
    """
    raw = {k: v for k, v in conf_object(conf).items() if v is not None}
    raw.setdefault("action", UPSTREAM_DEFAULT_ACTION)
    validated = validate_request(raw)
    airflow_ops.authorize_dags(user, "GET", DagAccessEntity.RUN, [RADCOR_DAG_ID])
    result = preview(_bounded(lambda: _search(validated), "the search"))
    if validated.action == Action.START:
        airflow_ops.authorize_dags(user, "POST", DagAccessEntity.RUN, [RADCOR_DAG_ID])
        run = airflow_ops.trigger_run(RADCOR_DAG_ID, raw, user)
        result["runs"] = [jsonable_encoder(_run_started(Links(request), run))]
    return JSONResponse(result, status_code=status.HTTP_200_OK)


def _merged_plan(user: BaseUser, filters: dict[str, Any]) -> RestartPlan:
    """Plan the restart of every scene id given (this API's filters take one at a time)."""
    scene_ids = filters.pop("scene_ids", None) or [None]
    matched: dict[int, Activity] = {}
    states: dict[Any, str | None] = {}
    selected: dict[Any, str | None] = {}
    not_restartable: dict[int, NotRestartable] = {}
    for scene_id in scene_ids:
        scene_filter = {"scene_id": scene_id} if scene_id else {}
        plan = plan_restart(user, restart_filters({**filters, **scene_filter}), strict_ids=False)
        matched.update((a.id, a) for a in plan.matched)
        states.update(plan.states)
        selected.update(plan.selected)
        not_restartable.update((n.id, n) for n in plan.not_restartable)
    return RestartPlan(list(matched.values()), states, selected, list(not_restartable.values()))


def _upstream_restart(request: Request, user: BaseUser, raw: dict[str, Any]) -> JSONResponse:
    check_plain_text(raw.items())
    filters = upstream_restart_filters(raw)
    action = filters["action"]
    plan = _merged_plan(user, filters)
    body: dict[str, Any] = {
        "action": restart_action_label(raw),
        "total": len(plan.matched),
        "activities": [upstream_activity(a) for a in plan.matched],
        "not_restartable": jsonable_encoder(plan.not_restartable),
    }
    if action == "start" and plan.selected:
        body["cleared"] = jsonable_encoder(clear_plan(user, plan, Links(request)))
    return JSONResponse(body, status_code=status.HTTP_200_OK)


@router.get(
    "/radcor/restart",
    summary="GET /api/radcor/restart as the upstream (id, ids, sceneid, status, action)",
    responses={400: {"model": ErrorResponse}, **COMMON_ERRORS},
)
def upstream_restart_get(request: Request, user: UserDep) -> JSONResponse:
    """Restart by the upstream's query parameters; without ``action`` only lists (upstream)."""
    return _upstream_restart(request, user, dict(request.query_params))


@router.post(
    "/radcor/restart",
    summary="POST /api/radcor/restart as the upstream (the same names in a JSON body)",
    responses={400: {"model": ErrorResponse}, **COMMON_ERRORS},
)
def upstream_restart_post(
    request: Request,
    user: UserDep,
    body: Annotated[dict[str, Any], Body(examples=[{"ids": [1, 2], "action": "start"}])],
) -> JSONResponse:
    """Restart by the upstream's names in a JSON body."""
    return _upstream_restart(request, user, body)


def _period(value: str | None) -> tuple[datetime | None, datetime | None]:
    if not value:
        return None, None
    try:
        first, last = value.split("/")
        since = datetime.combine(datetime.strptime(first, "%Y-%m-%d").date(), time.min, UTC)
        until = datetime.combine(datetime.strptime(last, "%Y-%m-%d").date(), time.max, UTC)
    except ValueError as err:
        raise InvalidInputError(
            FieldProblem("period", f"{value!r} is not a period", "give YYYY-mm-dd/YYYY-mm-dd")
        ) from err
    return since, until


@router.get(
    "/activities",
    summary="GET /api/activities as the upstream (page, per_page, scene_id, collection, type)",
    responses={400: {"model": ErrorResponse}, **COMMON_ERRORS},
)
def upstream_activities(
    user: UserDep,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 10,
    scene_id: str | None = None,
    collection: str | None = None,
    type_: Annotated[str | None, Query(alias="type")] = None,
    period: Annotated[str | None, Query(description="YYYY-mm-dd/YYYY-mm-dd")] = None,
) -> JSONResponse:
    """One page of activities as the upstream paginated them (``total``, ``pages``, ``items``)."""
    since, until = _period(period)
    query = ActivityQuery(
        scene_id=scene_id, collection=collection, task_type=type_, since=since, until=until
    )
    found = readable_activities(user, query, limit=per_page, offset=(page - 1) * per_page)
    return JSONResponse(
        {
            "total": found.total,
            "page": page,
            "per_page": per_page,
            "pages": math.ceil(found.total / per_page),
            "items": [upstream_activity(a) for a in found.activities],
        }
    )


@router.get("/collections", summary="GET /api/collections: the configured collections")
def upstream_collections(user: UserDep) -> JSONResponse:
    """The collections a task node may name (``Name-Version``)."""
    airflow_ops.authorize_dags(user, "GET", DagAccessEntity.RUN, [RADCOR_DAG_ID])
    out = []
    for key, collection in load_collections().items():
        name, _, version = key.rpartition("-")
        out.append(
            {
                "id": key,
                "name": name,
                "version": version,
                "title": collection.title,
                "description": collection.description,
                "collection_type": "collection",
                "grid_ref_sys": collection.tile_system,
            }
        )
    return JSONResponse(out)


@router.get("/providers", summary="GET /api/providers: the configured catalogs")
def upstream_providers(user: UserDep) -> JSONResponse:
    """The catalogs a request's ``catalog`` may name (credentials live in Connections)."""
    airflow_ops.authorize_dags(user, "GET", DagAccessEntity.RUN, [RADCOR_DAG_ID])
    return JSONResponse(
        [
            {
                "name": name,
                "driver": catalog.driver,
                "url": catalog.url,
                "aliases": list(catalog.aliases),
            }
            for name, catalog in load_catalogs().items()
        ]
    )
