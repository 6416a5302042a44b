"""Airflow glue for the collection builder: the DAG factory, and the radcor API plugin.

The plugin mounts the radcor-compatible REST API (``routes.py``) at ``/radcor-api`` in the Airflow
API server, answers the upstream's own paths (``/api/radcor``...) through a root middleware
(``upstream_paths.py``), refuses a radcor run's invalid conf with each field's fix
(``trigger_check.py``), adds the *Radcor activities* page to the UI's navigation (an external
view served by that API), and a listener that readies the published collections' assets when
a run starts (``listeners.py``). Airflow imports this file in every component that loads
plugins, so it stays cheap: the FastAPI app is built on its first request, in the API server only.
``plugins/.airflowignore`` keeps Airflow's plugin loader from importing the other modules here
as top-level modules.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from radcor_api import listeners
from radcor_api.names import URL_PREFIX
from radcor_api.trigger_check import TriggerConfCheckMiddleware
from radcor_api.upstream_paths import UpstreamPathsMiddleware

PAGE_ROUTE = "radcor-activities"


class LazyRadcorApp:
    """An ASGI app that builds the radcor FastAPI app when the first request arrives."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from radcor_api.app import create_app

                    self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one ASGI connection with the real app."""
        await self._get()(scope, receive, send)

    def __repr__(self) -> str:
        return "radcor_api.app:create_app (built on first request)"


class RadcorApiPlugin(AirflowPlugin):
    """The radcor API and the activities page."""

    name = "radcor_api"
    fastapi_apps = [  # noqa: RUF012 - Airflow reads these class attributes
        {"app": LazyRadcorApp(), "url_prefix": URL_PREFIX, "name": "Radcor API"}
    ]
    fastapi_root_middlewares = [  # noqa: RUF012
        # the upstream's /api/radcor, /api/radcor/restart, /api/activities (upstream_paths.py)
        {"middleware": UpstreamPathsMiddleware, "name": "Radcor upstream paths"},
        # a radcor conf refused with each field's fix, not a jsonschema dump (trigger_check.py)
        {"middleware": TriggerConfCheckMiddleware, "name": "Radcor trigger conf check"},
    ]
    listeners = [listeners]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {
            "name": "Radcor activities",
            "href": f"{URL_PREFIX}/ui/activities",
            "url_route": PAGE_ROUTE,
            "destination": "nav",
            "category": "browse",
        }
    ]
