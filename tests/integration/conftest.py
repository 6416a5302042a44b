from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from include.collectors.tokens import clear_token_cache
from tests.helpers.m2m_server import APP_TOKEN, USERNAME

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def _needs_postgres_metadata_db() -> None:
    conn = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if not conn.startswith("postgresql"):
        pytest.skip("integration tests need Airflow's metadata DB on PostgreSQL: run `make test`")


@pytest.fixture(scope="module")
def demo_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A demo STAC API with 4 scenes on an ephemeral loopback port: (url, root)."""
    from include.demo.build import build_demo_catalog
    from include.demo.server import serve

    root = tmp_path_factory.mktemp("demo-catalog")
    build_demo_catalog(root, scenes=4, size_px=96)
    with serve(root, port=0) as server:
        yield server.url, root


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(path))
    return path


@pytest.fixture
def cdse_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connection ``cdse_default`` with the loopback CDSE servers' test account."""
    clear_token_cache()
    monkeypatch.setenv(
        "AIRFLOW_CONN_CDSE_DEFAULT",
        json.dumps({"conn_type": "http", "login": "alice", "password": "s3cret"}),
    )


@pytest.fixture
def usgs_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connection ``usgs_default`` with the loopback M2M server's test account."""
    connection = {"conn_type": "http", "login": USERNAME, "password": APP_TOKEN}
    monkeypatch.setenv("AIRFLOW_CONN_USGS_DEFAULT", json.dumps(connection))


@pytest.fixture
def radcor_dag():  # noqa: ANN201 - an Airflow DAG; fresh per test: dag.test() keeps conf in params
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "radcor.py"))
    assert bag.import_errors == {}
    return bag.dags["radcor"]
