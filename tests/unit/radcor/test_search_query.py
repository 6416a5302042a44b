"""The conf's search reaches the configured catalog's driver with the names the driver maps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from include.collectors.registry import make_driver
from include.radcor.conf import validate_conf
from include.radcor.search import conf_query
from tests.helpers.http_server import LocalHttpServer, json_reply

EMPTY_PAGE = {"type": "FeatureCollection", "features": [], "links": [], "numberMatched": 0}


@pytest.fixture
def stac_api() -> Iterator[LocalHttpServer]:
    server = LocalHttpServer()
    server.route("/v1/search", json_reply(EMPTY_PAGE))
    server.route("/v1/collections/landsat-c2-l2", json_reply({"id": "landsat-c2-l2"}))
    try:
        yield server
    finally:
        server.close()


def _conf(catalog: str, dataset: str) -> dict[str, Any]:
    return {
        "w": -46.0, "s": -13.0, "e": -45.0, "n": -12.0,
        "start": "2011-07-01", "end": "2011-07-31",
        "catalog": catalog, "dataset": dataset, "action": "preview",
        "tasks": [{"type": "download", "collection": "LT5_SR-1"}],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("catalog", "dataset", "platforms"),
    [
        ("earthsearch", "landsat_tm_c2_l2", ["landsat-4", "landsat-5"]),
        ("planetarycomputer", "landsat_etm_c2_l2", ["landsat-7"]),
        ("earthsearch", "landsat_ot_c2_l2", ["landsat-8", "landsat-9"]),
    ],
)
def test_a_landsat_dataset_searches_its_own_platforms_in_the_shared_stac_collection(
    stac_api: LocalHttpServer, catalog: str, dataset: str, platforms: list[str]
) -> None:
    """config/catalogs.yaml maps every sensor to landsat-c2-l2; the platforms still apply."""
    conf = validate_conf(_conf(catalog, dataset))
    driver = make_driver(catalog, catalog_args={"url": stac_api.url + "/v1"})
    try:
        driver.search(conf_query(conf))
    finally:
        driver.close()
    (body,) = [r.json() for r in stac_api.requests_to("/v1/search") if r.method == "POST"]
    assert body["collections"] == ["landsat-c2-l2"]
    assert body["query"]["platform"] == {"in": platforms}
