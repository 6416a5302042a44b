"""The offline demo: synthetic Sentinel-2 L1C catalog and the STAC API server over it."""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pystac
import pytest
import rasterio
from pystac.extensions.eo import EOExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.mgrs import MgrsExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterExtension
from shapely.geometry import box, shape

from include.demo.build import build_demo_catalog
from include.demo.server import DemoStacServer, main, serve
from include.processors.publish.cog import validate_cog

REPO = Path(__file__).resolve().parents[3]
SCENES = 6
DESIGN_BBOX = "-45.9,-12.74,-45.8,-12.6"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("demo")
    return root, build_demo_catalog(root, scenes=SCENES, size_px=128, seed=0)


@pytest.fixture(scope="module")
def server(catalog: tuple[Path, list[dict[str, Any]]]) -> Iterator[DemoStacServer]:
    with serve(catalog[0], port=0) as running:
        yield running


def fetch(
    url: str,
    *,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with OPENER.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers), err.read()


def fetch_json(url: str, **kwargs: Any) -> tuple[int, Any]:
    status, _, raw = fetch(url, **kwargs)
    return status, json.loads(raw)


def raw_get(server: DemoStacServer, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def ids(collection: dict[str, Any]) -> list[str]:
    return [feature["id"] for feature in collection["features"]]


# -- the built catalog --------------------------------------------------------------------------


def test_demo_catalog_items_parse_with_stac_extensions(
    catalog: tuple[Path, list[dict[str, Any]]],
) -> None:
    root, items = catalog
    assert len(items) == SCENES
    for data in items:
        item = pystac.Item.from_dict(data)
        assert item.collection_id == "sentinel-2-l1c"
        assert item.datetime is not None and item.geometry is not None
        assert shape(item.geometry).within(box(*item.bbox).buffer(1e-9))
        assert item.common_metadata.constellation == "sentinel-2"
        assert item.common_metadata.instruments == ["msi"]
        assert item.common_metadata.platform in ("sentinel-2a", "sentinel-2b")
        assert item.properties["s2:product_uri"] == f"{item.id}.SAFE"
        assert item.properties["s2:mgrs_tile"] == "23LLF"
        assert item.properties["processing:software"] == {"collection-builder": "0.1.0"}
        mgrs = MgrsExtension.ext(item)
        assert (mgrs.utm_zone, mgrs.latitude_band, mgrs.grid_square) == (23, "L", "LF")
        proj = ProjectionExtension.ext(item)
        assert proj.epsg == 32723 and proj.shape == [128, 128]
        assert proj.transform == [160.0, 0.0, 399960.0, 0.0, -160.0, 8610760.0]
        cloud = EOExtension.ext(item).cloud_cover
        assert cloud is not None and 0 <= cloud <= 100
        assert set(item.assets) == {"B02", "B03", "B04", "B08", "B11", "thumbnail"}
        for key, asset in item.assets.items():
            path = root / asset.href.lstrip("/")
            assert asset.href == f"/files/{item.id}/{path.name}"
            file_ext = FileExtension.ext(asset)
            assert file_ext.size == path.stat().st_size
            assert file_ext.checksum == "1220" + hashlib.sha256(path.read_bytes()).hexdigest()
            if key == "thumbnail":
                assert asset.roles == ["thumbnail"] and asset.media_type == "image/png"
                continue
            assert asset.roles == ["data"] and asset.media_type == pystac.MediaType.COG
            bands = EOExtension.ext(asset).bands
            assert bands is not None and bands[0].name == key
            raster = RasterExtension.ext(asset).bands
            assert raster is not None and raster[0].nodata == 0
            validate_cog(path)


def test_demo_catalog_scenes_have_realistic_radiometry_clouds_and_partial_swath(
    catalog: tuple[Path, list[dict[str, Any]]],
) -> None:
    root, items = catalog
    by_id = {item["id"]: item for item in items}
    first = by_id["S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429"]
    partial = by_id["S2B_MSIL1C_20200110T131239_N0208_R138_T23LLF_20200110T150351"]
    cloudy = by_id["S2B_MSIL1C_20200114T132229_N0208_R038_T23LLF_20200114T150103"]
    reprocessed = by_id["S2A_MSIL1C_20200119T132231_N0500_R038_T23LLF_20230612T101536"]
    assert first["properties"]["eo:cloud_cover"] == 0
    assert cloudy["properties"]["eo:cloud_cover"] > 40
    assert 0 < partial["properties"]["eo:cloud_cover"] < 20

    def band(item: dict[str, Any], name: str) -> np.ndarray:
        with rasterio.open(root / item["assets"][name]["href"].lstrip("/")) as ds:
            assert ds.crs.to_epsg() == 32723 and ds.nodata == 0 and ds.dtypes[0] == "uint16"
            return ds.read(1)

    red, nir = band(first, "B04"), band(first, "B08")
    assert (red > 0).all()
    assert 300 < np.median(red) < 2500 and 1500 < np.median(nir) < 4500
    assert band(first, "B11").shape == (64, 64)  # the 20 m-class band is twice as coarse
    assert band(cloudy, "B02").max() > 5000  # bright clouds
    partial_red = band(partial, "B04")
    assert partial_red[0, 0] == 0 and partial_red[-1, -1] > 0
    assert 0.05 < (partial_red == 0).mean() < 0.25
    assert shape(partial["geometry"]).area < 0.95 * box(*partial["bbox"]).area
    # baseline 05.00: DN carry the +1000 offset, declared as raster offset -0.1
    assert band(reprocessed, "B04").min() >= 1000
    assert reprocessed["assets"]["B04"]["raster:bands"][0]["offset"] == pytest.approx(-0.1)
    assert first["assets"]["B04"]["raster:bands"][0]["offset"] == 0


def test_demo_catalog_rebuild_same_seed_keeps_one_item_per_scene(tmp_path: Path) -> None:
    first = build_demo_catalog(tmp_path, scenes=1, size_px=64)
    again = build_demo_catalog(tmp_path, scenes=1, size_px=64)
    assert first == again
    assert len(list((tmp_path / "sentinel-2-l1c" / "items").glob("*.json"))) == 1


# -- the STAC API -------------------------------------------------------------------------------


def test_demo_server_landing_and_conformance_list_search_and_query(
    server: DemoStacServer,
) -> None:
    status, landing = fetch_json(f"{server.url}/")
    assert status == 200 and landing["type"] == "Catalog"
    assert "https://api.stacspec.org/v1.0.0/item-search" in landing["conformsTo"]
    assert "https://api.stacspec.org/v1.0.0/item-search#query" in landing["conformsTo"]
    rels = {(link["rel"], link.get("method")) for link in landing["links"]}
    assert {("search", "GET"), ("search", "POST"), ("data", None), ("conformance", None)} <= rels
    status, conformance = fetch_json(f"{server.url}/conformance")
    assert status == 200 and conformance["conformsTo"] == landing["conformsTo"]


def test_demo_server_collections_and_items_endpoints(
    server: DemoStacServer, catalog: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, items = catalog
    status, collections = fetch_json(f"{server.url}/collections")
    assert status == 200 and [c["id"] for c in collections["collections"]] == ["sentinel-2-l1c"]
    status, collection = fetch_json(f"{server.url}/collections/sentinel-2-l1c")
    assert status == 200
    assert collection["extent"]["temporal"]["interval"][0][0].startswith("2020-01-09")
    items_link = next(link for link in collection["links"] if link["rel"] == "items")
    status, headers, raw = fetch(items_link["href"] + "?limit=2")
    page = json.loads(raw)
    assert status == 200 and headers["Content-Type"] == "application/geo+json"
    assert len(page["features"]) == 2 and page["numberMatched"] == SCENES
    assert any(link["rel"] == "next" for link in page["links"])
    item_id = items[2]["id"]
    status, item = fetch_json(f"{server.url}/collections/sentinel-2-l1c/items/{item_id}")
    assert status == 200 and item["id"] == item_id
    self_link = next(link for link in item["links"] if link["rel"] == "self")
    assert self_link["href"] == f"{server.url}/collections/sentinel-2-l1c/items/{item_id}"
    assert item["assets"]["B04"]["href"] == f"{server.url}/files/{item_id}/B04.tif"


def test_demo_server_search_bbox_returns_intersecting_scenes(server: DemoStacServer) -> None:
    status, result = fetch_json(f"{server.url}/search?bbox={DESIGN_BBOX}&limit=100")
    assert status == 200 and len(result["features"]) == SCENES
    status, result = fetch_json(f"{server.url}/search?bbox=10,10,11,11")
    assert status == 200 and result["features"] == [] and result["numberMatched"] == 0


def test_demo_server_search_intersects_uses_geometry_not_bbox(server: DemoStacServer) -> None:
    # a point in the partial-swath scene's nodata triangle (north-west), inside every bbox
    point = {"type": "Point", "coordinates": [-45.915, -12.575]}
    status, result = fetch_json(
        f"{server.url}/search", method="POST", body={"intersects": point, "limit": 100}
    )
    assert status == 200
    found = ids(result)
    assert len(found) == SCENES - 1
    assert "S2B_MSIL1C_20200110T131239_N0208_R138_T23LLF_20200110T150351" not in found


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        ("2020-01-09T00:00:00Z/2020-01-10T23:59:59Z", 2),
        ("2020-01-14T00:00:00Z/..", SCENES - 2),
        ("../2020-01-09T23:59:59Z", 1),
        ("2020-01-10T13:12:39Z", 1),
        ("2020-01-14T00:00:00Z/", SCENES - 2),
    ],
)
def test_demo_server_search_datetime_filters_by_interval(
    server: DemoStacServer, interval: str, expected: int
) -> None:
    query = urlencode({"datetime": interval, "limit": 100})
    status, result = fetch_json(f"{server.url}/search?{query}")
    assert status == 200 and len(result["features"]) == expected


def test_demo_server_search_query_extension_filters_properties(
    server: DemoStacServer, catalog: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, items = catalog
    clear = sorted(i["id"] for i in items if i["properties"]["eo:cloud_cover"] <= 10)
    body = {
        "collections": ["sentinel-2-l1c"],
        "query": {"eo:cloud_cover": {"lte": 10}},
        "limit": 100,
    }
    status, result = fetch_json(f"{server.url}/search", method="POST", body=body)
    assert status == 200 and sorted(ids(result)) == clear and clear
    body = {"query": {"s2:mgrs_tile": {"in": ["23LLF", "23LLG"]}, "eo:cloud_cover": {"gte": 50}}}
    status, result = fetch_json(f"{server.url}/search", method="POST", body=body)
    assert all(f["properties"]["eo:cloud_cover"] >= 50 for f in result["features"])
    assert result["features"]
    uri = items[3]["properties"]["s2:product_uri"]
    query = urlencode({"query": json.dumps({"s2:product_uri": {"eq": uri}})})
    status, result = fetch_json(f"{server.url}/search?{query}")
    assert status == 200 and ids(result) == [items[3]["id"]]
    query = urlencode({"query": json.dumps({"eo:cloud_cover": {"lt": 0}})})
    status, result = fetch_json(f"{server.url}/search?{query}")
    assert status == 200 and result["features"] == []


def test_demo_server_search_ids_returns_those_items(
    server: DemoStacServer, catalog: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, items = catalog
    wanted = [items[0]["id"], items[4]["id"]]
    status, result = fetch_json(f"{server.url}/search?ids={','.join(wanted)}")
    assert status == 200 and sorted(ids(result)) == sorted(wanted)
    status, result = fetch_json(f"{server.url}/search", method="POST", body={"ids": wanted[:1]})
    assert ids(result) == wanted[:1]


def test_demo_server_get_paging_limit_one_visits_every_scene(
    server: DemoStacServer, catalog: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, items = catalog
    url: str | None = f"{server.url}/search?limit=1&bbox={DESIGN_BBOX}"
    seen: list[str] = []
    while url is not None:
        status, page = fetch_json(url)
        assert status == 200 and len(page["features"]) == 1
        seen += ids(page)
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
        assert len(seen) <= SCENES
    assert sorted(seen) == sorted(item["id"] for item in items)


def test_demo_server_post_paging_next_link_carries_token_body(
    server: DemoStacServer, catalog: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, items = catalog
    body: dict[str, Any] | None = {"collections": ["sentinel-2-l1c"], "limit": 1}
    seen: list[str] = []
    while body is not None:
        status, page = fetch_json(f"{server.url}/search", method="POST", body=body)
        assert status == 200
        seen += ids(page)
        link = next((link for link in page["links"] if link["rel"] == "next"), None)
        if link is None:
            body = None
        else:
            assert link["method"] == "POST" and "token" in link["body"]
            body = link["body"]
    assert sorted(seen) == sorted(item["id"] for item in items)


@pytest.mark.parametrize(
    "query",
    ["bbox=1,2,3", "bbox=a,b,c,d", "datetime=yesterday", "limit=0", "token=x", "colour=red"],
)
def test_demo_server_search_bad_parameter_answers_400_json(
    server: DemoStacServer, query: str
) -> None:
    status, body = fetch_json(f"{server.url}/search?{query}")
    assert status == 400 and body["code"] == "BadRequest" and body["description"]


def test_demo_server_unknown_paths_answer_404_json(server: DemoStacServer) -> None:
    for path in ("/nothing", "/collections/nope", "/collections/sentinel-2-l1c/items/nope"):
        status, headers, raw = fetch(f"{server.url}{path}")
        body = json.loads(raw)
        assert status == 404 and headers["Content-Type"] == "application/json"
        assert set(body) == {"code", "description"} and body["code"] == "NotFound"


# -- files --------------------------------------------------------------------------------------


def test_demo_server_asset_href_downloads_the_file(
    server: DemoStacServer, catalog: tuple[Path, list[dict[str, Any]]]
) -> None:
    root, items = catalog
    _, item = fetch_json(f"{server.url}/collections/sentinel-2-l1c/items/{items[0]['id']}")
    status, headers, data = fetch(item["assets"]["B04"]["href"])
    expected = (root / "files" / items[0]["id"] / "B04.tif").read_bytes()
    assert status == 200 and data == expected
    assert headers["Content-Length"] == str(len(expected)) and headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Type"].startswith("image/tiff")


@pytest.mark.parametrize(
    ("range_header", "first", "last"),
    [("bytes=100-199", 100, 199), ("bytes=-10", -10, None), ("bytes=500-", 500, None)],
)
def test_demo_server_range_request_answers_206_with_exact_bytes(
    server: DemoStacServer,
    catalog: tuple[Path, list[dict[str, Any]]],
    range_header: str,
    first: int,
    last: int | None,
) -> None:
    root, items = catalog
    expected_all = (root / "files" / items[1]["id"] / "B08.tif").read_bytes()
    size = len(expected_all)
    start = first if first >= 0 else size + first
    end = last if last is not None else size - 1
    status, headers, data = fetch(
        f"{server.url}/files/{items[1]['id']}/B08.tif", headers={"Range": range_header}
    )
    assert status == 206
    assert data == expected_all[start : end + 1]
    assert headers["Content-Range"] == f"bytes {start}-{end}/{size}"
    assert headers["Content-Length"] == str(end - start + 1)


@pytest.mark.parametrize(
    "range_header", ["bytes=999999999-", "bytes=20-10", "bytes=-0", "bytes=x-y"]
)
def test_demo_server_bad_range_answers_416(
    server: DemoStacServer, catalog: tuple[Path, list[dict[str, Any]]], range_header: str
) -> None:
    root, items = catalog
    size = (root / "files" / items[0]["id"] / "B02.tif").stat().st_size
    status, headers, raw = fetch(
        f"{server.url}/files/{items[0]['id']}/B02.tif", headers={"Range": range_header}
    )
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
    assert json.loads(raw)["code"] == "RequestedRangeNotSatisfiable"


def test_demo_server_head_file_sends_length_without_body(
    server: DemoStacServer, catalog: tuple[Path, list[dict[str, Any]]]
) -> None:
    root, items = catalog
    status, headers, data = fetch(f"{server.url}/files/{items[0]['id']}/B03.tif", method="HEAD")
    size = (root / "files" / items[0]["id"] / "B03.tif").stat().st_size
    assert status == 200 and data == b"" and headers["Content-Length"] == str(size)


@pytest.mark.parametrize(
    "path",
    [
        "/files/../catalog.json",
        "/files/%2e%2e/catalog.json",
        "/files/..%2fsentinel-2-l1c/collection.json",
        "/files/%2fetc/passwd",
        "/files/x/../../catalog.json",
    ],
)
def test_demo_server_path_traversal_is_refused(server: DemoStacServer, path: str) -> None:
    status, raw = raw_get(server, path)
    assert status == 403
    assert json.loads(raw)["code"] == "Forbidden"


def test_demo_server_logs_one_line_per_request(
    server: DemoStacServer, caplog: pytest.LogCaptureFixture
) -> None:
    def request_lines() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.getMessage().startswith("demo.request") and "path=/files" not in r.getMessage()
        ]

    with caplog.at_level(logging.INFO, logger="include.demo.server"):
        fetch(f"{server.url}/conformance")
        fetch(f"{server.url}/nothing?x=1")
        deadline = time.monotonic() + 5
        while len(request_lines()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # the server logs right after it has sent the response
    lines = request_lines()
    assert len(lines) == 2
    assert "method=GET path=/conformance status=200" in lines[0]
    assert "path=/nothing?x=1 status=404" in lines[1]


def test_demo_server_second_serve_forever_waits_until_shutdown(
    catalog: tuple[Path, list[dict[str, Any]]],
) -> None:
    running = serve(catalog[0], port=0)
    extra = threading.Thread(target=running.serve_forever, daemon=True)
    extra.start()  # as a caller that also runs its own loop after serve()
    try:
        status, _ = fetch_json(f"{running.url}/conformance")
        assert status == 200
    finally:
        running.shutdown()
        extra.join(timeout=5)
        assert not extra.is_alive()
        running.stop()


# -- CLI ----------------------------------------------------------------------------------------


def test_demo_server_cli_without_catalog_and_build_exits_2(tmp_path: Path) -> None:
    assert main(["--root", str(tmp_path / "empty"), "--port", "0"]) == 2


def test_demo_server_cli_build_serves_until_sigterm(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "include.demo.server",
        "--root",
        str(tmp_path / "cat"),
        "--port",
        "0",
        "--build",
        "--scenes",
        "1",
        "--size-px",
        "64",
    ]
    process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert process.stderr is not None
    reader = threading.Thread(
        target=lambda: [lines.put(line) for line in process.stderr], daemon=True
    )
    reader.start()
    try:
        url = None
        while url is None:
            line = lines.get(timeout=30)
            if "demo.server.start url=" in line:
                url = line.split("url=")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        status, landing = fetch_json(f"{url}/collections/sentinel-2-l1c/items")
        assert status == 200 and len(landing["features"]) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        reader.join(timeout=5)
        process.stderr.close()
