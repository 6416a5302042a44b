"""Builders for offline-scene tests: a loopback CDSE first, the demo STAC API as the fallback.

``catalogs_for(cdse, demo_url)`` configures catalogs ``cdse`` (the loopback CDSE, quick in-task
retries) and ``demo`` (the demo STAC API); ``two_providers()`` is ``S2_L1C-1`` with providers
cdse then demo; ``factory_for(catalogs)`` builds drivers with the CDSE test account. ``DEMO_SCENE``
exists in both; ``ONLY_CDSE`` only in CDSE.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from include.collectors.base import CatalogDriver, Credentials, Scene, SearchQuery
from include.collectors.registry import make_driver
from include.common.config import (
    CatalogConfig,
    CollectionConfig,
    ProviderConfig,
    load_collections,
    parse_catalogs,
)
from include.radcor.conf import TaskType
from include.radcor.plan import PlanNode, ScenePlan
from tests.helpers.cdse_server import CdseServer, safe_zip

DEMO_SCENE = "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429"
ONLY_CDSE = "S2B_MSIL1C_20200110T131239_N0208_R138_T23LLF_20200110T150351"
FOOTPRINT = {
    "type": "Polygon",
    "coordinates": [
        [[-45.95, -12.8], [-45.7, -12.8], [-45.7, -12.55], [-45.95, -12.55], [-45.95, -12.8]]
    ],
}
ZIP = safe_zip(DEMO_SCENE, {"manifest.safe": b"<xfdu:XFDU/>", "MTD_MSIL1C.xml": b"<x/>" * 2000})
ACCOUNT = Credentials(username="alice", password="s3cret")  # noqa: S106 - the test server's


def catalogs_for(cdse: CdseServer, demo_url: str, **cdse_options: Any) -> dict[str, CatalogConfig]:
    """Return catalogs ``cdse`` (loopback, 10 ms retry backoff) and ``demo``."""
    options = {"token_url": cdse.token_url, "retry_base_delay_s": 0.01, **cdse_options}
    return parse_catalogs(
        {
            "catalogs": {
                "cdse": {
                    "driver": "cdse",
                    "url": cdse.odata_url,
                    "max_connections": 2,
                    "conn_id": "cdse_default",
                    "options": options,
                },
                "demo": {
                    "driver": "stac",
                    "url": demo_url,
                    "datasets": {"S2MSI1C": "sentinel-2-l1c"},
                },
            }
        }
    )


def two_providers() -> CollectionConfig:
    """``S2_L1C-1`` downloaded from cdse first, then from the demo catalog."""
    return load_collections()["S2_L1C-1"].model_copy(
        update={
            "providers": (
                ProviderConfig(catalog="cdse", dataset="S2MSI1C"),
                ProviderConfig(catalog="demo", dataset="S2MSI1C"),
            )
        }
    )


def factory_for(
    catalogs: Mapping[str, CatalogConfig], credentials: Credentials | None = ACCOUNT
) -> Callable[[str], CatalogDriver]:
    """Build drivers of ``catalogs``; CDSE gets ``credentials``."""

    def build(name: str) -> CatalogDriver:
        return make_driver(
            name, credentials=credentials if name == "cdse" else None, catalogs=dict(catalogs)
        )

    return build


def cdse_scene(factory: Callable[[str], CatalogDriver], scene_id: str = DEMO_SCENE) -> Scene:
    """Return ``scene_id`` as the loopback CDSE's search finds it."""
    with factory("cdse") as driver:
        found = driver.search(SearchQuery(dataset="S2MSI1C", scene_ids=(scene_id,)))
    assert len(found) == 1, found
    return found[0]


def download_plan(scene: Scene, **args: Any) -> ScenePlan:
    """A plan with one download node of ``S2_L1C-1`` whose args are ``args``."""
    return ScenePlan(scene, (PlanNode("0", TaskType.DOWNLOAD, "S2_L1C-1", args=dict(args)),))
