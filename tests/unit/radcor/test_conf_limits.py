"""Size and character limits of a raw conf (include/radcor/conf_limits.py), alone and in
``validate_conf``: nothing past them reaches another check, a message or a log line."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from include.common.errors import InvalidInputError
from include.radcor.conf import validate_conf
from include.radcor.conf_limits import MAX_DEPTH, TEXT_LIMITS, text_problems
from tests.helpers.bad_confs import demo_conf

SQUARE = "POLYGON ((-45.9 -12.74, -45.8 -12.74, -45.8 -12.6, -45.9 -12.6, -45.9 -12.74))"


def _nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def test_text_problems_value_at_its_limit_passes_one_more_is_refused() -> None:
    limit = TEXT_LIMITS["dataset"]
    assert text_problems({"dataset": "S" * limit}) == ([], set())
    problems, bad = text_problems({"dataset": "S" * (limit + 1)})
    assert bad == {"dataset"}
    assert [p.field for p in problems] == ["dataset"]
    assert f"more than {limit}" in problems[0].message
    assert problems[0].fix == f"give at most {limit} characters"


def test_text_problems_geom_text_keeps_line_breaks_and_tabs_but_not_nul() -> None:
    multi_line = SQUARE.replace(", ", ",\n\t")
    assert text_problems({"geom": multi_line}) == ([], set())
    problems, _ = text_problems({"geom": multi_line + "\x00"})
    assert "NUL" in problems[0].message


@pytest.mark.parametrize("char", ["\x00", "\n", "\r", "\t", "\x1b", "\x7f", "\x85", "\ud800"])
def test_text_problems_control_character_in_a_name_refused_without_echo(char: str) -> None:
    problems, bad = text_problems({"platform": f"Sentinel-2A{char}secret-tail"})
    assert bad == {"platform"}
    assert "control character" in problems[0].message
    assert "secret-tail" not in str(problems[0])


def test_text_problems_nesting_past_the_limit_refused_at_its_path() -> None:
    assert text_problems({"tags": _nested(MAX_DEPTH - 1)}) == ([], set())
    problems, bad = text_problems({"tags": _nested(MAX_DEPTH + 5)})
    assert bad == {"tags"}
    assert problems[0].field == "tags" + "[0]" * MAX_DEPTH
    assert "deeper than" in problems[0].message


def test_text_problems_bad_key_named_by_its_parent() -> None:
    problems, bad = text_problems({"catalog_args": {"u\x00rl": "x"}})
    assert bad == {"catalog_args"}
    assert problems[0].field == "catalog_args.(field name)"


def test_text_problems_many_listed_up_to_a_cap_and_counted() -> None:
    problems, _ = text_problems({"tags": ["\x00"] * 45})
    assert len(problems) == 21
    assert problems[-1].field == "conf" and "25 more" in problems[-1].message


def test_validate_conf_bad_value_is_the_only_problem_of_its_field_and_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    marker = "MARKER-not-to-be-logged"
    raw = {**demo_conf(), "catalog": f"SciHub\x00{marker}", "dataset": "x" * 100_000}
    with pytest.raises(InvalidInputError) as caught:
        validate_conf(raw)
    by_field = {p.field: p for p in caught.value.problems}
    assert set(by_field) == {"catalog", "dataset"}  # not also "is required"
    assert marker not in str(caught.value)
    assert marker not in caplog.text


def test_validate_conf_unknown_dataset_lists_the_catalogs_datasets() -> None:
    raw = {**demo_conf(), "catalog": "cdse", "dataset": "S2MSI1X"}
    with pytest.raises(InvalidInputError) as caught:
        validate_conf(raw)
    (problem,) = [p for p in caught.value.problems if p.field == "dataset"]
    assert "'S2MSI1X'" in problem.message
    assert "S2MSI1C" in problem.fix and "S2MSI2A" in problem.fix


def test_validate_conf_known_dataset_of_another_case_is_accepted() -> None:
    conf = validate_conf({**demo_conf(), "catalog": "cdse", "dataset": "s2msi1c"})
    assert conf.dataset == "s2msi1c"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://10.1.2.3/stac", "private"),
        ("https://example.org/stac", "not in the allowed hosts"),
    ],
)
def test_validate_conf_url_override_outside_the_allowlist_refused(url: str, reason: str) -> None:
    raw = {**demo_conf(), "catalog_args": {"url": url}}
    with pytest.raises(InvalidInputError) as caught:
        validate_conf(raw)
    (problem,) = caught.value.problems
    assert problem.field == "catalog_args.url"
    assert reason in problem.message
    assert "allowed_hosts" in problem.fix


def test_validate_conf_url_override_listed_by_the_deployment_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLLECTION_BUILDER_ALLOWED_HOSTS", "stac.example.org")
    raw = {**demo_conf(), "catalog_args": {"url": "https://stac.example.org/v1"}}
    assert validate_conf(raw).catalog_args.url == "https://stac.example.org/v1"


def test_validate_conf_url_on_another_host_of_a_catalog_with_a_connection_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLLECTION_BUILDER_ALLOWED_HOSTS", "mirror.example.org")
    raw = {**demo_conf(), "catalog": "usgs", "dataset": "landsat_ot_c2_l1"}
    raw["catalog_args"] = {"url": "https://mirror.example.org/api"}
    with pytest.raises(InvalidInputError) as caught:
        validate_conf(raw)
    problem = next(p for p in caught.value.problems if p.field == "catalog_args.url")
    assert "credentials" in problem.message
    loopback = {**raw, "catalog_args": {"url": "http://127.0.0.1:9/api"}}
    assert "catalog_args.url" not in _problem_fields(loopback)


def _problem_fields(raw: dict[str, Any]) -> list[str]:
    try:
        validate_conf(raw)
    except InvalidInputError as err:
        return [p.field for p in err.problems]
    return []
