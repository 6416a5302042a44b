"""Every DAG file imports cleanly, fast, without parse-time Connection/Variable reads (STYLE 2.7)."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))


def _load(path: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(path))


@pytest.fixture(autouse=True)
def forbid_parse_time_access(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import Connection, Variable

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a DAG file read a Connection or Variable at parse time")

    monkeypatch.setattr(Connection, "get", classmethod(refuse))
    monkeypatch.setattr(Variable, "get", staticmethod(refuse))


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_without_errors_quickly(path: Path) -> None:
    started = time.monotonic()
    bag = _load(path)
    elapsed_s = time.monotonic() - started
    assert bag.import_errors == {}
    assert bag.dags, f"{path.name} defines no DAG"
    assert elapsed_s < 10, f"{path.name} took {elapsed_s:.1f} s to parse"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_every_dag_has_tags_docs_params_and_retries(path: Path) -> None:
    for dag_id, dag in _load(path).dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md) > 40, f"{dag_id} has no doc_md"
        assert dag.params, f"{dag_id} has no params"
        for task in dag.tasks:
            if task.task_id not in ("validate", "report"):
                assert task.retries >= 2, f"{dag_id}.{task.task_id} retries={task.retries}"


def test_radcor_dag_has_the_request_shaped_tasks() -> None:
    dag = _load(DAGS_DIR / "radcor.py").dags["radcor"]
    assert dag.schedule is None or str(dag.timetable.summary) in ("None", "")
    assert {t.task_id for t in dag.tasks} == {
        "validate",
        "search",
        "report",
        "scene.download",
        "scene.correction",
        "scene.harmonization",
        "scene.post",
        "scene.publish",
    }
    assert dag.get_task("scene.download").queue == "download"
    assert dag.get_task("scene.publish").queue == "processing"
    assert dag.get_task("report").trigger_rule == "all_done"


@pytest.mark.parametrize(
    ("conf", "bad_key"),
    [
        ({"cloud": 150}, "cloud"),
        ({"action": "destroy"}, "action"),
        ({"w": "west"}, "w"),
        ({"tasks": [{"type": "download"}]}, "tasks"),
        ({"force": "yes"}, "force"),
    ],
)
def test_radcor_params_reject_malformed_conf(conf: dict[str, object], bad_key: str) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    dag = _load(DAGS_DIR / "radcor.py").dags["radcor"]
    params = copy.deepcopy(dag.params)
    with pytest.raises(ParamValidationError, match=bad_key):
        params.update(conf)
        params.validate()
