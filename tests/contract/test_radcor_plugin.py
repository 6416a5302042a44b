"""The radcor API plugin as Airflow loads it: one plugin, a legal mount, a complete OpenAPI."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
STATIC = PLUGINS / "radcor_api" / "static"


def test_plugin_loader_imports_only_the_plugin_entry_point() -> None:
    from airflow._shared.module_loading import find_path_from_directory

    with warnings.catch_warnings():  # pathspec's deprecation of the pattern class Airflow uses
        warnings.simplefilter("ignore", DeprecationWarning)
        files = {
            Path(p).relative_to(PLUGINS).as_posix()
            for p in find_path_from_directory(PLUGINS, ".airflowignore")
        }
    assert {f for f in files if f.endswith(".py")} == {"radcor_api/__init__.py"}


def test_plugin_mounts_the_api_outside_airflow_prefixes_and_links_its_page() -> None:
    from airflow.api_fastapi.app import RESERVED_URL_PREFIXES
    from radcor_api import LazyRadcorApp, RadcorApiPlugin

    (app,) = RadcorApiPlugin.fastapi_apps
    assert isinstance(app["app"], LazyRadcorApp)
    assert app["url_prefix"] == "/radcor-api"
    assert not any(app["url_prefix"].startswith(p) for p in RESERVED_URL_PREFIXES)
    (view,) = RadcorApiPlugin.external_views
    assert view["href"] == "/radcor-api/ui/activities"
    assert view["url_route"] and view["destination"] == "nav"


def test_plugin_serves_the_upstream_paths_by_a_root_middleware() -> None:
    from airflow.api_fastapi.app import RESERVED_URL_PREFIXES
    from radcor_api import RadcorApiPlugin
    from radcor_api.trigger_check import TriggerConfCheckMiddleware
    from radcor_api.upstream_paths import UPSTREAM_PATHS, UpstreamPathsMiddleware

    middlewares = [entry["middleware"] for entry in RadcorApiPlugin.fastapi_root_middlewares]
    assert middlewares == [UpstreamPathsMiddleware, TriggerConfCheckMiddleware]
    assert {"/api/radcor", "/api/radcor/restart", "/api/activities"} <= set(UPSTREAM_PATHS)
    for path in UPSTREAM_PATHS:  # none of Airflow's own
        assert not any(path.startswith(prefix) for prefix in RESERVED_URL_PREFIXES)


def test_plugin_registers_the_run_start_listener_with_airflow() -> None:
    from airflow.listeners.listener import get_listener_manager
    from radcor_api import RadcorApiPlugin, listeners

    assert RadcorApiPlugin.listeners == [listeners]
    manager = get_listener_manager()
    manager.add_listener(listeners)  # what Airflow's plugin manager does with plugin listeners
    try:
        hooks = manager.pm.hook.on_dag_run_running.get_hookimpls()
        assert listeners in [hook.plugin for hook in hooks]
    finally:
        manager.pm.unregister(listeners)


def test_openapi_schema_documents_every_endpoint_and_the_conf() -> None:
    from radcor_api.app import create_app

    schema = create_app().openapi()
    paths = schema["paths"]
    expected = {
        ("/radcor", "post"),
        ("/radcor/restart", "get"),
        ("/radcor/restart", "post"),
        ("/radcor/activities", "get"),
        ("/radcor/activities/{activity_id}", "get"),
        ("/radcor/activities/{activity_id}/quicklook", "get"),
        ("/radcor/check", "post"),
        ("/radcor/items/{collection}/{item_id}", "get"),
        ("/upstream/radcor", "post"),
        ("/upstream/radcor/restart", "get"),
        ("/upstream/radcor/restart", "post"),
        ("/upstream/activities", "get"),
    }
    assert expected <= {(path, method) for path, ops in paths.items() for method in ops}
    post = paths["/radcor"]["post"]
    assert {"200", "202", "400", "401", "504"} <= set(post["responses"])
    assert "422" not in post["responses"], "invalid requests answer 400 (docs/api.md)"
    conf = post["requestBody"]["content"]["application/json"]["schema"]
    assert {"catalog", "dataset", "tasks", "action"} <= set(conf["properties"])
    assert "#/$defs" not in str(schema)
    assert "RadcorTaskNode" in schema["components"]["schemas"]
    assert post.get("security"), "the endpoints must declare Airflow's auth"


@pytest.fixture(scope="module")
def client():  # noqa: ANN201 - a Starlette TestClient
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from radcor_api import LazyRadcorApp

    root = FastAPI()
    root.mount("/radcor-api", LazyRadcorApp())
    with TestClient(root) as test_client:
        yield test_client


def test_page_and_local_assets_are_served_without_internet(client) -> None:  # noqa: ANN001
    page = client.get("/radcor-api/ui/activities")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert references and not [r for r in references if "//" in r]
    for reference in references:
        asset = client.get("/radcor-api/ui/" + reference)
        assert asset.status_code == 200, reference
    script = (STATIC / "activities.js").read_text()
    assert "http://" not in script and "https://" not in script
    assert (STATIC / "leaflet" / "LICENSE").read_text().startswith("BSD 2-Clause")


def test_data_endpoints_without_credentials_answer_401(client) -> None:  # noqa: ANN001
    for method, path in (
        ("GET", "/radcor-api/radcor/activities"),
        ("POST", "/radcor-api/radcor"),
        ("GET", "/radcor-api/radcor/restart?ids=1"),
    ):
        response = client.request(method, path, json={} if method == "POST" else None)
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
