"""End-to-end fixtures: a started Airflow (api-server, scheduler, dag-processor, triggerer).

The stack (``tests/helpers/airflow_stack.py``) gets its own throwaway database, folder and free
loopback ports; it is package-scoped, so it stops (and its database is dropped) when the last e2e
test is done and never runs beside the integration tests' ``dag.test()``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.airflow_stack import REPO, AirflowStack, postgres_ready, started_stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="package")
def airflow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    if not postgres_ready():
        pytest.skip("e2e tests need PostgreSQL on 127.0.0.1:5432 and psql (make test has both)")
    with started_stack(tmp_path_factory.mktemp("e2e-var")) as stack:
        yield stack


@pytest.fixture(scope="package")
def demo_conf(airflow_stack: AirflowStack) -> dict[str, Any]:
    """The README's demo conf, pointed at this stack's demo catalog."""
    conf = json.loads((REPO / "examples" / "demo_conf.json").read_text())
    conf["catalog_args"] = {"url": airflow_stack.catalog_url}
    return dict(conf)
