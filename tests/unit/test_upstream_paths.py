"""The upstream's URLs are rewritten to the radcor API's upstream routes, nothing else is."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from radcor_api.upstream_paths import UpstreamPathsMiddleware, upstream_target


@pytest.mark.parametrize(
    ("path", "root", "target"),
    [
        ("/api/radcor", "", "/radcor-api/upstream/radcor"),
        ("/api/radcor/", "", "/radcor-api/upstream/radcor"),
        ("/api/radcor/restart", "", "/radcor-api/upstream/radcor/restart"),
        ("/api/activities", "", "/radcor-api/upstream/activities"),
        ("/airflow/api/radcor", "/airflow", "/airflow/radcor-api/upstream/radcor"),
        ("/api/v2/dags", "", None),
        ("/api/radcorx", "", None),
        ("/radcor-api/radcor", "", None),
        ("/api", "", None),
        ("/api/stats/active", "", "/radcor-api/upstream/not-served/api/stats/active"),
        ("/api/grids/1/", "", "/radcor-api/upstream/not-served/api/grids/1"),
        ("/api/gridsx", "", None),
        ("/api/utils/count-activities", "", "/radcor-api/upstream/utils/count-activities"),
        ("/api/utils/x", "", "/radcor-api/upstream/not-served/api/utils/x"),
        ("/api/check-scenes/", "", "/radcor-api/upstream/check-scenes"),
    ],
)
def test_upstream_target(path: str, root: str, target: str | None) -> None:
    assert upstream_target(path, root) == target


def test_middleware_rewrites_http_paths_only() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(scope))

    middleware = UpstreamPathsMiddleware(app)
    for scope in (
        {"type": "http", "path": "/api/radcor/restart", "root_path": ""},
        {"type": "http", "path": "/api/v2/version", "root_path": ""},
        {"type": "lifespan"},
    ):
        asyncio.run(middleware(scope, None, None))
    assert seen[0]["path"] == "/radcor-api/upstream/radcor/restart"
    assert seen[0]["raw_path"] == b"/radcor-api/upstream/radcor/restart"
    assert seen[1]["path"] == "/api/v2/version"
    assert seen[2] == {"type": "lifespan"}
