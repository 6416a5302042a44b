"""Scripts written for the upstream collection builder, run unchanged against a started Airflow.

Each test is what an upstream user's script sends with plain ``requests`` (bdc-collection-builder
``views.py``/``forms.py``/``USING.rst``): JSON typed as text, bodies without a JSON
Content-Type, a JSON body on GET, form-encoded restarts, numbers as strings, the upstream's
numeric collection ids and the routes this project does not serve. The only change a script
needs is Airflow's bearer token (docs/migrating.md). The demo catalog's window A (tile 23LLF,
9-10 January 2020) gives the scenes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.helpers.airflow_stack import AirflowStack

WINDOW_A = {"start": "2020-01-09T00:00:00", "end": "2020-01-10T23:59:59"}
SCENES_A = {
    "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429",
    "S2B_MSIL1C_20200110T131239_N0208_R138_T23LLF_20200110T150351",
}
ONE_SCENE = "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429"


@dataclass(frozen=True)
class Upstream:
    """What an upstream script holds: the server's URL and (here) Airflow's token."""

    url: str
    session: requests.Session
    request: dict[str, Any]
    """The demo conf as an upstream script sends it (no ``action``)."""


@pytest.fixture(scope="module")
def upstream(airflow_stack: AirflowStack, demo_conf: dict[str, Any]) -> Iterator[Upstream]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {airflow_stack.token}"
    request = {k: v for k, v in json.loads(json.dumps(demo_conf)).items() if k != "action"}
    with session:
        yield Upstream(airflow_stack.api, session, {**request, **WINDOW_A})


def _scenes(answer: requests.Response) -> set[str]:
    assert answer.status_code == 200, answer.text
    body = answer.json()
    scenes = {k for k in body if k not in ("Results", "runs")}
    assert body["Results"] == len(scenes)
    return scenes


def _problems(answer: requests.Response, status: int = 400) -> dict[str, dict[str, str]]:
    assert answer.status_code == status, answer.text
    return {e["field"]: e for e in answer.json()["errors"]}


def test_radcor_body_sent_without_a_json_content_type_is_read_as_json(
    upstream: Upstream,
) -> None:
    """``requests.post(url, data=json.dumps(body))`` and ``curl --data`` without -H."""
    text = json.dumps(upstream.request)
    no_type = upstream.session.post(f"{upstream.url}/api/radcor", data=text)
    curl = upstream.session.post(
        f"{upstream.url}/api/radcor",
        data=text,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert _scenes(no_type) == _scenes(curl) == SCENES_A


def test_radcor_form_fields_and_arrays_are_refused_naming_the_body(upstream: Upstream) -> None:
    form = {k: v for k, v in upstream.request.items() if not isinstance(v, dict | list)}
    as_form = upstream.session.post(f"{upstream.url}/api/radcor", data=form)
    as_array = upstream.session.post(f"{upstream.url}/api/radcor", json=[upstream.request])
    problem = _problems(as_form)["body"]
    assert "application/x-www-form-urlencoded" in problem["message"]
    assert "Content-Type: application/json" in problem["fix"]
    assert _problems(as_array)["conf"]["message"] == "must be a JSON object (got array)"


def test_radcor_strings_for_numbers_and_repeated_ids_get_the_answer_of_every_door(
    upstream: Upstream,
) -> None:
    """The upstream's form read ``"-45.9"`` as a number and searched ``set(scenes)``; here the
    upstream path answers as every other door does: a 400 naming the field and the fix."""
    area = {k: v for k, v in upstream.request.items() if k not in ("w", "s", "e", "n")}
    strings = {**upstream.request, "w": str(upstream.request["w"]), "force": "false"}
    repeated = {**area, "scenes": [ONE_SCENE, ONE_SCENE]}
    for conf, fields in ((strings, {"w", "force"}), (repeated, {"scenes[1]"})):
        ours = upstream.session.post(f"{upstream.url}/radcor-api/radcor", json=conf)
        theirs = upstream.session.post(f"{upstream.url}/api/radcor", json=conf)
        assert ours.status_code == theirs.status_code == 400
        assert ours.json()["errors"] == theirs.json()["errors"]
        assert fields <= set(_problems(theirs))
    assert "duplicate" in _problems(theirs)["scenes[1]"]["fix"]


def test_radcor_credentials_sent_as_text_are_a_400_naming_the_connection(
    upstream: Upstream,
) -> None:
    secret = {**upstream.request["catalog_args"], "username": "me", "password": "hunter2"}
    text = json.dumps({**upstream.request, "catalog_args": secret})
    answer = upstream.session.post(f"{upstream.url}/api/radcor", data=text)
    problems = _problems(answer)
    assert {"catalog_args.username", "catalog_args.password"} <= set(problems)
    assert "Connection" in problems["catalog_args.password"]["fix"]
    assert "hunter2" not in answer.text


@pytest.fixture(scope="module")
def download(upstream: Upstream, airflow_stack: AirflowStack) -> dict[str, Any]:
    """One scene downloaded and published by ``action: start``: its download activity."""
    publish = {"type": "publish", "collection": "S2_L1C-1", "args": {}}
    tasks = [{"type": "download", "collection": "S2_L1C-1", "args": {}, "tasks": [publish]}]
    request = {k: v for k, v in upstream.request.items() if k not in ("w", "s", "e", "n")}
    request = {**request, "scenes": [ONE_SCENE], "tasks": tasks, "action": "start"}
    started = upstream.session.post(f"{upstream.url}/api/radcor", json=request)
    assert _scenes(started) == {ONE_SCENE}
    (run,) = started.json()["runs"]
    assert airflow_stack.wait_for_run(run["run_id"])["state"] == "success", airflow_stack.logs()
    listed = upstream.session.get(
        f"{upstream.url}/api/activities", params={"scene_id": ONE_SCENE, "per_page": "100"}
    )
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    (activity,) = [
        a for a in items if a["run_id"] == run["run_id"] and a["activity_type"] == "download"
    ]
    return dict(activity)


def test_activities_list_the_upstream_last_execution(download: dict[str, Any]) -> None:
    execution = download["last_execution"]
    assert execution["status"] == download["status"] == "SUCCESS"
    assert execution["start"] and execution["end"] >= execution["start"]
    assert download["collection_id"] == "S2_L1C-1"


def _listed_ids(answer: requests.Response) -> list[int]:
    assert answer.status_code == 200, answer.text
    assert answer.json()["action"] == "PREVIEW"
    assert "cleared" not in answer.json()
    return [a["id"] for a in answer.json()["activities"]]


def test_restart_reads_every_body_an_upstream_script_sends(
    upstream: Upstream, download: dict[str, Any]
) -> None:
    """Listing only (no ``action``), so nothing is cleared between the calls."""
    url, ids = f"{upstream.url}/api/radcor/restart", [download["id"]]
    session = upstream.session
    calls = {
        "GET with a JSON body": session.get(url, json={"ids": ids}),
        "GET, trailing slash": session.get(f"{url}/", params={"ids": str(ids[0])}),
        "POST JSON without its Content-Type": session.post(url, data=json.dumps({"id": ids[0]})),
        "POST form-encoded": session.post(url, data={"ids": str(ids[0])}),
        "POST with a query and no body": session.post(url, params={"ids": str(ids[0])}),
        "POST scene with a list": session.post(
            url,
            json={
                "sceneid": [ONE_SCENE],
                "collection_id": "S2_L1C-1",
                "activity_type": "download",
                "use_aws": False,
            },
        ),
    }
    scene_call = calls.pop("POST scene with a list")
    for name, answer in calls.items():
        assert _listed_ids(answer) == ids, name
    # by scene: every activity of that scene, collection and type, of any run (earlier tests'
    # runs of the same scene included)
    assert ids[0] in _listed_ids(scene_call)
    for activity in scene_call.json()["activities"]:
        assert (activity["sceneid"], activity["collection_id"], activity["activity_type"]) == (
            ONE_SCENE,
            "S2_L1C-1",
            "download",
        )


def test_restart_bad_bodies_are_400_naming_the_field(upstream: Upstream) -> None:
    url = f"{upstream.url}/api/radcor/restart"
    array = upstream.session.post(url, json=[1, 2])
    broken = upstream.session.post(
        url, data="{ids: 1", headers={"Content-Type": "application/json"}
    )
    multipart = upstream.session.post(url, files={"ids": ("ids.txt", b"1")})
    nothing = upstream.session.post(url)
    assert "body" in _problems(array)
    assert "body" in _problems(broken)
    assert "multipart/form-data" in _problems(multipart)["body"]["message"]
    assert "Requires" in _problems(nothing)["filters"]["message"]


def test_upstream_numeric_collection_ids_are_a_400_listing_the_names(upstream: Upstream) -> None:
    restart = upstream.session.get(
        f"{upstream.url}/api/radcor/restart",
        params={"sceneid": ONE_SCENE, "collection_id": "3", "activity_type": "download"},
    )
    activities = upstream.session.get(f"{upstream.url}/api/activities", params={"collection": 1})
    for field, answer in (("collection_id", restart), ("collection", activities)):
        problem = _problems(answer)[field]
        assert "S2_L1C-1" in problem["fix"] and "/api/collections" in problem["fix"]


def test_collections_and_providers_carry_the_upstream_names(upstream: Upstream) -> None:
    collections = upstream.session.get(f"{upstream.url}/api/collections").json()
    providers = upstream.session.get(f"{upstream.url}/api/providers").json()
    by_identifier = {c["identifier"]: c for c in collections}
    assert {"S2_L1C-1", "S2_L2A-1", "LC8_DN-1"} <= set(by_identifier)
    assert (by_identifier["LC8_DN-1"]["name"], by_identifier["LC8_DN-1"]["version"]) == (
        "LC8_DN",
        "1",
    )
    assert [p["id"] for p in providers] == list(range(1, len(providers) + 1))
    assert "demo" in {p["name"] for p in providers}


def test_utils_count_activities_as_the_upstream(
    upstream: Upstream, download: dict[str, Any]
) -> None:
    url, session = upstream.url, upstream.session
    filters = {"collection": "S2_L1C-1", "type": "download"}
    counts = session.get(f"{url}/api/utils/count-activities", params=filters)
    listed = session.get(f"{url}/api/activities", params=filters)
    assert counts.status_code == listed.status_code == 200, counts.text
    assert counts.json()["SUCCESS"] >= 1
    assert set(counts.json()) <= {"SUCCESS", "FAILURE", "PENDING", "STARTED"}
    assert sum(counts.json().values()) == listed.json()["total"]
    today = download["updated"][:10]
    dated = session.get(
        f"{url}/api/utils/count-activities",
        params={**filters, "start_date": "2000-01-01", "last_date": "2000-01-31"},
    )
    assert dated.json() == {}
    assert (
        session.get(
            f"{url}/api/utils/count-activities", params={"start_date": today, "last_date": today}
        ).json()["SUCCESS"]
        >= 1
    )
    available = session.get(f"{url}/api/utils/collections-available").json()
    assert "S2_L1C-1" in available["collections"]
    failed = session.get(f"{url}/api/utils/count-unsuccessfully-activities").json()
    ours = session.get(
        f"{url}/radcor-api/radcor/activities",
        params={"status": "failed,invalid,upstream_failed", "limit": "1"},
    ).json()
    assert failed == {"result": ours["total"]}
    bad = session.get(f"{url}/api/utils/count-activities", params={"start_date": "31/01/2020"})
    assert "start_date" in _problems(bad)


def test_check_scenes_answers_published_and_missing_as_the_upstream(
    upstream: Upstream, download: dict[str, Any]
) -> None:
    """ONE_SCENE is published in S2_L1C-1 (the fixture); the demo catalog has no S2_L2A-1."""
    request = {
        "catalog": upstream.request["catalog"],
        "catalog_args": upstream.request["catalog_args"],  # this stack's demo catalog URL
        "dataset": "S2MSI1C",
        "collections": ["S2_L1C-1", "S2_L2A-1"],
        "bbox": [upstream.request[k] for k in ("w", "s", "e", "n")],
        "start_date": WINDOW_A["start"],
        "end_date": WINDOW_A["end"],
    }
    by_bbox = upstream.session.post(f"{upstream.url}/api/check-scenes", json=request)
    assert by_bbox.status_code == 200, by_bbox.text
    answer = by_bbox.json()
    assert answer["total_external"] == len(SCENES_A)
    l1c, l2a = answer["collections"]["S2_L1C-1"], answer["collections"]["S2_L2A-1"]
    assert set(l1c["scenes"]) == SCENES_A
    assert ONE_SCENE not in l1c["missing_external"]
    assert l1c["total_scenes"] + l1c["total_missing"] == len(SCENES_A)
    assert ONE_SCENE in l1c["missing_S2_L2A-1"]
    assert l1c["total_missing_S2_L2A-1"] == l1c["total_scenes"]
    assert (l2a["total_scenes"], set(l2a["missing_external"])) == (0, SCENES_A)
    assert l2a["missing_S2_L1C-1"] == []

    tiles = {k: v for k, v in request.items() if k != "bbox"}
    by_tile = upstream.session.post(
        f"{upstream.url}/api/check-scenes",
        json={**tiles, "grid": "MGRS", "tiles": ["23LLF"], "only_tiles": True},
    )
    assert by_tile.status_code == 200, by_tile.text
    assert by_tile.json()["collections"]["S2_L1C-1"]["scenes"] == l1c["scenes"]


def test_check_scenes_bad_requests_name_the_field(upstream: Upstream) -> None:
    url = f"{upstream.url}/api/check-scenes"
    base = {
        "catalog": upstream.request["catalog"],
        "dataset": "S2MSI1C",
        "start_date": WINDOW_A["start"],
        "end_date": WINDOW_A["end"],
    }
    no_area = upstream.session.post(url, json={"grid": "MGRS", "collections": ["S2_L1C-1"]})
    unknown = upstream.session.post(url, json={**base, "satsen": "S2"})
    assert {"tiles", "start_date", "end_date", "catalog", "dataset"} <= set(_problems(no_area))
    assert {"satsen", "collections", "bbox"} <= set(_problems(unknown))


@pytest.mark.parametrize(
    ("method", "path", "replacement"),
    [
        ("GET", "/api/stats/active", "/radcor-api/radcor/activities?status=running"),
        ("GET", "/api/stats/pending", "/radcor-api/radcor/activities"),
        ("GET", "/api/utils/count-activities-date", "/api/utils/count-activities?start_date="),
        ("GET", "/api/grids/1?bbox=-46,-13,-45,-12", "tiles"),
        ("GET", "/api/collections/1/tiles", "GET /api/collections"),
    ],
)
def test_routes_not_served_answer_what_replaces_them(
    upstream: Upstream, method: str, path: str, replacement: str
) -> None:
    answer = upstream.session.request(method, f"{upstream.url}{path}", json={})
    problem = _problems(answer, status=404)["path"]
    assert path.split("?")[0] in problem["message"]
    assert replacement in problem["fix"]
