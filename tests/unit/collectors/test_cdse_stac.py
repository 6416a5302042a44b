"""The CDSE STAC driver against a loopback CDSE STAC API (tests/helpers/cdse_stac_server.py).

The server answers CDSE's STAC search (POST and GET, ``rel="next"`` paging, the Query extension)
with items built in CDSE's shape, and serves each ``Product`` zip at the OData ``$value`` endpoint
behind a Keycloak bearer token, as CDSE does.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from include.collectors.base import Credentials, Scene, SearchQuery
from include.collectors.cdse_stac import (
    CdseStacDriver,
    item_to_cdse_scene,
    product_id_of,
    select_product_asset,
)
from include.collectors.registry import driver_class, make_driver
from include.collectors.tokens import CDSE_TOKEN_URL, clear_token_cache
from include.common.errors import ChecksumMismatchError, InvalidInputError, ProviderError
from tests.helpers.cdse_server import safe_zip
from tests.helpers.cdse_stac_server import CdseStacServer, s2_stac_item

L2A = "S2B_MSIL2A_20240105T100329_N0510_R122_T33UUP_20240105T114341"
L2A_LATER = "S2A_MSIL2A_20240110T100401_N0510_R122_T33UUP_20240110T121518"
L2A_OTHER_TILE = "S2B_MSIL2A_20240105T100329_N0510_R122_T33UVP_20240105T114341"
L1C = "S2B_MSIL1C_20240105T100329_N0510_R122_T33UUP_20240105T105949"
PASSWORD = "s3cret"  # noqa: S105 - the loopback server's test account
LOOPBACK_TOKEN_URL = "http://127.0.0.1:8123/auth/realms/CDSE/token"  # noqa: S105 - a URL
DATASETS = {"S2MSI1C": "sentinel-2-l1c", "S2MSI2A": "sentinel-2-l2a"}
FOOTPRINT = {
    "type": "Polygon",
    "coordinates": [[[12.0, 48.6], [13.5, 48.6], [13.5, 49.6], [12.0, 49.6], [12.0, 48.6]]],
}
ELSEWHERE = {
    "type": "Polygon",
    "coordinates": [[[14.0, 48.6], [15.4, 48.6], [15.4, 49.6], [14.0, 49.6], [14.0, 48.6]]],
}


def product_zip(name: str) -> bytes:
    return safe_zip(
        name,
        {
            "manifest.safe": f"<manifest of {name}/>".encode() * 200,
            "MTD_MSIL2A.xml": f"<metadata {name}/>".encode() * 300,
        },
    )


@pytest.fixture(autouse=True)
def _fresh_tokens() -> Iterator[None]:
    clear_token_cache()
    yield
    clear_token_cache()


@pytest.fixture
def server() -> Iterator[CdseStacServer]:
    with CdseStacServer() as cdse:
        yield cdse


@pytest.fixture
def make_stac_driver() -> Iterator[Callable[..., CdseStacDriver]]:
    made: list[CdseStacDriver] = []

    def build(server: CdseStacServer, **options: Any) -> CdseStacDriver:
        credentials = options.pop("credentials", Credentials(username="alice", password=PASSWORD))
        driver = CdseStacDriver(
            url=server.stac_url,
            credentials=credentials,
            options={
                "catalog": "cdse-stac",
                "token_url": server.token_url,
                "datasets": DATASETS,
                "page_size": 100,
                "retry_base_delay_s": 0.0,
                **options,
            },
        )
        made.append(driver)
        return driver

    yield build
    for driver in made:
        driver.close()


def cdse_item(name: str = L2A, **options: Any) -> dict[str, Any]:
    """A CDSE-shaped item whose hrefs point at CDSE's real download host."""
    return s2_stac_item(
        name,
        product_zip(name),
        footprint=FOOTPRINT,
        product_id="5a4b1a1e-37c4-4a0c-9b8e-9f0b1c2d3e4f",
        download_origin="https://download.dataspace.copernicus.eu",
        stac_url="https://stac.dataspace.copernicus.eu/v1",
        **options,
    )


def one_scene(driver: CdseStacDriver, name: str, dataset: str = "S2MSI2A") -> Scene:
    (scene,) = driver.search(SearchQuery(dataset=dataset, scene_ids=(name,)))
    return scene


# --------------------------------------------------------------------------------------------
# Items -> scenes


def test_item_to_cdse_scene_maps_cdse_item_fields() -> None:
    item = cdse_item(cloud_pct=12.5, safe_suffix=True)
    scene = item_to_cdse_scene(item, catalog="cdse-stac", dataset="S2MSI2A", strict_ids=True)

    assert scene.scene_id == L2A  # the item id without .SAFE
    assert scene.tile == "33UUP"  # from grid:code MGRS-33UUP
    assert scene.cloud_pct == 12.5
    assert scene.platform == "sentinel-2b"
    assert scene.datetime == datetime(2024, 1, 5, 10, 3, 29, tzinfo=UTC)
    assert scene.online is True
    assert scene.footprint == FOOTPRINT
    assert scene.link == (
        f"https://stac.dataspace.copernicus.eu/v1/collections/sentinel-2-l2a/items/{L2A}.SAFE"
    )
    (archive,) = scene.assets  # only the product zip; every s3:// file asset is left out
    assert archive.key == "archive" and archive.roles == ("data", "archive")
    assert archive.href == (
        "https://download.dataspace.copernicus.eu/odata/v1/"
        "Products(5a4b1a1e-37c4-4a0c-9b8e-9f0b1c2d3e4f)/$value"
    )
    assert archive.size_bytes == len(product_zip(L2A)) == scene.size_bytes
    assert archive.checksum == item["assets"]["Product"]["file:checksum"]
    assert archive.checksum is not None and archive.checksum.startswith("d50110")  # MD5
    assert archive.media_type == "application/zip"
    assert scene.properties["product_id"] == "5a4b1a1e-37c4-4a0c-9b8e-9f0b1c2d3e4f"
    assert scene.properties["product_asset"] == "Product"
    assert scene.properties["product_type"] == "S2MSI2A"
    assert scene.properties["processing_baseline"] == "05.10"
    assert scene.properties["relative_orbit"] == 122
    assert scene.properties["stac_collection"] == "sentinel-2-l2a"
    assert "non_http_assets" not in scene.properties
    assert "requester_pays" not in scene.properties
    assert all(
        raw["href"].startswith(("s3://eodata/", "https://")) for raw in item["assets"].values()
    )


def test_item_to_cdse_scene_product_href_under_https_alternate_is_used() -> None:
    item = cdse_item(product_href_in="alternate")
    assert item["assets"]["Product"]["href"].startswith("s3://eodata/")

    scene = item_to_cdse_scene(item, catalog="cdse-stac", dataset="S2MSI2A", strict_ids=True)

    (archive,) = scene.assets
    assert archive.href.startswith("https://download.dataspace.copernicus.eu/odata/v1/Products(")
    assert archive.href.endswith(")/$value")


def test_select_product_asset_found_by_value_href_whatever_its_key() -> None:
    item = cdse_item()
    assets = dict(item["assets"])
    assets["zipped"] = assets.pop("Product")

    selected = select_product_asset(assets)

    assert selected is not None
    key, asset = selected
    assert key == "zipped"
    assert product_id_of(asset.href) == "5a4b1a1e-37c4-4a0c-9b8e-9f0b1c2d3e4f"


def test_select_product_asset_falls_back_to_product_key_with_zip_type() -> None:
    assets = dict(cdse_item()["assets"])
    assets["Product"] = {**assets["Product"], "href": "https://zipper.example.eu/S2B.zip"}
    selected = select_product_asset(assets)
    assert selected is not None and selected[1].href == "https://zipper.example.eu/S2B.zip"

    assets["Product"] = {**assets["Product"], "type": "application/xml"}
    assert select_product_asset(assets) is None  # neither a $value href nor a zip


def test_product_id_of_reads_only_product_value_paths() -> None:
    base = "https://download.dataspace.copernicus.eu/odata/v1"
    assert product_id_of(f"{base}/Products(abc-1)/$value") == "abc-1"
    assert product_id_of(f"{base}/Products%28abc-1%29/%24value") == "abc-1"
    assert product_id_of(f"{base}/Products(abc-1)/Nodes(x.SAFE)/Nodes(a.jp2)/$value") is None
    assert product_id_of("s3://eodata/Sentinel-2/MSI/L2A/2024/01/05/x.SAFE") is None


def test_item_to_cdse_scene_without_product_asset_has_no_asset() -> None:
    item = cdse_item(product_key=None)
    scene = item_to_cdse_scene(item, catalog="cdse-stac", dataset="S2MSI2A", strict_ids=True)
    assert scene.assets == ()
    assert scene.size_bytes is None
    assert "product_id" not in scene.properties


def test_item_to_cdse_scene_strict_ids_refuse_a_non_product_name() -> None:
    item = copy.deepcopy(cdse_item())
    item["id"] = "S2B_T33UUP_20240105_0_L2A"  # an Earth Search-style id, not a product name
    with pytest.raises(InvalidInputError, match="id"):
        item_to_cdse_scene(item, catalog="cdse-stac", dataset="S2MSI2A", strict_ids=True)


def test_scene_round_trips_through_dict() -> None:
    scene = item_to_cdse_scene(cdse_item(), catalog="cdse-stac", dataset="S2MSI2A", strict_ids=True)
    assert Scene.from_dict(scene.to_dict()) == scene


# --------------------------------------------------------------------------------------------
# Search


def test_cdse_stac_search_area_dates_cloud_sends_stac_body_without_credentials(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
) -> None:
    server.add_s2_item(L2A_LATER, product_zip(L2A_LATER), footprint=FOOTPRINT, cloud_pct=3.0)
    server.add_s2_item(L2A, product_zip(L2A), footprint=FOOTPRINT, cloud_pct=12.5)
    server.add_s2_item(L2A_OTHER_TILE, product_zip(L2A_OTHER_TILE), footprint=ELSEWHERE)
    server.add_s2_item(L1C, product_zip(L1C), footprint=FOOTPRINT)
    cloudy = "S2A_MSIL2A_20240108T100401_N0510_R122_T33UUP_20240108T121518"
    server.add_s2_item(cloudy, product_zip(cloudy), footprint=FOOTPRINT, cloud_pct=80.0)
    driver = make_stac_driver(server)

    scenes = driver.search(
        SearchQuery(
            dataset="S2MSI2A",
            bbox=(12.5, 48.8, 13.0, 49.2),
            start=datetime(2024, 1, 1, tzinfo=UTC),
            end=datetime(2024, 1, 31, tzinfo=UTC),
            cloud_pct=50,
        )
    )

    assert [s.scene_id for s in scenes] == [L2A, L2A_LATER]  # oldest first
    assert [s.cloud_pct for s in scenes] == [12.5, 3.0]
    assert {s.catalog for s in scenes} == {"cdse-stac"}
    (request,) = server.search_requests()
    assert request.method == "POST"
    assert request.json() == {
        "collections": ["sentinel-2-l2a"],
        "limit": 100,
        "bbox": [12.5, 48.8, 13.0, 49.2],
        "datetime": "2024-01-01T00:00:00Z/2024-01-31T00:00:00Z",
        "query": {"eo:cloud_cover": {"lte": 50}},
    }
    assert "authorization" not in request.headers  # the password never goes to the catalog
    assert server.grants == []  # searching needs no login


def test_cdse_stac_search_follows_post_next_links_with_the_token(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
) -> None:
    names = [
        f"S2B_MSIL2A_202401{day:02d}T100329_N0510_R122_T33UUP_202401{day:02d}T114341"
        for day in range(1, 6)
    ]
    for name in names:
        server.add_s2_item(name, product_zip(name), footprint=FOOTPRINT)
    driver = make_stac_driver(server, page_size=2)

    scenes = driver.search(SearchQuery(dataset="S2MSI2A", bbox=(12.5, 48.8, 13.0, 49.2)))

    assert [s.scene_id for s in scenes] == names
    bodies = [r.json() for r in server.search_requests()]
    assert [b.get("token") for b in bodies] == [None, "next:2", "next:4"]
    assert all(b["bbox"] == [12.5, 48.8, 13.0, 49.2] and b["limit"] == 2 for b in bodies)


def test_cdse_stac_search_post_refused_pages_through_get(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
) -> None:
    names = [
        f"S2B_MSIL2A_202401{day:02d}T100329_N0510_R122_T33UUP_202401{day:02d}T114341"
        for day in range(1, 4)
    ]
    for name in names:
        server.add_s2_item(name, product_zip(name), footprint=FOOTPRINT)
    server.fail("search", 405, {"code": "MethodNotAllowed", "description": "use GET"})
    driver = make_stac_driver(server, page_size=2)

    scenes = driver.search(SearchQuery(dataset="S2MSI2A", tiles=("33UUP",)))

    assert [s.scene_id for s in scenes] == names
    methods = [(r.method, "token=next" in r.query) for r in server.search_requests()]
    assert methods == [("POST", False), ("GET", False), ("GET", True)]


def test_cdse_stac_search_past_the_page_cap_is_split_by_time(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
) -> None:
    names = []
    for day in range(1, 4):
        name = f"S2B_MSIL2A_202401{day:02d}T100329_N0510_R122_T33UUP_202401{day:02d}T114341"
        server.add_s2_item(name, product_zip(name), footprint=FOOTPRINT)
        names.append(name)
    driver = make_stac_driver(server, page_size=1, max_pages=2)
    scenes = driver.search(SearchQuery(dataset="S2MSI2A"))
    assert [scene.scene_id for scene in scenes] == names  # 3 items > 2 pages of 1: split
    assert len(server.search_requests()) > 2


def test_cdse_stac_search_one_instant_past_the_page_cap_is_refused_naming_max_pages(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
) -> None:
    for orbit in range(1, 4):  # one datatake: three products sensed at one instant
        name = f"S2B_MSIL2A_20240101T100329_N0510_R{orbit:03d}_T33UUP_20240101T114341"
        server.add_s2_item(name, product_zip(name), footprint=FOOTPRINT)
    instant = datetime(2024, 1, 1, 10, 3, 29, tzinfo=UTC)
    driver = make_stac_driver(server, page_size=1, max_pages=2)
    with pytest.raises(InvalidInputError, match="max_pages"):
        driver.search(SearchQuery(dataset="S2MSI2A", start=instant, end=instant))


def test_cdse_stac_search_tiles_ask_grid_code_once_per_tile(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
) -> None:
    server.add_s2_item(L2A, product_zip(L2A), footprint=FOOTPRINT)
    server.add_s2_item(L2A_OTHER_TILE, product_zip(L2A_OTHER_TILE), footprint=ELSEWHERE)
    driver = make_stac_driver(server)

    scenes = driver.search(SearchQuery(dataset="S2MSI2A", tiles=("T33UUP", "31TDH"), cloud_pct=50))

    assert [(s.scene_id, s.tile) for s in scenes] == [(L2A, "33UUP")]
    queries = [r.json()["query"] for r in server.search_requests()]
    assert queries == [  # one request per tile, even for the tile with no product
        {"eo:cloud_cover": {"lte": 50}, "grid:code": {"eq": "MGRS-33UUP"}},
        {"eo:cloud_cover": {"lte": 50}, "grid:code": {"eq": "MGRS-31TDH"}},
    ]


def test_cdse_stac_search_scene_ids_ask_item_ids_with_and_without_safe(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
) -> None:
    server.add_s2_item(L2A, product_zip(L2A), footprint=FOOTPRINT, safe_suffix=True)
    server.add_s2_item(L2A_LATER, product_zip(L2A_LATER), footprint=FOOTPRINT)
    server.add_s2_item(L2A_OTHER_TILE, product_zip(L2A_OTHER_TILE), footprint=ELSEWHERE)
    driver = make_stac_driver(server)
    missing = "S2A_MSIL2A_20240120T100401_N0510_R122_T33UUP_20240120T121518"

    scenes = driver.search(SearchQuery(dataset="S2MSI2A", scene_ids=(L2A, L2A_LATER, missing)))

    assert [s.scene_id for s in scenes] == [L2A, L2A_LATER]
    assert scenes[0].properties["stac_id"] == f"{L2A}.SAFE"
    (request,) = server.search_requests()  # no s2:product_uri lookups afterwards
    body = request.json()
    assert body["ids"] == [
        L2A,
        f"{L2A}.SAFE",
        L2A_LATER,
        f"{L2A_LATER}.SAFE",
        missing,
        f"{missing}.SAFE",
    ]
    assert "datetime" not in body and "query" not in body


def test_cdse_stac_search_skips_items_whose_id_is_no_product_name(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.add_s2_item(L2A, product_zip(L2A), footprint=FOOTPRINT)
    odd = copy.deepcopy(cdse_item(L2A_LATER))
    odd["id"] = "S2A_T33UUP_20240110_0_L2A"
    server.add_item(odd)
    driver = make_stac_driver(server)

    with caplog.at_level(logging.WARNING):
        scenes = driver.search(SearchQuery(dataset="S2MSI2A", tiles=("33UUP",)))

    assert [s.scene_id for s in scenes] == [L2A]
    assert "search.product_skipped catalog=cdse-stac item=S2A_T33UUP_20240110_0_L2A" in caplog.text


def test_cdse_stac_search_refused_keeps_status_and_description(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
) -> None:
    server.fail(
        "search",
        404,
        {"code": "NotFoundError", "description": "Collection sentinel-2-l2a is being rebuilt."},
    )
    driver = make_stac_driver(server)
    with pytest.raises(ProviderError, match="sentinel-2-l2a is being rebuilt") as caught:
        driver.search(SearchQuery(dataset="sentinel-2-l2a"))
    assert caught.value.status_code == 404


def test_cdse_stac_refuses_a_collection_the_api_does_not_serve_before_searching(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
) -> None:
    driver = make_stac_driver(server, datasets={"S2MSI1C": "sentinel-2-l1c"}, catalog="cdse-s2")
    with pytest.raises(InvalidInputError) as caught:
        driver.search(SearchQuery(dataset="sentinel-9", start=datetime(2024, 1, 1, tzinfo=UTC)))
    (problem,) = caught.value.problems
    assert problem.field == "dataset"
    assert problem.message == "'sentinel-9' is not a dataset of catalog 'cdse-s2'"
    assert problem.fix == (
        "use one of: S2MSI1C; the catalog's collections: sentinel-2-l1c, sentinel-2-l2a"
    )
    assert server.requests_to("/v1/search") == []
    assert [r.path for r in server.requests] == ["/v1/collections/sentinel-9", "/v1/collections"]
    with pytest.raises(InvalidInputError):  # the answer is kept: no second question
        driver.check_dataset("sentinel-9")
    assert len(server.requests) == 2


def test_cdse_stac_accepts_a_served_collection_that_is_not_configured(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
) -> None:
    server.add_s2_item(L2A, product_zip(L2A), footprint=FOOTPRINT, cloud_pct=12.5)
    driver = make_stac_driver(server, datasets={"S2MSI1C": "sentinel-2-l1c"})
    assert driver.check_dataset("sentinel-2-l2a") == "sentinel-2-l2a"
    scenes = driver.search(SearchQuery(dataset="sentinel-2-l2a", bbox=(12.5, 48.8, 13.0, 49.2)))
    assert [s.scene_id for s in scenes] == [L2A]
    assert [r.path for r in server.requests][:2] == [
        "/v1/collections/sentinel-2-l2a",
        "/v1/search",
    ]
    assert server.requests_to("/v1/collections") == []


def test_cdse_stac_server_collection_and_landing_page(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
) -> None:
    driver = make_stac_driver(server)
    assert driver.get_collection("S2MSI1C")["id"] == "sentinel-2-l1c"
    with pytest.raises(ProviderError) as caught:
        driver.get_collection("sentinel-9")
    assert caught.value.status_code == 404
    landing = driver.client.get(server.stac_url).json()
    assert {link["method"] for link in landing["links"] if link["rel"] == "search"} == {
        "GET",
        "POST",
    }


# --------------------------------------------------------------------------------------------
# Download


@pytest.mark.parametrize("algorithm", ["md5", "blake3", "sha256"])
def test_cdse_stac_download_writes_the_product_zip_verified(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
    tmp_path: Path,
    algorithm: str,
) -> None:
    content = product_zip(L2A)
    server.add_s2_item(L2A, content, footprint=FOOTPRINT, checksum=algorithm)
    driver = make_stac_driver(server)
    scene = one_scene(driver, L2A)

    result = driver.download(scene, tmp_path)

    assert result.path == tmp_path / f"{L2A}.zip"
    assert result.path.read_bytes() == content
    assert result.checksum is not None and result.checksum.startswith(f"{algorithm}:")
    assert result.files == (result.path,)
    assert not any("/Nodes(" in r.path for r in server.requests)  # no per-file download
    value = server.requests_to(server.value_path(server.product_id(L2A)))
    assert value[0].headers["authorization"].startswith("Bearer ")
    assert server.grants == ["password"]


def test_cdse_stac_download_again_reuses_the_verified_zip_without_requests(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
    tmp_path: Path,
) -> None:
    server.add_s2_item(L2A, product_zip(L2A), footprint=FOOTPRINT)
    driver = make_stac_driver(server)
    scene = one_scene(driver, L2A)
    driver.download(scene, tmp_path)
    before = len(server.requests)

    again = driver.download(scene, tmp_path)

    assert again.reused is True
    assert len(server.requests) == before


def test_cdse_stac_download_wrong_checksum_raises_mismatch_and_leaves_nothing(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
    tmp_path: Path,
) -> None:
    server.add_s2_item(L2A, product_zip(L2A), footprint=FOOTPRINT, checksum="wrong")
    driver = make_stac_driver(server)
    with pytest.raises(ChecksumMismatchError):
        driver.download(one_scene(driver, L2A), tmp_path)
    assert list(tmp_path.glob("*.zip*")) == []


def test_cdse_stac_download_item_without_product_asset_raises_clear_error(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
    tmp_path: Path,
) -> None:
    server.add_s2_item(L2A, product_zip(L2A), footprint=FOOTPRINT, product_key=None)
    driver = make_stac_driver(server)
    scene = one_scene(driver, L2A)  # still found: preview lists it
    before = len(server.requests)

    with pytest.raises(ProviderError) as caught:
        driver.download(scene, tmp_path)

    message = str(caught.value)
    assert f"{L2A}: catalog 'cdse-stac' lists no product zip" in message
    assert "Products(<id>)/$value" in message and "catalog CDSE (OData)" in message
    assert len(server.requests) == before  # neither a login nor a download was tried
    assert server.grants == []


def test_cdse_stac_download_401_logs_in_again_once_and_succeeds(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
    tmp_path: Path,
) -> None:
    content = product_zip(L2A)
    server.add_s2_item(L2A, content, footprint=FOOTPRINT)
    server.fail("value", 401, {"detail": "Expired signature or invalid token"})
    driver = make_stac_driver(server)

    result = driver.download(one_scene(driver, L2A), tmp_path)

    assert result.path.read_bytes() == content
    assert server.grants == ["password", "password"]


@pytest.mark.parametrize("status", [401, 403])
def test_cdse_stac_download_refused_token_raises_provider_error_naming_connection(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
    tmp_path: Path,
    status: int,
) -> None:
    server.add_s2_item(L2A, product_zip(L2A), footprint=FOOTPRINT)
    server.fail("value", status, {"detail": "Forbidden"}, times=3)
    driver = make_stac_driver(server)

    with pytest.raises(ProviderError) as caught:
        driver.download(one_scene(driver, L2A), tmp_path)

    assert caught.value.status_code == status
    assert "Airflow Connection 'cdse_default'" in str(caught.value)
    # a 401 is retried once with a fresh login; a 403 is not
    assert server.grants == (["password", "password"] if status == 401 else ["password"])


def test_cdse_stac_download_expired_token_logs_in_again(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
    tmp_path: Path,
) -> None:
    server.add_s2_item(L2A, product_zip(L2A), footprint=FOOTPRINT)
    driver = make_stac_driver(server)
    scene = one_scene(driver, L2A)
    driver.tokens.access_token()
    server.expire_tokens()  # the server forgot it (restart, revocation)

    assert driver.download(scene, tmp_path).reused is False
    assert server.grants == ["password", "password"]


def test_cdse_stac_download_without_connection_says_to_create_it(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
    tmp_path: Path,
) -> None:
    server.add_s2_item(L2A, product_zip(L2A), footprint=FOOTPRINT)
    driver = make_stac_driver(server, credentials=None)
    with pytest.raises(ProviderError, match="airflow connections add cdse_default"):
        driver.download(one_scene(driver, L2A), tmp_path)
    assert server.grants == []


def test_cdse_stac_token_not_sent_across_redirect_to_another_host(
    make_stac_driver: Callable[..., CdseStacDriver],
    tmp_path: Path,
) -> None:
    with CdseStacServer(redirect="other-host", zipper_requires_auth=False) as server:
        server.add_s2_item(L2A, product_zip(L2A), footprint=FOOTPRINT)
        driver = make_stac_driver(server)
        scene = one_scene(driver, L2A)
        driver.download(scene, tmp_path / "a")
        first = server.requests_to(server.zipper_path(server.product_id(L2A)))
        trusted = make_stac_driver(server, auth_hosts=["localhost"])
        trusted.download(scene, tmp_path / "b")
        second = server.requests_to(server.zipper_path(server.product_id(L2A)))[1:]
        value = server.requests_to(server.value_path(server.product_id(L2A)))

    assert value[0].headers["authorization"].startswith("Bearer ")  # the catalog's own host
    assert [r.headers.get("host", "").split(":")[0] for r in first] == ["localhost"]
    assert "authorization" not in first[0].headers
    assert second[0].headers["authorization"].startswith("Bearer ")


@pytest.mark.parametrize(
    "origin", ["https://evil.example.net", "https://dataspace.copernicus.eu.evil.net", "localhost"]
)
def test_cdse_stac_product_href_off_cdse_hosts_refused_before_any_request(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
    tmp_path: Path,
    origin: str,
) -> None:
    if origin == "localhost":  # loopback, but not the catalog's host
        origin = server.url.replace("127.0.0.1", "localhost")
    item = s2_stac_item(
        L2A,
        product_zip(L2A),
        footprint=FOOTPRINT,
        product_id="x-1",
        download_origin=origin,
        stac_url=server.stac_url,
    )
    server.add_item(item)
    driver = make_stac_driver(server)
    scene = one_scene(driver, L2A)
    before = len(server.requests)

    with pytest.raises(ProviderError, match="is not on a CDSE host"):
        driver.download(scene, tmp_path)

    assert len(server.requests) == before
    assert server.grants == []


def test_cdse_stac_may_receive_token_only_cdse_hosts_over_https() -> None:
    driver = CdseStacDriver(url="https://stac.dataspace.copernicus.eu/v1")
    try:
        assert driver.may_receive_token(
            "https://download.dataspace.copernicus.eu/odata/v1/Products(x)/$value"
        )
        assert driver.may_receive_token("https://zipper.dataspace.copernicus.eu/odata/v1/x")
        assert driver.may_receive_token("https://identity.dataspace.copernicus.eu/auth")
        assert not driver.may_receive_token("http://download.dataspace.copernicus.eu/odata/v1/x")
        assert not driver.may_receive_token("https://dataspace.copernicus.eu.evil.net/x")
        assert not driver.may_receive_token("https://eodata.s3.amazonaws.com/x")
    finally:
        driver.close()


def test_cdse_stac_tokens_and_password_never_reach_the_log(
    server: CdseStacServer,
    make_stac_driver: Callable[..., CdseStacDriver],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.add_s2_item(L2A, product_zip(L2A), footprint=FOOTPRINT)
    server.fail("value", 401, {"detail": "Expired signature or invalid token"})
    driver = make_stac_driver(server)
    with caplog.at_level(logging.DEBUG):
        driver.download(one_scene(driver, L2A), tmp_path)

    assert len(server.issued_tokens) == 4  # two logins: access and refresh tokens each
    assert "token.obtained" in caplog.text and "download.done" in caplog.text
    for token in server.issued_tokens:
        assert token not in caplog.text
    assert PASSWORD not in caplog.text


# --------------------------------------------------------------------------------------------
# Registration and make_driver


def test_cdse_stac_registered_and_configured_as_catalog_cdse_stac() -> None:
    assert driver_class("cdse_stac") is CdseStacDriver
    driver = make_driver("CDSE-STAC")
    try:
        assert isinstance(driver, CdseStacDriver)
        assert driver.catalog == "cdse-stac"
        assert driver.url == "https://stac.dataspace.copernicus.eu/v1"
        assert driver.collection_id("S2MSI1C") == "sentinel-2-l1c"
        assert driver.collection_id("s2msi2a") == "sentinel-2-l2a"
        assert driver.token_url == CDSE_TOKEN_URL
        assert CDSE_TOKEN_URL.startswith("https://identity.dataspace.copernicus.eu/")
        assert driver.client_id == "cdse-public"
        assert driver.conn_id == "cdse_default"
        assert driver.options["mgrs_query_style"] == "grid"
    finally:
        driver.close()


def test_make_driver_cdse_stac_loopback_url_and_token_url_with_credentials_accepted() -> None:
    driver = make_driver(
        "cdse-stac",
        catalog_args={"url": "http://127.0.0.1:8123/v1", "token_url": LOOPBACK_TOKEN_URL},
        credentials=Credentials(username="alice", password=PASSWORD),
    )
    try:
        assert isinstance(driver, CdseStacDriver)
        assert driver.token_url == LOOPBACK_TOKEN_URL
    finally:
        driver.close()


@pytest.mark.parametrize(
    ("catalog_args", "field"),
    [
        ({"token_url": "https://evil.example.net/token"}, "catalog_args.token_url"),
        ({"url": "https://evil.example.net/v1"}, "catalog_args.url"),
    ],
)
def test_make_driver_cdse_stac_endpoint_off_host_with_credentials_refused(
    catalog_args: dict[str, str],
    field: str,
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        make_driver(
            "cdse-stac",
            catalog_args=catalog_args,
            credentials=Credentials(username="alice", password=PASSWORD),
        )
    assert caught.value.problems[0].field == field
    assert PASSWORD not in str(caught.value)
