"""A STAC driver checks ``dataset`` against the API's own collections (issue #23).

Loopback servers answer with real recordings: Earth Search's 404 for an unknown collection and
Planetary Computer's collection documents (pystac-client's cassettes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from include.collectors.base import SearchQuery, shortened
from include.collectors.stac_api import StacApiDriver
from include.common.errors import InvalidInputError
from tests.helpers.http_server import (
    LocalHttpServer,
    Reply,
    Request,
    fail,
    json_reply,
    replay,
)
from tests.unit.collectors.test_stac_api import (
    EARTH_SEARCH,
    EMPTY_PAGE,
    NOT_FOUND,
    PLANETARY,
    LoadCassette,
)

LANDSAT = "test_client/test_fallback_strategy.yaml"
SENTINEL = "test_client/TestSigning.test_sign_with_return_warns.yaml"
DATASETS = {"S2MSI2A": "sentinel-2-l2a", "landsat_ot_c2_l2": "landsat-c2-l2"}


@pytest.fixture
def make_driver() -> Iterator[Callable[..., StacApiDriver]]:
    made: list[StacApiDriver] = []

    def build(url: str, **options: Any) -> StacApiDriver:
        defaults = {"catalog": "earthsearch", "datasets": DATASETS, "timeout_s": 5.0}
        driver = StacApiDriver(url=url, options={**defaults, **options})
        made.append(driver)
        return driver

    yield build
    for driver in made:
        driver.close()


def recorded_collection(cassette: LoadCassette, name: str, collection: str) -> dict[str, Any]:
    (interaction,) = [
        i for i in cassette(name).find("GET", f"/collections/{collection}") if i.method == "GET"
    ][:1]
    document = interaction.response_json()
    assert document["id"] == collection
    return dict(document)


def serve_collection_list(server: LocalHttpServer, cassette: LoadCassette) -> list[dict[str, Any]]:
    """``/v1/collections`` lists the recorded Planetary Computer collection documents."""
    documents = [
        recorded_collection(cassette, LANDSAT, "landsat-c2-l2"),
        recorded_collection(cassette, SENTINEL, "sentinel-2-l2a"),
    ]
    server.route("/v1/collections", json_reply({"collections": documents, "links": []}))
    return documents


def serve_not_found(server: LocalHttpServer, cassette: LoadCassette) -> None:
    """``/v1/collections/foo`` answers Earth Search's recorded 404."""
    server.route(
        "/v1/collections/foo",
        replay(
            cassette(NOT_FOUND).find("GET", "/collections/foo"),
            origin=EARTH_SEARCH,
            server_url=server.url,
        ),
    )


def test_an_unknown_collection_is_refused_naming_configured_and_listed_collections(
    http_server: LocalHttpServer, cassette: LoadCassette, make_driver: Any
) -> None:
    serve_not_found(http_server, cassette)
    serve_collection_list(http_server, cassette)
    http_server.route("/v1/search", json_reply(EMPTY_PAGE))
    driver = make_driver(http_server.url + "/v1")

    with pytest.raises(InvalidInputError) as caught:
        driver.check_dataset(" foo ")
    (problem,) = caught.value.problems
    assert problem.field == "dataset"
    assert problem.message == "'foo' is not a dataset of catalog 'earthsearch'"
    assert problem.fix == (
        "use one of: S2MSI2A, landsat_ot_c2_l2; "
        "the catalog's collections: landsat-c2-l2, sentinel-2-l2a"
    )

    with pytest.raises(InvalidInputError, match="catalog 'earthsearch'"):
        driver.search(SearchQuery(dataset="foo"))
    with pytest.raises(InvalidInputError, match="catalog 'earthsearch'"):
        list(driver.iter_search(SearchQuery(dataset="foo")))
    assert http_server.requests_to("/v1/search") == []
    # asked once for the driver's life: the answer is kept
    assert http_server.count("/v1/collections/foo") == 1
    assert http_server.count("/v1/collections") == 1


def test_a_served_collection_that_is_not_configured_is_accepted_and_searched(
    http_server: LocalHttpServer, cassette: LoadCassette, make_driver: Any
) -> None:
    http_server.route(
        "/v1/collections/landsat-c2-l2",
        replay(
            cassette(LANDSAT).find("GET", "/collections/landsat-c2-l2")[:1],
            origin=PLANETARY,
            server_url=http_server.url,
        ),
    )
    http_server.route("/v1/search", json_reply(EMPTY_PAGE))
    driver = make_driver(http_server.url + "/v1", datasets={"S2MSI2A": "sentinel-2-l2a"})

    assert driver.check_dataset("landsat-c2-l2") == "landsat-c2-l2"
    assert driver.search(SearchQuery(dataset="landsat-c2-l2")) == []
    (search,) = http_server.requests_to("/v1/search")
    assert search.json()["collections"] == ["landsat-c2-l2"]
    assert http_server.count("/v1/collections/landsat-c2-l2") == 1
    assert http_server.requests_to("/v1/collections") == []


def test_configured_names_and_their_collections_pass_without_a_request(
    http_server: LocalHttpServer, make_driver: Any
) -> None:
    driver = make_driver(http_server.url + "/v1")
    assert driver.check_dataset("s2msi2a") == "s2msi2a"
    assert driver.check_dataset("landsat-c2-l2") == "landsat-c2-l2"  # what a search is given
    assert http_server.requests == []


@pytest.mark.parametrize(
    "collection_reply",
    [
        fail(503, b'{"code": "ServiceUnavailable"}'),
        fail(404, b'{"code": "NotFound"}'),  # and no collection list: item search alone
        json_reply({"description": "not a list"}, status=200),
    ],
    ids=["5xx", "no-collections-endpoints", "collection-found"],
)
def test_a_catalog_that_cannot_tell_leaves_the_dataset_to_the_search(
    http_server: LocalHttpServer, make_driver: Any, collection_reply: Any
) -> None:
    http_server.route("/v1/collections/sentinel-2-l1c", collection_reply)
    http_server.route("/v1/search", json_reply(EMPTY_PAGE))
    driver = make_driver(http_server.url + "/v1")

    assert driver.check_dataset("sentinel-2-l1c") == "sentinel-2-l1c"
    assert driver.search(SearchQuery(dataset="sentinel-2-l1c")) == []
    assert http_server.count("/v1/search") == 1


def test_an_unreachable_or_silent_catalog_does_not_fail_the_check(
    http_server: LocalHttpServer, make_driver: Any
) -> None:
    released = threading.Event()

    def silent(request: Request) -> Reply:
        released.wait(10)
        return Reply(404)

    http_server.route("/v1/collections/sentinel-2-l1c", silent)
    try:
        slow = make_driver(http_server.url + "/v1", timeout_s=0.5)
        assert slow.check_dataset("sentinel-2-l1c") == "sentinel-2-l1c"
    finally:
        released.set()
    closed = LocalHttpServer()
    url = closed.url + "/v1"
    closed.close()
    assert make_driver(url).check_dataset("sentinel-2-l1c") == "sentinel-2-l1c"


def test_the_check_goes_only_where_the_outbound_allowlist_lets_it(
    http_server: LocalHttpServer, make_driver: Any
) -> None:
    driver = make_driver(
        http_server.url + "/v1",
        outbound_hosts=("earth-search.aws.element84.com",),
        outbound_allow_loopback=False,
    )
    assert driver.check_dataset("foo") == "foo"  # refused before sending: the search decides
    assert http_server.requests == []


def test_a_long_collection_list_is_shortened_in_the_message() -> None:
    names = [f"collection-{n:03d}" for n in range(130)]
    assert shortened(names) == ", ".join(names[:12]) + ", ... (118 more)"
    assert shortened(names[:3]) == "collection-000, collection-001, collection-002"
