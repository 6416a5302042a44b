"""``scenes`` as catalog item ids, searched through the STAC API's ``ids`` (issue #22).

A loopback STAC API answers ``POST /search`` by the protocol (``ids`` and ``collections``
select items) from the real items recorded from Earth Search and Planetary Computer; the
driver, given an item id, finds the item and returns the product it names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from include.collectors.base import SearchQuery
from include.collectors.scene_ids import catalog_item_id
from include.collectors.stac_api import StacApiDriver
from tests.helpers.http_server import LocalHttpServer, Reply, Request

MULTI = "test_item_search/test_multiple_collections.yaml"  # Earth Search
C1 = "test_cli/TestCLISearch.test_filter[inprocess].yaml"  # Earth Search
PC = "test_item_search/TestItemSearch.test_datetime_results.yaml"  # Planetary Computer
RECORDED = (  # (cassette, catalog, dataset, collection)
    (MULTI, "earthsearch", "S2MSI2A", "sentinel-2-l2a"),
    (MULTI, "earthsearch", "landsat_ot_c2_l2", "landsat-c2-l2"),
    (C1, "earthsearch", "S2MSI2A", "sentinel-2-c1-l2a"),
    (PC, "planetarycomputer", "S2MSI2A", "sentinel-2-l2a"),
)


def _items(cassette: Any, relative: str) -> list[dict[str, Any]]:
    """Every item the recorded answers of ``relative`` hold, whatever their collection."""
    items: list[dict[str, Any]] = []
    for interaction in cassette(relative).interactions:
        try:
            page = interaction.response_json()
        except (ValueError, TypeError):
            continue
        features = page.get("features") if isinstance(page, dict) else None
        items += [f for f in features or [] if isinstance(f, dict) and "collection" in f]
    return items


def _stac_search(items: list[dict[str, Any]]) -> Any:
    """``POST /search`` as the STAC API answers it: ``ids`` and ``collections`` select items."""

    def handle(request: Request) -> Reply:
        body = request.json()
        found = [
            item
            for item in items
            if item["id"] in body.get("ids", [item["id"]])
            and item["collection"] in body.get("collections", [item["collection"]])
        ]
        page = {"type": "FeatureCollection", "features": found, "links": []}
        return Reply(200, json.dumps(page).encode())

    return handle


@pytest.fixture
def driver(http_server: LocalHttpServer) -> Iterator[Any]:
    made: list[StacApiDriver] = []

    def build(catalog: str, dataset: str, collection: str) -> StacApiDriver:
        options = {"catalog": catalog, "page_size": 10, "datasets": {dataset: collection}}
        made.append(StacApiDriver(url=http_server.url + "/v1", options=options))
        return made[-1]

    yield build
    for each in made:
        each.close()


@pytest.mark.parametrize(("relative", "catalog", "dataset", "collection"), RECORDED)
def test_search_by_catalog_item_id_returns_the_product_it_names(
    http_server: LocalHttpServer,
    cassette: Any,
    driver: Any,
    relative: str,
    catalog: str,
    dataset: str,
    collection: str,
) -> None:
    items = _items(cassette, relative)
    http_server.route("/v1/search", _stac_search(items))
    wanted = [item for item in items if item["collection"] == collection][-1]
    assert len(items) > 1, f"{relative}: the server should hold other items too"
    assert catalog_item_id(wanted["id"]) is not None, wanted["id"]

    scenes = driver(catalog, dataset, collection).search(
        SearchQuery(dataset=dataset, scene_ids=(wanted["id"],))
    )

    [scene] = scenes
    props = wanted["properties"]
    product = props.get("s2:product_uri") or props.get("landsat:product_id")
    if product:
        assert scene.scene_id == str(product).removesuffix(".SAFE")
    else:  # Earth Search's Landsat items name the product id only in their asset hrefs
        parts = scene.scene_id.split("_")
        assert "_".join(parts[:4] + parts[5:]) == wanted["id"], scene.scene_id
    assert catalog_item_id(scene.scene_id) is None  # a product name, never the item id
    assert scene.properties["stac_id"] == wanted["id"]
    bodies = [r.json() for r in http_server.requests_to("/v1/search") if r.method == "POST"]
    assert [b["ids"] for b in bodies] == [[wanted["id"]]]  # found by ids: no second query


def test_search_by_unknown_item_id_finds_nothing_and_asks_once(
    http_server: LocalHttpServer, cassette: Any, driver: Any
) -> None:
    relative, catalog, dataset, collection = RECORDED[3]
    http_server.route("/v1/search", _stac_search(_items(cassette, relative)))
    missing = "S2A_MSIL2A_20190101T000001_R116_T01LAC_20201007T214651"  # no such item

    scenes = driver(catalog, dataset, collection).search(
        SearchQuery(dataset=dataset, scene_ids=(missing,))
    )

    assert scenes == []
    bodies = [r.json() for r in http_server.requests_to("/v1/search") if r.method == "POST"]
    assert len(bodies) == 1 and bodies[0]["ids"] == [missing]
