"""The upstream's activity counters (``/api/utils/...``), counted from the activity table.

``count-activities`` answers ``{Celery status: count}`` (only the statuses present, as the
upstream's GROUP BY did), ``collections-available`` the collections that have activities and
``count-unsuccessfully-activities`` ``{"result": <activities whose status is FAILURE>}``.
Filters as upstream: ``start_date``/``last_date`` (``YYYY-mm-dd``; here when the activity last
changed), ``collection`` (``Name-Version``) and ``type``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from include.common.config import load_collections
from include.common.errors import FieldProblem, InvalidInputError
from include.radcor.activities import ActivityQuery, ActivityState
from include.radcor.upstream import celery_status
from radcor_api.models import ErrorResponse
from radcor_api.routes import COMMON_ERRORS, UserDep, readable_activities

router = APIRouter(prefix="/utils")
ERRORS: dict[int | str, dict[str, Any]] = {400: {"model": ErrorResponse}, **COMMON_ERRORS}


def celery_groups() -> dict[str, tuple[str, ...]]:
    """Return each Celery status name and the activity states it shows."""
    groups: dict[str, list[str]] = defaultdict(list)
    for state in ActivityState:
        groups[celery_status(state)].append(str(state))
    return {name: tuple(states) for name, states in groups.items()}


def check_collection_name(value: Any, field: str) -> None:
    """Refuse the upstream's numeric collection ids: collections here are ``Name-Version``.

    Raises:
        InvalidInputError: naming ``field`` and the configured names to give instead.
    """
    if value is not None and str(value).strip().isdigit():
        names = ", ".join(load_collections())
        raise InvalidInputError(
            FieldProblem(
                field,
                f"{value} is a database id of the upstream; collections here are Name-Version",
                f"give a configured collection's Name-Version (GET /api/collections): {names}",
            )
        )


def _day(value: str | None, field: str, at: time) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), at, UTC)
    except ValueError as err:
        raise InvalidInputError(
            FieldProblem(field, f"{value!r} is not a date", "give YYYY-mm-dd, e.g. 2020-01-31")
        ) from err


def _query(
    start_date: str | None, last_date: str | None, collection: str | None, type_: str | None
) -> ActivityQuery:
    check_collection_name(collection, "collection")
    return ActivityQuery(
        collection=collection or None,
        task_type=type_ or None,
        since=_day(start_date, "start_date", time.min),
        until=_day(last_date, "last_date", time.max),
    )


def _count(user: BaseUser, query: ActivityQuery, states: tuple[str, ...]) -> int:
    return readable_activities(user, replace(query, statuses=states), limit=1).total


@router.get("/count-activities", summary="Activities per Celery status", responses=ERRORS)
def count_activities(
    user: UserDep,
    start_date: str | None = None,
    last_date: str | None = None,
    collection: str | None = None,
    type_: Annotated[str | None, Query(alias="type")] = None,
) -> JSONResponse:
    """``{Celery status: count}`` of the activities matching the filters (zero counts left out)."""
    query = _query(start_date, last_date, collection, type_)
    counts = {name: _count(user, query, states) for name, states in celery_groups().items()}
    return JSONResponse({name: count for name, count in counts.items() if count})


@router.get("/collections-available", summary="Collections with activities", responses=ERRORS)
def collections_available(user: UserDep) -> JSONResponse:
    """``{"collections": [...]}``: the configured collections that have an activity."""
    every_state = tuple(str(state) for state in ActivityState)
    names = [
        name
        for name in load_collections()
        if _count(user, ActivityQuery(collection=name), every_state)
    ]
    return JSONResponse({"collections": names})


@router.get("/count-unsuccessfully-activities", summary="Failed activities", responses=ERRORS)
def count_unsuccessful(user: UserDep) -> JSONResponse:
    """``{"result": n}``: the activities whose status is ``FAILURE``."""
    return JSONResponse({"result": _count(user, ActivityQuery(), celery_groups()["FAILURE"])})
