"""Publishing from real `dag.test()` runs: Asset events per collection; pgstac served by
stac-fastapi-pgstac and searched with pystac-client (bbox, datetime, cloud cover)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from include.catalog import registry
from include.catalog.pgstac import DSN_ENV, PgstacBackend
from tests.helpers.dag_runs import task_states
from tests.helpers.pgstac_db import postgres_problem, throwaway_database
from tests.integration.test_radcor_dag import _conf

COLLECTION = "S2_L1C-1"
ASSET_URI = f"stac://collection-builder/{COLLECTION}"


def _asset_events(run_id: str) -> list[Any]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == ASSET_URI, AssetEvent.source_run_id == run_id)
        ).all()
        return [
            (event.source_task_id, event.source_map_index, dict(event.extra)) for event in events
        ]


def test_radcor_publish_emits_an_asset_event_per_collection_and_scene(
    radcor_dag: Any, demo_catalog: tuple[str, Path], data_dir: Path
) -> None:
    url, _ = demo_catalog
    run = radcor_dag.test(run_conf=_conf(url))
    assert str(run.state) == "success", task_states(run)
    events = _asset_events(run.run_id)
    assert len(events) == 4  # one per scene (each scene's publish task), for S2_L1C-1
    assert {task for task, _, _ in events} == {"scene.publish"}
    scenes = {extra["scene_id"] for _, _, extra in events}
    assert len(scenes) == 4
    assert all(extra["item_id"] == extra["scene_id"] for _, _, extra in events)
    paths = sorted((data_dir / "stac" / COLLECTION / "items").glob("*.json"))
    assert scenes == {p.stem for p in paths}
    # the lineage the step runner gathered from the upstream (download) activity
    lineage = json.loads(paths[0].read_text())["properties"]["processing:lineage"]
    assert "downloaded from demo into S2_L1C-1" in lineage


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def pgstac_dsn(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    problem = postgres_problem()
    if problem:
        pytest.skip(problem)
    with throwaway_database("cb_pgstac_it") as dsn:
        monkeypatch.setenv(registry.BACKEND_ENV, "pgstac")
        monkeypatch.setenv(DSN_ENV, dsn)
        yield dsn


@pytest.fixture
def stac_api(pgstac_dsn: str, tmp_path: Path) -> Iterator[str]:
    """stac-fastapi-pgstac over the pgstac database, on a free loopback port; stopped after."""
    PgstacBackend(pgstac_dsn).ensure_ready()
    port = _free_port()
    database = pgstac_dsn.rsplit("/", 1)[1]
    env = {
        **os.environ,
        # all five are needed, PGPASSWORD even under trust auth (DESIGN 3.2)
        "PGUSER": "postgres",
        "PGPASSWORD": "postgres",
        "PGHOST": "127.0.0.1",
        "PGPORT": "5432",
        "PGDATABASE": database,
    }
    log_path = tmp_path / "stac-fastapi.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "stac_fastapi.pgstac.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/_mgmt/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"stac-fastapi-pgstac did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log_file.close()


def test_radcor_publish_into_pgstac_is_searchable_by_bbox_datetime_and_cloud(
    radcor_dag: Any,
    demo_catalog: tuple[str, Path],
    data_dir: Path,
    pgstac_dsn: str,
    stac_api: str,
) -> None:
    import pystac_client

    url, _ = demo_catalog
    run = radcor_dag.test(run_conf=_conf(url))
    assert str(run.state) == "success", task_states(run)
    backend = PgstacBackend(pgstac_dsn)
    assert backend.count(COLLECTION) == 4
    again = radcor_dag.test(run_conf=_conf(url, force=True))  # republish: replace, not duplicate
    assert str(again.state) == "success", task_states(again)
    assert backend.count(COLLECTION) == 4
    assert not (data_dir / "stac").exists()  # the pgstac backend was used, not the static one

    items = backend.search(COLLECTION)
    client = pystac_client.Client.open(stac_api)
    collection = client.get_collection(COLLECTION)
    assert collection.title == "Sentinel-2 MSI Level-1C top-of-atmosphere reflectance"
    bbox = collection.extent.spatial.bboxes[0]
    assert all(bbox[0] <= item["bbox"][0] and item["bbox"][2] <= bbox[2] + 1e-9 for item in items)

    everything = client.search(collections=[COLLECTION], bbox=[-46.0, -13.0, -45.5, -12.4])
    assert everything.matched() == 4
    assert {item.id for item in everything.items()} == {item["id"] for item in items}
    assert client.search(collections=[COLLECTION], bbox=[10.0, 10.0, 11.0, 11.0]).matched() == 0

    first = min(items, key=lambda item: item["properties"]["datetime"])
    day = first["properties"]["datetime"][:10]
    by_date = client.search(collections=[COLLECTION], datetime=f"{day}T00:00:00Z/{day}T23:59:59Z")
    assert first["id"] in {item.id for item in by_date.items()}
    assert all(item.properties["datetime"].startswith(day) for item in by_date.items())

    clouds = sorted(item["properties"]["eo:cloud_cover"] for item in items)
    limit = (clouds[0] + clouds[-1]) / 2
    clear = client.search(collections=[COLLECTION], query={"eo:cloud_cover": {"lt": limit}})
    expected = {i["id"] for i in items if i["properties"]["eo:cloud_cover"] < limit}
    assert 0 < len(expected) < 4
    assert {item.id for item in clear.items()} == expected
    cql = client.search(
        collections=[COLLECTION],
        filter={"op": "<", "args": [{"property": "eo:cloud_cover"}, limit]},
        filter_lang="cql2-json",
    )
    assert {item.id for item in cql.items()} == expected
