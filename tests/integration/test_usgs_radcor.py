"""Real ``dag.test()`` runs of the radcor DAG against loopback USGS M2M and Earth Search servers.

USGS: the conf names ``"catalog": "USGS"`` with ``catalog_args.url`` on the loopback M2M server
(fed with real M2M answers and real Landsat MTL/band files); the credentials come from the
Airflow Connection ``usgs_default``, given to the task SDK as ``AIRFLOW_CONN_USGS_DEFAULT``.
Earth Search: a preview replayed from a real recorded answer.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.radcor.activities import ActivityStore
from tests.helpers.dag_runs import task_states
from tests.helpers.http_server import LocalHttpServer, json_reply, replay
from tests.helpers.m2m_server import USERNAME, M2MServer, real_scenes
from tests.helpers.realdata import realdata, realdata_dir

REPO = Path(__file__).resolve().parents[2]
L1 = "LC08_L1TP_090084_20160121_20200907_02_T1"


def _realdata(*needed: str) -> Path:
    for name in needed:
        realdata(name)
    return realdata_dir()


@pytest.fixture
def m2m() -> Iterator[M2MServer]:
    realdata = _realdata("kapadia-usgs", "usgs-m2m-docs", "eo-datasets", "stactools-landsat")
    server = M2MServer(realdata, scenes=real_scenes(realdata))
    try:
        yield server
    finally:
        server.close()


def _usgs_conf(url: str, **overrides: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "tiles": ["090084"],
        "catalog": "USGS",
        "catalog_args": {"url": url},
        "dataset": "landsat_ot_c2_l1",
        "start": "2016-01-01T00:00:00",
        "end": "2016-12-31T23:59:59",
        "cloud": 100,
        "action": "preview",
        "force": False,
        "tasks": [{"type": "download", "collection": "LC8_DN-1", "args": {}}],
    }
    conf.update(overrides)
    return conf


def _result(dag_run: Any, task_id: str = "report") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(
                run_id=dag_run.run_id, key="return_value", task_ids=task_id, dag_ids="radcor"
            )
        ).first()
        assert row is not None, f"no result from {task_id}"
        return XComModel.deserialize_value(row[0])


def test_radcor_usgs_preview_lists_scenes_from_m2m(
    radcor_dag: Any, m2m: M2MServer, usgs_connection: None, data_dir: Path
) -> None:
    run = radcor_dag.test(run_conf=_usgs_conf(m2m.url))

    assert str(run.state) == "success", task_states(run)
    result = _result(run)
    assert result["Results"] == 1
    entry = result[L1]
    assert entry["pathrow"] == "090084"
    assert entry["cloud"] == pytest.approx(93.28)
    assert entry["online"] is True
    assert entry["size_bytes"] == len(m2m.scenes[0].archive)
    assert entry["footprint"].startswith("POLYGON")
    assert m2m.logins >= 1 and m2m.logouts >= 1
    assert not (data_dir / "archive").exists()


def test_radcor_usgs_start_downloads_the_bundle(
    radcor_dag: Any, m2m: M2MServer, usgs_connection: None, data_dir: Path
) -> None:
    run = radcor_dag.test(run_conf=_usgs_conf(m2m.url, action="start"))

    assert str(run.state) == "success", task_states(run)
    (bundle,) = (data_dir / "archive" / "LC8_DN-1").rglob("*.tar")
    assert bundle.name == f"{L1}.tar"
    assert bundle.read_bytes() == m2m.scenes[0].archive
    with tarfile.open(bundle) as archive:
        assert f"{L1}_MTL.txt" in archive.getnames()
    (activity,) = ActivityStore().for_run(run.run_id)
    assert str(activity.status) == "success"
    assert activity.key.task_type == "download"
    assert len(m2m.calls("download-request")) == 1


def test_radcor_usgs_refused_token_fails_search_naming_connection(
    radcor_dag: Any, m2m: M2MServer, monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    connection = {"conn_type": "http", "login": USERNAME, "password": "revoked-token"}
    monkeypatch.setenv("AIRFLOW_CONN_USGS_DEFAULT", json.dumps(connection))

    run = radcor_dag.test(run_conf=_usgs_conf(m2m.url))

    assert str(run.state) == "failed"
    states = task_states(run)
    assert states[("search", -1)] == "failed"
    assert states[("report", -1)] == "failed"
    assert len(m2m.calls("login-token")) == 1  # refused credentials are not retried
    assert m2m.calls("scene-search") == []


def test_radcor_earth_search_preview_from_recorded_answer(radcor_dag: Any, data_dir: Path) -> None:
    from tests.helpers.http_server import Cassette

    realdata = _realdata("pystac-client")
    recorded = Cassette(
        realdata / "pystac-client" / "test_item_search" / "test_multiple_collections.yaml"
    )
    server = LocalHttpServer()
    try:
        empty = {"type": "FeatureCollection", "features": [], "links": []}
        server.route(
            "/v1/search",
            replay(
                recorded.interactions,
                origin="https://earth-search.aws.element84.com",
                server_url=server.url,
                fallback=json_reply(empty),
            ),
        )
        conf = {
            "tiles": None,  # dag.test keeps Params of earlier runs in this process
            "geom": {"type": "Point", "coordinates": [-105.1019, 40.1672]},
            "catalog": "EarthSearch",
            "catalog_args": {"url": server.url + "/v1"},
            "dataset": "landsat_ot_c2_l2",
            "start": "2023-10-08T00:00:00",
            "end": "2023-10-08T23:59:59",
            "action": "preview",
            "tasks": [{"type": "download", "collection": "LC8_SR-1", "args": {}}],
        }
        run = radcor_dag.test(run_conf=conf)
    finally:
        server.close()

    assert str(run.state) == "success", task_states(run)
    result = _result(run)
    assert result["Results"] == 1
    entry = result["LC08_L2SP_033032_20231008_20231017_02_T1"]
    assert entry["pathrow"] == "033032"
    assert entry["cloud"] == pytest.approx(0.06)


def test_radcor_planetary_computer_preview_from_recorded_answer(
    radcor_dag: Any, data_dir: Path
) -> None:
    from tests.helpers.http_server import Cassette

    realdata = _realdata("pystac-client")
    recorded = Cassette(
        realdata
        / "pystac-client"
        / "test_item_search"
        / "TestItemSearch.test_datetime_results.yaml"
    )
    server = LocalHttpServer()
    try:
        server.route(
            "/api/stac/v1/search",
            replay(
                recorded.interactions,
                origin="https://planetarycomputer.microsoft.com",
                server_url=server.url,
            ),
        )
        conf = {
            "tiles": None,
            "geom": None,  # dag.test keeps Params of earlier runs in this process
            "w": 170.0,
            "s": 50.0,
            "e": 180.0,
            "n": 70.0,
            "catalog": "PlanetaryComputer",
            "catalog_args": {"url": server.url + "/api/stac/v1"},
            "dataset": "S2MSI2A",
            "start": "2019-01-01T00:00:00",
            "end": "2019-01-01T00:00:10",
            "cloud": 40,
            "action": "preview",
            "tasks": [{"type": "download", "collection": "S2_L2A-1", "args": {}}],
        }
        run = radcor_dag.test(run_conf=conf)
    finally:
        server.close()

    assert str(run.state) == "success", task_states(run)
    result = _result(run)
    scenes = {key: value for key, value in result.items() if key != "Results"}
    assert result["Results"] == len(scenes) > 0
    assert all(entry["cloud"] <= 40 for entry in scenes.values())
    entry = scenes["S2A_MSIL2A_20190101T000001_N0212_R116_T58UGE_20201007T214656"]
    assert entry["tileid"] == "58UGE"
    assert "/api/data/v1/item/preview.png?collection=sentinel-2-l2a" in entry["icon"]
