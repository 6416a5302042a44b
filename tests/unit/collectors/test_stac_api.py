"""The STAC API driver against a local server replaying real Earth Search / PC answers."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import ipaddress
import json
import logging
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from include.collectors.base import Credentials, Scene, SearchQuery
from include.collectors.registry import make_driver as registry_make_driver
from include.collectors.scene_ids import parse_scene_id
from include.collectors.stac_api import (
    StacApiDriver,
    canonical_tile,
    default_sas_url,
    format_datetime,
    grid_code_tile,
    item_to_scene,
    parse_datetime,
)
from include.common.errors import (
    InvalidInputError,
    ProviderError,
    ProviderUnavailableError,
)
from tests.helpers.http_server import (
    Cassette,
    Interaction,
    LocalHttpServer,
    Reply,
    Request,
    json_reply,
    replay,
    serve_bytes,
)

EARTH_SEARCH = "https://earth-search.aws.element84.com"
PLANETARY = "https://planetarycomputer.microsoft.com"
MULTI = "test_item_search/test_multiple_collections.yaml"
FILTER = "test_cli/TestCLISearch.test_filter[inprocess].yaml"
PC_S2 = "test_item_search/TestItemSearch.test_datetime_results.yaml"
NOT_FOUND = "test_client/test_get_collection_returns_none_if_not_found.yaml"
EMPTY_PAGE = {"type": "FeatureCollection", "features": [], "links": []}
RECORDED_MATCHED_PAGES = 12_000_000
"""FILTER's recorded search (every collection, no dates) matched 115,912,757 items; a page
budget above that (of 10) keeps the driver from splitting a replay that ignores our dates."""
UTC = dt.UTC

LoadCassette = Callable[[str], Cassette]


def make_driver(url: str, **options: Any) -> StacApiDriver:
    defaults: dict[str, Any] = {
        "catalog": "earthsearch",
        "page_size": 10,
        "datasets": {"S2MSI2A": "sentinel-2-l2a", "landsat_ot_c2_l2": "landsat-c2-l2"},
        "timeout_s": 5.0,
    }
    return StacApiDriver(url=url, options={**defaults, **options})


@pytest.fixture
def driver_factory() -> Iterator[Callable[..., StacApiDriver]]:
    made: list[StacApiDriver] = []

    def build(url: str, **options: Any) -> StacApiDriver:
        driver = make_driver(url, **options)
        made.append(driver)
        return driver

    yield build
    for driver in made:
        driver.close()


def search_bodies(server: LocalHttpServer, path: str) -> list[Any]:
    return [r.json() for r in server.requests_to(path) if r.method == "POST"]


DAY = SearchQuery(
    dataset="S2MSI2A",
    geometry={"type": "Point", "coordinates": [-105.1019, 40.1672]},
    start=dt.datetime(2023, 10, 8, tzinfo=UTC),
    end=dt.datetime(2023, 10, 8, 23, 59, 59, tzinfo=UTC),
)


# ----------------------------------------------------------------------------- pure helpers


def test_canonical_tile_mgrs_and_wrs_forms() -> None:
    assert canonical_tile("t23llf") == "23LLF"
    assert canonical_tile("1LAC") == "01LAC"
    assert canonical_tile("221/069") == "221069"
    assert canonical_tile("23LLI") is None  # I is not an MGRS letter
    assert canonical_tile("2210690") is None


def test_parse_datetime_z_and_nanoseconds_are_aware_utc() -> None:
    assert parse_datetime("2023-10-08T18:02:55.276Z") == dt.datetime(
        2023, 10, 8, 18, 2, 55, 276000, tzinfo=UTC
    )
    assert parse_datetime("2023-10-08T18:02:55.123456789Z").microsecond == 123456
    assert parse_datetime("2023-10-08T20:00:00+02:00").hour == 18
    assert format_datetime(dt.datetime(2020, 1, 9)) == "2020-01-09T00:00:00Z"


# ----------------------------------------------------------------------------- Earth Search


def test_search_earth_search_multi_collection_maps_sentinel2_scene(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    http_server.route(
        "/v1/search",
        replay(cassette(MULTI).interactions, origin=EARTH_SEARCH, server_url=http_server.url),
    )
    driver = driver_factory(http_server.url + "/v1")

    scenes = driver.search(DAY)

    assert [s.scene_id for s in scenes] == [
        "S2A_MSIL2A_20231008T175231_N0509_R141_T13TDE_20231008T233154"
    ]
    scene = scenes[0]
    assert scene.catalog == "earthsearch"
    assert scene.dataset == "S2MSI2A"
    assert scene.tile == "13TDE"
    assert scene.cloud_pct == pytest.approx(0.000299)
    assert scene.datetime == dt.datetime(2023, 10, 8, 18, 2, 55, 276000, tzinfo=UTC)
    assert scene.platform == "sentinel-2a"
    assert scene.online is True
    assert scene.footprint is not None and scene.footprint["type"] == "Polygon"
    assert scene.link == (
        http_server.url + "/v1/collections/sentinel-2-l2a/items/S2A_13TDE_20231008_0_L2A"
    )
    assert scene.quicklook is not None and scene.quicklook.endswith("/thumbnail.jpg")
    keys = {asset.key for asset in scene.assets}
    assert {"red", "nir", "scl", "granule_metadata"} <= keys
    assert not keys & {"visual", "thumbnail", "tileinfo_metadata", "red-jp2"}
    assert all(asset.href.startswith("https://sentinel-cogs.") for asset in scene.assets)
    assert "red-jp2" in scene.properties["non_http_assets"]
    assert scene.properties["stac_id"] == "S2A_13TDE_20231008_0_L2A"
    assert scene.properties["processing_baseline"] == "05.09"
    assert scene.size_bytes is None  # Earth Search gives no file:size

    first, second = search_bodies(http_server, "/v1/search")
    assert first == {
        "collections": ["sentinel-2-l2a"],
        "limit": 10,
        "intersects": {"type": "Point", "coordinates": [-105.1019, 40.1672]},
        "datetime": "2023-10-08T00:00:00Z/2023-10-08T23:59:59Z",
    }
    assert second["next"] == (
        "2023-10-08T17:37:26.656958Z,LC08_L2SP_033032_20231008_02_T1,landsat-c2-l2"
    )
    assert (
        http_server.requests_to("/v1/search")[0]
        .headers["user-agent"]
        .startswith("collection-builder/")
    )


def test_search_earth_search_landsat_item_maps_wrs_and_product_id(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any, tmp_path: Path
) -> None:
    http_server.route(
        "/v1/search",
        replay(cassette(MULTI).interactions, origin=EARTH_SEARCH, server_url=http_server.url),
    )
    driver = driver_factory(http_server.url + "/v1")
    query = SearchQuery(
        dataset="landsat_ot_c2_l2", geometry=DAY.geometry, start=DAY.start, end=DAY.end
    )

    (scene,) = driver.search(query)

    # the item id lacks the processing date; the product id comes from the files' names
    assert scene.scene_id == "LC08_L2SP_033032_20231008_20231017_02_T1"
    assert scene.properties["stac_id"] == "LC08_L2SP_033032_20231008_02_T1"
    assert scene.tile == "033032"
    assert scene.cloud_pct == pytest.approx(0.06)
    assert scene.platform == "landsat-8"
    assert scene.properties["landsat_scene_id"] == "LC80330322023281LGN00"
    assert scene.assets == ()  # every Earth Search Landsat asset is requester-pays s3://
    assert {"red", "mtl.txt"} <= set(scene.properties["non_http_assets"])
    assert scene.quicklook == (
        http_server.url
        + "/v1/collections/landsat-c2-l2/items/LC08_L2SP_033032_20231008_02_T1/thumbnail"
    )
    assert scene.properties["requester_pays"] is True
    with pytest.raises(ProviderError, match="requester-pays S3 buckets.*USGS or PlanetaryComputer"):
        driver.download(scene, tmp_path / scene.scene_id)
    assert http_server.count("/v1/search") == 2  # the download made no request


def test_search_next_link_body_token_pages_until_empty(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    http_server.route(
        "/v1/search",
        replay(
            cassette(FILTER).find("POST", "/search"),
            origin=EARTH_SEARCH,
            server_url=http_server.url,
            fallback=json_reply(EMPTY_PAGE),
        ),
    )
    driver = driver_factory(http_server.url + "/v1", max_pages=RECORDED_MATCHED_PAGES)
    query = SearchQuery(
        dataset="sentinel-2-l2a",
        bbox=(-180.0, -90.0, 180.0, 90.0),
        start=dt.datetime(2025, 7, 31, tzinfo=UTC),
        end=dt.datetime(2025, 7, 31, 23, 59, 59, tzinfo=UTC),
    )

    scenes = driver.search(query)

    bodies = search_bodies(http_server, "/v1/search")
    assert len(bodies) == 3
    assert bodies[1] == {
        "next": "2025-07-31T13:03:25.899000Z,S2B_T24MVV_20250731T130245_L2A,sentinel-2-c1-l2a"
    }  # merge: false -> the link's body replaces ours
    assert bodies[2] == {
        "next": "2025-07-31T13:03:19.635000Z,S2B_24MUA_20250731_0_L2A,sentinel-2-l2a"
    }
    # the server ignored our collection: only sentinel-2-l2a items are kept, on both pages
    assert [s.properties["stac_id"] for s in scenes] == [
        "S2B_24MUA_20250731_0_L2A",
        "S2B_24MXV_20250731_0_L2A",
        "S2B_24MWV_20250731_0_L2A",
        "S2B_24MVV_20250731_0_L2A",
        "S2B_24MUV_20250731_0_L2A",
        "S2B_20EPT_20250731_0_L2A",
    ]
    assert [s.datetime for s in scenes] == sorted(s.datetime for s in scenes)
    assert {s.tile for s in scenes} == {"24MUA", "24MXV", "24MWV", "24MVV", "24MUV", "20EPT"}


def test_search_cloud_filter_applied_on_server_and_client(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    http_server.route(
        "/v1/search",
        replay(
            cassette(FILTER).find("POST", "/search"),
            origin=EARTH_SEARCH,
            server_url=http_server.url,
            fallback=json_reply(EMPTY_PAGE),
        ),
    )
    driver = driver_factory(http_server.url + "/v1", max_pages=RECORDED_MATCHED_PAGES)
    query = SearchQuery(
        dataset="sentinel-2-l2a",
        bbox=(-180.0, -90.0, 180.0, 90.0),
        start=dt.datetime(2025, 7, 31, tzinfo=UTC),
        end=dt.datetime(2025, 8, 1, tzinfo=UTC),
        cloud_pct=40,
    )

    scenes = driver.search(query)

    assert search_bodies(http_server, "/v1/search")[0]["query"] == {"eo:cloud_cover": {"lte": 40}}
    assert all(s.cloud_pct is not None and s.cloud_pct <= 40 for s in scenes)
    assert {s.tile for s in scenes} == {"24MXV", "24MWV", "24MVV", "20EPT"}  # 24MUV/24MUA > 40


def test_search_page_cap_raises_invalid_input(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    http_server.route(
        "/v1/search",
        replay(
            cassette(FILTER).find("POST", "/search"),
            origin=EARTH_SEARCH,
            server_url=http_server.url,
        ),
    )
    driver = driver_factory(http_server.url + "/v1", max_pages=2)
    instant = dt.datetime(2025, 7, 31, 13, tzinfo=UTC)  # one instant on one spot: no split
    query = SearchQuery(
        dataset="sentinel-2-l2a", bbox=(-40.0, -5.0, -39.995, -4.995), start=instant, end=instant
    )

    with pytest.raises(InvalidInputError, match="max_pages"):
        driver.search(query)
    assert http_server.count("/v1/search") == 1  # its numberMatched passes 2 pages at once


def test_search_limit_stops_paging_early(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    http_server.route(
        "/v1/search",
        replay(
            cassette(FILTER).find("POST", "/search"),
            origin=EARTH_SEARCH,
            server_url=http_server.url,
        ),
    )
    driver = driver_factory(http_server.url + "/v1")
    query = SearchQuery(dataset="sentinel-2-l2a", bbox=(-180.0, -90.0, 180.0, 90.0), limit=1)

    assert len(driver.search(query)) == 1
    assert http_server.count("/v1/search") == 1


def test_search_repeated_next_link_raises_provider_error(
    http_server: LocalHttpServer, driver_factory: Any
) -> None:
    page = {
        "type": "FeatureCollection",
        "features": [],
        "links": [{"rel": "next", "href": http_server.url + "/v1/search?page=2"}],
    }
    feature = {"id": "x", "properties": {"datetime": "2020-01-01T00:00:00Z"}, "assets": {}}
    page["features"] = [feature]
    http_server.route("/v1/search", json_reply(page))
    driver = driver_factory(http_server.url + "/v1")

    with pytest.raises(ProviderError, match="repeated a next link"):
        driver.search(SearchQuery(dataset="x"))


def test_search_post_refused_with_405_falls_back_to_get(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    recorded = cassette(MULTI).interactions[0].body.replace(EARTH_SEARCH, http_server.url)
    page = json.loads(recorded)

    def handle(request: Request) -> Reply:
        if request.method == "POST":
            if "next" in request.json():
                return Reply(200, json.dumps(EMPTY_PAGE).encode())
            return Reply(405, b'{"description": "Method Not Allowed"}')
        return Reply(200, json.dumps(page).encode(), {"Content-Type": "application/geo+json"})

    http_server.route("/v1/search", handle)
    driver = driver_factory(http_server.url + "/v1")

    scenes = driver.search(DAY)

    assert [s.tile for s in scenes] == ["13TDE"]
    get = next(r for r in http_server.requests_to("/v1/search") if r.method == "GET")
    assert "collections=sentinel-2-l2a" in get.query
    assert "datetime=2023-10-08T00%3A00%3A00Z%2F2023-10-08T23%3A59%3A59Z" in get.query
    assert "intersects=" in get.query


def test_search_tiles_fall_back_to_mgrs_triple_and_remember_it(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    page = cassette(MULTI).interactions[0].response_json()
    page["links"] = []

    def handle(request: Request) -> Reply:
        query = request.json().get("query", {})
        if "mgrs:utm_zone" in query:
            return Reply(200, json.dumps(page).encode())
        return Reply(200, json.dumps(EMPTY_PAGE).encode())

    http_server.route("/v1/search", handle)
    driver = driver_factory(http_server.url + "/v1")
    query = SearchQuery(
        dataset="S2MSI2A", tiles=("T13TDE", "14SKJ"), start=DAY.start, end=DAY.end, cloud_pct=50
    )

    scenes = driver.search(query)

    assert [s.tile for s in scenes] == ["13TDE"]
    queries = [body["query"] for body in search_bodies(http_server, "/v1/search")]
    assert queries[0] == {"eo:cloud_cover": {"lte": 50}, "s2:mgrs_tile": {"eq": "13TDE"}}
    assert queries[1] == {
        "eo:cloud_cover": {"lte": 50},
        "mgrs:utm_zone": {"eq": 13},
        "mgrs:latitude_band": {"eq": "T"},
        "mgrs:grid_square": {"eq": "DE"},
    }
    assert "mgrs:utm_zone" in queries[2]  # the style that worked is asked first for 14SKJ


def test_search_wrs2_tile_queries_landsat_path_row(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    page = cassette(MULTI).interactions[0].response_json()
    page["links"] = []
    http_server.route("/v1/search", json_reply(page))
    driver = driver_factory(http_server.url + "/v1")

    scenes = driver.search(SearchQuery(dataset="landsat_ot_c2_l2", tiles=("033/032",)))

    assert [s.scene_id for s in scenes] == ["LC08_L2SP_033032_20231008_20231017_02_T1"]
    (body,) = search_bodies(http_server, "/v1/search")
    assert body["query"] == {"landsat:wrs_path": {"eq": "033"}, "landsat:wrs_row": {"eq": "032"}}


def test_search_bad_tile_raises_invalid_input_naming_index(driver_factory: Any) -> None:
    driver = driver_factory("http://127.0.0.1:9/v1")
    with pytest.raises(InvalidInputError) as caught:
        driver.search(SearchQuery(dataset="S2MSI2A", tiles=("23LLF", "nope")))
    assert caught.value.problems[0].field == "tiles[1]"


def test_search_esa_product_name_found_through_product_uri(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    page = cassette(MULTI).interactions[0].response_json()
    page["links"] = []
    product = "S2A_MSIL2A_20231008T175231_N0509_R141_T13TDE_20231008T233154"

    def handle(request: Request) -> Reply:
        body = request.json()
        if "ids" in body:
            return Reply(200, json.dumps(EMPTY_PAGE).encode())
        return Reply(200, json.dumps(page).encode())

    http_server.route("/v1/search", handle)
    driver = driver_factory(http_server.url + "/v1")

    scenes = driver.search(SearchQuery(dataset="S2MSI2A", scene_ids=(product,)))

    assert [s.scene_id for s in scenes] == [product]
    by_ids, by_product = search_bodies(http_server, "/v1/search")
    assert by_ids == {"collections": ["sentinel-2-l2a"], "limit": 10, "ids": [product]}
    assert by_product["query"] == {"s2:product_uri": {"eq": product + ".SAFE"}}
    assert "datetime" not in by_product


def test_search_landsat_product_id_asks_item_id_form_too(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    page = cassette(MULTI).interactions[0].response_json()
    page["links"] = []
    http_server.route("/v1/search", json_reply(page))
    driver = driver_factory(http_server.url + "/v1")
    product = "LC08_L2SP_033032_20231008_20231017_02_T1"

    scenes = driver.search(SearchQuery(dataset="landsat_ot_c2_l2", scene_ids=(product,)))

    assert [s.scene_id for s in scenes] == [product]
    (body,) = search_bodies(http_server, "/v1/search")
    assert body["ids"] == [product, "LC08_L2SP_033032_20231008_02_T1"]


def test_search_legacy_landsat_scene_id_found_through_landsat_scene_id(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    page = cassette(MULTI).interactions[0].response_json()  # the real Earth Search items
    page["links"] = []

    def handle(request: Request) -> Reply:
        body = request.json()
        if "ids" in body:
            return Reply(200, json.dumps(EMPTY_PAGE).encode())
        wanted = body["query"].get("landsat:scene_id", {}).get("eq")
        features = [
            f for f in page["features"] if f["properties"].get("landsat:scene_id") == wanted
        ]
        return Reply(200, json.dumps({**page, "features": features}).encode())

    http_server.route("/v1/search", handle)
    driver = driver_factory(http_server.url + "/v1")

    scenes = driver.search(
        SearchQuery(dataset="landsat_ot_c2_l2", scene_ids=("LC80330322023281LGN00",))
    )

    assert [s.scene_id for s in scenes] == ["LC08_L2SP_033032_20231008_20231017_02_T1"]
    by_ids, by_scene_id = search_bodies(http_server, "/v1/search")
    assert by_scene_id["query"] == {"landsat:scene_id": {"eq": "LC80330322023281LGN00"}}


def test_search_item_dated_by_an_interval_kept_when_the_interval_meets_the_period(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    page = cassette(MULTI).interactions[0].response_json()
    page["links"] = []
    item = next(f for f in page["features"] if f["collection"] == "sentinel-2-l2a")
    props = item["properties"]
    start = parse_datetime(props["datetime"])
    props.update(
        datetime=None,
        start_datetime=format_datetime(start),
        end_datetime=format_datetime(start + dt.timedelta(hours=2)),
    )
    page["features"] = [item]
    http_server.route("/v1/search", json_reply(page))
    driver = driver_factory(http_server.url + "/v1")

    def found(begin: dt.datetime, end: dt.datetime) -> int:
        query = SearchQuery(
            dataset="sentinel-2-l2a", bbox=(-180, -90, 180, 90), start=begin, end=end
        )
        return len(driver.search(query))

    hour = dt.timedelta(hours=1)
    assert found(start + hour, start + 3 * hour) == 1  # starts inside the item's interval
    assert found(start - hour, start + hour) == 1
    assert found(start + 3 * hour, start + 4 * hour) == 0  # after the interval
    assert found(start - 2 * hour, start - hour) == 0  # before it


def test_search_next_link_headers_are_sent_with_the_next_request(
    http_server: LocalHttpServer, driver_factory: Any
) -> None:
    second = http_server.url + "/v1/search?page=2"
    first_page = {
        **EMPTY_PAGE,
        "features": [],
        "links": [
            {
                "rel": "next",
                "href": second,
                "method": "GET",
                "headers": {"X-Page-Token": "abc", "Authorization": "Bearer stolen"},
            }
        ],
    }
    page = copy.deepcopy(first_page)

    def handle(request: Request) -> Reply:
        if request.method == "POST":
            return Reply(200, json.dumps(page).encode())
        return Reply(200, json.dumps(EMPTY_PAGE).encode())

    http_server.route("/v1/search", handle)
    driver = driver_factory(http_server.url + "/v1")
    page["features"] = [{"type": "Feature", "id": "x", "properties": {}, "assets": {}}]

    driver.search(SearchQuery(dataset="sentinel-2-l2a", bbox=(-180, -90, 180, 90)))

    follow = [r for r in http_server.requests_to("/v1/search") if r.method == "GET"]
    assert len(follow) == 1
    assert follow[0].headers["x-page-token"] == "abc"
    assert "authorization" not in follow[0].headers  # a link never sets credentials


def test_item_to_scene_planetary_computer_landsat_product_id(cassette: LoadCassette) -> None:
    recorded = cassette("test_client/test_fallback_strategy.yaml")
    (items,) = recorded.find("GET", "/collections/landsat-c2-l2/items")
    feature = items.response_json()["features"][0]

    scene = item_to_scene(feature, catalog="planetarycomputer", dataset="landsat_ot_c2_l2")

    assert scene.scene_id == "LC09_L2SR_084082_20250722_20250725_02_T1"
    assert scene.tile == "084082"
    assert scene.platform == "landsat-9"
    assert {"red", "qa_pixel", "mtl.txt", "mtl.xml", "ang"} <= {a.key for a in scene.assets}
    assert "mtl.json" not in {a.key for a in scene.assets}
    assert scene.quicklook is not None and "preview.png" in scene.quicklook


# ----------------------------------------------------------------------------- Planetary Computer


def pc_driver(server: LocalHttpServer, factory: Any, **options: Any) -> StacApiDriver:
    return factory(
        server.url + "/api/stac/v1",
        catalog="planetarycomputer",
        datasets={"S2MSI2A": "sentinel-2-l2a"},
        **options,
    )


PC_QUERY = SearchQuery(
    dataset="S2MSI2A",
    bbox=(170.0, 50.0, 180.0, 70.0),
    start=dt.datetime(2019, 1, 1, 0, 0, 1, tzinfo=UTC),
    end=dt.datetime(2019, 1, 1, 0, 0, 10, tzinfo=UTC),
)


def test_search_planetary_computer_sentinel2_items_mapped(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    recorded = cassette(PC_S2)
    http_server.route(
        "/api/stac/v1/search",
        replay(recorded.interactions, origin=PLANETARY, server_url=http_server.url),
    )
    driver = pc_driver(http_server, driver_factory)

    scenes = driver.search(PC_QUERY)

    features = recorded.interactions[0].response_json()["features"]
    assert len(scenes) == len(features) == 33
    by_id = {s.scene_id: s for s in scenes}
    scene = by_id["S2A_MSIL2A_20190101T000001_N0212_R116_T60VUK_20201007T214652"]
    assert scene.tile == "60VUK"
    assert scene.cloud_pct == pytest.approx(56.297088)
    assert scene.platform == "sentinel-2a"  # PC writes "Sentinel-2A"; canonical is lowercase
    assert scene.catalog == "planetarycomputer"
    assert scene.properties["stac_id"] == "S2A_MSIL2A_20190101T000001_R116_T60VUK_20201007T214652"
    assert scene.properties["processing_baseline"] == "02.12"
    assert scene.properties["product_type"] == "S2MSI2A"
    assert scene.quicklook is not None and "preview.png" in scene.quicklook
    keys = {asset.key for asset in scene.assets}
    assert {"B04", "B8A", "SCL", "product-metadata", "granule-metadata"} <= keys
    assert not keys & {"preview", "tilejson", "rendered_preview", "visual"}  # TCI: preview only
    assert {s.tile for s in scenes} == {f["properties"]["s2:mgrs_tile"] for f in features}
    assert [s.datetime for s in scenes] == sorted(s.datetime for s in scenes)
    assert search_bodies(http_server, "/api/stac/v1/search")[0]["collections"] == ["sentinel-2-l2a"]


def test_search_planetary_computer_tiles_and_cloud_filtered_client_side(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    recorded = cassette(PC_S2)
    http_server.route(
        "/api/stac/v1/search",
        replay(recorded.interactions, origin=PLANETARY, server_url=http_server.url),
    )
    driver = pc_driver(http_server, driver_factory)
    query = SearchQuery(
        dataset="S2MSI2A",
        tiles=("60VUK", "59VMD", "58UGE"),
        start=PC_QUERY.start,
        end=PC_QUERY.end,
        cloud_pct=40,
    )

    scenes = driver.search(query)

    # 60VUK is 56 % cloudy; 59VMD (38 %) and 58UGE (29 %) pass
    assert sorted(s.tile for s in scenes) == ["58UGE", "59VMD"]
    bodies = search_bodies(http_server, "/api/stac/v1/search")
    assert [b["query"]["s2:mgrs_tile"]["eq"] for b in bodies] == ["60VUK", "59VMD", "58UGE"]


def real_item_served_locally(
    server: LocalHttpServer, feature: dict[str, Any], blobs: dict[str, bytes]
) -> dict[str, Any]:
    """The real item with only ``blobs``' assets, their hrefs pointing at the local server."""
    item = copy.deepcopy(feature)
    assets = {}
    for key, blob in blobs.items():
        asset = dict(item["assets"][key])
        name = asset["href"].split("?")[0].rsplit("/", 1)[-1]
        asset["href"] = server.route(f"/blob/{name}", serve_bytes(blob)) + "?st=2025&sig=SECRET"
        asset["file:size"] = len(blob)
        asset["file:checksum"] = "1220" + hashlib.sha256(blob).hexdigest()
        assets[key] = asset
    item["assets"] = assets
    return item


def test_download_scene_assets_into_folder_then_reused(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any, tmp_path: Path
) -> None:
    feature = cassette(PC_S2).interactions[0].response_json()["features"][0]
    blobs = {"B04": b"\x01" * 300_000, "B8A": b"\x02" * 200_000, "product-metadata": b"<xml/>"}
    item = real_item_served_locally(http_server, feature, blobs)
    scene = item_to_scene(item, catalog="planetarycomputer", dataset="S2MSI2A")
    driver = pc_driver(http_server, driver_factory, max_connections=2)
    dest = tmp_path / scene.scene_id
    seen: list[tuple[int, int | None]] = []

    result = driver.download(scene, dest, progress=lambda d, t: seen.append((d, t)))

    assert scene.size_bytes == sum(len(b) for b in blobs.values())
    assert result.path == dest
    assert result.size_bytes == scene.size_bytes
    assert result.checksum is None
    assert result.reused is False
    assert [p.name for p in result.files] == ["B04.tif", "B8A.tif", "product-metadata.xml"]
    assert (dest / "B04.tif").read_bytes() == blobs["B04"]
    assert max(done for done, _ in seen) == scene.size_bytes
    requests_before = http_server.count()

    again = driver.download(scene, dest)

    assert again.reused is True
    assert http_server.count() == requests_before


def test_download_credentials_sent_only_to_catalog_host(
    http_server: LocalHttpServer, cassette: LoadCassette, tmp_path: Path
) -> None:
    feature = cassette(PC_S2).interactions[0].response_json()["features"][0]
    item = real_item_served_locally(http_server, feature, {"B04": b"\x01" * 1000})
    item["assets"]["B04"]["href"] = item["assets"]["B04"]["href"].replace("127.0.0.1", "localhost")
    scene = item_to_scene(item, catalog="private", dataset="S2MSI2A")
    http_server.route("/v1/search", json_reply(EMPTY_PAGE))
    driver = StacApiDriver(
        url=http_server.url + "/v1",
        credentials=Credentials(token="TOKEN"),  # noqa: S106 - a test token
        options={},
    )
    with driver:
        driver.search(SearchQuery(dataset="sentinel-2-l2a"))
        driver.download(scene, tmp_path / "scene")

    (search,) = http_server.requests_to("/v1/search")
    assert search.headers["authorization"] == "Bearer TOKEN"
    (asset,) = [r for r in http_server.requests if r.path.startswith("/blob/")]
    assert "authorization" not in asset.headers


# ----------------------------------------------------------------------------- errors


def test_get_collection_real_404_raises_provider_error_with_description(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    recorded = cassette(NOT_FOUND)
    http_server.route(
        "/v1/collections/foo",
        replay(
            recorded.find("GET", "/collections/foo"),
            origin=EARTH_SEARCH,
            server_url=http_server.url,
        ),
    )
    driver = driver_factory(http_server.url + "/v1")

    with pytest.raises(ProviderError) as caught:
        driver.get_collection("foo")

    assert caught.value.status_code == 404
    assert "HTTP 404: Not Found" in str(caught.value)
    assert '"code":"NotFound"' in caught.value.body


def test_search_real_error_body_keeps_status_and_description(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    (recorded,) = cassette(NOT_FOUND).find("GET", "/collections/foo")
    as_search = Interaction(
        "POST", recorded.uri, None, recorded.status, recorded.headers, recorded.body
    )
    http_server.route(
        "/v1/search", replay([as_search], origin=EARTH_SEARCH, server_url=http_server.url)
    )
    driver = driver_factory(http_server.url + "/v1")

    with pytest.raises(ProviderError, match="earthsearch search .*HTTP 404: Not Found") as caught:
        driver.search(SearchQuery(dataset="S2MSI2A"))
    assert caught.value.status_code == 404


def test_search_server_error_raises_unavailable(
    http_server: LocalHttpServer, driver_factory: Any
) -> None:
    http_server.route("/v1/search", json_reply({"description": "database is down"}, status=503))
    driver = driver_factory(http_server.url + "/v1")
    with pytest.raises(ProviderUnavailableError, match="database is down"):
        driver.search(SearchQuery(dataset="S2MSI2A"))


def test_driver_without_http_url_raises_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match=r"catalog_args\.url"):
        StacApiDriver(url="ftp://example.org/stac", options={})


# ----------------------------------------------------------------------------- TLS


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[LocalHttpServer, Path]]:
    cert_path, key_path = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server = LocalHttpServer(ssl_context=context)
    server.route("/v1/search", json_reply(EMPTY_PAGE))
    try:
        yield server, cert_path
    finally:
        server.close()


def test_driver_default_verifies_tls_and_refuses_self_signed(
    https_server: tuple[LocalHttpServer, Path], driver_factory: Any
) -> None:
    server, _ = https_server
    driver = driver_factory(server.url + "/v1")
    assert driver.verify_tls is True

    with pytest.raises(ProviderError, match="TLS certificate verification failed"):
        driver.search(SearchQuery(dataset="S2MSI2A"))


def test_driver_ca_bundle_path_trusts_that_server(
    https_server: tuple[LocalHttpServer, Path], driver_factory: Any
) -> None:
    server, cert_path = https_server
    driver = driver_factory(server.url + "/v1", verify_tls=str(cert_path))

    assert driver.search(SearchQuery(dataset="S2MSI2A")) == []
    assert server.count("/v1/search") == 1


def test_item_to_scene_real_items_scene_ids_parse_by_naming_rules(cassette: LoadCassette) -> None:
    features = cassette(PC_S2).interactions[0].response_json()["features"]
    (landsat,) = cassette("test_client/test_fallback_strategy.yaml").find("GET", "/items")
    features += landsat.response_json()["features"]
    for feature in features:
        scene = item_to_scene(feature, catalog="planetarycomputer", dataset="any")
        identity = parse_scene_id(scene.scene_id)
        assert identity.tile == scene.tile
        assert identity.datetime.date() == scene.datetime.date()


def test_scene_round_trips_through_dict(cassette: LoadCassette) -> None:
    feature = cassette(PC_S2).interactions[0].response_json()["features"][0]
    scene = item_to_scene(feature, catalog="planetarycomputer", dataset="S2MSI2A")
    assert Scene.from_dict(json.loads(json.dumps(scene.to_dict()))) == scene


# ----------------------------------------------------------------------------- Earth Search data


def filter_features(cassette: LoadCassette, collection: str) -> list[dict[str, Any]]:
    features = []
    for interaction in cassette(FILTER).find("POST", "/search"):
        features += [
            f for f in interaction.response_json()["features"] if f["collection"] == collection
        ]
    return features


def test_item_to_scene_earth_search_c1_l2a_assets_carry_checksums_and_sizes(
    cassette: LoadCassette,
) -> None:
    features = filter_features(cassette, "sentinel-2-c1-l2a")
    assert len(features) == 6
    for feature in features:
        scene = item_to_scene(feature, catalog="earthsearch", dataset="sentinel-2-c1-l2a")
        identity = parse_scene_id(scene.scene_id)
        assert identity.level == "L2A" and identity.tile == scene.tile
        assert scene.properties["stac_id"].startswith(f"{scene.scene_id[:3]}_T{scene.tile}_")
        keys = {a.key for a in scene.assets}
        assert {"red", "nir", "scl", "granule_metadata", "product_metadata"} <= keys
        assert not keys & {"visual", "preview", "thumbnail"}
        assert all(a.checksum and a.checksum.startswith("1220") for a in scene.assets)
        assert scene.size_bytes == sum(a.size_bytes or 0 for a in scene.assets) > 0
        assert "non_http_assets" not in scene.properties


def test_download_earth_search_l1c_requester_pays_names_cdse(
    cassette: LoadCassette, driver_factory: Any, tmp_path: Path
) -> None:
    (feature, *_) = filter_features(cassette, "sentinel-2-l1c")
    scene = item_to_scene(feature, catalog="earthsearch", dataset="sentinel-2-l1c")
    assert scene.assets == () and scene.properties["requester_pays"] is True
    driver = driver_factory("http://127.0.0.1:9/v1")

    with pytest.raises(ProviderError, match="requester-pays.*from catalog CDSE"):
        driver.download(scene, tmp_path / scene.scene_id)


def test_search_earth_search_mgrs_style_option_asks_triple_first(
    http_server: LocalHttpServer, driver_factory: Any
) -> None:
    http_server.route("/v1/search", json_reply(EMPTY_PAGE))
    driver = driver_factory(http_server.url + "/v1", mgrs_query_style="mgrs")

    driver.search(SearchQuery(dataset="S2MSI2A", tiles=("13TDE",)))

    first = search_bodies(http_server, "/v1/search")[0]["query"]
    assert first == {
        "mgrs:utm_zone": {"eq": 13},
        "mgrs:latitude_band": {"eq": "T"},
        "mgrs:grid_square": {"eq": "DE"},
    }


def test_grid_code_tile_reads_mgrs_and_wrs2_codes() -> None:
    assert grid_code_tile("MGRS-33UUP") == "33UUP"
    assert grid_code_tile("MGRS-1LAC") == "01LAC"
    assert grid_code_tile("WRS2-033032") == "033032"
    assert grid_code_tile("CDEM-N48E012") is None
    assert grid_code_tile("MGRS-33UUI") is None
    assert grid_code_tile(None) is None


def test_item_to_scene_tile_from_grid_code_when_no_other_tile_property() -> None:
    item = {
        "id": "an-item",
        "properties": {"datetime": "2024-01-05T10:03:29Z", "grid:code": "MGRS-33UUP"},
        "assets": {},
    }
    assert item_to_scene(item, catalog="x", dataset="y").tile == "33UUP"


def test_item_to_scene_earth_search_items_keep_their_tile_with_grid_code(
    cassette: LoadCassette,
) -> None:
    for feature in filter_features(cassette, "sentinel-2-c1-l2a"):
        assert (
            feature["properties"]["grid:code"]
            == "MGRS-"
            + item_to_scene(feature, catalog="earthsearch", dataset="sentinel-2-c1-l2a").tile
        )


@pytest.mark.parametrize("style", [None, "s2", "mgrs"])
def test_search_tiles_without_grid_style_never_ask_grid_code(
    http_server: LocalHttpServer, driver_factory: Any, style: str | None
) -> None:
    http_server.route("/v1/search", json_reply(EMPTY_PAGE))
    driver = driver_factory(http_server.url + "/v1", mgrs_query_style=style)

    assert driver.search(SearchQuery(dataset="S2MSI2A", tiles=("13TDE",))) == []

    queries = [body["query"] for body in search_bodies(http_server, "/v1/search")]
    assert len(queries) == 2  # s2:mgrs_tile and the mgrs:* triple, as always
    assert {next(iter(q)) for q in queries} == {"s2:mgrs_tile", "mgrs:utm_zone"}


def test_search_grid_style_asks_grid_code_alone(
    http_server: LocalHttpServer, driver_factory: Any
) -> None:
    http_server.route("/v1/search", json_reply(EMPTY_PAGE))
    driver = driver_factory(http_server.url + "/v1", mgrs_query_style="grid")

    driver.search(SearchQuery(dataset="landsat_ot_c2_l2", tiles=("23LLF", "221069")))

    queries = [body["query"] for body in search_bodies(http_server, "/v1/search")]
    assert queries == [{"grid:code": {"eq": "MGRS-23LLF"}}, {"grid:code": {"eq": "WRS2-221069"}}]


# ----------------------------------------------------------------------------- PC asset signing

SAS_QUERY = (  # the shape of a Planetary Computer SAS token (values made up)
    "st=2025-07-30T09%3A00%3A00Z&se=2025-07-31T10%3A00%3A00Z&sp=rl&sv=2024-05-04&sr=c"
    "&skoid=00000000-0000-0000-0000-000000000000&sktid=72f988bf&skt=2025-07-30T09%3A00%3A00Z"
    "&ske=2025-07-31T09%3A00%3A00Z&sks=b&skv=2024-05-04&sig=TESTSIGNATURE0123456789%3D"
)


class SasEndpoint:
    """Planetary Computer's SAS API on loopback: GET /api/sas/v1/token/<collection>."""

    def __init__(self, server: LocalHttpServer, *, valid_for: dt.timedelta) -> None:
        self.valid_for = valid_for
        self.issued: list[str] = []
        for collection in ("sentinel-2-l2a", "landsat-c2-l2"):
            server.route(f"/api/sas/v1/token/{collection}", self.handle)

    def handle(self, request: Request) -> Reply:
        collection = request.path.rsplit("/", 1)[-1]
        token = SAS_QUERY.replace("TESTSIGNATURE", f"SIG{collection.upper()}{len(self.issued)}")
        self.issued.append(collection)
        expiry = format_datetime(dt.datetime.now(UTC) + self.valid_for)
        body = {"msft:expiry": expiry, "token": token}
        return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


def pc_blob_item(
    server: LocalHttpServer, cassette: LoadCassette, *, refused: Callable[[str, str], bool]
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A real PC Sentinel-2 item whose B04 and SCL blobs are served on ``localhost``.

    A blob answers 403, as Azure does, to an unsigned request and when ``refused(key, query)``.
    """
    feature = cassette(PC_S2).interactions[0].response_json()["features"][0]
    blobs = {"B04": b"\x04" * 70_000, "SCL": b"\x05" * 30_000}
    item = copy.deepcopy(feature)
    item["assets"] = {}
    for key, blob in blobs.items():
        name = feature["assets"][key]["href"].rsplit("/", 1)[-1]

        def blob_handler(request: Request, blob: bytes = blob, key: str = key) -> Reply:
            if "sig=SIG" not in request.query or refused(key, request.query):
                return Reply(403, b"<Error><Code>AuthenticationFailed</Code></Error>")
            return serve_bytes(blob)(request)

        url = server.route(f"/sentinel2-l2/{name}", blob_handler)
        asset = dict(feature["assets"][key], href=url.replace("127.0.0.1", "localhost"))
        asset["file:size"] = len(blob)
        item["assets"][key] = asset
    return item, blobs


def blobs_name(item: dict[str, Any], key: str) -> str:
    return str(item["assets"][key]["href"]).rsplit("/", 1)[-1]


def signing_driver(server: LocalHttpServer, factory: Any, **options: Any) -> StacApiDriver:
    return pc_driver(server, factory, sign_assets=True, **options)


def test_default_sas_url_sits_beside_the_stac_api() -> None:
    assert default_sas_url("https://planetarycomputer.microsoft.com/api/stac/v1/") == (
        "https://planetarycomputer.microsoft.com/api/sas/v1"
    )
    assert default_sas_url("http://127.0.0.1:8080/api/stac/v1") == (
        "http://127.0.0.1:8080/api/sas/v1"
    )
    assert default_sas_url("https://example.org/stac") == (
        "https://planetarycomputer.microsoft.com/api/sas/v1"
    )


def test_sign_assets_real_pc_items_get_their_collection_token_once(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    sas = SasEndpoint(http_server, valid_for=dt.timedelta(hours=1))
    driver = signing_driver(http_server, driver_factory)
    s2_items = cassette(PC_S2).interactions[0].response_json()["features"][:2]
    (landsat_page,) = cassette("test_client/test_fallback_strategy.yaml").find("GET", "/items")
    landsat_item = landsat_page.response_json()["features"][0]

    signed = [
        driver.sign_assets(item_to_scene(item, catalog="planetarycomputer", dataset="S2MSI2A"))
        for item in [*s2_items, landsat_item]
    ]

    assert sas.issued == ["sentinel-2-l2a", "landsat-c2-l2"]  # one token per collection
    for assets in signed:
        assert assets and all(".blob.core.windows.net/" in a.href for a in assets)
        assert all(a.href.count("?") == 1 and "&sig=SIG" in a.href for a in assets)
    assert "SIGSENTINEL-2-L2A0" in signed[0][0].href
    assert "SIGLANDSAT-C2-L21" in signed[2][0].href
    unsigned = item_to_scene(s2_items[0], catalog="planetarycomputer", dataset="S2MSI2A")
    assert [a.href.split("?")[0] for a in signed[0]] == [a.href for a in unsigned.assets]


def test_sas_token_near_expiry_is_fetched_again(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    sas = SasEndpoint(http_server, valid_for=dt.timedelta(seconds=60))
    driver = signing_driver(http_server, driver_factory, sas_refresh_margin_s=300)
    item = cassette(PC_S2).interactions[0].response_json()["features"][0]
    scene = item_to_scene(item, catalog="planetarycomputer", dataset="S2MSI2A")

    driver.sign_assets(scene)
    driver.sign_assets(scene)

    assert sas.issued == ["sentinel-2-l2a", "sentinel-2-l2a"]


def test_sas_endpoint_errors_are_mapped(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any
) -> None:
    item = cassette(PC_S2).interactions[0].response_json()["features"][0]
    scene = item_to_scene(item, catalog="planetarycomputer", dataset="S2MSI2A")
    route = "/api/sas/v1/token/sentinel-2-l2a"
    http_server.route(route, json_reply({"detail": "collection not found"}, status=404))
    with pytest.raises(ProviderError, match="sas token .*HTTP 404: collection not found"):
        signing_driver(http_server, driver_factory).sign_assets(scene)
    http_server.route(route, json_reply({"detail": "busy"}, status=503))
    with pytest.raises(ProviderUnavailableError, match="busy"):
        signing_driver(http_server, driver_factory).sign_assets(scene)
    http_server.route(route, json_reply({"msft:expiry": "2030-01-01T00:00:00Z"}))
    with pytest.raises(ProviderError, match="holds no token"):
        signing_driver(http_server, driver_factory).sign_assets(scene)


def test_download_pc_blob_assets_signed_and_token_never_logged(
    http_server: LocalHttpServer,
    cassette: LoadCassette,
    driver_factory: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sas = SasEndpoint(http_server, valid_for=dt.timedelta(hours=1))
    item, blobs = pc_blob_item(http_server, cassette, refused=lambda key, query: False)
    scene = item_to_scene(item, catalog="planetarycomputer", dataset="S2MSI2A")
    driver = signing_driver(http_server, driver_factory, sas_host_suffixes=["localhost"])

    result = driver.download(scene, tmp_path / scene.scene_id)

    assert sorted(p.name for p in result.files) == ["B04.tif", "SCL.tif"]
    assert (tmp_path / scene.scene_id / "B04.tif").read_bytes() == blobs["B04"]
    assert sas.issued == ["sentinel-2-l2a"]
    blob_requests = [r for r in http_server.requests if r.path.startswith("/sentinel2-l2/")]
    assert all("sig=SIGSENTINEL-2-L2A0" in r.query for r in blob_requests)
    assert "SIGSENTINEL" not in caplog.text and "sig=" not in caplog.text

    unsigned = pc_driver(http_server, driver_factory)  # without sign_assets: Azure's 403
    with pytest.raises(ProviderError, match="HTTP 403"):
        unsigned.download(scene, tmp_path / "unsigned")


def test_download_pc_token_refused_mid_scene_signs_again_once_and_resumes(
    http_server: LocalHttpServer, cassette: LoadCassette, driver_factory: Any, tmp_path: Path
) -> None:
    sas = SasEndpoint(http_server, valid_for=dt.timedelta(hours=1))
    item, blobs = pc_blob_item(  # the first token expires before SCL's request
        http_server, cassette, refused=lambda key, query: key == "SCL" and "L2A0" in query
    )
    scene = item_to_scene(item, catalog="planetarycomputer", dataset="S2MSI2A")
    driver = signing_driver(
        http_server, driver_factory, sas_host_suffixes=["localhost"], max_connections=1
    )

    result = driver.download(scene, tmp_path / scene.scene_id)

    assert sorted(p.name for p in result.files) == ["B04.tif", "SCL.tif"]
    assert (tmp_path / scene.scene_id / "SCL.tif").read_bytes() == blobs["SCL"]
    assert sas.issued == ["sentinel-2-l2a", "sentinel-2-l2a"]  # one new token, not one per file
    b04 = [r for r in http_server.requests if r.path.endswith(blobs_name(item, "B04"))]
    assert len(b04) == 1  # the band already complete was kept, not fetched again


def test_make_driver_planetary_computer_url_override_moves_sas_endpoint(
    http_server: LocalHttpServer,
) -> None:
    driver = registry_make_driver(
        "PlanetaryComputer", catalog_args={"url": http_server.url + "/api/stac/v1"}
    )
    try:
        assert isinstance(driver, StacApiDriver)
        assert driver.sign is True
        assert driver.sas_url == http_server.url + "/api/sas/v1"
    finally:
        driver.close()
    earth = registry_make_driver("EarthSearch", catalog_args={"url": http_server.url + "/v1"})
    try:
        assert isinstance(earth, StacApiDriver)
        assert earth.sign is False
        assert earth.collection_id("S2MSI2A") == "sentinel-2-c1-l2a"  # https + checksums
    finally:
        earth.close()


# ----------------------------------------------------------------------------- Landsat platforms


@pytest.mark.parametrize(
    ("dataset", "platforms", "kept"),
    [
        ("landsat_ot_c2_l2", ["landsat-8", "landsat-9"], 10),
        ("landsat_tm_c2_l2", ["landsat-4", "landsat-5"], 0),
        ("landsat_etm_c2_l2", ["landsat-7"], 0),
    ],
)
def test_landsat_datasets_keep_their_own_platforms_of_landsat_c2_l2(
    http_server: LocalHttpServer,
    cassette: LoadCassette,
    driver_factory: Any,
    dataset: str,
    platforms: list[str],
    kept: int,
) -> None:
    """landsat-c2-l2 holds every sensor; a TM or ETM+ dataset never brings back OLI scenes."""
    (items,) = cassette("test_client/test_fallback_strategy.yaml").find("GET", "/items")
    page = {**items.response_json(), "links": []}  # ten Landsat 9 items, as a server ignoring
    http_server.route("/v1/search", json_reply(page))  # the platform query would answer
    driver = driver_factory(
        http_server.url + "/v1",
        datasets={name: "landsat-c2-l2" for name in ("landsat_ot_c2_l2", dataset)},
        dataset_platforms={
            "landsat_ot_c2_l2": ["landsat-8", "landsat-9"],
            "landsat_tm_c2_l2": ["landsat-4", "landsat-5"],
            "landsat_etm_c2_l2": ["landsat-7"],
        },
    )
    query = SearchQuery(
        dataset=dataset,
        bbox=(140.0, -40.0, 160.0, -10.0),
        start=dt.datetime(2025, 7, 1, tzinfo=UTC),
        end=dt.datetime(2025, 7, 31, tzinfo=UTC),
        cloud_pct=50,
    )
    scenes = driver.search(query)
    (body,) = search_bodies(http_server, "/v1/search")
    assert body["collections"] == ["landsat-c2-l2"]
    assert body["query"]["platform"] == {"in": platforms}
    assert body["query"]["eo:cloud_cover"] == {"lte": 50}
    assert len(scenes) == kept
