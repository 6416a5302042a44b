"""The upstream collection builder's URLs, answered by the radcor API beside its own.

Upstream clients call ``/api/radcor``, ``/api/radcor/restart`` and ``/api/activities``. An Airflow
plugin cannot mount an app at ``/api``: Airflow mounts plugin apps before its own ``/api/v2``
routes, so a mount at ``/api`` would take every ``/api/v2`` request too. Instead this root
middleware rewrites exactly these paths (nothing else under ``/api``) to the radcor API's
upstream-compatible routes, which then run with Airflow's authentication as every other route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

UPSTREAM_PREFIX = "/radcor-api/upstream"
UPSTREAM_PATHS: dict[str, str] = {
    "/api/radcor": f"{UPSTREAM_PREFIX}/radcor",
    "/api/radcor/restart": f"{UPSTREAM_PREFIX}/radcor/restart",
    "/api/activities": f"{UPSTREAM_PREFIX}/activities",
    "/api/collections": f"{UPSTREAM_PREFIX}/collections",
    "/api/providers": f"{UPSTREAM_PREFIX}/providers",
    "/api/check-scenes": f"{UPSTREAM_PREFIX}/check-scenes",
    **{
        f"/api/utils/{name}": f"{UPSTREAM_PREFIX}/utils/{name}"
        for name in (
            "count-activities",
            "collections-available",
            "count-unsuccessfully-activities",
        )
    },
}
"""Upstream path (as the upstream's Flask blueprint declared it) -> the route that answers it."""

NOT_SERVED_PREFIXES = (
    "/api/stats/",
    "/api/utils/",
    "/api/grids/",
    "/api/collections/",
)
"""The upstream's other routes: answered 404 naming what replaces them, not Airflow's bare 404."""
NOT_SERVED = f"{UPSTREAM_PREFIX}/not-served"


def upstream_target(path: str, root_path: str = "") -> str | None:
    """Return the path that answers an upstream ``path``, or None when it is not one.

    A trailing slash is accepted (the upstream's own docstring calls ``/api/radcor/``). The
    upstream routes not served here go to one route that says what replaces each.
    """
    relative = path[len(root_path) :] if root_path and path.startswith(root_path) else path
    if len(relative) > 1:
        relative = relative.rstrip("/")
    target = UPSTREAM_PATHS.get(relative)
    if target is None and (relative + "/").startswith(NOT_SERVED_PREFIXES):
        target = f"{NOT_SERVED}{relative}"
    return None if target is None else f"{root_path}{target}"


class UpstreamPathsMiddleware:
    """ASGI middleware: serve the upstream's paths by the radcor API's upstream routes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Rewrite an upstream path, then hand the request on unchanged otherwise."""
        if scope.get("type") == "http":
            target = upstream_target(str(scope.get("path", "")), str(scope.get("root_path", "")))
            if target is not None:
                scope = {**scope, "path": target, "raw_path": quote(target).encode("ascii")}
        await self.app(scope, receive, send)
