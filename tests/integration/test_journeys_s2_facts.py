"""Journeys whose reading depends on what the catalog said about the scene (SceneHints).

Both run the radcor step runner (no Airflow; the ``radcor`` DAG calls the same ``StepRunner``)
against loopback servers speaking the real protocols, and read back what was published:

- Earth Search v1 ``sentinel-2-l2a``: the REAL recorded item (pystac-client cassette in
  ../shared/realdata) with ``earthsearch:boa_offset_applied: true``, its HTTPS assets served at
  their recorded paths (COGs of known DN, the real MTD_TL as ``granule_metadata``; its
  ``product_metadata`` is ``s3://`` only), checksums recomputed as Earth Search gives them. The
  scene is found by the STAC driver, downloaded per asset, published to ``S2_L2A-1``: the COG
  numbers are ``DN / 10000`` with no offset, and the item's ``raster:bands`` say so.
- An old-format (before December 2016) L1C SAFE of two granules (31TDH, 31TDJ; built from the
  real N0206 MTDs by ``s2_layouts.oper_l1c_safe``) zipped and served by a loopback CDSE OData
  whose ``tileId`` is 31TDJ. CDSE's SENTINEL-2 search takes compact product names only (the
  driver refuses OPER names), so the zip is listed under the compact name of its 31TDJ tile.
  download -> publish (S2_L1C-1) and download -> toa -> publish (S2_TOA-1) both read the
  31TDJ granule, whose band values differ from 31TDH's by 100.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from include.catalog.static_stac import StaticStacBackend
from include.collectors.base import SearchQuery
from include.collectors.registry import make_driver
from include.common.config import ProviderConfig, load_collections, parse_catalogs
from include.radcor.activities import ActivityStore
from include.radcor.conf import TaskType
from include.radcor.context import RunContext
from include.radcor.plan import PlanNode, ScenePlan
from include.radcor.step_runner import StepRunner
from tests.helpers import s2_layouts as lay
from tests.helpers.cdse_server import CdseServer
from tests.helpers.http_server import Cassette, LocalHttpServer, Reply, Request, replay, serve_bytes
from tests.helpers.offline import ACCOUNT
from tests.helpers.realdata import realdata

ORIGIN = "https://earth-search.aws.element84.com"
CASSETTE = "pystac-client/test_cli/TestCLISearch.test_filter[inprocess].yaml"
ITEM_ID = "S2B_24MVV_20250731_0_L2A"
RUN = "run-facts"
TOLERANCE = 1e-4


def _multihash(data: bytes) -> str:
    return "1220" + hashlib.sha256(data).hexdigest()  # sha2-256 multihash, as Earth Search


def _cog_bytes(value: int, asset: dict[str, Any]) -> bytes:
    """A small GeoTIFF of ``value`` at the asset's own grid origin, CRS and resolution."""
    resolution = float(asset["raster:bands"][0]["spatial_resolution"])
    transform = asset["proj:transform"]
    size = int(600 // resolution)
    buffer = io.BytesIO()
    with rasterio.open(
        buffer, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint16",
        crs=f"EPSG:{asset.get('proj:epsg') or 32724}", nodata=0,
        transform=from_origin(transform[2], transform[5], resolution, resolution),
    ) as dst:  # fmt: skip
        dst.write(np.full((1, size, size), value, dtype=np.uint16))
    return buffer.getvalue()


class EarthSearchV1:
    """Earth Search v1: landing page (recorded), item search and the item's HTTPS files."""

    def __init__(self, cassette: Cassette, item: dict[str, Any]) -> None:
        self.server = LocalHttpServer()
        self.url = self.server.url
        self.values: dict[str, int] = {}
        """Band asset key -> the DN its COG holds."""
        item = json.loads(json.dumps(item).replace(ORIGIN, self.url))
        epsg = item["properties"].get("proj:epsg")
        for index, (key, asset) in enumerate(item["assets"].items()):
            parts = urlsplit(asset["href"])
            if parts.scheme != "https":
                continue  # s3:// (requester pays): product_metadata, *-jp2
            if parts.path.endswith(".tif") and asset.get("raster:bands"):
                self.values[key] = 1500 + 37 * index
                data = _cog_bytes(self.values[key], {"proj:epsg": epsg, **asset})
            elif key == "granule_metadata":
                data = _tile_metadata(item).encode()
            else:
                data = b"{}"
            asset["href"] = self.server.route(parts.path, serve_bytes(data))
            asset["file:size"] = len(data)
            asset["file:checksum"] = _multihash(data)
        self.item = item
        self.server.route("/v1", replay(cassette.find("GET", "/v1"), origin=ORIGIN,
                                        server_url=self.url))  # fmt: skip
        self.server.route("/v1/search", self._search)

    def _search(self, request: Request) -> Reply:
        body = (request.json() or {}) if request.method == "POST" else {}
        wanted = "sentinel-2-l2a" in (body.get("collections") or ("sentinel-2-l2a",))
        features = [self.item] if wanted else []
        page = {"type": "FeatureCollection", "features": features, "links": [],
                "numberReturned": len(features)}  # fmt: skip
        return Reply(200, json.dumps(page).encode(), {"Content-Type": "application/geo+json"})


def _tile_metadata(item: dict[str, Any]) -> str:
    """The real L2A MTD_TL, its tile id, baseline and sensing time those of ``item``."""
    text = lay.real_text(lay.L2A_N0214_TL)
    props = item["properties"]
    tile = f"{props['mgrs:utm_zone']}{props['mgrs:latitude_band']}{props['mgrs:grid_square']}"
    text = re.sub(r"_T22HBD_", f"_T{tile}_", text).replace("_N02.14<", "_N05.11<")
    when = item["properties"]["datetime"]
    return re.sub(r"<SENSING_TIME([^>]*)>[^<]*<", rf"<SENSING_TIME\g<1>>{when}<", text)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ActivityStore:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return ActivityStore(f"sqlite:///{tmp_path / 'activities.sqlite'}")


@pytest.fixture
def earth_search() -> Iterator[EarthSearchV1]:
    cassette = Cassette(realdata(CASSETTE))
    for interaction in cassette.find("POST", "/v1/search"):
        for feature in (interaction.response_json() or {}).get("features", []):
            if feature.get("id") == ITEM_ID:
                catalog = EarthSearchV1(cassette, dict(feature))
                try:
                    yield catalog
                finally:
                    catalog.server.close()
                return
    pytest.skip(f"{ITEM_ID} is not in {CASSETTE}")


def _run(runner_args: dict[str, Any], *task_types: TaskType) -> dict[str, Any]:
    for task_type in task_types:
        outcome = StepRunner(**runner_args).run(task_type)
        assert not outcome.errors, outcome.errors
    return {a.key.node_id: a for a in runner_args["store"].for_run(RUN)}


def _published(backend: StaticStacBackend, collection: str, activity: Any) -> dict[str, Any]:
    item = backend.get(collection, activity.outputs["item_id"])
    assert item is not None
    return item


def _physical(item: dict[str, Any], activity: Any, band: str) -> np.ndarray:
    """A published band's values through the item's raster:bands (the COG agrees)."""
    (raster_band,) = item["assets"][band]["raster:bands"]
    scale, offset = raster_band.get("scale", 1.0), raster_band.get("offset", 0.0)
    with rasterio.open(activity.outputs["files"][band]) as cog:
        dn = cog.read(1).astype(np.float64)
        assert cog.scales[0] == pytest.approx(scale)
        assert cog.offsets[0] == pytest.approx(offset)
    return np.asarray(dn[dn != 0] * scale + offset)


def test_earth_search_v1_offset_applied_item_publishes_dn_over_10000(
    earth_search: EarthSearchV1, store: ActivityStore, tmp_path: Path
) -> None:
    catalogs = parse_catalogs({"catalogs": {"earthsearch": {
        "driver": "stac", "url": earth_search.url + "/v1",
        "datasets": {"S2MSI2A": "sentinel-2-l2a"}}}})  # fmt: skip

    def factory(name: str) -> Any:
        return make_driver(name, catalogs=dict(catalogs))

    with factory("earthsearch") as driver:
        (scene,) = driver.search(SearchQuery(dataset="sentinel-2-l2a", scene_ids=(ITEM_ID,)))
    assert scene.properties["boa_offset_applied"] is True
    collection = load_collections()["S2_L2A-1"].model_copy(
        update={"providers": (ProviderConfig(catalog="earthsearch", dataset="sentinel-2-l2a"),)}
    )
    plan = ScenePlan(scene, (
        PlanNode("0", TaskType.DOWNLOAD, "S2_L2A-1"),
        PlanNode("1", TaskType.PUBLISH, "S2_L2A-1", parent_id="0", source_collection="S2_L2A-1"),
    ))  # fmt: skip
    backend = StaticStacBackend(tmp_path / "stac")
    activities = _run(
        {"plan": plan, "context": RunContext("radcor", RUN, "x"), "store": store,
         "backend": backend, "driver_factory": factory, "collections": {"S2_L2A-1": collection}},
        TaskType.DOWNLOAD, TaskType.PUBLISH,
    )  # fmt: skip
    item = _published(backend, "S2_L2A-1", activities["1"])
    radiometry = activities["1"].outputs["metadata"]["radiometry"]
    for band, key in (("B02", "blue"), ("B04", "red"), ("B8A", "nir08"), ("B11", "swir16")):
        (raster_band,) = item["assets"][band]["raster:bands"]
        assert raster_band["scale"] == pytest.approx(1e-4)
        assert not raster_band.get("offset"), (band, raster_band)  # no offset: it is applied
        values = _physical(item, activities["1"], band)
        assert values.size and np.abs(values - earth_search.values[key] / 10000).max() <= TOLERANCE
        assert radiometry[band]["source"] == "MTD"


@pytest.fixture
def cdse() -> Iterator[CdseServer]:
    server = CdseServer()
    try:
        yield server
    finally:
        server.close()


def test_old_format_two_granule_safe_from_cdse_reads_the_scene_tile_granule(
    cdse: CdseServer, store: ActivityStore, tmp_path: Path
) -> None:
    safe = lay.oper_l1c_safe(tmp_path / "build", ("31TDH", "31TDJ"))
    archive = lay.zip_safe(safe, tmp_path / "oper.zip")
    name = "S2A_MSIL1C_20161201T105441_N0204_R051_T31TDJ_20161201T124911"
    footprint = {"type": "Polygon", "coordinates": [[
        [1.75, 43.3], [1.8, 43.3], [1.8, 43.36], [1.75, 43.36], [1.75, 43.3]]]}  # fmt: skip
    cdse.add_s2_product(name + ".SAFE", archive.read_bytes(), footprint=footprint)
    catalogs = parse_catalogs({"catalogs": {"cdse": {
        "driver": "cdse", "url": cdse.odata_url, "conn_id": "cdse_default",
        "options": {"token_url": cdse.token_url, "retry_base_delay_s": 0.01}}}})  # fmt: skip

    def factory(name: str) -> Any:
        return make_driver(name, credentials=ACCOUNT, catalogs=dict(catalogs))

    with factory("cdse") as driver:
        (scene,) = driver.search(SearchQuery(dataset="S2MSI1C", scene_ids=(name,)))
    assert scene.tile == "31TDJ"
    collections = load_collections()
    l1c = collections["S2_L1C-1"].model_copy(
        update={"providers": (ProviderConfig(catalog="cdse", dataset="S2MSI1C"),)}
    )
    plan = ScenePlan(scene, (
        PlanNode("0", TaskType.DOWNLOAD, "S2_L1C-1"),
        PlanNode("1", TaskType.PUBLISH, "S2_L1C-1", parent_id="0", source_collection="S2_L1C-1"),
        PlanNode("2", TaskType.CORRECTION, "S2_TOA-1", parent_id="0",
                 source_collection="S2_L1C-1"),
        PlanNode("3", TaskType.PUBLISH, "S2_TOA-1", parent_id="2", source_collection="S2_TOA-1"),
    ))  # fmt: skip
    backend = StaticStacBackend(tmp_path / "stac")
    activities = _run(
        {"plan": plan, "context": RunContext("radcor", RUN, "x"), "store": store,
         "backend": backend, "driver_factory": factory,
         "collections": {"S2_L1C-1": l1c, "S2_TOA-1": collections["S2_TOA-1"]}},
        TaskType.DOWNLOAD, TaskType.CORRECTION, TaskType.PUBLISH,
    )  # fmt: skip
    for node, collection in (("1", "S2_L1C-1"), ("3", "S2_TOA-1")):
        item = _published(backend, collection, activities[node])
        for band in ("B02", "B04", "B8A", "B11"):
            expected = (lay.band_dn(band, lay.NATIVE_M[band]) + 100) / 10000  # granule 31TDJ
            values = _physical(item, activities[node], band)
            assert values.size, (collection, band)
            assert np.abs(values - expected).max() <= TOLERANCE, (collection, band, values[:3])
