"""Trigger of the radcor DAG: a conf the radcor validation refuses answers 400 naming the fix.

Airflow checks a run's conf against the DAG's Params when ``POST /api/v2/dags/{dag_id}/dagRuns``
creates it (the trigger form posts there too) and answers a violation with the jsonschema
error as it is: the failed keyword, the whole schema and the instance, which the form shows as
the reason. This root middleware checks the conf of an authorised trigger of a radcor DAG with
``validate_request`` first (every problem, each with its field, the form's label and the fix;
the ``validate`` task runs the same function) and answers those problems as a 400 whose
``detail`` the form shows. Anything else (another path or DAG, a caller Airflow would refuse,
a body that is not a JSON object with a ``conf`` object, a conf the validation accepts) goes to
Airflow unchanged, which then authenticates, checks the Params and creates the run as usual.

Airflow imports this module in every component that loads plugins: the heavy imports (the
validation, Airflow's auth) happen on the first matching request, in the API server only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CHECKED_DAG_IDS = frozenset({"radcor"})
"""DAGs whose whole conf is a radcor conf (a pipeline DAG's comes from its YAML and interval)."""

_TRIGGER_PATH = re.compile(r"^/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/?$")
_MAX_BODY_BYTES = 4 * 1024 * 1024


def checked_dag_id(scope: Scope) -> str | None:
    """Return the radcor DAG id a request triggers a run of, or None for any other request."""
    if scope.get("type") != "http" or scope.get("method") != "POST":
        return None
    path = str(scope.get("path", ""))
    root_path = str(scope.get("root_path", ""))
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    match = _TRIGGER_PATH.match(path)
    if match is None or match.group("dag_id") not in CHECKED_DAG_IDS:
        return None
    return match.group("dag_id")


def conf_of(body: bytes) -> dict[str, Any] | None:
    """Return the ``conf`` object of a trigger body, or None when there is none to check."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return None
    conf = data.get("conf") if isinstance(data, dict) else None
    return conf if isinstance(conf, dict) else None


def problem_text(problems: Iterable[Any], titles: Mapping[str, str]) -> str:
    """Return the problems as the form shows them: one line each, field (form label), fix.

    Args:
        problems: ``FieldProblem``s (``field``, ``message``, ``fix``).
        titles: the form's label of each top-level conf field (its Param's ``title``).
    """
    lines = []
    for problem in problems:
        top = re.split(r"[.\[]", problem.field, maxsplit=1)[0]
        label = titles.get(top)
        where = f"{problem.field} ({label})" if label and label.lower() != top else problem.field
        lines.append(f"- {where}: {problem.message}. Fix: {problem.fix}.")
    count = "1 problem" if len(lines) == 1 else f"{len(lines)} problems"
    return f"The radcor conf has {count}; nothing was started.\n" + "\n".join(lines)


def _refusal(conf: dict[str, Any]) -> dict[str, Any] | None:
    """Return the 400 body for a conf the radcor validation refuses, or None when it passes."""
    from include.common.errors import InvalidInputError
    from include.radcor.conf import params_schema
    from include.radcor.validation import validate_request

    try:
        validate_request(conf)
    except InvalidInputError as err:
        titles = {name: str(schema.get("title", name)) for name, schema in params_schema().items()}
        return {"detail": problem_text(err.problems, titles), **err.to_dict()}
    return None


async def _may_trigger(scope: Scope, body: bytes, dag_id: str) -> bool:
    """Return True when Airflow would let the caller create runs of ``dag_id``."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import bearer_scheme
    from fastapi import HTTPException, Request

    from radcor_api.airflow_ops import authenticated_user, authorize_dags

    request = Request(scope, _replaying(body))
    try:
        user = await authenticated_user(request, None, await bearer_scheme(request))
        authorize_dags(user, "POST", DagAccessEntity.RUN, [dag_id])
    except HTTPException:
        return False
    return True


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """Return the request body and whether it was read whole (not past the size limit)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message.get("type") != "http.request":
            return b"".join(chunks), False
        chunk = bytes(message.get("body", b""))
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body") or size > _MAX_BODY_BYTES:
            return b"".join(chunks), not message.get("more_body")


def _replaying(body: bytes, receive: Receive | None = None, *, more: bool = False) -> Receive:
    """Return an ASGI ``receive`` that hands ``body`` over again, then defers to ``receive``.

    ``more`` says that the body continues in ``receive`` (it was not read whole); after a whole
    body, ``receive`` only reports the client's disconnect, as it would have.
    """
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        if receive is not None:
            return await receive()
        return {"type": "http.disconnect"}

    return replay


async def _send_json(send: Send, status: int, data: Mapping[str, Any]) -> None:
    payload = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class TriggerConfCheckMiddleware:
    """ASGI middleware: refuse an invalid radcor conf at trigger time with its fixes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the conf of a radcor trigger; hand every other request on unchanged."""
        dag_id = checked_dag_id(scope)
        if dag_id is None:
            await self.app(scope, receive, send)
            return
        body, whole = await _read_body(receive)
        conf = conf_of(body) if whole else None
        if conf is not None and await _may_trigger(scope, body, dag_id):
            from anyio import to_thread

            refusal = await to_thread.run_sync(_refusal, conf)  # reads config files
            if refusal is not None:
                await _send_json(send, 400, refusal)
                return
        await self.app(scope, _replaying(body, receive, more=not whole), send)
