"""Every DAG file imports cleanly and fast, with no parse-time Connection or Variable reads."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))
NO_DAG_FILES = {"pipeline_check.py"}
"""DAG files that define no DAG: pipeline_check.py only reports invalid pipeline YAML files."""


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
    assert bag.dags or path.name in NO_DAG_FILES, f"{path.name} defines no DAG"
    assert elapsed_s < 10, f"{path.name} took {elapsed_s:.1f} s to parse"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_every_dag_has_tags_docs_params_and_retries(path: Path) -> None:
    for dag_id, dag in _load(path).dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md) > 40, f"{dag_id} has no doc_md"
        if not dag_id.endswith("_scenes"):  # a child DAG takes its conf from its parent run
            assert dag.params, f"{dag_id} has no params"
        for task in dag.tasks:
            exempt = task.task_id in ("validate", "report", "child_runs", "scenes")
            if not exempt:
                assert task.retries >= 2, f"{dag_id}.{task.task_id} retries={task.retries}"


def test_radcor_dag_has_the_request_shaped_tasks() -> None:
    dag = _load(DAGS_DIR / "radcor.py").dags["radcor"]
    assert dag.schedule is None or str(dag.timetable.summary) in ("None", "")
    groups: dict[str, set[str]] = {}
    for task_id in (t.task_id for t in dag.tasks):
        group, _, step = task_id.partition(".")
        groups.setdefault(group if step else "", set()).add(step or group)
    top = groups.pop("")
    assert top == {"validate", "search", "child_runs", "scene_runs", "report"}
    steps = groups.pop("scene")
    downloads = {s for s in steps if s.startswith("download_")}
    assert steps - downloads == {"wait_online", "correction", "harmonization", "post", "publish"}
    assert not groups
    assert dag.get_task("scene_runs").partial_kwargs["trigger_dag_id"] == "radcor_scenes"
    # one download task per provider (slot group of config/catalogs.yaml), in its own pool
    assert downloads == {
        "download_demo",
        "download_earthsearch",
        "download_planetarycomputer",
        "download_cdse",
        "download_usgs",
    }
    for step in downloads:
        task = dag.get_task(f"scene.{step}")
        assert (task.queue, task.pool) == ("download", step)
    assert dag.get_task("scene.publish").queue == "processing"
    assert dag.get_task("report").trigger_rule == "all_done"


@pytest.mark.parametrize("dag_id", ["radcor", "radcor_scenes"])
def test_steps_not_asked_can_be_skipped_by_the_scheduler_without_reordering(dag_id: str) -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    dag = _load(DAGS_DIR / "radcor.py").dags[dag_id]
    source = "search" if dag_id == "radcor" else "scenes"
    downloads = [
        "download_demo",
        "download_earthsearch",
        "download_planetarycomputer",
        "download_cdse",
        "download_usgs",
    ]
    steps = [*downloads, "correction", "harmonization", "post", "publish"]
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    # NotPreviouslySkippedDep reads the source's skip XCom only when it is marked so
    assert serialized.get_task(source).inherits_from_skipmixin
    for index, step in enumerate(steps):
        task = dag.get_task(f"scene.{step}")
        assert source in task.upstream_task_ids  # a direct upstream: the dep looks one level up
        before = [] if step in downloads else steps[:index]
        earlier = {f"scene.{s}" for s in before} or {"scene.wait_online"}
        assert earlier <= task.upstream_task_ids  # a skipped step in between cannot reorder
        assert "report" in task.downstream_task_ids  # nor let the report run early


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


def _pipeline_yamls() -> list[Path]:
    return sorted(p for p in (DAGS_DIR / "pipelines").iterdir() if p.suffix in (".yaml", ".yml"))


def test_pipelines_file_builds_one_interval_dag_per_yaml() -> None:
    from airflow.sdk import CronDataIntervalTimetable, DeltaDataIntervalTimetable

    bag = _load(DAGS_DIR / "pipelines.py")
    assert bag.import_errors == {}
    parents = {f"pipeline_{p.stem}" for p in _pipeline_yamls()}
    assert set(bag.dags) == parents | {f"{dag_id}_scenes" for dag_id in parents}
    assert len(parents) >= 2
    for dag_id in parents:
        dag = bag.dags[dag_id]
        children = bag.dags[f"{dag_id}_scenes"]
        assert children.get_task("scene.download_usgs").queue == "download"
        assert children.schedule is None or str(children.timetable.summary) in ("None", "")
        assert isinstance(dag.timetable, CronDataIntervalTimetable | DeltaDataIntervalTimetable)
        assert "pipeline" in dag.tags
        assert dag.params["catalog"] and dag.params["tasks"], dag_id
        assert dag.params["start"] is None and dag.params["end"] is None
        assert dag.get_task("scene.download_cdse").queue == "download"
        assert dag.get_task("scene.download_cdse").pool == "download_cdse"
        assert dag.get_task("scene.publish").queue == "processing"
        assert dag.get_task("search").queue == "processing"


def test_pipelines_bad_yaml_is_an_import_error_naming_file_and_field(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    for name in ("pipelines.py", "pipeline_check.py"):
        (tmp_path / name).write_text((DAGS_DIR / name).read_text())
    good = _pipeline_yamls()[0].read_text()
    (folder / "good.yaml").write_text(good)
    (folder / "bad_cloud.yaml").write_text(good.replace("cloud: ", "cloud: 1", 1))  # 170
    conf_block = good.split("\nconf:")[1]
    (folder / "bad_schedule.yaml").write_text(
        "schedule: 'every tuesday'\nstart_date: 2024-01-01\nconf:" + conf_block
    )
    pipelines = _load(tmp_path / "pipelines.py")
    assert sorted(pipelines.dags) == ["pipeline_good", "pipeline_good_scenes"]
    assert pipelines.import_errors == {}  # errors here would stop the good pipeline's runs
    check = _load(tmp_path / "pipeline_check.py")
    assert check.dags == {}
    (error,) = check.import_errors.values()
    assert "2 pipeline files are invalid" in error
    assert f"{folder / 'bad_cloud.yaml'}: conf.cloud:" in error
    assert f"{folder / 'bad_schedule.yaml'}: schedule: 'every tuesday'" in error


def test_step_queues_follow_airflow_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from radcor_api.settings import step_queues

    monkeypatch.setenv("AIRFLOW__COLLECTION_BUILDER__DOWNLOAD_QUEUE", "net")
    monkeypatch.setenv("AIRFLOW__COLLECTION_BUILDER__PROCESSING_QUEUE", "cpu")
    queues = step_queues({"publish": "io"})
    assert queues == {
        "download": "net",
        "correction": "cpu",
        "harmonization": "cpu",
        "post": "cpu",
        "publish": "io",
    }


def test_parsing_the_radcor_dag_leaves_the_task_work_unimported() -> None:
    """Every task process parses the DAG file: the heavy work modules load only in tasks."""
    repo = DAGS_DIR.parent
    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]); "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('rasterio', 'pystac', 'shapely', 'numpy', 'radcor_api') "
        "or m in ('include.radcor.step_runner', 'include.radcor.run_planning', "
        "'include.radcor.waiting') or m.startswith('include.processors'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(DAGS_DIR / "radcor.py")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": f"{repo}:{repo / 'plugins'}"},
    )
    loaded = set(result.stdout.split())
    # listeners: the plugin's run-start hook, a pluggy marker only; upstream_paths and
    # trigger_check: the plugin's root middlewares, standard library only until a request
    assert loaded == {
        "radcor_api",
        "radcor_api.dag_factory",
        "radcor_api.listeners",
        "radcor_api.names",
        "radcor_api.scene_runs",
        "radcor_api.sensors",
        "radcor_api.settings",
        "radcor_api.task_context",
        "radcor_api.trigger_check",
        "radcor_api.upstream_paths",
    }, loaded
