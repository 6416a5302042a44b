"""One validation path: every conf of the bad-conf corpus is refused with its field and a fix,
and a pipeline YAML holding it is refused with the same problems (docs/api.md, "What is refused").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from include.common.errors import FieldProblem, InvalidInputError
from include.radcor.pipelines import PipelineError, load_pipeline
from include.radcor.validation import validate_request
from tests.helpers.bad_confs import FAKE_PASSWORD, bad_confs, demo_conf
from tests.helpers.cdse_stac_server import CdseStacServer

CORPUS = {entry.name: entry for entry in bad_confs(demo_conf())}
PIPELINE_START = "2020-01-01"
"""A pipeline's conf gets its dates from the schedule: the first interval, from this day."""
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _problems(raw: Any) -> list[FieldProblem]:
    with pytest.raises(InvalidInputError) as caught:
        validate_request(raw)
    return caught.value.problems


def test_corpus_holds_at_least_60_confs_of_every_kind() -> None:
    assert len(CORPUS) >= 60
    fields = {entry.field.split(".")[0].split("[")[0] for entry in CORPUS.values()}
    assert {
        "catalog",
        "dataset",
        "catalog_args",
        "tasks",
        "geom",
        "tiles",
        "start",
        "conf",
    } <= fields


@pytest.fixture(scope="module")
def stac_url() -> Iterator[str]:
    """A loopback STAC API (collections sentinel-2-l1c and -l2a) for ``asks_catalog`` entries."""
    with CdseStacServer() as server:
        yield server.stac_url


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_validate_request_refuses_bad_conf_naming_field_and_fix(name: str, stac_url: str) -> None:
    entry = CORPUS[name]
    problems = _problems(entry.at_catalog(stac_url))
    assert entry.names([p.field for p in problems]), problems
    for problem in problems:
        text = f"{problem.field} {problem.message} {problem.fix}"
        assert problem.message and problem.fix, problem
        assert FAKE_PASSWORD not in text
        assert not _UNSAFE.search(text), f"a control character in {problem!r}"
        assert len(text) < 2000, "a problem never carries a long value"


def _pipeline_entries() -> list[str]:
    return sorted(n for n, e in CORPUS.items() if e.is_object and not e.has_dates_or_scenes)


def _without_dates(conf: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in conf.items() if k not in ("start", "end")}


@pytest.mark.parametrize("name", _pipeline_entries())
def test_pipeline_yaml_with_bad_conf_gives_the_same_problems(
    name: str, tmp_path: Path, stac_url: str
) -> None:
    conf = _without_dates(CORPUS[name].at_catalog(stac_url))
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {"schedule": "@daily", "start_date": PIPELINE_START, "conf": conf}, sort_keys=False
        ),
        encoding="utf-8",
    )
    with pytest.raises(PipelineError) as caught:
        load_pipeline(path)
    first_interval = {
        "start": f"{PIPELINE_START}T00:00:00+00:00",
        "end": "2020-01-02T00:00:00+00:00",
    }
    expected = [
        FieldProblem(f"conf.{p.field}", p.message, p.fix)
        for p in _problems({**conf, **first_interval})
    ]
    assert caught.value.problems == expected


def test_pipeline_corpus_covers_most_entries() -> None:
    assert len(_pipeline_entries()) >= 60
