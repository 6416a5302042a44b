"""The upstream collection builder's URLs and shapes, through real HTTP against a started Airflow.

``/api/radcor``, ``/api/radcor/restart`` and ``/api/activities`` as upstream clients call them
(the plugin's root middleware routes them to the radcor API's upstream routes), on the demo
catalog's window A (tile 23LLF, 9-10 January 2020; the same scenes as test_radcor_api's run A,
so the gap checks there are unchanged).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.helpers import upstream_guide
from tests.helpers.airflow_stack import AirflowStack

WINDOW_A = {"start": "2020-01-09T00:00:00", "end": "2020-01-10T23:59:59"}
SCENES_A = {
    "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429",
    "S2B_MSIL1C_20200110T131239_N0208_R138_T23LLF_20200110T150351",
}
UPSTREAM_PATHS = [
    ("POST", "/api/radcor"),
    ("GET", "/api/radcor/restart?ids=1"),
    ("POST", "/api/radcor/restart"),
    ("GET", "/api/activities"),
]


def _upstream_conf(demo_conf: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The demo conf as an upstream client sends it: no action unless given."""
    conf = {k: v for k, v in json.loads(json.dumps(demo_conf)).items() if k != "action"}
    return {**conf, **WINDOW_A, **changes}


def _runs(stack: AirflowStack) -> set[str]:
    with stack.client() as client:
        runs = client.get("/api/v2/dags/radcor/dagRuns", params={"limit": 100}).json()
    return {r["dag_run_id"] for r in runs["dag_runs"]}


def _check_guide_shape(result: dict[str, Any], scenes: set[str]) -> None:
    assert result["Results"] == len(scenes)
    assert scenes <= set(result)
    for scene_id in scenes:
        entry = result[scene_id]
        assert tuple(entry)[: len(upstream_guide.PREVIEW_ENTRY_KEYS)] == (
            upstream_guide.PREVIEW_ENTRY_KEYS
        )
        assert entry["sceneid"] == scene_id
        assert entry["type"] == "MSIL1C"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", entry["date"])
        assert scene_id.split("_")[2].startswith(entry["date"].replace("-", ""))
        assert isinstance(entry["cloud"], float)
        assert entry["footprint"].startswith("POLYGON")
        assert entry["tileid"] == entry["pathrow"] == "23LLF"
        assert re.fullmatch(upstream_guide.SIZE_RE, entry["size"])
        assert entry["link"].startswith("http")


@pytest.mark.parametrize(("method", "path"), UPSTREAM_PATHS, ids=lambda v: str(v))
def test_upstream_path_needs_airflow_auth(
    airflow_stack: AirflowStack, demo_conf: dict[str, Any], method: str, path: str
) -> None:
    body = _upstream_conf(demo_conf) if method == "POST" else None
    with airflow_stack.client(authenticated=False) as client:
        response = client.request(method, path, json=body)
    assert response.status_code == 401, response.text


def test_airflow_api_v2_is_untouched(airflow_stack: AirflowStack) -> None:
    with airflow_stack.client() as client:
        dags = client.get("/api/v2/dags/radcor")
        missing = client.get("/api/v2/no-such-route")
    assert dags.status_code == 200 and dags.json()["dag_id"] == "radcor"
    assert missing.status_code == 404


@pytest.mark.parametrize("path", ["/api/radcor", "/api/radcor/"])
def test_upstream_radcor_without_action_is_a_preview_in_the_guide_shape(
    airflow_stack: AirflowStack, demo_conf: dict[str, Any], path: str
) -> None:
    before = _runs(airflow_stack)
    with airflow_stack.client() as client:
        response = client.post(path, json=_upstream_conf(demo_conf))
    assert response.status_code == 200, response.text
    _check_guide_shape(response.json(), SCENES_A)
    assert "runs" not in response.json()
    assert _runs(airflow_stack) == before


def test_upstream_request_fields_are_accepted(
    airflow_stack: AirflowStack, demo_conf: dict[str, Any]
) -> None:
    conf = _upstream_conf(
        demo_conf,
        platform="Sentinel-2A",
        catalog_search_args={"limit": 10},
        tags=["bdc"],
        catalog_args={**demo_conf["catalog_args"], "progress": True},
    )
    with airflow_stack.client() as client:
        response = client.post("/api/radcor", json=conf)
    assert response.status_code == 200, response.text
    (only_s2a,) = [k for k in response.json() if k != "Results"]
    assert only_s2a.startswith("S2A_")


def test_upstream_radcor_refuses_credentials_and_out_of_order_trees_before_any_run(
    airflow_stack: AirflowStack, demo_conf: dict[str, Any]
) -> None:
    before = _runs(airflow_stack)
    secret = {**demo_conf["catalog_args"], "username": "me", "password": "hunter2"}
    out_of_order = [
        {
            "type": "download",
            "collection": "S2_L1C-1",
            "args": {},
            "tasks": [
                {
                    "type": "publish",
                    "collection": "S2_L1C-1",
                    "args": {},
                    "tasks": [{"type": "post", "collection": "S2_L1C-1", "args": {}}],
                }
            ],
        }
    ]
    with airflow_stack.client() as client:
        creds = client.post("/api/radcor", json=_upstream_conf(demo_conf, catalog_args=secret))
        tree = client.post(
            "/api/radcor", json=_upstream_conf(demo_conf, action="start", tasks=out_of_order)
        )
    assert creds.status_code == 400 and "hunter2" not in creds.text
    assert {e["field"] for e in creds.json()["errors"]} == {
        "catalog_args.username",
        "catalog_args.password",
    }
    assert all("Connection" in e["fix"] for e in creds.json()["errors"])
    assert tree.status_code == 400, tree.text
    fixes = " ".join(e["fix"] for e in tree.json()["errors"])
    assert '"type": "post", "collection": "S2_L1C-1", "args": {}, "tasks": [{"type": "publish"' in (
        fixes
    )
    assert _runs(airflow_stack) == before


def test_upstream_start_then_activities_then_restart_the_upstream_way(
    airflow_stack: AirflowStack, demo_conf: dict[str, Any]
) -> None:
    with airflow_stack.client() as client:
        preview = client.post("/api/radcor", json=_upstream_conf(demo_conf)).json()
        started = client.post("/api/radcor", json=_upstream_conf(demo_conf, action="start"))
        assert started.status_code == 200, started.text
        result = started.json()
        _check_guide_shape(result, SCENES_A)
        for scene_id in SCENES_A:  # the same entries, the same types
            assert result[scene_id].keys() == preview[scene_id].keys()
            for key, value in preview[scene_id].items():
                assert type(result[scene_id][key]) is type(value), key
        (run,) = result["runs"]
        run_id = run["run_id"]
        assert airflow_stack.wait_for_run(run_id)["state"] == "success", airflow_stack.logs()

        listed = client.get("/api/activities", params={"per_page": 100}).json()
        assert {"total", "page", "per_page", "pages", "items"} <= set(listed)
        ours = [a for a in listed["items"] if a["run_id"] == run_id]
        assert {(a["sceneid"], a["activity_type"]) for a in ours} == {
            (s, t) for s in SCENES_A for t in ("download", "publish")
        }
        assert {a["status"] for a in ours} == {"SUCCESS"}
        download = next(a for a in ours if a["activity_type"] == "download")
        assert download["collection_id"] == "S2_L1C-1"

        # the guide's restart call: without action, the upstream only lists
        listed_only = client.get(f"/api/radcor/restart?ids={download['id']}")
        assert listed_only.status_code == 200, listed_only.text
        assert listed_only.json()["action"] == "PREVIEW"
        assert listed_only.json()["total"] == 1
        assert listed_only.json()["activities"][0]["sceneid"] == download["sceneid"]
        assert "cleared" not in listed_only.json()

        by_scene = client.post(
            "/api/radcor/restart",
            json={
                "sceneid": download["sceneid"],
                "collection_id": "S2_L1C-1",
                "activity_type": "download",
                "status": "SUCCESS",
            },
        ).json()
        assert download["id"] in [a["id"] for a in by_scene["activities"]]

        restarted = client.get(
            "/api/radcor/restart", params={"id": download["id"], "action": "start"}
        )
        assert restarted.status_code == 200, restarted.text
        body = restarted.json()
        assert (body["action"], body["total"]) == ("start", 1)
        assert {t["run_id"] for t in body["cleared"]} == {run_id}
        assert airflow_stack.wait_for_run(run_id)["state"] == "success", airflow_stack.logs()

        no_filter = client.get("/api/radcor/restart")
        assert no_filter.status_code == 400
        assert "Requires" in no_filter.text
