"""A real ``dag.test()`` run of radcor against a loopback Planetary Computer: search, SAS, download.

The loopback server speaks the three Planetary Computer protocols a download needs: the STAC
API search (answering a real recorded Sentinel-2 L2A item), the SAS token API
(``GET /api/sas/v1/token/<collection>``) and blob storage, which, like Azure, refuses a blob
request without a signature. The item's asset hrefs point at the loopback blob store; the test's
catalogs config adds ``localhost`` to the hosts whose hrefs are signed (``sas_host_suffixes``),
since the real default only signs ``*.blob.core.windows.net``.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from include.radcor.activities import ActivityStore
from tests.helpers.http_server import Cassette, LocalHttpServer, Reply, Request, serve_bytes

REPO = Path(__file__).resolve().parents[2]
SCENE = "S2A_MSIL2A_20190101T000001_N0212_R116_T58UGE_20201007T214656"
BLOBS = {"B04": b"\x04" * 70_000, "SCL": b"\x05" * 30_000}
SIGNATURE = "sig=SIGNEDBYTHELOOPBACKSAS"  # noqa: S105 - a made-up test token


def _recorded_item() -> dict[str, Any]:
    folder = Path(os.environ.get("REALDATA_DIR") or REPO.parent / "shared" / "realdata")
    search = folder / "pystac-client" / "test_item_search"
    path = search / "TestItemSearch.test_datetime_results.yaml"
    if not path.is_file():
        pytest.skip(f"recorded Planetary Computer answer not found: {path}; set REALDATA_DIR")
    for interaction in Cassette(path).interactions:
        for feature in (interaction.response_json() or {}).get("features", []):
            if feature["properties"].get("s2:product_uri", "").startswith(SCENE):
                return dict(feature)
    pytest.skip(f"{SCENE} is not in {path.name}")


class PlanetaryComputer:
    """STAC search, SAS tokens and signed-only blobs on one loopback server."""

    def __init__(self) -> None:
        self.server = LocalHttpServer()
        self.tokens_issued: list[str] = []
        self.url = self.server.url
        item = copy.deepcopy(_recorded_item())
        recorded_assets = item["assets"]
        item["assets"] = {}
        for key, blob in BLOBS.items():
            name = recorded_assets[key]["href"].rsplit("/", 1)[-1]
            route = self.server.route(f"/sentinel2-l2/{name}", self._blob(blob))
            item["assets"][key] = {
                **recorded_assets[key],
                "href": route.replace("127.0.0.1", "localhost"),
                "file:size": len(blob),
            }
        page = {"type": "FeatureCollection", "features": [item], "links": []}
        self.server.route("/api/stac/v1/search", self._json(page))
        self.server.route("/api/sas/v1/token/sentinel-2-l2a", self._token)

    @staticmethod
    def _json(document: dict[str, Any]) -> Any:
        def handle(request: Request) -> Reply:
            headers = {"Content-Type": "application/geo+json"}
            return Reply(200, json.dumps(document).encode(), headers)

        return handle

    def _token(self, request: Request) -> Reply:
        self.tokens_issued.append(request.path.rsplit("/", 1)[-1])
        expiry = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"msft:expiry": expiry, "token": f"sv=2024-05-04&sr=c&{SIGNATURE}"}
        return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    @staticmethod
    def _blob(blob: bytes) -> Any:
        def handle(request: Request) -> Reply:
            if SIGNATURE not in request.query:  # Azure refuses unsigned blob requests
                return Reply(403, b"<Error><Code>AuthenticationFailed</Code></Error>")
            return serve_bytes(blob)(request)

        return handle

    def blob_requests(self) -> list[Request]:
        return [r for r in self.server.requests if r.path.startswith("/sentinel2-l2/")]


@pytest.fixture
def planetary_computer() -> Iterator[PlanetaryComputer]:
    catalog = PlanetaryComputer()
    try:
        yield catalog
    finally:
        catalog.server.close()


@pytest.fixture
def signs_localhost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository's config, with loopback hrefs signed as Planetary Computer blob hrefs."""
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    catalogs = yaml.safe_load((config / "catalogs.yaml").read_text())
    options = catalogs["catalogs"]["planetarycomputer"]["options"]
    options["sas_host_suffixes"] = ["localhost"]
    (config / "catalogs.yaml").write_text(yaml.safe_dump(catalogs))
    monkeypatch.setenv("COLLECTION_BUILDER_CONFIG_DIR", str(config))


def _conf(url: str, action: str) -> dict[str, Any]:
    return {
        "tiles": None,  # dag.test keeps Params of earlier runs in this process
        "geom": None,
        "w": 170.0,
        "s": 50.0,
        "e": 180.0,
        "n": 70.0,
        "catalog": "PlanetaryComputer",
        "catalog_args": {"url": url + "/api/stac/v1"},
        "dataset": "S2MSI2A",
        "start": "2019-01-01T00:00:00",
        "end": "2019-01-01T00:00:10",
        "cloud": 100,
        "action": action,
        "tasks": [{"type": "download", "collection": "S2_L2A-1", "args": {}}],
    }


def test_radcor_planetary_computer_start_downloads_signed_blobs(
    radcor_dag: Any,
    planetary_computer: PlanetaryComputer,
    signs_localhost: None,
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = radcor_dag.test(run_conf=_conf(planetary_computer.url, "start"))

    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    (scene_dir,) = {p.parent for p in (data_dir / "archive" / "S2_L2A-1").rglob("B04.tif")}
    assert scene_dir.name == SCENE
    for key, blob in BLOBS.items():
        assert (scene_dir / f"{key}.tif").read_bytes() == blob
    assert planetary_computer.tokens_issued == ["sentinel-2-l2a"]  # one token for the scene
    requests = planetary_computer.blob_requests()
    assert len(requests) == len(BLOBS)
    assert all(SIGNATURE in r.query for r in requests)
    (activity,) = ActivityStore().for_run(run.run_id)
    assert str(activity.status) == "success"
    assert activity.provider == "planetarycomputer"
    assert "SIGNEDBYTHELOOPBACKSAS" not in caplog.text
