"""The radcor trigger check's pure parts: which requests it looks at, and the text it answers."""

from __future__ import annotations

import json

import pytest
from radcor_api.trigger_check import checked_dag_id, conf_of, problem_text

from include.common.errors import FieldProblem


@pytest.mark.parametrize(
    ("method", "path", "root_path", "expected"),
    [
        ("POST", "/api/v2/dags/radcor/dagRuns", "", "radcor"),
        ("POST", "/api/v2/dags/radcor/dagRuns/", "", "radcor"),
        ("POST", "/airflow/api/v2/dags/radcor/dagRuns", "/airflow", "radcor"),
        ("GET", "/api/v2/dags/radcor/dagRuns", "", None),  # listing runs
        ("POST", "/api/v2/dags/radcor_scenes/dagRuns", "", None),  # child runs: parent's conf
        ("POST", "/api/v2/dags/pipeline_s2/dagRuns", "", None),  # conf from YAML + interval
        ("POST", "/api/v2/dags/radcor/dagRuns/manual__1/clear", "", None),
        ("POST", "/api/v2/dags/~/dagRuns/list", "", None),
    ],
)
def test_checked_dag_id_only_for_a_radcor_trigger(
    method: str, path: str, root_path: str, expected: str | None
) -> None:
    scope = {"type": "http", "method": method, "path": path, "root_path": root_path}
    assert checked_dag_id(scope) == expected


def test_checked_dag_id_ignores_websockets() -> None:
    assert checked_dag_id({"type": "websocket", "path": "/api/v2/dags/radcor/dagRuns"}) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (json.dumps({"logical_date": None, "conf": {"catalog": "demo"}}), {"catalog": "demo"}),
        (json.dumps({"logical_date": None}), None),  # Airflow's own defaults: its Params
        (json.dumps({"conf": ["not", "an", "object"]}), None),  # Airflow answers 422
        (json.dumps([1, 2]), None),
        ("{not json", None),
        ("", None),
    ],
)
def test_conf_of_takes_only_a_conf_object(body: str, expected: object) -> None:
    assert conf_of(body.encode()) == expected


def test_problem_text_one_line_per_problem_with_the_form_label_when_it_differs() -> None:
    problems = [
        FieldProblem("cloud", "150 is outside 0..100", "give a number from 0 to 100"),
        FieldProblem("tasks[0].type", "'upload' is not a task type", "use one of download, ..."),
    ]
    text = problem_text(problems, {"cloud": "Max cloud %", "tasks": "Tasks"})
    assert text.splitlines() == [
        "The radcor conf has 2 problems; nothing was started.",
        "- cloud (Max cloud %): 150 is outside 0..100. Fix: give a number from 0 to 100.",
        "- tasks[0].type: 'upload' is not a task type. Fix: use one of download, ....",
    ]
    assert problem_text(problems[:1], {}).startswith("The radcor conf has 1 problem;")
