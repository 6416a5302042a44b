"""Pipeline YAML files: schedules, the conf checked as the REST conf, errors naming the field."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include.common.errors import InvalidInputError
from include.radcor.conf import TaskType
from include.radcor.pipelines import (
    PipelineError,
    PipelineFilesError,
    load_pipeline,
    load_pipelines,
    parse_schedule,
    pipeline_files,
)

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "dags" / "pipelines"
GOOD = """\
description: Daily demo tiles
schedule: "@daily"
start_date: 2020-01-09
catchup: true
tags: [demo]
owner: team
retries: 3
retry_delay_s: 60
pools: {download: download_demo}
queues: {download: fast, publish: cpu}
conf:
  tiles: [23llf]
  catalog: Demo
  dataset: S2MSI1C
  cloud: 50
  tasks:
    - type: download
      collection: S2_L1C-1
      tasks: [{type: publish, collection: S2_L1C-1}]
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _with(**changes: str) -> str:
    """GOOD with top-level lines replaced (``key: value``) or the conf's lines edited."""
    text = GOOD
    for key, line in changes.items():
        old = next(
            row
            for row in text.splitlines()
            if row.startswith(f"{key}:") or row.strip().startswith(f"{key}:")
        )
        text = text.replace(old, line)
    return text


def _problems(path: Path) -> dict[str, str]:
    with pytest.raises(PipelineError) as caught:
        load_pipeline(path)
    assert str(path) in str(caught.value)
    return {p.field: f"{p.message}; {p.fix}" for p in caught.value.problems}


@pytest.mark.parametrize("path", pipeline_files(SHIPPED), ids=lambda p: p.name)
def test_load_pipeline_shipped_example_is_valid(path: Path) -> None:
    pipeline = load_pipeline(path, processor_names=["publish"])
    assert pipeline.dag_id == f"pipeline_{path.stem}"
    assert "start" not in pipeline.conf and "end" not in pipeline.conf
    assert pipeline.retries >= 2
    assert pipeline.tags[0] == "pipeline"


def test_shipped_examples_cover_daily_sentinel2_and_16_day_landsat() -> None:
    pipelines = {p.conf["dataset"]: p for p in load_pipelines(SHIPPED).pipelines}
    sentinel, landsat = pipelines["S2MSI2A"], pipelines["landsat_ot_c2_l2"]
    assert sentinel.schedule.cron == "0 0 * * *"
    assert sentinel.conf["tiles"] == ["23LLF", "23LMF"]
    assert landsat.schedule.period == timedelta(days=16)
    assert landsat.conf["tiles"] == ["221069", "221070"]
    assert landsat.conf["catalog"] == "usgs"


def test_load_pipeline_good_file_is_canonical(tmp_path: Path) -> None:
    pipeline = load_pipeline(_write(tmp_path, "demo_daily.yaml", GOOD))
    assert pipeline.dag_id == "pipeline_demo_daily"
    assert pipeline.start_date == datetime(2020, 1, 9, tzinfo=UTC)
    assert pipeline.catchup is True
    assert pipeline.tags == ("pipeline", "demo")
    assert (pipeline.owner, pipeline.retries) == ("team", 3)
    assert pipeline.retry_delay == timedelta(seconds=60)
    assert pipeline.pools == {TaskType.DOWNLOAD: "download_demo"}
    assert pipeline.queues == {TaskType.DOWNLOAD: "fast", TaskType.PUBLISH: "cpu"}
    assert pipeline.conf["catalog"] == "demo"
    assert pipeline.conf["tiles"] == ["23LLF"]
    assert "start" not in pipeline.conf
    assert "w" not in pipeline.conf  # None fields are left out of the form defaults


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("@daily", "cron", "0 0 * * *"),
        ("@annually", "cron", "0 0 1 1 *"),
        ("0 3 * * 1-5", "cron", "0 3 * * 1-5"),
        ("16 days", "period", timedelta(days=16)),
        ("1 day", "period", timedelta(days=1)),
        ("12 hours", "period", timedelta(hours=12)),
        ("2 Weeks", "period", timedelta(weeks=2)),
    ],
)
def test_parse_schedule_known_forms_are_parsed(text: str, kind: str, expected: object) -> None:
    schedule = parse_schedule(text)
    assert schedule.kind == kind
    assert (schedule.cron if kind == "cron" else schedule.period) == expected
    assert schedule.text == text


@pytest.mark.parametrize(
    "text", ["@once", "None", "", "@fortnightly", "61 * * * *", "every day", "0 days", "* * *"]
)
def test_parse_schedule_unusable_schedule_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_schedule(text)
    assert [p.field for p in caught.value.problems] == ["schedule"]
    assert "16 days" in caught.value.problems[0].fix


def test_load_pipeline_bad_conf_value_names_file_and_conf_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", _with(cloud="  cloud: 150"))
    problems = _problems(path)
    assert list(problems) == ["conf.cloud"]
    assert "0 to 100" in problems["conf.cloud"]


def test_load_pipeline_conf_with_dates_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("  cloud: 50", "  cloud: 50\n  start: 2020-01-01\n  end: 2020-02-01")
    problems = _problems(_write(tmp_path, "dated.yaml", text))
    assert set(problems) == {"conf.start", "conf.end"}
    assert "start_date" in problems["conf.start"]


def test_load_pipeline_conf_with_scenes_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace(
        "  tiles: [23llf]",
        "  scenes: [S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429]",
    )
    assert list(_problems(_write(tmp_path, "scenes.yaml", text))) == ["conf.scenes"]


def test_load_pipeline_unknown_collection_is_checked_like_the_rest_conf(tmp_path: Path) -> None:
    text = GOOD.replace("collection: S2_L1C-1\n", "collection: S2_L1C\n")
    problems = _problems(_write(tmp_path, "coll.yaml", text))
    assert list(problems) == ["conf.tasks[0].collection"]
    assert "S2_L1C-1" in problems["conf.tasks[0].collection"]


def test_load_pipeline_unregistered_processor_is_refused_when_names_are_given(
    tmp_path: Path,
) -> None:
    text = GOOD.replace(
        "tasks: [{type: publish, collection: S2_L1C-1}]",
        "tasks: [{type: correction, collection: S2_L2A-1}]",
    )
    path = _write(tmp_path, "p.yaml", text)
    assert load_pipeline(path).conf["tasks"][0]["tasks"][0]["type"] == "correction"
    with pytest.raises(PipelineError) as caught:
        load_pipeline(path, processor_names=["publish"])
    assert caught.value.problems[0].field == "conf.tasks[0].tasks[0].collection"
    assert "provider-l2" in caught.value.problems[0].message


def test_load_pipeline_misspelt_field_suggests_the_right_one(tmp_path: Path) -> None:
    problems = _problems(_write(tmp_path, "typo.yaml", _with(schedule='schedul: "@daily"')))
    assert "did you mean 'schedule'" in problems["schedul"]
    assert "is required" in problems["schedule"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schedule": "schedule: '@once'"}, "schedule"),
        ({"start_date": "start_date: yesterday"}, "start_date"),
        ({"catchup": "catchup: maybe"}, "catchup"),
        ({"retries": "retries: 50"}, "retries"),
        ({"owner": "owner: ''"}, "owner"),
        ({"pools": "pools: {downlaod: x}"}, "pools.downlaod"),
        ({"queues": "queues: {download: 'a b'}"}, "queues.download"),
        ({"conf": "conf: [1, 2]"}, "conf"),
    ],
)
def test_load_pipeline_bad_setting_is_named(
    tmp_path: Path, change: dict[str, str], field: str
) -> None:
    text = _with(**change)
    if field == "conf":  # drop the conf's body, now orphaned under a list
        text = text.split("conf:")[0] + change["conf"] + "\n"
    assert field in _problems(_write(tmp_path, "x.yaml", text))


def test_load_pipeline_end_date_before_start_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("catchup: true", "catchup: true\nend_date: 2019-12-31")
    assert list(_problems(_write(tmp_path, "ended.yaml", text))) == ["end_date"]


def test_load_pipeline_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.yaml", "schedule: '@daily'\nconf: [1\n")
    (field,) = _problems(path)
    assert field.startswith("(line 3, column")


@pytest.mark.parametrize("text", ["", "- a list\n", "just text\n"])
def test_load_pipeline_file_not_a_mapping_is_refused(tmp_path: Path, text: str) -> None:
    assert list(_problems(_write(tmp_path, "empty.yaml", text))) == ["(file)"]


def test_load_pipeline_file_name_unfit_for_a_dag_id_is_refused(tmp_path: Path) -> None:
    assert "(file name)" in _problems(_write(tmp_path, "my pipeline.yaml", GOOD))


def test_load_pipelines_bad_file_does_not_hide_the_good_ones(tmp_path: Path) -> None:
    _write(tmp_path, "a_good.yaml", GOOD)
    _write(tmp_path, "b_bad.yaml", _with(cloud="  cloud: -1"))
    _write(tmp_path, "c_good.yml", GOOD)
    _write(tmp_path, "notes.txt", "not a pipeline")
    loaded = load_pipelines(tmp_path)
    assert [p.dag_id for p in loaded.pipelines] == ["pipeline_a_good", "pipeline_c_good"]
    assert [e.path.name for e in loaded.errors] == ["b_bad.yaml"]
    assert loaded.error() is loaded.errors[0]


def test_load_pipelines_two_files_same_dag_id_refuses_the_second(tmp_path: Path) -> None:
    _write(tmp_path, "same.yaml", GOOD)
    _write(tmp_path, "same.yml", GOOD)
    loaded = load_pipelines(tmp_path)
    assert [p.path.name for p in loaded.pipelines] == ["same.yaml"]
    assert loaded.errors[0].problems[0].field == "(file name)"


def test_load_pipelines_several_bad_files_make_one_error_listing_each(tmp_path: Path) -> None:
    _write(tmp_path, "one.yaml", _with(cloud="  cloud: 101"))
    _write(tmp_path, "two.yaml", _with(schedule="schedule: '@once'"))
    error = load_pipelines(tmp_path).error()
    assert isinstance(error, PipelineFilesError)
    text = str(error)
    assert "2 pipeline files are invalid" in text
    assert "one.yaml: conf.cloud:" in text and "two.yaml: schedule:" in text


def test_load_pipelines_missing_folder_is_empty(tmp_path: Path) -> None:
    loaded = load_pipelines(tmp_path / "absent")
    assert loaded.pipelines == [] and loaded.error() is None
