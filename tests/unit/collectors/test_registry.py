"""The driver registry and ``make_driver`` over config/catalogs.yaml."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from include.collectors import registry
from include.collectors.base import (
    CatalogDriver,
    Credentials,
    DownloadedFile,
    DownloadJob,
    Scene,
    SearchQuery,
    known_size,
)
from include.collectors.registry import driver_class, make_driver, register
from include.collectors.stac_api import StacApiDriver
from include.common.config import CatalogConfig, parse_catalogs
from include.common.errors import ConfigError, InvalidInputError

REPO = Path(__file__).resolve().parents[3]


class _NullDriver(CatalogDriver):
    def search(self, query: SearchQuery) -> list[Scene]:
        return []

    def fetch(self, job: DownloadJob) -> DownloadedFile:
        return DownloadedFile(path=job.dest, size_bytes=0, checksum=None)


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register test drivers into copies of the registry dicts."""
    monkeypatch.setattr(registry.DRIVERS, "classes", dict(registry.DRIVERS.classes))
    monkeypatch.setattr(registry.DRIVERS, "aliases", dict(registry.DRIVERS.aliases))


def catalogs(**extra: dict[str, Any]) -> dict[str, CatalogConfig]:
    data: dict[str, Any] = {
        "catalogs": {
            "demo": {"driver": "stac", "url": "http://127.0.0.1:8089", "page_size": 50},
            "cdse": {
                "driver": "cdse",
                "url": "https://catalogue.dataspace.copernicus.eu/odata/v1",
                "aliases": ["scihub"],
                "deprecated_alias_note": "ESA closed SciHub in 2023",
            },
            "mirror": {
                "driver": "stac",
                "url": "https://stac.example.org/v1",
                "aliases": ["OldMirror"],
                "options": {"max_pages": 7},
            },
            **extra,
        }
    }
    return parse_catalogs(data)


def test_stac_driver_registered_as_stac() -> None:
    assert driver_class("stac") is StacApiDriver
    assert driver_class("  STAC ") is StacApiDriver
    assert StacApiDriver.name == "stac"
    assert "stac" in registry.known_drivers()


def test_driver_class_unknown_raises_invalid_input_listing_known() -> None:
    with pytest.raises(InvalidInputError) as caught:
        driver_class("nope")
    problem = caught.value.problems[0]
    assert problem.field == "driver"
    assert "stac" in problem.fix


@pytest.mark.usefixtures("isolated_registry")
def test_register_aliases_case_insensitive_and_warn(caplog: pytest.LogCaptureFixture) -> None:
    @register("Null", aliases=("Void",))
    class NullDriver(_NullDriver):
        pass

    assert NullDriver.name == "null"
    assert driver_class("NULL") is NullDriver
    with caplog.at_level(logging.WARNING):
        assert driver_class("void") is NullDriver
    assert "driver.alias" in caplog.text


@pytest.mark.usefixtures("isolated_registry")
def test_register_name_taken_by_other_class_raises_value_error() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @register("stac")
        class OtherDriver(_NullDriver):
            pass


def test_make_driver_from_repository_config_builds_stac_driver() -> None:
    driver = make_driver("EarthSearch")
    assert isinstance(driver, StacApiDriver)
    assert driver.url == "https://earth-search.aws.element84.com/v1"
    assert driver.catalog == "earthsearch"
    assert driver.options["datasets"]["S2MSI2A"] == "sentinel-2-c1-l2a"
    assert driver.options["verify_tls"] is True
    assert driver.collection_id("S2MSI2A") == "sentinel-2-c1-l2a"
    assert driver.collection_id("s2msi2a") == "sentinel-2-c1-l2a"
    assert driver.collection_id("sentinel-2-c1-l2a") == "sentinel-2-c1-l2a"


def test_make_driver_catalog_args_override_settings() -> None:
    driver = make_driver(
        "demo",
        catalog_args={"url": "http://127.0.0.1:9999/stac", "page_size": 5, "timeout_s": 2},
        catalogs=catalogs(),
    )
    assert isinstance(driver, StacApiDriver)
    assert driver.url == "http://127.0.0.1:9999/stac"
    assert driver.page_size == 5
    assert driver.timeout_s == 2.0
    assert driver.options["catalog"] == "demo"


def test_make_driver_catalog_options_reach_driver() -> None:
    driver = make_driver("mirror", catalogs=catalogs())
    assert isinstance(driver, StacApiDriver)
    assert driver.max_pages == 7


def test_make_driver_alias_logs_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        driver = make_driver("oldmirror", catalogs=catalogs())
    assert isinstance(driver, StacApiDriver)
    assert "catalog.alias" in caplog.text
    assert "mirror" in caplog.text


def test_make_driver_unknown_catalog_lists_configured() -> None:
    with pytest.raises(InvalidInputError) as caught:
        make_driver("Copernicus", catalogs=catalogs())
    problem = caught.value.problems[0]
    assert problem.field == "catalog"
    assert "cdse, demo, mirror" in problem.fix


def test_make_driver_configured_driver_missing_raises_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        make_driver("legacy", catalogs=catalogs(legacy={"driver": "ftp", "url": "ftp://x.org"}))
    assert caught.value.field == "catalogs.legacy.driver"


def test_make_driver_bad_catalog_arg_value_names_field() -> None:
    with pytest.raises(InvalidInputError) as caught:
        make_driver("demo", catalog_args={"page_size": 0}, catalogs=catalogs())
    assert caught.value.problems[0].field == "catalog_args.page_size"


def test_make_driver_raw_credentials_refused_with_connection_fix() -> None:
    with pytest.raises(InvalidInputError) as caught:
        make_driver(
            "demo",
            catalog_args={"password": "hunter2", "colour": "red"},
            catalogs=catalogs(),
        )
    fields = {problem.field: problem for problem in caught.value.problems}
    assert "Connection" in fields["catalog_args.password"].fix
    assert "hunter2" not in str(caught.value)
    assert "catalog_args.colour" in fields


def test_make_driver_conn_id_accepted_for_task_layer() -> None:
    driver = make_driver("demo", catalog_args={"conn_id": "demo_default"}, catalogs=catalogs())
    assert isinstance(driver, StacApiDriver)


def test_make_driver_url_to_other_host_with_credentials_refused() -> None:
    with pytest.raises(InvalidInputError) as caught:
        make_driver(
            "mirror",
            catalog_args={"url": "https://evil.example.net/v1"},
            credentials=Credentials(username="u", password="p"),  # noqa: S106 - test value
            catalogs=catalogs(),
        )
    assert caught.value.problems[0].field == "catalog_args.url"


def test_every_builtin_driver_module_can_be_imported_first() -> None:
    """Importing a driver module before the registry (which imports them all) must work: one
    built-in driver (cdse_stac) subclasses another's class (StacApiDriver)."""
    script = (
        "import importlib, sys\n"
        f"modules = {list(registry.BUILTIN_MODULES)!r}\n"
        "for first in modules:\n"
        "    for name in [m for m in sys.modules if m.startswith('include.collectors')]:\n"
        "        del sys.modules[name]\n"
        "    importlib.import_module(first)\n"
        "    from include.collectors.registry import known_drivers\n"
        "    print(first, ','.join(known_drivers()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(registry.BUILTIN_MODULES)
    assert all(line.endswith("cdse,cdse_stac,stac,usgs") for line in lines), lines


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5002, 5002),
        (5002.0, 5002),
        (0, None),
        (-1, None),
        (True, None),
        ("5002", None),
        (None, None),
    ],
)
def test_known_size_takes_positive_integers_only(value: object, expected: int | None) -> None:
    assert known_size(value) == expected
