"""Wait settings: conf args over catalogs.yaml options over TASK_RETRY_DELAY over defaults."""

from __future__ import annotations

from typing import Any

import pytest

from include.common.config import parse_catalogs
from include.common.errors import ConfigError, InvalidInputError
from include.radcor.conf import validate_conf
from include.radcor.wait_settings import (
    DEFAULT_POLL_INTERVAL_S,
    DEFAULT_TIMEOUT_S,
    WaitMode,
    WaitSettings,
    check_wait_args,
    resolve_wait_settings,
)

SCENE = "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429"


def _catalog(**options: Any) -> Any:
    entry = {"driver": "cdse", "url": "https://catalogue.example/odata/v1", "options": options}
    return parse_catalogs({"catalogs": {"cdse": entry}})["cdse"]


def test_resolve_wait_settings_nothing_set_gives_defaults() -> None:
    settings = resolve_wait_settings("cdse", _catalog(), {}, env={})
    assert settings == WaitSettings(
        WaitMode.RESCHEDULE, DEFAULT_POLL_INTERVAL_S, DEFAULT_TIMEOUT_S, True
    )
    assert settings.poll_interval_s == 3600 and settings.timeout_s == 3 * 86400


def test_resolve_wait_settings_task_retry_delay_sets_the_poll_interval() -> None:
    settings = resolve_wait_settings("cdse", _catalog(), {}, env={"TASK_RETRY_DELAY": "120"})
    assert settings.poll_interval_s == 120


def test_resolve_wait_settings_catalog_options_then_conf_args_win() -> None:
    catalog = _catalog(wait_mode="deferrable", poll_interval_s=600, fallback_online=False)
    env = {"TASK_RETRY_DELAY": "120"}
    from_catalog = resolve_wait_settings("cdse", catalog, {}, env=env)
    assert (from_catalog.mode, from_catalog.poll_interval_s, from_catalog.fallback_online) == (
        WaitMode.DEFERRABLE,
        600,
        False,
    )
    from_args = resolve_wait_settings(
        "cdse",
        catalog,
        {
            "wait_mode": "Reschedule",
            "poll_interval_s": 15,
            "wait_timeout_s": 60,
            "fallback_online": True,
        },
        env=env,
    )
    assert from_args == WaitSettings(WaitMode.RESCHEDULE, 15, 60, True)


def test_resolve_wait_settings_interval_never_longer_than_the_timeout() -> None:
    settings = resolve_wait_settings("cdse", _catalog(), {"wait_timeout_s": 30}, env={})
    assert settings.poll_interval_s == 30


@pytest.mark.parametrize("value", ["soon", "0", "-5", "nan"])
def test_resolve_wait_settings_bad_task_retry_delay_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="TASK_RETRY_DELAY"):
        resolve_wait_settings("cdse", _catalog(), {}, env={"TASK_RETRY_DELAY": value})


def test_resolve_wait_settings_bad_catalog_option_names_file_and_field() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_wait_settings("cdse", _catalog(wait_mode="hourly"), {}, env={})
    assert caught.value.field == "catalogs.cdse.options.wait_mode"
    assert "reschedule, deferrable" in str(caught.value)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"wait_mode": "poke"}, "tasks[0].args.wait_mode"),
        ({"wait_mode": 1}, "tasks[0].args.wait_mode"),
        ({"poll_interval_s": 0.5}, "tasks[0].args.poll_interval_s"),
        ({"poll_interval_s": True}, "tasks[0].args.poll_interval_s"),
        ({"wait_timeout_s": 0}, "tasks[0].args.wait_timeout_s"),
        ({"wait_timeout_s": 40 * 86400}, "tasks[0].args.wait_timeout_s"),
        ({"poll_interval_s": 100, "wait_timeout_s": 50}, "tasks[0].args.poll_interval_s"),
        ({"fallback_online": "no"}, "tasks[0].args.fallback_online"),
    ],
)
def test_validate_conf_bad_wait_args_name_field_and_fix(args: dict[str, Any], field: str) -> None:
    conf = {
        "scenes": [SCENE],
        "catalog": "cdse",
        "dataset": "S2MSI1C",
        "tasks": [{"type": "download", "collection": "S2_L1C-1", "args": args}],
    }
    with pytest.raises(InvalidInputError) as caught:
        validate_conf(conf)
    (problem,) = caught.value.problems
    assert problem.field == field and problem.fix


def test_validate_conf_good_wait_args_kept_and_other_args_ignored() -> None:
    args = {
        "wait_mode": "deferrable",
        "poll_interval_s": 10,
        "wait_timeout_s": 120,
        "fallback_online": False,
        "something_else": 1,
    }
    conf = validate_conf(
        {
            "scenes": [SCENE],
            "catalog": "cdse",
            "dataset": "S2MSI1C",
            "tasks": [{"type": "download", "collection": "S2_L1C-1", "args": args}],
        }
    )
    assert conf.tasks[0].args == args
    assert check_wait_args({"wait_mode": "poke"}, "")[0].field == "wait_mode"
