"""A real ``dag.test()`` run of radcor downloading an Earth Search scene from a loopback server.

The loopback server speaks what a download from Earth Search v1 needs: its landing page (as
recorded), ``POST /v1/search`` (with the GET form as fallback) answering a real recorded
``sentinel-2-c1-l2a`` item, and the item's files, served with Range support at the paths and
file names of the recorded hrefs (the S3 host replaced by the loopback server). The served bytes
are made here; each asset's ``file:size`` and ``file:checksum`` (a sha2-256 multihash, as Earth
Search gives it) are recomputed for them, so the engine verifies every file for real.

The test's copy of ``config/collections.yaml`` keeps Earth Search as the only provider of
``S2_L2A-1``: provider fallback would otherwise try CDSE and Planetary Computer on the internet.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from include.radcor.activities import ActivityStore
from tests.helpers.dag_runs import task_states
from tests.helpers.http_server import (
    Cassette,
    LocalHttpServer,
    Reply,
    Request,
    replay,
    serve_bytes,
)

REPO = Path(__file__).resolve().parents[2]
ORIGIN = "https://earth-search.aws.element84.com"
COLLECTION = "sentinel-2-c1-l2a"
ITEM_ID = "S2B_T24MVV_20250731T130245_L2A"
SCENE = "S2B_MSIL2A_20250731T130249_N0511_R095_T24MVV_20250731T132745"
NOT_DOWNLOADED = frozenset({"visual", "preview", "thumbnail", "tileinfo_metadata"})
"""True-colour and overview previews, the thumbnail, and tileInfo.json (JSON, not XML metadata)."""
SHA2_256_MULTIHASH = "1220"
"""Multihash prefix of a sha2-256 digest: function code 0x12, digest length 0x20."""


def _cassette() -> Cassette:
    folder = Path(os.environ.get("REALDATA_DIR") or REPO.parent / "shared" / "realdata")
    path = folder / "pystac-client" / "test_cli" / "TestCLISearch.test_filter[inprocess].yaml"
    if not path.is_file():
        pytest.skip(f"recorded Earth Search answer not found: {path}; set REALDATA_DIR")
    return Cassette(path)


def _recorded_item(cassette: Cassette) -> dict[str, Any]:
    for interaction in cassette.find("POST", "/v1/search"):
        for feature in (interaction.response_json() or {}).get("features", []):
            if feature.get("id") == ITEM_ID:
                return dict(feature)
    pytest.skip(f"{ITEM_ID} is not in {cassette.path.name}")


def _multihash(data: bytes) -> str:
    return SHA2_256_MULTIHASH + hashlib.sha256(data).hexdigest()


def _file_bytes(key: str, index: int) -> bytes:
    """Distinct bytes per asset, 8 to 40 KB."""
    size = 8_000 * (1 + index % 5) + index
    block = hashlib.sha256(key.encode()).digest() + bytes(range(256))
    return (block * (size // len(block) + 1))[:size]


class EarthSearch:
    """Earth Search v1's landing page, item search and file hosting on one loopback server."""

    def __init__(self, cassette: Cassette) -> None:
        self.server = LocalHttpServer()
        self.url = self.server.url
        self.searches: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {}
        """Asset key -> the bytes served for it."""
        self.paths: dict[str, str] = {}
        """Asset key -> the path it is served at."""
        recorded = _recorded_item(cassette)
        # Links (self, root, collection, thumbnail) lead back here, as replay does for pages.
        item = json.loads(json.dumps(recorded).replace(ORIGIN, self.url))
        for index, (key, asset) in enumerate(item["assets"].items()):
            parts = urlsplit(asset["href"])
            if parts.scheme not in ("http", "https"):
                continue  # requester-pays s3:// hrefs stay as recorded
            recorded_checksum = asset["file:checksum"]  # the format we write back
            assert recorded_checksum.startswith(SHA2_256_MULTIHASH), recorded_checksum
            assert len(recorded_checksum) == len(_multihash(b"")), recorded_checksum
            data = _file_bytes(key, index)
            asset["href"] = self.server.route(parts.path, serve_bytes(data))
            asset["file:size"] = len(data)
            asset["file:checksum"] = _multihash(data)
            self.files[key] = data
            self.paths[key] = parts.path
        self.item = item
        self.server.route(
            "/v1",
            replay(cassette.find("GET", "/v1"), origin=ORIGIN, server_url=self.url),
        )
        self.server.route("/v1/search", self._search)

    def _search(self, request: Request) -> Reply:
        if request.method == "POST":
            body = request.json() or {}
        elif request.method == "GET":
            query = parse_qs(request.query)
            body = {k: v[0] for k, v in query.items()}
            body["collections"] = body.get("collections", "").split(",")
        else:
            return Reply(405, b'{"code":"MethodNotAllowed"}', {"Content-Type": "application/json"})
        self.searches.append(body)
        ids = body.get("ids")
        if isinstance(ids, str):  # the GET form: a comma-separated list
            ids = ids.split(",")
        wanted = ids is None or self.item["id"] in ids  # STAC API: ids select items by id
        features = [self.item] if COLLECTION in (body.get("collections") or ()) and wanted else []
        page = {
            "type": "FeatureCollection",
            "features": features,
            "links": [{"rel": "root", "href": self.url + "/v1", "type": "application/json"}],
            "numberReturned": len(features),
        }
        return Reply(200, json.dumps(page).encode(), {"Content-Type": "application/geo+json"})

    def corrupt_checksum(self, key: str) -> None:
        """Make the item announce a checksum the served bytes of ``key`` do not have."""
        self.item["assets"][key]["file:checksum"] = _multihash(self.files[key] + b"\0")

    def file_requests(self, key: str) -> list[Request]:
        return self.server.requests_to(self.paths[key])

    def file_request_count(self) -> int:
        served = set(self.paths.values())
        return len([r for r in self.server.requests if r.path in served])


@pytest.fixture
def earth_search() -> Iterator[EarthSearch]:
    catalog = EarthSearch(_cassette())
    try:
        yield catalog
    finally:
        catalog.server.close()


@pytest.fixture
def earth_search_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository's config, with Earth Search the only provider of S2_L2A-1."""
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    collections = yaml.safe_load((config / "collections.yaml").read_text())
    collection = collections["collections"]["S2_L2A-1"]
    collection["providers"] = [p for p in collection["providers"] if p["catalog"] == "earthsearch"]
    assert collection["providers"] == [{"catalog": "earthsearch", "dataset": COLLECTION}]
    (config / "collections.yaml").write_text(yaml.safe_dump(collections))
    monkeypatch.setenv("COLLECTION_BUILDER_CONFIG_DIR", str(config))


@pytest.fixture
def radcor_dag_retrying_once(monkeypatch: pytest.MonkeyPatch) -> Any:
    """dags/radcor.py parsed with one Airflow retry after 1 s (dag.test re-parses with this ENV)."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__COLLECTION_BUILDER__TASK_RETRIES", "1")
    monkeypatch.setenv("AIRFLOW__COLLECTION_BUILDER__TASK_RETRY_DELAY_S", "1")
    monkeypatch.setenv("AIRFLOW__COLLECTION_BUILDER__TASK_RETRY_EXPONENTIAL_BACKOFF", "0")
    bag = DagBag(dag_folder=str(REPO / "dags" / "radcor.py"))
    assert bag.import_errors == {}
    return bag.dags["radcor"]


def _conf(url: str) -> dict[str, Any]:
    return {
        "tiles": None,  # dag.test keeps Params of earlier runs in this process
        "geom": None,
        "w": -39.9,
        "s": -4.9,
        "e": -38.95,
        "n": -4.55,
        "catalog": "EarthSearch",
        "catalog_args": {"url": url + "/v1"},
        "dataset": "S2MSI2A",
        "start": "2025-07-31T13:03:25",
        "end": "2025-07-31T13:03:26",
        "cloud": 100,
        "action": "start",
        "tasks": [{"type": "download", "collection": "S2_L2A-1", "args": {}}],
    }


def _scene_dir(data_dir: Path) -> Path:
    return data_dir / "archive" / "S2_L2A-1" / "24MVV" / "2025" / "07" / SCENE


def _file_name(key: str, path: str) -> str:
    return key + PurePosixPath(path).suffix


def test_radcor_earth_search_start_downloads_verified_files_and_rerun_reuses_them(
    radcor_dag: Any,
    earth_search: EarthSearch,
    earth_search_only: None,
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")
    run = radcor_dag.test(run_conf=_conf(earth_search.url))

    assert str(run.state) == "success", task_states(run)
    (search,) = earth_search.searches
    assert search["collections"] == [COLLECTION]
    assert search["datetime"] == "2025-07-31T13:03:25Z/2025-07-31T13:03:26Z"
    assert search["bbox"] == [-39.9, -4.9, -38.95, -4.55]
    # A C1 L2A item keeps every file on HTTPS (storage:requester_pays false): no s3:// to skip.
    assert earth_search.item["properties"]["storage:requester_pays"] is False
    assert set(earth_search.files) == set(earth_search.item["assets"])
    wanted = {k: v for k, v in earth_search.files.items() if k not in NOT_DOWNLOADED}
    assert len(wanted) == 19  # 17 bands and masks, granule and product metadata
    scene_dir = _scene_dir(data_dir)
    names = {_file_name(key, earth_search.paths[key]): key for key in wanted}
    assert {p.name for p in scene_dir.iterdir()} == set(names)  # no .part, no .lock
    for name, key in names.items():
        assert (scene_dir / name).read_bytes() == wanted[key], name
        (request,) = earth_search.file_requests(key)
        assert request.method == "GET" and "range" not in request.headers
        digest = hashlib.sha256(wanted[key]).hexdigest()
        assert f"checksum=sha256:{digest}" in caplog.text  # verified against the multihash
    for key in NOT_DOWNLOADED:
        assert earth_search.file_requests(key) == []
    (activity,) = ActivityStore().for_run(run.run_id)
    assert str(activity.status) == "success"
    assert activity.catalog == "earthsearch"
    assert activity.provider == "earthsearch"
    assert activity.size_bytes == sum(len(data) for data in wanted.values())
    assert activity.outputs["files"] == {Path(name).stem: str(scene_dir / name) for name in names}
    # A folder of files has no one checksum; each file's, as verified, is in the outputs.
    assert activity.checksum is None
    assert activity.outputs["checksums"] == {
        name: f"sha256:{hashlib.sha256(wanted[key]).hexdigest()}" for name, key in names.items()
    }
    modified = {p.name: p.stat().st_mtime_ns for p in scene_dir.iterdir()}
    served = earth_search.file_request_count()

    rerun = radcor_dag.test(run_conf=_conf(earth_search.url))

    assert str(rerun.state) == "success", task_states(rerun)
    assert earth_search.file_request_count() == served  # nothing downloaded again
    assert {p.name: p.stat().st_mtime_ns for p in scene_dir.iterdir()} == modified
    (again,) = ActivityStore().for_run(rerun.run_id)
    assert str(again.status) == "reused"
    assert again.provider == "earthsearch"


def test_radcor_earth_search_wrong_checksum_fails_the_download_and_keeps_no_corrupt_file(
    radcor_dag_retrying_once: Any,
    earth_search: EarthSearch,
    earth_search_only: None,
    data_dir: Path,
) -> None:
    earth_search.corrupt_checksum("scl")
    expected = earth_search.item["assets"]["scl"]["file:checksum"].removeprefix(SHA2_256_MULTIHASH)

    run = radcor_dag_retrying_once.test(run_conf=_conf(earth_search.url))

    assert str(run.state) == "failed"
    (download,) = [
        ti for ti in run.get_task_instances() if ti.task_id == "scene.download_earthsearch"
    ]
    assert str(download.state) == "failed"
    assert download.try_number == 2  # an integrity error is retried by Airflow, from zero
    (activity,) = ActivityStore().for_run(run.run_id)
    assert str(activity.status) == "failed"
    error = activity.error or ""
    assert error.startswith("ChecksumMismatchError: "), error
    assert "scl.tif" in error and f"sha256:{expected}" in error
    scene_dir = _scene_dir(data_dir)
    left = {p.name for p in scene_dir.iterdir()}
    assert "scl.tif" not in left and "scl.tif.part" not in left
    for name in left:  # the files verified before the failure are whole
        key = Path(name).stem
        assert (scene_dir / name).read_bytes() == earth_search.files[key], name
    requests = earth_search.file_requests("scl")
    assert len(requests) == 2  # once per Airflow try
    assert all("range" not in r.headers for r in requests)  # the partial was removed


def test_radcor_earth_search_scenes_by_item_id_download_the_product_it_names(
    radcor_dag: Any, earth_search: EarthSearch, earth_search_only: None, data_dir: Path
) -> None:
    conf = {**_conf(earth_search.url), "w": None, "s": None, "e": None, "n": None}
    conf.update(start=None, end=None, scenes=[ITEM_ID])  # as Earth Search names the item

    run = radcor_dag.test(run_conf=conf)

    assert str(run.state) == "success", task_states(run)
    assert [s.get("ids") for s in earth_search.searches] == [[ITEM_ID]]
    (activity,) = ActivityStore().for_run(run.run_id)
    assert (activity.key.scene_id, str(activity.status)) == (SCENE, "success")
    assert {p.name for p in _scene_dir(data_dir).iterdir()}  # the product's files, by its name
