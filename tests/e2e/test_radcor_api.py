"""The radcor API plugin, through real HTTP against a started Airflow on PostgreSQL.

Scenes of the demo catalog (tile 23LLF, January 2020): window A (Jan 9-10) has two, window B
(Jan 11-31) two more. Run A goes through Airflow's own REST API; run B through ``POST /radcor``,
with one band file of one scene hidden so that scene fails, then is restarted by the API.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from tests.helpers.airflow_stack import SEARCH_TIMEOUT_S, AirflowStack
from tests.helpers.http_server import LocalHttpServer, Reply, Request

WINDOW_A = {"start": "2020-01-09T00:00:00", "end": "2020-01-10T23:59:59"}
WINDOW_B = {"start": "2020-01-11T00:00:00", "end": "2020-01-31T23:59:59"}
SCENES_A = {
    "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429",
    "S2B_MSIL1C_20200110T131239_N0208_R138_T23LLF_20200110T150351",
}
FAILING_SCENE = "S2B_MSIL1C_20200114T132229_N0208_R038_T23LLF_20200114T150103"
OTHER_B_SCENE = "S2A_MSIL1C_20200119T132231_N0500_R038_T23LLF_20230612T101536"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,1000",
    "--virtual-time-budget=20000",
)


def _conf(demo_conf: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(demo_conf)), **changes}


@pytest.fixture(scope="module")
def run_a(airflow_stack: AirflowStack, demo_conf: dict[str, Any]) -> str:
    """Run A, triggered through Airflow's own REST API and finished."""
    with airflow_stack.client() as client:
        response = client.post(
            "/api/v2/dags/radcor/dagRuns",
            json={"logical_date": None, "conf": _conf(demo_conf, **WINDOW_A)},
        )
    assert response.status_code == 200, response.text
    run_id = str(response.json()["dag_run_id"])
    run = airflow_stack.wait_for_run(run_id)
    assert run["state"] == "success", airflow_stack.logs()
    return run_id


# --- auth, validation, schema -----------------------------------------------------------------

PROTECTED = [
    ("POST", "/radcor-api/radcor"),
    ("GET", "/radcor-api/radcor/activities"),
    ("GET", "/radcor-api/radcor/activities/1"),
    ("GET", "/radcor-api/radcor/activities/1/quicklook"),
    ("GET", "/radcor-api/radcor/restart?ids=1"),
    ("POST", "/radcor-api/radcor/restart"),
    ("POST", "/radcor-api/radcor/check"),
    ("GET", "/radcor-api/radcor/items/S2_L1C-1/x"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=lambda v: str(v))
def test_endpoint_without_token_answers_401(
    airflow_stack: AirflowStack, demo_conf: dict[str, Any], method: str, path: str
) -> None:
    body = demo_conf if method == "POST" else None
    with airflow_stack.client(authenticated=False) as client:
        missing = client.request(method, path, json=body)
        bad = client.request(method, path, json=body, headers={"Authorization": "Bearer not.a.jwt"})
    assert missing.status_code == 401, missing.text
    assert bad.status_code == 401, bad.text
    assert missing.headers.get("www-authenticate") == "Bearer"


INVALID_CONFS: dict[str, tuple[dict[str, Any], tuple[str, ...], str]] = {
    # name: (changes, fields removed, field named in the error)
    "cloud_out_of_range": ({"cloud": 150}, (), "cloud"),
    "cloud_as_string": ({"cloud": "low"}, (), "cloud"),
    "no_dataset": ({}, ("dataset",), "dataset"),
    "unknown_catalog": ({"catalog": "nope"}, (), "catalog"),
    "no_area": ({}, ("w", "s", "e", "n"), "area"),
    "two_areas": ({"tiles": ["23LLF"]}, (), "tiles"),
    "west_east_swapped": ({"w": -45.7, "e": -45.9}, (), "e"),
    "end_before_start": ({"end": "2020-01-01T00:00:00"}, (), "end"),
    "bad_date": ({"start": "yesterday"}, (), "start"),
    "unknown_collection": (
        {"tasks": [{"type": "download", "collection": "S2_L1C-9"}]},
        (),
        "tasks[0].collection",
    ),
    "unknown_task_type": (
        {"tasks": [{"type": "fetch", "collection": "S2_L1C-1"}]},
        (),
        "tasks[0].type",
    ),
    "raw_credentials": ({"catalog_args": {"password": "hunter2"}}, (), "catalog_args.password"),
    "bad_action": ({"action": "go"}, (), "action"),
    "unknown_field": ({"foo": 1}, (), "foo"),
    "bad_geom": ({"geom": "POLYGON ((1 2, 3"}, ("w", "s", "e", "n"), "geom"),
    "bad_tile": ({"tiles": ["ZZ999"]}, ("w", "s", "e", "n"), "tiles[0]"),
}


@pytest.mark.parametrize("name", sorted(INVALID_CONFS))
def test_post_radcor_invalid_conf_answers_400_with_field_and_fix(
    airflow_stack: AirflowStack, demo_conf: dict[str, Any], name: str
) -> None:
    changes, removed, field = INVALID_CONFS[name]
    conf = _conf(demo_conf, **changes)
    for key in removed:
        conf.pop(key)
    with airflow_stack.client() as client:
        response = client.post("/radcor-api/radcor", json=conf)
        runs = client.get("/api/v2/dags/radcor/dagRuns", params={"limit": 100}).json()
    assert response.status_code == 400, response.text
    errors = response.json()["errors"]
    assert field in [e["field"] for e in errors], errors
    assert all(e["message"] and e["fix"] for e in errors)
    assert "hunter2" not in response.text
    assert not any((r.get("conf") or {}).get("foo") == 1 for r in runs["dag_runs"])


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (b"not json", "body", "is not valid JSON (Expecting value at character 0)"),
        (b"", "body", "is empty (or null)"),
        (b"\xff\xfe", "body", "is not valid JSON (Expecting value at character 0)"),
        (b"[" * 50_000, "body", "cannot be read (there was an error parsing the body)"),
        (b"[1, 2]", "conf", "must be a JSON object (got array)"),
        (b'"a string"', "conf", "must be a JSON object (got string)"),
    ],
)
def test_post_radcor_body_not_a_json_object_answers_400_with_the_error_list(
    airflow_stack: AirflowStack, body: bytes, field: str, message: str
) -> None:
    with airflow_stack.client() as client:
        for path in ("/radcor-api/radcor", "/api/radcor", "/radcor-api/radcor/check"):
            response = client.post(path, content=body, headers={"Content-Type": "application/json"})
            assert response.status_code == 400, (path, response.text)
            (error,) = response.json()["errors"]
            assert (error["field"], error["message"]) == (field, message), path
            assert error["fix"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("GET", "/radcor-api/radcor/activities?scene_id=a%00b", None, "scene_id"),
        ("GET", "/radcor-api/radcor/items/S2_L1C-1%00/x", None, "collection"),
        ("GET", "/radcor-api/radcor/restart?run_id=%0Aforged", None, "run_id"),
        ("POST", "/radcor-api/radcor/restart", {"scene_id": "a\x00b"}, "scene_id"),
        ("GET", "/api/activities?collection=" + "x" * 2000, None, "collection"),
        (
            "POST",
            "/api/radcor/restart",
            {"sceneid": "a\x00b", "collection_id": "S2_L1C-1"},
            "sceneid",
        ),
    ],
)
def test_control_character_or_oversize_value_in_a_request_answers_400(
    airflow_stack: AirflowStack, method: str, path: str, body: Any, field: str
) -> None:
    # PostgreSQL refuses NUL and a file path cannot hold it: refused before either is reached
    with airflow_stack.client() as client:
        response = client.request(method, path, json=body)
    assert response.status_code == 400, response.text
    assert field in [e["field"] for e in response.json()["errors"]]


def test_query_of_the_wrong_type_answers_400_with_the_error_list(
    airflow_stack: AirflowStack,
) -> None:
    with airflow_stack.client() as client:
        response = client.get("/radcor-api/radcor/activities", params={"limit": "many"})
    assert response.status_code == 400, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == "limit" and "integer" in error["message"]
    assert "many" not in response.text


def test_openapi_schema_lists_the_endpoints_and_the_conf(airflow_stack: AirflowStack) -> None:
    with airflow_stack.client(authenticated=False) as client:
        schema = client.get("/radcor-api/openapi.json").json()
    paths = schema["paths"]
    assert {"/radcor", "/radcor/restart", "/radcor/activities", "/radcor/check"} <= set(paths)
    assert {"get", "post"} <= set(paths["/radcor/restart"])
    conf = paths["/radcor"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"catalog", "dataset", "tasks", "cloud"} <= set(conf["properties"])
    assert "RadcorTaskNode" in schema["components"]["schemas"]


# --- preview --------------------------------------------------------------------------------


def test_post_radcor_preview_returns_the_upstream_shape(
    airflow_stack: AirflowStack, demo_conf: dict[str, Any]
) -> None:
    conf = _conf(demo_conf, action="preview")
    with airflow_stack.client() as client:
        response = client.post("/radcor-api/radcor", json=conf)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["Results"] == 4
    scenes = {k: v for k, v in result.items() if k != "Results"}
    assert SCENES_A | {FAILING_SCENE, OTHER_B_SCENE} == set(scenes)
    for scene_id, entry in scenes.items():
        assert entry["sceneid"] == scene_id
        assert entry["tileid"] == "23LLF"
        assert entry["footprint"].startswith("POLYGON")
        assert re.fullmatch(r"[\d.]+ [KMG]?B", entry["size"])
        assert {"type", "date", "cloud", "link", "icon"} <= set(entry)


@pytest.fixture
def slow_catalog() -> Iterator[str]:
    server = LocalHttpServer()

    def slow(request: Request) -> Reply:
        time.sleep(SEARCH_TIMEOUT_S + 3)
        return Reply(
            200,
            b'{"type": "FeatureCollection", "features": []}',
            {"Content-Type": "application/geo+json"},
        )

    server.route("/search", slow)
    try:
        yield server.url
    finally:
        server.close()


def test_post_radcor_preview_slow_catalog_answers_504(
    airflow_stack: AirflowStack, demo_conf: dict[str, Any], slow_catalog: str
) -> None:
    conf = _conf(demo_conf, action="preview", catalog_args={"url": slow_catalog})
    started = time.monotonic()
    with airflow_stack.client() as client:
        response = client.post("/radcor-api/radcor", json=conf)
    assert response.status_code == 504, response.text
    assert f"{SEARCH_TIMEOUT_S} s" in response.json()["detail"]
    assert time.monotonic() - started < SEARCH_TIMEOUT_S + 2.5


# --- runs and activities ----------------------------------------------------------------------


def test_activities_after_a_rest_run_list_every_node_with_links(
    airflow_stack: AirflowStack, run_a: str
) -> None:
    with airflow_stack.client() as client:
        page = client.get("/radcor-api/radcor/activities", params={"run_id": run_a}).json()
        assert page["total"] == 4  # 2 scenes x (download, publish)
        activities = page["activities"]
        assert {a["scene_id"] for a in activities} == SCENES_A
        assert {a["status"] for a in activities} == {"success"}
        assert {a["ti_state"] for a in activities} == {"success"}
        for activity in activities:
            assert activity["scene"]["tile"] == "23LLF"
            assert activity["scene"]["footprint"]["type"] == "Polygon"
            assert activity["links"]["log"].startswith(f"{airflow_stack.api}/api/v2/dags/radcor/")
            log = client.get(activity["links"]["log"], headers={"Accept": "application/json"})
            assert log.status_code == 200, log.text
        download = next(a for a in activities if a["type"] == "download")
        assert download["size_bytes"] > 0
        publish = next(a for a in activities if a["type"] == "publish")
        item = client.get(publish["links"]["item"])
        assert item.status_code == 200
        assert item.json()["id"] == publish["scene_id"]
        png = client.get(publish["links"]["thumbnail"])
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert png.content.startswith(b"\x89PNG")
        assert (
            client.get(f"/radcor-api/radcor/activities/{download['id']}/quicklook").status_code
            == 404
        )
        first = client.get(
            "/radcor-api/radcor/activities", params={"run_id": run_a, "limit": 3}
        ).json()
        assert len(first["activities"]) == 3 and first["next"]
        second = client.get(first["next"]).json()
        assert len(second["activities"]) == 1 and second["next"] is None
        filtered = client.get(
            "/radcor-api/radcor/activities",
            params={"run_id": run_a, "type": "publish", "status": "success"},
        ).json()
        assert filtered["total"] == 2
        detail = client.get(f"/radcor-api/radcor/activities/{download['id']}").json()
        assert [h["status"] for h in detail["history"]] == ["running", "success"]
        assert client.get("/radcor-api/radcor/activities/999999").status_code == 404


def test_every_publish_of_a_rest_run_left_its_asset_event(
    airflow_stack: AirflowStack, run_a: str
) -> None:
    # run A is the first to publish S2_L1C-1 in this stack: the scheduler's run-start listener
    # made the asset first, so its two publish tasks, ending together, both record their event
    with airflow_stack.client() as client:
        events = client.get(
            "/api/v2/assets/events", params={"source_run_id": run_a, "limit": 100}
        ).json()
    assert sorted(e["extra"]["scene_id"] for e in events["asset_events"]) == sorted(SCENES_A)
    assert {e["uri"] for e in events["asset_events"]} == {"stac://collection-builder/S2_L1C-1"}
    scheduler_log = (airflow_stack.var_dir / "run" / "scheduler.log").read_text(errors="replace")
    assert "published assets ready before publishing: S2_L1C-1" in scheduler_log


def _hide(path: Path) -> Path:
    hidden = path.with_suffix(".hidden")
    path.rename(hidden)
    return hidden


def test_failed_scene_shows_as_gap_then_restart_reruns_it(
    airflow_stack: AirflowStack, demo_conf: dict[str, Any], run_a: str
) -> None:
    band = airflow_stack.demo_root / "files" / FAILING_SCENE / "B04.tif"
    hidden = _hide(band)
    try:
        with airflow_stack.client() as client:
            started = client.post("/radcor-api/radcor", json=_conf(demo_conf, **WINDOW_B))
            assert started.status_code == 202, started.text
            run_b = started.json()["run_id"]
            assert started.json()["ui_url"].startswith(f"{airflow_stack.api}/dags/radcor/runs/")
            rest = client.get(f"/api/v2/dags/radcor/dagRuns/{run_b}").json()
            assert rest["conf"]["start"] == WINDOW_B["start"]
            assert airflow_stack.wait_for_run(run_b)["state"] == "failed"

            failed = client.get(
                "/radcor-api/radcor/activities", params={"run_id": run_b, "status": "failed"}
            ).json()
            assert [(a["scene_id"], a["type"]) for a in failed["activities"]] == [
                (FAILING_SCENE, "download")
            ]
            assert "404" in failed["activities"][0]["error"]

            whole_month = _conf(demo_conf, start="2020-01-01", end="2020-01-31", action="preview")
            gaps = client.post("/radcor-api/radcor/check", json=whole_month)
            assert gaps.status_code == 200, gaps.text
            assert gaps.json()["cells"] == [
                {
                    "tile": "23LLF",
                    "month": "2020-01",
                    "scenes": 4,
                    "published": {"S2_L1C-1": 3},
                    "missing": [FAILING_SCENE],
                }
            ]

            gap_run = client.post(
                "/radcor-api/radcor/check", json={**whole_month, "action": "start"}
            )
            assert gap_run.status_code == 202, gap_run.text
            (created,) = gap_run.json()["runs"]
            assert created["scenes"] == 1
            conf = client.get(f"/api/v2/dags/radcor/dagRuns/{created['run_id']}").json()["conf"]
            assert conf["scenes"] == [FAILING_SCENE] and "start" not in conf
            # the gap run asks for the failing scene again: it fails the same way (this test
            # restarts B below); waited for, not marked failed: Airflow's PATCH of a run whose
            # tasks the scheduler is still creating answered 500 once under load
            assert airflow_stack.wait_for_run(created["run_id"])["state"] == "failed"

            preview = client.get(
                "/radcor-api/radcor/restart",
                params={"status": "failed", "run_id": run_b, "action": "preview"},
            )
            assert preview.status_code == 200, preview.text
            assert preview.json()["matched"] == 1
            (ti,) = preview.json()["task_instances"]
            assert ti["task_id"] == "scene.download_demo" and ti["state"] == "failed"
            activity_id = preview.json()["activities"][0]["id"]
    finally:
        hidden.rename(band)

    with airflow_stack.client() as client:
        restart = client.get("/radcor-api/radcor/restart", params={"ids": str(activity_id)})
        assert restart.status_code == 202, restart.text
        cleared = {(t["task_id"], t["map_index"]) for t in restart.json()["cleared"]}
        index = ti["map_index"]
        assert {("scene.download_demo", index), ("scene.publish", index), ("report", -1)} <= cleared
        assert not {t for t in cleared if t[0].startswith("scene.") and t[1] != index}
        assert airflow_stack.wait_for_run(run_b)["state"] == "success", airflow_stack.logs()

        after = client.get("/radcor-api/radcor/activities", params={"run_id": run_b}).json()
        assert {a["status"] for a in after["activities"]} == {"success"}
        download = next(
            a
            for a in after["activities"]
            if a["scene_id"] == FAILING_SCENE and a["type"] == "download"
        )
        assert download["attempts"] == 2
        gaps = client.post("/radcor-api/radcor/check", json=whole_month).json()
        assert gaps["missing"] == 0


def test_restart_bad_filters_answer_400_and_unknown_ids_404(airflow_stack: AirflowStack) -> None:
    with airflow_stack.client() as client:
        no_filter = client.post("/radcor-api/radcor/restart", json={"action": "preview"})
        bad = client.get("/radcor-api/radcor/restart", params={"ids": "x", "status": "bogus"})
        unknown = client.get("/radcor-api/radcor/restart", params={"ids": "987654"})
        not_object = client.post(
            "/radcor-api/radcor/restart",
            content=b"[]",
            headers={"Content-Type": "application/json"},
        )
    assert no_filter.status_code == 400
    assert {e["field"] for e in bad.json()["errors"]} == {"ids[0]", "status"}
    assert unknown.status_code == 404
    assert not_object.status_code == 400
    assert not_object.json()["errors"][0]["field"] == "body"


def test_gap_check_without_publish_node_answers_400(
    airflow_stack: AirflowStack, demo_conf: dict[str, Any]
) -> None:
    conf = _conf(demo_conf, tasks=[{"type": "download", "collection": "S2_L1C-1"}])
    with airflow_stack.client() as client:
        response = client.post("/radcor-api/radcor/check", json=conf)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "tasks"


# --- the page in Chromium ---------------------------------------------------------------------


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no Chromium: apt-get install chromium (.ci/run installs it)")


def test_activities_page_renders_rows_quicklooks_and_footprints_in_chromium(
    airflow_stack: AirflowStack, run_a: str, tmp_path: Path
) -> None:
    browser = _chromium()
    query = urlencode({"run_id": run_a})
    url = f"{airflow_stack.radcor_api}/ui/activities?{query}#token={airflow_stack.token}"
    common = [browser, *CHROMIUM_FLAGS]
    dom = subprocess.run(
        [*common, f"--user-data-dir={tmp_path / 'profile-dom'}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    ).stdout
    screenshot = tmp_path / "activities.png"
    subprocess.run(
        [
            *common,
            f"--user-data-dir={tmp_path / 'profile-shot'}",
            f"--screenshot={screenshot}",
            url,
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:2000]
    assert 'data-state="ready"' in body.group(0), dom[:4000]
    assert 'data-rows="4"' in body.group(0) and 'data-footprints="2"' in body.group(0)
    assert dom.count('class="activity-row"') == 4
    assert dom.count('data-loaded="1"') == 2  # the two publish rows' thumbnails
    assert len(re.findall(r'<path[^>]*class="leaflet-interactive"', dom)) >= 2
    assert "leaflet-container" in dom
    assert airflow_stack.token not in dom  # the fragment is dropped from the address
    assert screenshot.stat().st_size > 20_000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(screenshot) as image:
            pixels = image.read()
    colours = np.unique(pixels.reshape(pixels.shape[0], -1).T, axis=0)
    assert len(colours) > 200, "the screenshot looks blank"
    unauthenticated = subprocess.run(
        [*common, f"--user-data-dir={tmp_path / 'profile-anon'}", "--dump-dom", url.split("#")[0]],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    ).stdout
    assert 'data-state="error"' in unauthenticated and "Not logged in" in unauthenticated
