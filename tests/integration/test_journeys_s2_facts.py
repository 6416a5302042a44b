"""Journeys whose reading depends on what the catalog said about the scene (SceneHints).

Both run through the ``radcor`` DAG against loopback servers speaking the real protocols and
read back what was published:

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
  download -> publish (S2_L1C-1) and download -> toa -> publish (S2_TOA-1) both read the 31TDJ
  granule, whose band values differ from 31TDH's by 100.
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
import yaml
from rasterio.transform import from_origin

from include.radcor.activities import ActivityStore
from tests.helpers import s2_layouts as lay
from tests.helpers.cdse_server import CdseServer
from tests.helpers.http_server import Cassette, LocalHttpServer, Reply, Request, replay, serve_bytes
from tests.helpers.realdata import realdata
from tests.integration import test_journeys as journeys

ORIGIN = "https://earth-search.aws.element84.com"
CASSETTE = "pystac-client/test_cli/TestCLISearch.test_filter[inprocess].yaml"
ITEM_ID = "S2B_24MVV_20250731_0_L2A"
TOLERANCE = journeys.TOLERANCE
cdse = journeys.cdse
local_config = journeys.local_config


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
        collection = {"type": "Collection", "id": "sentinel-2-l2a", "links": []}
        self.server.route(
            "/v1/collections/sentinel-2-l2a", serve_bytes(json.dumps(collection).encode())
        )

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


def test_earth_search_v1_offset_applied_item_publishes_dn_over_10000(
    radcor_dag: Any, earth_search: EarthSearchV1, local_config: Path, data_dir: Path
) -> None:
    """Through the ``radcor`` DAG, Earth Search v1 the only provider of S2_L2A-1."""
    journeys._only_providers(local_config, "S2_L2A-1", set())
    collections = yaml.safe_load((local_config / "collections.yaml").read_text())
    collections["collections"]["S2_L2A-1"]["providers"] = [
        {"catalog": "earthsearch", "dataset": "sentinel-2-l2a"}
    ]
    (local_config / "collections.yaml").write_text(yaml.safe_dump(collections))
    conf = {
        **journeys.AREA_NONE, "scenes": [ITEM_ID], "start": None, "end": None,
        "catalog": "EarthSearch", "catalog_args": {"url": earth_search.url + "/v1"},
        "dataset": "sentinel-2-l2a", "cloud": 100, "action": "start", "force": False,
        "tasks": journeys._chain(("download", "S2_L2A-1"), ("publish", "S2_L2A-1")),
    }  # fmt: skip

    run = journeys._run(radcor_dag, conf)

    item, path = journeys._published(data_dir, "S2_L2A-1")
    (publish,) = [a for a in ActivityStore().for_run(run.run_id) if a.key.task_type == "publish"]
    radiometry = publish.outputs["metadata"]["radiometry"]
    for band, key in (("B02", "blue"), ("B04", "red"), ("B8A", "nir08"), ("B11", "swir16")):
        (raster_band,) = item["assets"][band]["raster:bands"]
        assert raster_band["scale"] == pytest.approx(1e-4)
        assert not raster_band.get("offset"), (band, raster_band)  # no offset: it is applied
        values, valid, _ = journeys._physical(item, path, band)
        expected = earth_search.values[key] / 10000
        assert valid.any() and np.abs(values[valid] - expected).max() <= TOLERANCE, band
        assert radiometry[band]["source"] == "MTD"


def test_old_format_two_granule_safe_from_cdse_reads_the_scene_tile_granule(
    radcor_dag: Any, cdse: CdseServer, cdse_connection: None, data_dir: Path, tmp_path: Path
) -> None:
    """Through the ``radcor`` DAG: download -> publish S2_L1C-1 and download -> toa -> publish."""
    safe = lay.oper_l1c_safe(tmp_path / "build", ("31TDH", "31TDJ"))
    archive = lay.zip_safe(safe, tmp_path / "oper.zip")
    name = "S2A_MSIL1C_20161201T105441_N0204_R051_T31TDJ_20161201T124911"
    footprint = {"type": "Polygon", "coordinates": [[
        [1.75, 43.3], [1.8, 43.3], [1.8, 43.36], [1.75, 43.36], [1.75, 43.3]]]}  # fmt: skip
    cdse.add_s2_product(name + ".SAFE", archive.read_bytes(), footprint=footprint)
    (toa,) = journeys._chain(("correction", "S2_TOA-1"), ("publish", "S2_TOA-1"))
    (download,) = journeys._chain(("download", "S2_L1C-1"), ("publish", "S2_L1C-1"))
    download["tasks"].append(toa)
    conf = {
        **journeys.AREA_NONE, "scenes": [name], "start": None, "end": None,
        "catalog": "CDSE",
        "catalog_args": {"url": cdse.odata_url, "token_url": cdse.token_url},
        "dataset": "S2MSI1C", "cloud": 100, "action": "start", "force": False,
        "tasks": [download],
    }  # fmt: skip

    run = journeys._run(radcor_dag, conf)

    (scene_id,) = {a.key.scene_id for a in ActivityStore().for_run(run.run_id)}
    assert scene_id == name
    for collection in ("S2_L1C-1", "S2_TOA-1"):
        item, path = journeys._published(data_dir, collection)
        assert item["properties"]["grid:code"] == "MGRS-31TDJ", collection
        for band in ("B02", "B04", "B8A", "B11"):
            expected = (lay.band_dn(band, lay.NATIVE_M[band]) + 100) / 10000  # granule 31TDJ
            values, valid, _ = journeys._physical(item, path, band)
            assert valid.any(), (collection, band)
            error = np.abs(values[valid] - expected).max()
            assert error <= TOLERANCE, (collection, band, values[valid][:3])
