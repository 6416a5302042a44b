"""One validation path, end to end: every bad conf of the corpus gets the same answer at each door.

At ``POST /radcor-api/radcor`` (preview and start) and the upstream's ``POST /api/radcor``: HTTP
400 with exactly the problems ``validate_request`` gives in this process, and no DAG run. A few
confs that Airflow's Params accept are also triggered as runs of ``radcor``: the trigger through
``/api/v2`` answers the same problems (the trigger check) or creates a run; either way a run
created for them (through ``/api/v2`` or the CLI) fails in its ``validate`` task, which logs the
same problems.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from include.common.errors import InvalidInputError
from include.radcor.validation import validate_request
from tests.helpers.airflow_stack import REPO, AirflowStack
from tests.helpers.bad_confs import BadConf, bad_confs

RUNS_TO_TRIGGER = (
    "unknown_dataset_cdse",
    "url_cloud_metadata",
    "catalog_args_password",
    "end_before_start",
    "dataset_100k_characters",
)
"""Bad confs that pass Airflow's Params schema, so a run can exist for its validate task."""
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.fixture(scope="module")
def corpus(demo_conf: dict[str, Any]) -> dict[str, BadConf]:
    return {entry.name: entry for entry in bad_confs(demo_conf)}


def expected_errors(conf: Any) -> list[dict[str, str]]:
    """The problems ``validate_request`` gives for ``conf`` here, as the REST error list."""
    try:
        validate_request(conf)
    except InvalidInputError as err:
        return err.to_dict()["errors"]
    raise AssertionError(f"the corpus conf is valid: {conf!r:.200}")


def _doors(entry: BadConf) -> list[tuple[str, Any]]:
    """(path, body) of each door a conf goes through, with each action the door takes."""
    if not entry.is_object or entry.field == "action":
        return [("/radcor-api/radcor", entry.conf), ("/api/radcor", entry.conf)]
    return [
        ("/radcor-api/radcor", {**entry.conf, "action": "preview"}),
        ("/radcor-api/radcor", {**entry.conf, "action": "start"}),
        ("/api/radcor", {**entry.conf, "action": "preview"}),
        ("/api/radcor", {**entry.conf, "action": "start"}),
    ]


def _post_json(client: httpx.Client, path: str, body: Any) -> httpx.Response:
    # json.dumps escapes NUL and lone surrogates (\u0000, \ud800) and writes NaN, as clients do
    content = json.dumps(body).encode()
    return client.post(path, content=content, headers={"Content-Type": "application/json"})


def _run_ids(client: httpx.Client) -> set[str]:
    runs = client.get("/api/v2/dags/radcor/dagRuns", params={"limit": 1000}).json()
    return {str(run["dag_run_id"]) for run in runs["dag_runs"]}


def test_every_bad_conf_answers_400_with_the_same_problems_at_each_door_and_no_run(
    airflow_stack: AirflowStack, corpus: dict[str, BadConf]
) -> None:
    mismatches: list[str] = []
    with airflow_stack.client() as client:
        before = _run_ids(client)
        for entry in corpus.values():
            for path, body in _doors(entry):
                response = _post_json(client, path, body)
                expected = expected_errors(body)
                answered = response.json().get("errors") if response.status_code == 400 else None
                if answered != expected:
                    mismatches.append(
                        f"{entry.name} at {path}: {response.status_code} {response.text[:300]}"
                    )
        after = _run_ids(client)
    assert not mismatches, "\n".join(mismatches)
    assert after == before


def _trigger_by_api(client: httpx.Client, conf: Any) -> str | None:
    """Trigger a radcor run through /api/v2: its id, or None when the API refused the conf.

    The trigger check (plugins/radcor_api/trigger_check.py) refuses it with the same problems.
    """
    response = client.post("/api/v2/dags/radcor/dagRuns", json={"logical_date": None, "conf": conf})
    if response.status_code == 200:
        return str(response.json()["dag_run_id"])
    assert response.status_code == 400, response.text
    assert response.json()["errors"] == expected_errors(conf), response.text
    return None


def _trigger_by_cli(airflow_stack: AirflowStack, name: str, conf: Any) -> str:
    """Trigger a radcor run of ``conf`` with the ``airflow`` CLI (no API check on the way)."""
    run_id = f"corpus__{name}__{time.time_ns()}"
    script = (
        'source scripts/env.sh && "$AIRFLOW" dags trigger radcor --run-id "$RUN_ID" --conf "$CONF"'
    )
    created = subprocess.run(  # noqa: S603 - fixed argv; the conf goes through the environment
        ["bash", "-c", script],  # noqa: S607
        cwd=REPO,
        env={**airflow_stack.env, "AIRFLOW": AIRFLOW, "RUN_ID": run_id, "CONF": json.dumps(conf)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    return run_id


def _validate_log(client: httpx.Client, run_id: str) -> list[str]:
    response = client.get(
        f"/api/v2/dags/radcor/dagRuns/{run_id}/taskInstances/validate/logs/1",
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    return [str(entry.get("event", "")) for entry in response.json()["content"]]


def test_bad_conf_as_a_run_fails_its_validate_task_with_the_same_problems(
    airflow_stack: AirflowStack, corpus: dict[str, BadConf]
) -> None:
    with airflow_stack.client() as client:
        runs = {
            name: _trigger_by_api(client, corpus[name].conf)
            or _trigger_by_cli(airflow_stack, name, corpus[name].conf)
            for name in RUNS_TO_TRIGGER
        }
        for name, run_id in runs.items():
            run = airflow_stack.wait_for_run(run_id, timeout_s=240)
            assert run["state"] == "failed", name
            validate = client.get(
                f"/api/v2/dags/radcor/dagRuns/{run_id}/taskInstances/validate"
            ).json()
            assert validate["state"] == "failed", (name, validate)
            assert validate["try_number"] == 1, "an invalid conf is never retried"
            events = _validate_log(client, run_id)
            for problem in expected_errors(corpus[name].conf):
                line = (
                    f"conf.invalid field={problem['field']} message={problem['message']} "
                    f"fix={problem['fix']}"
                )
                assert line in events, (name, line, events)
