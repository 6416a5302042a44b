"""The CDSE OData driver against a loopback CDSE (tests/helpers/cdse_server.py).

The server is fed with the real recorded CDSE OData pages (Sentinel-1, CDSETool's recordings) and
with Sentinel-2 products whose zips the tests build from real SAFE metadata files.
"""

from __future__ import annotations

import copy
import json
import logging
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from include.collectors.base import Availability, Credentials, Scene, SearchQuery
from include.collectors.cdse_odata import (
    CdseDataset,
    CdseODataDriver,
    build_filter,
    parse_dataset,
    parse_footprint,
    product_to_scene,
    select_checksum,
)
from include.collectors.registry import driver_class, make_driver
from include.collectors.tokens import clear_token_cache
from include.common.errors import (
    ChecksumMismatchError,
    InvalidInputError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    SceneOfflineError,
)
from tests.helpers.cdse_server import (
    RECORDED_ORIGIN,
    CdseServer,
    mtd_footprint,
    s2_product_entity,
    safe_zip,
)
from tests.helpers.http_server import LocalHttpServer, Reply, Request

T46RER = "S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248.SAFE"
T31TDH = "S2A_MSIL1C_20180101T105441_N0206_R051_T31TDH_20180101T124911.SAFE"
T07HFE = "S2A_MSIL2A_20190212T192651_N0212_R013_T07HFE_20201007T160857.SAFE"
NO_BASELINE = "S2A_MSIL1C_20200717T221941_R029_T01LAC_20200717T234135.SAFE"
"""A real product folder name without processing baseline (stactools' test data)."""
PASSWORD = "s3cret"  # noqa: S105 - the loopback server's test account


@pytest.fixture(autouse=True)
def _fresh_tokens() -> Iterator[None]:
    clear_token_cache()
    yield
    clear_token_cache()


@pytest.fixture
def cdse_realdata(realdata: Path) -> Path:
    for needed in ("cdsetool/query/mock/sentinel_1", "stactools-sentinel2", "eodag/products"):
        if not (realdata / needed).exists():
            pytest.skip(f"{needed} not found under {realdata}; set REALDATA_DIR")
    return realdata


@pytest.fixture
def products(cdse_realdata: Path) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """Real SAFE metadata zipped at test time: name -> (zip bytes, footprint)."""
    stac = cdse_realdata / "stactools-sentinel2"
    eodag = cdse_realdata / "eodag"
    t46 = stac / T46RER
    t07 = stac / T07HFE
    t31 = eodag / "products" / T31TDH.removesuffix(".SAFE")
    return {
        T46RER: (
            safe_zip(
                T46RER,
                {"manifest.safe": t46 / "manifest.safe", "MTD_MSIL1C.xml": t46 / "MTD_MSIL1C.xml"},
            ),
            mtd_footprint(t46 / "MTD_MSIL1C.xml"),
        ),
        T31TDH: (
            safe_zip(
                T31TDH,
                {
                    "manifest.safe": eodag / "safe_build" / "manifest.safe.S2_MSI_L1C",
                    "MTD_MSIL1C.xml": t31 / "MTD_MSIL1C.xml",
                },
            ),
            mtd_footprint(t31 / "MTD_MSIL1C.xml"),
        ),
        T07HFE: (
            safe_zip(
                T07HFE,
                {"manifest.safe": t07 / "manifest.safe", "MTD_MSIL2A.xml": t07 / "MTD_MSIL2A.xml"},
            ),
            mtd_footprint(t07 / "MTD_MSIL2A.xml"),
        ),
    }


@pytest.fixture
def cdse() -> Iterator[CdseServer]:
    server = CdseServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def make_cdse_driver(sleeps: list[float]) -> Iterator[Callable[..., CdseODataDriver]]:
    made: list[CdseODataDriver] = []

    def build(
        server: CdseServer, *, credentials: Credentials | None = None, **options: Any
    ) -> CdseODataDriver:
        settings: dict[str, Any] = {
            "catalog": "cdse",
            "token_url": server.token_url,
            "page_size": 10,
            "timeout_s": 5.0,
            "conn_id": "cdse_default",
            "retry_base_delay_s": 0.01,
            **options,
        }
        driver = CdseODataDriver(
            url=server.odata_url,
            credentials=credentials or Credentials(username="alice", password=PASSWORD),
            options=settings,
        )
        driver.retry_sleep = sleeps.append
        made.append(driver)
        return driver

    yield build
    for driver in made:
        driver.close()


def bbox_of(footprint: dict[str, Any]) -> tuple[float, float, float, float]:
    from shapely.geometry import shape

    w, s, e, n = shape(footprint).bounds
    return (w, s, e, n)


def serve(
    server: CdseServer, products: dict[str, tuple[bytes, dict[str, Any]]], name: str, **kwargs: Any
) -> dict[str, Any]:
    content, footprint = products[name]
    return server.add_s2_product(name, content, footprint=footprint, **kwargs)


def search_queries(server: LocalHttpServer) -> list[dict[str, str]]:
    return [
        {k: v[0] for k, v in parse_qs(r.query).items()}
        for r in server.requests_to("/odata/v1/Products")
    ]


def one_scene(driver: CdseODataDriver, name: str) -> Scene:
    scenes = driver.search(
        SearchQuery(
            dataset="S2MSI1C" if "L1C" in name else "S2MSI2A",
            scene_ids=(name.removesuffix(".SAFE"),),
        )
    )
    assert len(scenes) == 1
    return scenes[0]


# --------------------------------------------------------------------------------------------
# Datasets and filters


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        ("S2MSI1C", CdseDataset("SENTINEL-2", "S2MSI1C")),
        ("s2msi2a", CdseDataset("SENTINEL-2", "S2MSI2A")),
        ("SENTINEL-1", CdseDataset("SENTINEL-1", None)),
        ("SENTINEL-1/IW_GRDH_1S", CdseDataset("SENTINEL-1", "IW_GRDH_1S")),
        ("SMOS", CdseDataset("SMOS", None)),  # CDSE collections without a hyphen
        ("ENVISAT", CdseDataset("ENVISAT", None)),
    ],
)
def test_parse_dataset_accepted_forms_map_to_collection_and_type(
    dataset: str, expected: CdseDataset
) -> None:
    assert parse_dataset(dataset) == expected


@pytest.mark.parametrize("dataset", ["sentinel-2-l1c", "S2MSI1C'--", "SENTINEL-1/", "x/y"])
def test_parse_dataset_unknown_form_raises_invalid_input(dataset: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_dataset(dataset)
    assert caught.value.problems[0].field == "dataset"
    assert "SENTINEL-1/IW_GRDH_1S" in caught.value.problems[0].fix


def test_build_filter_bbox_dates_cloud_tiles_reads_as_cdse_documents() -> None:
    query = SearchQuery(
        dataset="S2MSI1C",
        bbox=(-45.9, -12.74, -45.8, -12.6),
        start=datetime(2020, 1, 9, tzinfo=UTC),
        end=datetime(2020, 1, 10, 23, 59, 59, 999999, tzinfo=UTC),
        cloud_pct=40,
        tiles=("T23LLF",),
    )
    odata = build_filter(query, parse_dataset("S2MSI1C"))
    assert odata.filter == (
        "Collection/Name eq 'SENTINEL-2' and Attributes/OData.CSC.StringAttribute/any("
        "att:att/Name eq 'productType' and att/OData.CSC.StringAttribute/Value eq 'S2MSI1C') "
        "and OData.CSC.Intersects(area=geography'SRID=4326;POLYGON((-45.8 -12.74, -45.8 -12.6, "
        "-45.9 -12.6, -45.9 -12.74, -45.8 -12.74))') "
        "and ContentDate/Start ge 2020-01-09T00:00:00.000000Z "
        "and ContentDate/Start le 2020-01-10T23:59:59.999999Z "
        "and Attributes/OData.CSC.DoubleAttribute/any(att:att/Name eq 'cloudCover' and "
        "att/OData.CSC.DoubleAttribute/Value le 40.00) "
        "and (Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'tileId' and "
        "att/OData.CSC.StringAttribute/Value eq '23LLF'))"
    )
    assert odata.area is None


def test_build_filter_wrs_tile_raises_invalid_input_naming_tile() -> None:
    query = SearchQuery(dataset="S2MSI1C", tiles=("23LLF", "221069"))
    with pytest.raises(InvalidInputError) as caught:
        build_filter(query, parse_dataset("S2MSI1C"))
    assert [p.field for p in caught.value.problems] == ["tiles[1]"]


def test_build_filter_many_vertex_geometry_sends_bbox_and_rechecks() -> None:
    import math

    ring = [[10 + math.cos(i / 50 * math.pi), 45 + math.sin(i / 50 * math.pi)] for i in range(300)]
    ring.append(ring[0])
    query = SearchQuery(dataset="S2MSI1C", geometry={"type": "Polygon", "coordinates": [ring]})
    odata = build_filter(query, parse_dataset("S2MSI1C"))
    assert "POLYGON((11 44" in odata.filter or "POLYGON((11 " in odata.filter
    assert odata.filter.count(",") < 10
    assert odata.area is not None


def test_build_filter_scene_ids_use_exact_safe_names() -> None:
    query = SearchQuery(dataset="S2MSI1C", scene_ids=(T46RER.removesuffix(".SAFE"),))
    odata = build_filter(query, parse_dataset("S2MSI1C"), scene_ids=query.scene_ids)
    assert odata.filter.endswith(f"(Name eq '{T46RER}')")
    assert "ContentDate" not in odata.filter


# --------------------------------------------------------------------------------------------
# Product mapping (real recorded entities)


def test_product_to_scene_recorded_entity_maps_every_field(cdse_realdata: Path) -> None:
    entity = json.loads((cdse_realdata / "cdsetool/query/mock/sentinel_1/page_6.json").read_text())
    scene = product_to_scene(
        entity, catalog="cdse", dataset="SENTINEL-1", base_url=RECORDED_ORIGIN, strict_ids=False
    )
    assert scene.scene_id == "S1A_IW_GRDH_1SDV_20240101T055104_20240101T055129_051909_064584_AD4F"
    assert scene.datetime == datetime(2024, 1, 1, 5, 51, 4, 507000, tzinfo=UTC)
    assert scene.size_bytes == 1771289183
    assert scene.link == f"{RECORDED_ORIGIN}/Products(e2248dcd-6fc3-4676-9599-4d3c2c344090)"
    assert scene.assets[0].href.endswith("Products(e2248dcd-6fc3-4676-9599-4d3c2c344090)/$value")
    assert scene.assets[0].checksum == (
        "blake3:c5b352bf13d32d03ccf3598bfc321b75a074b49506e920a89787aab7499be587"
    )
    assert scene.properties["checksums"]["md5"] == "5200000ae27ce7fbd24b9f5112ea7544"
    assert scene.footprint is not None and scene.footprint["type"] == "Polygon"
    assert scene.online is True
    assert scene.tile is None


def test_parse_footprint_wkt_when_geofootprint_absent_matches_geojson(
    cdse_realdata: Path,
) -> None:
    entity = json.loads((cdse_realdata / "cdsetool/query/mock/sentinel_1/page_6.json").read_text())
    from_geojson = parse_footprint(entity)
    without = {**entity, "GeoFootprint": None}
    from_wkt = parse_footprint(without)
    assert from_wkt == from_geojson
    assert parse_footprint({"Footprint": "geography'SRID=3857;POINT (1 2)'"}) is None
    assert parse_footprint({"Footprint": None, "GeoFootprint": None}) is None


def test_product_to_scene_strict_ids_refuse_non_s2_name(cdse_realdata: Path) -> None:
    entity = json.loads((cdse_realdata / "cdsetool/query/mock/sentinel_1/page_6.json").read_text())
    with pytest.raises(InvalidInputError) as caught:
        product_to_scene(
            entity, catalog="cdse", dataset="S2MSI1C", base_url=RECORDED_ORIGIN, strict_ids=True
        )
    assert caught.value.problems[0].field == "Name"


def test_select_checksum_prefers_blake3_then_md5() -> None:
    both = [{"Algorithm": "MD5", "Value": "AB" * 16}, {"Algorithm": "BLAKE3", "Value": "cd" * 32}]
    assert select_checksum(both) == "blake3:" + "cd" * 32
    assert select_checksum(both[:1]) == "md5:" + "ab" * 16
    assert select_checksum([]) is None
    assert select_checksum(None) is None


# --------------------------------------------------------------------------------------------
# Search


def test_cdse_search_bbox_returns_s2_products_in_area_with_fields(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
) -> None:
    entity = serve(cdse, products, T46RER, cloud_pct=12.5, quicklook=True)
    serve(cdse, products, T31TDH, cloud_pct=3.0)
    driver = make_cdse_driver(cdse)  # Assets are expanded by default: the preview's icon
    scenes = driver.search(
        SearchQuery(
            dataset="S2MSI1C",
            bbox=bbox_of(products[T46RER][1]),
            start=datetime(2021, 9, 1, tzinfo=UTC),
            end=datetime(2021, 9, 30, tzinfo=UTC),
            cloud_pct=50,
        )
    )
    assert [s.scene_id for s in scenes] == [T46RER.removesuffix(".SAFE")]
    scene = scenes[0]
    assert scene.catalog == "cdse"
    assert scene.dataset == "S2MSI1C"
    assert scene.tile == "46RER"
    assert scene.cloud_pct == 12.5
    assert scene.platform == "sentinel-2a"
    assert scene.size_bytes == len(products[T46RER][0])
    assert scene.footprint == products[T46RER][1]
    assert scene.link == f"{cdse.odata_url}/Products({entity['Id']})"
    assert scene.quicklook is not None and "/Assets(" in scene.quicklook
    assert scene.properties["product_type"] == "S2MSI1C"
    assert scene.properties["processing_baseline"] == "03.01"
    assert scene.assets[0].checksum is not None
    assert scene.assets[0].checksum.startswith("blake3:")
    query = search_queries(cdse)[0]
    assert query["$expand"] == "Attributes,Assets"
    assert query["$top"] == "10"
    assert query["$orderby"] == "ContentDate/Start asc"


def test_cdse_search_detailed_geometry_sent_as_bbox_is_rechecked_exactly(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
) -> None:
    import math

    serve(cdse, products, T46RER)  # footprint near lon 93.0-93.4, lat 27.0-28.0
    ring = [
        [92.0 + 1.2 * math.cos(i / 150 * math.pi), 26.0 + 1.2 * math.sin(i / 150 * math.pi)]
        for i in range(300)
    ]
    ring.append(ring[0])
    circle = {"type": "Polygon", "coordinates": [ring]}  # its bbox overlaps, the circle does not
    driver = make_cdse_driver(cdse)
    assert driver.search(SearchQuery(dataset="S2MSI1C", geometry=circle)) == []
    assert "POLYGON((93.2 " in search_queries(cdse)[0]["$filter"]
    near = {
        "type": "Polygon",
        "coordinates": [[[93.1, 27.5], [93.2, 27.5], [93.2, 27.6], [93.1, 27.5]]],
    }
    assert len(driver.search(SearchQuery(dataset="S2MSI1C", geometry=near))) == 1


def test_cdse_search_sends_no_token_and_needs_no_credentials(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
) -> None:
    serve(cdse, products, T46RER)
    driver = CdseODataDriver(url=cdse.odata_url, options={"page_size": 5})
    try:
        assert len(driver.search(SearchQuery(dataset="S2MSI1C"))) == 1
    finally:
        driver.close()
    assert cdse.grants == []
    assert all("authorization" not in r.headers for r in cdse.requests)


def test_cdse_search_recorded_sentinel1_pages_follows_next_links(
    cdse: CdseServer,
    cdse_realdata: Path,
    make_cdse_driver: Callable[..., CdseODataDriver],
) -> None:
    ids = cdse.load_recorded_pages(cdse_realdata / "cdsetool/query/mock/sentinel_1")
    assert len(ids) == 47
    driver = make_cdse_driver(cdse, page_size=10)
    scenes = driver.search(
        SearchQuery(
            dataset="SENTINEL-1",
            start=datetime(2014, 4, 5, tzinfo=UTC),
            end=datetime(2014, 4, 14, tzinfo=UTC),
        )
    )
    assert len(scenes) == 47
    assert len(cdse.requests_to("/odata/v1/Products")) == 5
    assert [s.datetime for s in scenes] == sorted(s.datetime for s in scenes)
    first = next(s for s in scenes if s.scene_id == "S1A_AUX_INS_V20140406T010000_G20140409T142540")
    assert first.size_bytes == 728976
    assert first.properties["product_type"] == "AUX_INS"
    assert first.platform == "sentinel-1a"
    assert first.assets[0].checksum == (
        "blake3:6a7eacd5bd2ac39a1761270e3194302951d4db3a3ca44d0f2917b4473c45e955"
    )
    queries = search_queries(cdse)
    assert [q.get("$skip") for q in queries] == [None, "10", "20", "30", "40"]


def test_cdse_search_follows_the_recorded_next_link_verbatim(
    http_server: LocalHttpServer,
    cdse_realdata: Path,
) -> None:
    folder = cdse_realdata / "cdsetool/query/mock/sentinel_1"
    pages = [(folder / f"odata_page_{i}.json").read_text() for i in range(1, 6)]
    odata_url = http_server.url + "/odata/v1"

    def recorded(request: Request) -> Reply:
        skip = int(parse_qs(request.query).get("$skip", ["0"])[0])
        body = pages[skip // 10].replace(RECORDED_ORIGIN, odata_url)
        return Reply(200, body.encode(), {"Content-Type": "application/json"})

    http_server.route("/odata/v1/Products", recorded)
    driver = CdseODataDriver(url=odata_url, options={"page_size": 10})
    try:
        scenes = driver.search(SearchQuery(dataset="SENTINEL-1"))
    finally:
        driver.close()
    assert len(scenes) == 47
    requests = http_server.requests_to("/odata/v1/Products")
    assert parse_qs(requests[0].query)["$count"] == ["true"]  # counted on the first page only
    asked = [r.query for r in requests[1:]]
    links = [json.loads(page)["@odata.nextLink"] for page in pages[:4]]
    assert "%24count=true" in links[0]  # CDSE repeats it in the next link
    assert asked == [link.split("?", 1)[1].replace("&%24count=true", "") for link in links]


def test_cdse_search_s2_dataset_skips_non_s2_names_with_warning(
    cdse: CdseServer,
    cdse_realdata: Path,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    serve(cdse, products, T46RER)
    odd = s2_product_entity(T46RER, b"x", footprint=products[T46RER][1])
    odd.update(Name=NO_BASELINE, Id="odd-product")
    cdse.add_product(odd, collection="SENTINEL-2")
    s1 = json.loads((cdse_realdata / "cdsetool/query/mock/sentinel_1/page_6.json").read_text())
    s1["Attributes"] = copy.deepcopy(odd["Attributes"])  # pretend CDSE mislabelled it
    cdse.add_product(s1, collection="SENTINEL-2")
    driver = make_cdse_driver(cdse)
    with caplog.at_level(logging.WARNING, logger="include.collectors.cdse_odata"):
        scenes = driver.search(SearchQuery(dataset="S2MSI1C"))
    assert [s.scene_id for s in scenes] == [T46RER.removesuffix(".SAFE")]
    skipped = [r.getMessage() for r in caplog.records if "search.product_skipped" in r.getMessage()]
    assert len(skipped) == 2
    assert any(NO_BASELINE in line for line in skipped)
    assert any("S1A_IW_GRDH" in line for line in skipped)


def test_cdse_search_nothing_matches_returns_empty_list(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
) -> None:
    serve(cdse, products, T46RER)
    driver = make_cdse_driver(cdse)
    query = SearchQuery(
        dataset="S2MSI1C",
        bbox=(-46.0, -13.0, -45.0, -12.0),
        start=datetime(2021, 1, 1, tzinfo=UTC),
        end=datetime(2021, 12, 31, tzinfo=UTC),
    )
    assert driver.search(query) == []
    assert len(cdse.requests_to("/odata/v1/Products")) == 1


def test_cdse_search_more_pages_than_cap_splits_and_returns_everything(
    cdse: CdseServer,
    cdse_realdata: Path,
    make_cdse_driver: Callable[..., CdseODataDriver],
) -> None:
    ids = cdse.load_recorded_pages(cdse_realdata / "cdsetool/query/mock/sentinel_1")
    driver = make_cdse_driver(cdse, page_size=10, max_pages=3)
    scenes = driver.search(SearchQuery(dataset="SENTINEL-1"))
    assert len(scenes) == len({s.scene_id for s in scenes}) == len(ids)
    assert len(cdse.requests_to("/odata/v1/Products")) > 3


def test_cdse_search_past_the_skip_limit_splits_instead_of_returning_a_part(
    cdse: CdseServer,
    cdse_realdata: Path,
    make_cdse_driver: Callable[..., CdseODataDriver],
) -> None:
    cdse.load_recorded_pages(cdse_realdata / "cdsetool/query/mock/sentinel_1")  # 47 products
    cdse.max_skip = 20  # CDSE: 10,000; it leaves out the next link rather than pass it
    driver = make_cdse_driver(cdse, page_size=5, max_pages=100, max_skip=20)

    scenes = driver.search(SearchQuery(dataset="SENTINEL-1"))

    assert len(scenes) == len({s.scene_id for s in scenes}) == 47
    assert all(int(q.get("$skip") or 0) <= 20 for q in search_queries(cdse))


def test_cdse_search_with_limit_past_the_cap_raises_invalid_input(
    cdse: CdseServer,
    cdse_realdata: Path,
    make_cdse_driver: Callable[..., CdseODataDriver],
) -> None:
    cdse.load_recorded_pages(cdse_realdata / "cdsetool/query/mock/sentinel_1")
    driver = make_cdse_driver(cdse, page_size=5, max_pages=3)
    with pytest.raises(InvalidInputError) as caught:
        driver.search(SearchQuery(dataset="SENTINEL-1", limit=40))
    assert "max_pages" in caught.value.problems[0].fix


def test_cdse_search_ending_within_the_skip_limit_returns_everything(
    cdse: CdseServer,
    cdse_realdata: Path,
    make_cdse_driver: Callable[..., CdseODataDriver],
) -> None:
    cdse.load_recorded_pages(cdse_realdata / "cdsetool/query/mock/sentinel_1")
    cdse.max_skip = 45
    driver = make_cdse_driver(cdse, page_size=5, max_pages=100, max_skip=45)

    assert len(driver.search(SearchQuery(dataset="SENTINEL-1"))) == 47


def test_cdse_search_scene_ids_and_tiles_find_the_product(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
) -> None:
    serve(cdse, products, T46RER)
    serve(cdse, products, T31TDH)
    serve(cdse, products, T07HFE)
    driver = make_cdse_driver(cdse)
    assert one_scene(driver, T31TDH).tile == "31TDH"
    by_tile = driver.search(SearchQuery(dataset="S2MSI1C", tiles=("T46RER", "07HFE")))
    assert [s.tile for s in by_tile] == ["46RER"]
    l2a = driver.search(SearchQuery(dataset="S2MSI2A"))
    assert [s.scene_id for s in l2a] == [T07HFE.removesuffix(".SAFE")]


@pytest.mark.parametrize(
    ("status", "headers", "error", "text"),
    [
        (500, {}, ProviderUnavailableError, "HTTP 500"),
        (429, {"Retry-After": "17"}, RateLimitedError, "retry after 17 s"),
        (400, {}, ProviderError, "Invalid filter"),
        (401, {}, ProviderError, "cdse_default"),
        (403, {}, ProviderError, "cdse_default"),
    ],
)
def test_cdse_search_http_errors_map_to_error_classes(
    cdse: CdseServer,
    make_cdse_driver: Callable[..., CdseODataDriver],
    status: int,
    headers: dict[str, str],
    error: type[Exception],
    text: str,
) -> None:
    cdse.fail("search", status, {"detail": "Invalid filter"} if status == 400 else b"", headers)
    driver = make_cdse_driver(cdse)
    with pytest.raises(error) as caught:
        driver.search(SearchQuery(dataset="S2MSI1C"))
    assert text in str(caught.value)
    if status == 429:
        assert isinstance(caught.value, RateLimitedError)
        assert caught.value.retry_after_s == 17


def test_cdse_server_refuses_a_filter_it_cannot_parse(cdse: CdseServer) -> None:
    import httpx

    answer = httpx.get(cdse.odata_url + "/Products", params={"$filter": "Name eq"})
    assert answer.status_code == 400
    assert "detail" in answer.json()


# --------------------------------------------------------------------------------------------
# Download


def test_cdse_download_verifies_blake3_and_writes_the_zip(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
    tmp_path: Path,
) -> None:
    entity = serve(cdse, products, T46RER)
    driver = make_cdse_driver(cdse)
    scene = one_scene(driver, T46RER)
    seen: list[tuple[int, int | None]] = []
    result = driver.download(scene, tmp_path, progress=lambda d, t: seen.append((d, t)))
    target = tmp_path / f"{scene.scene_id}.zip"
    assert result.path == target
    assert target.read_bytes() == products[T46RER][0]
    assert result.checksum == scene.assets[0].checksum
    assert result.checksum is not None and result.checksum.startswith("blake3:")
    assert seen[-1] == (len(products[T46RER][0]), len(products[T46RER][0]))
    with zipfile.ZipFile(target) as archive:
        assert f"{T46RER}/MTD_MSIL1C.xml" in archive.namelist()
    zipper = cdse.requests_to(cdse.zipper_path(entity["Id"]))
    assert len(zipper) == 1
    assert zipper[0].headers["authorization"].startswith("Bearer ")
    assert cdse.grants == ["password"]
    assert not list(tmp_path.glob("*.part"))

    again = driver.download(scene, tmp_path)
    assert again.reused is True
    assert len(cdse.requests_to(cdse.zipper_path(entity["Id"]))) == 1


def test_cdse_content_length_zero_is_an_unknown_size_not_an_empty_file(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
    tmp_path: Path,
) -> None:
    entity = serve(cdse, products, T46RER)
    cdse.products[entity["Id"]].entity["ContentLength"] = 0  # as CDSE writes for unsized ones
    driver = make_cdse_driver(cdse)
    scene = one_scene(driver, T46RER)
    assert scene.size_bytes is None and scene.assets[0].size_bytes is None
    (tmp_path / f"{scene.scene_id}.zip").write_bytes(b"")  # an empty leftover is not reused

    result = driver.download(scene, tmp_path)

    assert result.reused is False
    assert result.path.read_bytes() == products[T46RER][0]


def test_cdse_download_md5_only_product_verifies_md5(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
    tmp_path: Path,
) -> None:
    serve(cdse, products, T31TDH, checksums=("MD5",))
    driver = make_cdse_driver(cdse)
    result = driver.download(one_scene(driver, T31TDH), tmp_path)
    assert result.checksum is not None and result.checksum.startswith("md5:")


@pytest.mark.parametrize("algorithm", ["BLAKE3", "MD5"])
def test_cdse_download_wrong_checksum_raises_mismatch_and_leaves_nothing(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
    tmp_path: Path,
    algorithm: str,
) -> None:
    serve(cdse, products, T46RER, checksums=(algorithm,), wrong_checksums=(algorithm,))
    driver = make_cdse_driver(cdse)
    with pytest.raises(ChecksumMismatchError) as caught:
        driver.download(one_scene(driver, T46RER), tmp_path)
    assert caught.value.expected.startswith(algorithm.lower() + ":")
    assert list(tmp_path.iterdir()) == []


def test_cdse_download_truncated_body_resumes_with_range(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
    tmp_path: Path,
    sleeps: list[float],
) -> None:
    entity = serve(cdse, products, T46RER)
    cdse.truncate(5000)
    driver = make_cdse_driver(cdse)
    result = driver.download(one_scene(driver, T46RER), tmp_path)
    assert result.path.read_bytes() == products[T46RER][0]
    zipper = cdse.requests_to(cdse.zipper_path(entity["Id"]))
    assert [r.headers.get("range") for r in zipper] == [None, "bytes=5000-"]
    assert len(sleeps) == 1


def test_cdse_download_truncated_every_time_raises_unavailable_keeping_partial(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
    tmp_path: Path,
) -> None:
    serve(cdse, products, T46RER)
    cdse.truncate(100, times=3)
    driver = make_cdse_driver(cdse, max_attempts=3)
    scene = one_scene(driver, T46RER)
    with pytest.raises(ProviderUnavailableError):
        driver.download(scene, tmp_path)
    assert not (tmp_path / f"{scene.scene_id}.zip").exists()
    assert (tmp_path / f"{scene.scene_id}.zip.part").stat().st_size == 300


def test_cdse_download_429_with_long_retry_after_raises_rate_limited(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
    tmp_path: Path,
    sleeps: list[float],
) -> None:
    serve(cdse, products, T46RER)
    cdse.fail("value", 429, {"detail": "Too many requests"}, {"Retry-After": "120"})
    driver = make_cdse_driver(cdse)
    with pytest.raises(RateLimitedError) as caught:
        driver.download(one_scene(driver, T46RER), tmp_path)
    assert caught.value.retry_after_s == 120
    assert sleeps == []


def test_cdse_download_500_then_success_retries_in_task(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
    tmp_path: Path,
    sleeps: list[float],
) -> None:
    serve(cdse, products, T46RER)
    cdse.fail("zipper", 503, {"detail": "busy"})
    driver = make_cdse_driver(cdse)
    result = driver.download(one_scene(driver, T46RER), tmp_path)
    assert result.size_bytes == len(products[T46RER][0])
    assert len(sleeps) == 1


def test_cdse_download_product_gone_raises_provider_error_404(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
    tmp_path: Path,
) -> None:
    entity = serve(cdse, products, T46RER)
    driver = make_cdse_driver(cdse)
    scene = one_scene(driver, T46RER)
    del cdse.products[entity["Id"]]
    with pytest.raises(ProviderError) as caught:
        driver.download(scene, tmp_path)
    assert caught.value.status_code == 404


@pytest.mark.parametrize("status", [401, 403])
def test_cdse_download_refused_token_raises_provider_error_naming_connection(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
    tmp_path: Path,
    status: int,
) -> None:
    serve(cdse, products, T46RER)
    cdse.fail("value", status, {"detail": "Forbidden"}, times=2)
    driver = make_cdse_driver(cdse)
    with pytest.raises(ProviderError) as caught:
        driver.download(one_scene(driver, T46RER), tmp_path)
    assert caught.value.status_code == status
    assert "Airflow Connection 'cdse_default'" in str(caught.value)
    # a 401 is retried once with a fresh login; a 403 is not
    assert cdse.grants == (["password", "password"] if status == 401 else ["password"])


def test_cdse_download_expired_token_logs_in_again_and_succeeds(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
    tmp_path: Path,
) -> None:
    serve(cdse, products, T46RER)
    driver = make_cdse_driver(cdse)
    scene = one_scene(driver, T46RER)
    driver.tokens.access_token()
    cdse.expire_tokens()  # the server forgot it (restart, revocation)
    result = driver.download(scene, tmp_path)
    assert result.reused is False
    assert cdse.grants == ["password", "password"]


def test_cdse_download_wrong_password_raises_provider_error_before_download(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
    tmp_path: Path,
) -> None:
    entity = serve(cdse, products, T46RER)
    wrong = Credentials(username="alice", password="nope")  # noqa: S106 - test value
    driver = make_cdse_driver(cdse, credentials=wrong)
    with pytest.raises(ProviderError) as caught:
        driver.download(one_scene(driver, T46RER), tmp_path)
    assert "Invalid user credentials" in str(caught.value)
    assert "cdse_default" in str(caught.value)
    assert "nope" not in str(caught.value)
    assert cdse.requests_to(cdse.value_path(entity["Id"])) == []


def test_cdse_download_without_connection_says_to_create_it(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    tmp_path: Path,
) -> None:
    serve(cdse, products, T46RER)
    driver = CdseODataDriver(url=cdse.odata_url, options={"token_url": cdse.token_url})
    try:
        with pytest.raises(ProviderError) as caught:
            driver.download(one_scene(driver, T46RER), tmp_path)
    finally:
        driver.close()
    assert "airflow connections add cdse_default" in str(caught.value)
    assert cdse.grants == []


def test_cdse_download_offline_product_raises_scene_offline(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
    tmp_path: Path,
) -> None:
    entity = serve(cdse, products, T46RER, online=False)
    driver = make_cdse_driver(cdse)
    scene = one_scene(driver, T46RER)
    assert scene.online is False
    with pytest.raises(SceneOfflineError) as caught:
        driver.download(scene, tmp_path)
    assert caught.value.scene_id == scene.scene_id
    assert caught.value.catalog == "cdse"
    assert cdse.requests_to(cdse.value_path(entity["Id"])) == []


def test_cdse_order_offline_product_comes_online_after_polls_then_downloads(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
    tmp_path: Path,
) -> None:
    entity = serve(cdse, products, T46RER, online=False)
    driver = make_cdse_driver(cdse)
    scene = one_scene(driver, T46RER)
    assert driver.availability(scene) == Availability.OFFLINE
    order_id = driver.order(scene)
    assert order_id  # the order's Id, recorded by the wait_online step
    # idempotent (the same order); its availability check is the first poll since the order
    assert driver.order(scene) == order_id
    assert cdse.orders == [entity["Id"], entity["Id"]]
    assert driver.availability(scene) == Availability.ONLINE  # the second poll
    driver.order(scene)  # online now: nothing is ordered
    assert len(cdse.orders) == 2
    result = driver.download(scene, tmp_path)
    assert result.path.read_bytes() == products[T46RER][0]


def test_cdse_order_online_product_sends_no_order(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
) -> None:
    serve(cdse, products, T46RER)
    driver = make_cdse_driver(cdse)
    driver.order(one_scene(driver, T46RER))
    assert cdse.orders == []
    assert cdse.grants == []


def test_cdse_token_not_sent_across_redirect_to_another_host(
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
    tmp_path: Path,
) -> None:
    server = CdseServer(redirect="other-host", zipper_requires_auth=False)
    try:
        entity = serve(server, products, T46RER)
        driver = make_cdse_driver(server)
        scene = one_scene(driver, T46RER)
        driver.download(scene, tmp_path / "a")
        first = server.requests_to(server.zipper_path(entity["Id"]))
        trusted = make_cdse_driver(server, auth_hosts=["localhost"])
        trusted.download(scene, tmp_path / "b")
        second = server.requests_to(server.zipper_path(entity["Id"]))[1:]
    finally:
        server.close()
    assert [r.headers.get("host", "").split(":")[0] for r in first] == ["localhost"]
    assert "authorization" not in first[0].headers
    assert second[0].headers["authorization"].startswith("Bearer ")


def test_cdse_may_receive_token_only_cdse_hosts_over_https() -> None:
    driver = CdseODataDriver(url="https://catalogue.dataspace.copernicus.eu/odata/v1")
    assert driver.may_receive_token("https://zipper.dataspace.copernicus.eu/odata/v1/x")
    assert driver.may_receive_token("https://identity.dataspace.copernicus.eu/auth")
    assert not driver.may_receive_token("http://zipper.dataspace.copernicus.eu/odata/v1/x")
    assert not driver.may_receive_token("https://dataspace.copernicus.eu.evil.net/x")
    assert not driver.may_receive_token("https://s3.amazonaws.com/bucket/x")


def test_cdse_tokens_and_password_never_reach_the_log(
    cdse: CdseServer,
    products: dict[str, tuple[bytes, dict[str, Any]]],
    make_cdse_driver: Callable[..., CdseODataDriver],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    serve(cdse, products, T46RER)
    driver = make_cdse_driver(cdse)
    with caplog.at_level(logging.DEBUG):
        driver.download(one_scene(driver, T46RER), tmp_path)
        token = driver.tokens.access_token()
    assert token not in caplog.text
    assert PASSWORD not in caplog.text
    assert "token.obtained" in caplog.text


# --------------------------------------------------------------------------------------------
# Registration and make_driver


def test_cdse_registered_with_scihub_alias_that_warns(caplog: pytest.LogCaptureFixture) -> None:
    assert driver_class("cdse") is CdseODataDriver
    with caplog.at_level(logging.WARNING):
        assert driver_class("SciHub") is CdseODataDriver
    assert "driver.alias" in caplog.text


def test_make_driver_scihub_catalog_alias_warns_esa_closed_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        driver = make_driver("SciHub")
    try:
        assert isinstance(driver, CdseODataDriver)
        assert driver.token_url.startswith("https://identity.dataspace.copernicus.eu/")
        assert driver.client_id == "cdse-public"
        assert driver.conn_id == "cdse_default"
    finally:
        driver.close()
    assert "ESA closed SciHub in 2023" in caplog.text


def test_make_driver_conn_id_of_the_conf_is_named_in_messages() -> None:
    driver = make_driver("cdse", catalog_args={"conn_id": "cdse_team_b"})
    try:
        assert isinstance(driver, CdseODataDriver)
        assert driver.conn_id == "cdse_team_b"
    finally:
        driver.close()


def test_make_driver_loopback_url_and_token_url_with_credentials_accepted() -> None:
    driver = make_driver(
        "cdse",
        catalog_args={
            "url": "http://127.0.0.1:9/odata/v1",
            "token_url": "http://127.0.0.1:9/auth/token",
        },
        credentials=Credentials(username="alice", password=PASSWORD),
    )
    try:
        assert isinstance(driver, CdseODataDriver)
        assert driver.token_url == "http://127.0.0.1:9/auth/token"  # noqa: S105 - a URL
    finally:
        driver.close()


@pytest.mark.parametrize(
    ("catalog_args", "field"),
    [
        ({"token_url": "https://evil.example.net/token"}, "catalog_args.token_url"),
        ({"url": "https://evil.example.net/odata/v1"}, "catalog_args.url"),
    ],
)
def test_make_driver_endpoint_off_host_with_credentials_refused(
    catalog_args: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        make_driver(
            "cdse",
            catalog_args=catalog_args,
            credentials=Credentials(username="alice", password=PASSWORD),
        )
    assert caught.value.problems[0].field == field


def test_make_driver_token_url_on_catalog_without_it_refused() -> None:
    with pytest.raises(InvalidInputError) as caught:
        make_driver("earthsearch", catalog_args={"token_url": "http://127.0.0.1/token"})
    assert "has no token_url option" in caught.value.problems[0].message
