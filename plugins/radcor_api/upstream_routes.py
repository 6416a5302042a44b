"""The upstream collection builder's endpoints, with its request names and answer shapes.

Served at ``/radcor-api/upstream/...`` and, through ``upstream_paths``, at the upstream's own
``/api/radcor``, ``/api/radcor/restart``, ``/api/activities``, ``/api/collections``,
``/api/providers``, ``/api/check-scenes`` and ``/api/utils/...`` (``upstream_utils``). They
answer 200 as the upstream did; invalid input answers 400 with
``{"errors": [{field, message, fix}]}`` (the upstream answered 200 with its form errors); the
upstream routes not served answer 404 naming their replacement. Bodies are read as the
upstream's scripts send them (``_body_object``). Authentication and permissions are
Airflow's, as on every radcor API route.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, time
from typing import Annotated, Any
from urllib.parse import parse_qsl

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from fastapi import APIRouter, Body, Depends, Query, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from include.catalog.registry import default_backend
from include.common.config import load_catalogs, load_collections
from include.common.errors import FieldProblem, InvalidInputError
from include.radcor.activities import Activity, ActivityQuery
from include.radcor.conf import Action, conf_object
from include.radcor.gaps import check_gaps
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
    BODY_FIX,
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
from radcor_api.upstream_check import check_answer, check_conf
from radcor_api.upstream_utils import check_collection_name
from radcor_api.upstream_utils import router as utils_router

router = APIRouter(
    prefix="/upstream", tags=["upstream"], dependencies=[Depends(plain_request_text)]
)
router.include_router(utils_router)
UPSTREAM_EXAMPLE = {k: v for k, v in CONF_EXAMPLE.items() if k != "action"}


def _body_text(raw: bytes | str) -> str:
    try:
        return raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as err:
        raise InvalidInputError(FieldProblem("body", "is not UTF-8 text", BODY_FIX)) from err


def _body_object(raw: Any, content_type: str | None, *, form_ok: bool) -> Any:
    """Return a request body as the upstream's ``request.get_json()`` read it.

    A body FastAPI parsed as JSON is returned as is (an object, or the array or value that
    ``conf_object`` then refuses as every other door does). JSON sent without
    ``Content-Type: application/json`` (``curl --data``, ``requests.post(data=json.dumps(...))``)
    is parsed here; a form-encoded body is read as its fields when ``form_ok`` (restart's flat
    names), else refused. Empty: None.

    Raises:
        InvalidInputError: on ``body`` naming what was sent and what to send instead.
    """
    kind = (content_type or "no Content-Type").split(";")[0].strip()
    if not isinstance(raw, bytes | str) or (isinstance(raw, str) and kind == "application/json"):
        return raw  # parsed by FastAPI (a JSON string value stays a string)
    text = _body_text(raw).strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        fields = parse_qsl(text, keep_blank_values=True) if "=" in text else []
        if form_ok and fields and kind in ("application/x-www-form-urlencoded", "no Content-Type"):
            return dict(fields)
        if text[0] in "{[":
            message = f"is not valid JSON ({err.msg} at character {err.pos})"
            raise InvalidInputError(FieldProblem("body", message, BODY_FIX)) from err
        raise InvalidInputError(
            FieldProblem("body", f"is not a JSON object (sent as {kind})", BODY_FIX)
        ) from err


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
    body = _body_object(conf, request.headers.get("content-type"), form_ok=False)
    raw = {k: v for k, v in conf_object(body).items() if v is not None}
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


async def _request_body(request: Request) -> bytes:
    """The raw body: restart's GET reads a body too (the upstream's scripts send one)."""
    return await request.body()


BodyBytes = Annotated[bytes, Depends(_request_body)]


def _upstream_restart(request: Request, user: BaseUser, sent: Any) -> JSONResponse:
    """Restart by the query's names and, when the request has one, the body's (query first)."""
    found = _body_object(sent, request.headers.get("content-type"), form_ok=True)
    if found is not None and not isinstance(found, Mapping):
        raise InvalidInputError(
            FieldProblem("body", "must be a JSON object, not a JSON array or value", BODY_FIX)
        )
    raw = {**(found or {}), **request.query_params}
    check_plain_text(raw.items())
    check_collection_name(raw.get("collection_id"), "collection_id")
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
def upstream_restart_get(request: Request, user: UserDep, body: BodyBytes) -> JSONResponse:
    """Restart by the upstream's query parameters; without ``action`` only lists (upstream).

    A JSON body sent on GET (``requests.get(url, json=...)``) is read too.
    """
    return _upstream_restart(request, user, body)


@router.post(
    "/radcor/restart",
    summary="POST /api/radcor/restart as the upstream (the same names in a JSON body)",
    responses={400: {"model": ErrorResponse}, **COMMON_ERRORS},
)
def upstream_restart_post(
    request: Request,
    user: UserDep,
    body: Annotated[Any, Body(examples=[{"ids": [1, 2], "action": "start"}])] = None,
) -> JSONResponse:
    """Restart by the upstream's names in a JSON body (or a form, or the query string)."""
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
    check_collection_name(collection, "collection")
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
                "identifier": key,
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
    """The catalogs a request's ``catalog`` may name (credentials live in Connections).

    ``id`` is the catalog's position in ``config/catalogs.yaml`` (the upstream's was a row id).
    """
    airflow_ops.authorize_dags(user, "GET", DagAccessEntity.RUN, [RADCOR_DAG_ID])
    return JSONResponse(
        [
            {
                "id": position,
                "name": name,
                "driver": catalog.driver,
                "url": catalog.url,
                "aliases": list(catalog.aliases),
            }
            for position, (name, catalog) in enumerate(load_catalogs().items(), start=1)
        ]
    )


@router.post(
    "/check-scenes",
    summary="POST /api/check-scenes as the upstream: the catalog's scenes against the published",
    responses={400: {"model": ErrorResponse}, **COMMON_ERRORS},
)
def upstream_check_scenes(
    request: Request,
    user: UserDep,
    body: Annotated[
        Any,
        Body(
            examples=[
                {
                    "catalog": "CDSE",
                    "dataset": "S2MSI1C",
                    "collections": ["S2_L1C-1"],
                    "tiles": ["23LLF"],
                    "start_date": "2020-01-01",
                    "end_date": "2020-01-31",
                }
            ]
        ),
    ],
) -> JSONResponse:
    """The gap check (``/radcor-api/radcor/check``) asked and answered in the upstream's names."""
    found = _body_object(body, request.headers.get("content-type"), form_ok=False)
    validated = validate_request(check_conf(dict(conf_object(found))))
    airflow_ops.authorize_dags(user, "GET", DagAccessEntity.RUN, [RADCOR_DAG_ID])
    backend = default_backend()
    report = _bounded(
        lambda: check_gaps(validated, _search(validated), backend.exists), "the scene check"
    )
    return JSONResponse(check_answer(report))


_REPLACEMENTS = {
    "/api/stats/": "Celery worker statistics do not exist here: list running activities with "
    "GET /radcor-api/radcor/activities?status=running, or see Airflow's UI",
    "/api/utils/": "count per status and day with GET /api/utils/count-activities?start_date="
    "YYYY-mm-dd&last_date=YYYY-mm-dd (one day each), or list with GET /api/activities",
    "/api/grids/": "grids are not stored here: give MGRS tiles (23LLF) or WRS-2 path/rows "
    "(221069) in a request's tiles",
    "/api/collections/": "collections are configured, not stored: GET /api/collections lists "
    "them; published items are in the STAC catalog",
}


@router.api_route(
    "/not-served/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
def upstream_not_served(path: str) -> JSONResponse:
    """The upstream's routes this project does not serve: 404 naming what replaces each."""
    route = "/" + path.strip("/")
    fix = next(
        (text for prefix, text in _REPLACEMENTS.items() if (route + "/").startswith(prefix)),
        "see docs/migrating.md",
    )
    problem = FieldProblem("path", f"{route} is an upstream route not served here", fix)
    return JSONResponse(InvalidInputError(problem).to_dict(), status_code=404)
