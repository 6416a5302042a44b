"""The radcor API app: this project's routes, the upstream-compatible routes and the page.

Built on the first request by the plugin (``LazyRadcorApp``) and mounted at ``/radcor-api``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request, Response, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from include.common.errors import FieldProblem, InvalidInputError
from include.radcor.conf import params_schema
from radcor_api import routes, upstream_routes
from radcor_api.routes import BODY_FIX, STATIC_DIR, request_problems


async def _invalid_input(_: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, InvalidInputError)  # noqa: S101 - registered for this class only
    return JSONResponse(err.to_dict(), status_code=status.HTTP_400_BAD_REQUEST)


async def _invalid_request(request: Request, err: Exception) -> JSONResponse:
    """FastAPI's own checks of a request (body JSON, query types): 400 with the error list.

    The error list, not FastAPI's 422 shape (docs/api.md); the input is never echoed.
    """
    assert isinstance(err, RequestValidationError)  # noqa: S101 - registered for this class only
    return await _invalid_input(request, InvalidInputError(request_problems(err.errors())))


async def _http_error(request: Request, err: Exception) -> Response:
    """A body FastAPI could not read (bad UTF-8, nested too deep) is a 400 error list too."""
    assert isinstance(err, StarletteHTTPException)  # noqa: S101 - registered for this class only
    if err.status_code == status.HTTP_400_BAD_REQUEST and isinstance(err.detail, str):
        problem = FieldProblem("body", f"cannot be read ({err.detail.lower()})", BODY_FIX)
        return await _invalid_input(request, InvalidInputError(problem))
    return await http_exception_handler(request, err)


def _conf_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the conf's JSON schema for OpenAPI and the task node schema it refers to."""
    properties: dict[str, Any] = {}
    node: dict[str, Any] = {}
    for name, schema in params_schema().items():
        schema = {k: v for k, v in schema.items() if k != "default"}
        if "$defs" in schema:
            node = schema.pop("$defs")["node"]
        properties[name] = schema
    text = json.dumps(
        {"type": "object", "properties": properties, "required": ["catalog", "dataset"]}
    )
    text = text.replace("#/$defs/node", "#/components/schemas/RadcorTaskNode")
    node_text = json.dumps(node).replace("#/$defs/node", "#/components/schemas/RadcorTaskNode")
    return json.loads(text), json.loads(node_text)


def create_app() -> FastAPI:
    """Return the radcor API app (mounted by the plugin at ``/radcor-api``)."""
    app = FastAPI(
        title="Radcor API",
        version="1",
        description=routes.__doc__,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.include_router(routes.router)
    app.include_router(upstream_routes.router)
    app.include_router(routes.page_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(InvalidInputError, _invalid_input)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for operation in (op for ops in schema["paths"].values() for op in ops.values()):
            operation.get("responses", {}).pop("422", None)  # answered as 400 (_invalid_request)
        for unused in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(unused, None)
        conf_schema, node = _conf_schema()
        schema.setdefault("components", {}).setdefault("schemas", {})["RadcorTaskNode"] = node
        for path in ("/radcor", "/radcor/check", "/upstream/radcor"):
            content = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
            content["schema"] = {
                **conf_schema,
                "description": content["schema"].get("description", "A radcor conf"),
            }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
