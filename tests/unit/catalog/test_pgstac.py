"""PgstacBackend against the machine's PostgreSQL + PostGIS, in a throwaway database."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from include.catalog import pgstac as pgstac_module
from include.catalog import registry
from include.catalog.pgstac import PGSTAC_VERSION, PgstacBackend
from include.catalog.static_stac import collection_from_config
from include.common.config import PUBLIC_BASE_URL_ENV, load_collections
from include.common.errors import InvalidInputError, TransientError
from tests.helpers.pgstac_db import postgres_problem, throwaway_database
from tests.unit.catalog.test_static_stac import make_item

COLLECTION = "S2_L1C-1"


@pytest.fixture(scope="module")
def backend() -> Iterator[PgstacBackend]:
    problem = postgres_problem()
    if problem:
        pytest.skip(problem)
    with throwaway_database() as dsn:
        pgstac = PgstacBackend(dsn)
        assert pgstac.ensure_ready() == PGSTAC_VERSION  # creates the database and migrates
        yield pgstac


def config_collection() -> dict:
    return collection_from_config(load_collections()[COLLECTION])


def test_pgstac_upsert_same_item_twice_keeps_one_row_with_the_new_content(
    backend: PgstacBackend,
) -> None:
    backend.upsert(make_item("A1", cloud=10.0), config_collection())
    backend.upsert(make_item("A1", cloud=55.0), config_collection())
    assert backend.count(COLLECTION, "A1") == 1
    stored = backend.get(COLLECTION, "A1")
    assert stored is not None and stored["properties"]["eo:cloud_cover"] == 55.0
    assert stored["assets"]["B04"]["href"].endswith("A1_B04.tif")
    assert backend.exists(COLLECTION, "A1") and not backend.exists(COLLECTION, "nope")


def test_pgstac_collection_from_config_with_extent_of_its_items(backend: PgstacBackend) -> None:
    backend.upsert(make_item("E1", lon=-46.0, lat=-13.0), config_collection())
    backend.upsert(
        make_item("E2", lon=-40.0, lat=-10.0, when=datetime(2021, 5, 1, tzinfo=UTC)),
        config_collection(),
    )
    stored = backend.get_collection(COLLECTION)
    assert stored is not None
    assert stored["title"] == load_collections()[COLLECTION].title
    assert stored["summaries"]["constellation"] == ["sentinel-2"]
    west, south, east, north = stored["extent"]["spatial"]["bbox"][0]
    assert west <= -46.0 and south <= -13.0 and east >= -39.9 and north >= -9.9
    start, end = stored["extent"]["temporal"]["interval"][0]
    assert start <= "2020-01-09T13:22:31Z" and end.startswith("2021-05-01")
    assert [item["id"] for item in backend.search(COLLECTION)][-1] == "E2"


def test_pgstac_concurrent_upserts_keep_every_item_and_the_extent(
    backend: PgstacBackend,
) -> None:
    errors: list[BaseException] = []

    def publish(index: int) -> None:
        try:
            item = make_item(f"C{index}", lon=-50.0 + index, collection="S2_L2A-1")
            backend.upsert(item, collection_from_config(load_collections()["S2_L2A-1"]))
        except BaseException as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert backend.count("S2_L2A-1") == 6
    stored = backend.get_collection("S2_L2A-1")
    assert stored is not None
    west, _, east, _ = stored["extent"]["spatial"]["bbox"][0]
    assert (west, round(east, 6)) == (-50.0, -44.9)


def test_pgstac_ensure_ready_again_is_a_no_op(backend: PgstacBackend) -> None:
    pgstac_module._READY.discard(backend.dsn)  # a new process: checks the version, migrates nothing
    assert backend.ensure_ready() == PGSTAC_VERSION
    assert backend.create_database() is False


def test_pgstac_upsert_bad_item_raises_invalid_input(backend: PgstacBackend) -> None:
    with pytest.raises(InvalidInputError, match="item.collection"):
        backend.upsert({**make_item("X"), "collection": None})
    with pytest.raises(InvalidInputError, match="collection.id"):
        backend.upsert(make_item("X"), {"id": "S2_L2A-1"})


def test_pgstac_unreachable_server_raises_transient_error() -> None:
    with pytest.raises(TransientError, match="cannot connect"):
        PgstacBackend("postgresql://postgres@127.0.0.1:1/nothing").get(COLLECTION, "A1")


def test_default_backend_env_selects_pgstac_with_env_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry.BACKEND_ENV, "PgSTAC")
    monkeypatch.setenv(pgstac_module.DSN_ENV, "postgresql://postgres@127.0.0.1:5432/x_stac")
    backend = registry.default_backend()
    assert isinstance(backend, PgstacBackend) and backend.dsn.endswith("/x_stac")
    monkeypatch.setenv(registry.BACKEND_ENV, "elastic")
    with pytest.raises(InvalidInputError, match="use one of: pgstac, static"):
        registry.default_backend()


BASE_URL = "https://data.example.org/published"


def published_item(data: Path, item_id: str) -> tuple[dict[str, Any], str]:
    """Return an item whose B04 href is a file under ``data/published``, and its relative path."""
    relative = f"{COLLECTION}/01LAC/2020/07/{item_id}/{item_id}_B04.tif"
    item = make_item(item_id)
    item["assets"]["B04"]["href"] = str(data / "published" / relative)
    return item, relative


@pytest.mark.parametrize(("base_url", "prefix"), [(BASE_URL, f"{BASE_URL}/"), ("", "")])
def test_pgstac_asset_hrefs_under_published_are_base_url_slash_relative_path(
    backend: PgstacBackend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    base_url: str,
    prefix: str,
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv(PUBLIC_BASE_URL_ENV, base_url)
    served = PgstacBackend(backend.dsn)  # the settings are read when a backend is made
    item, relative = published_item(data, f"H{len(prefix)}")
    served.upsert(item, config_collection())
    stored = served.get(COLLECTION, item["id"])
    assert stored is not None
    assert stored["assets"]["B04"]["href"] == prefix + relative
    assert str(data) not in json.dumps(stored) and str(tmp_path) not in json.dumps(stored)
    found = [i for i in served.search(COLLECTION) if i["id"] == item["id"]]
    assert [i["assets"]["B04"]["href"] for i in found] == [prefix + relative]


def test_pgstac_item_across_the_antimeridian_keeps_west_greater_than_east(
    backend: PgstacBackend,
) -> None:
    item = make_item("AM1", collection="S2_TOA-1")
    item["geometry"] = {
        "type": "MultiPolygon",
        "coordinates": [
            [[[179.5, -16.0], [180.0, -16.0], [180.0, -15.0], [179.5, -15.0], [179.5, -16.0]]],
            [[[-180.0, -16.0], [-179.5, -16.0], [-179.5, -15.0], [-180.0, -15.0], [-180.0, -16.0]]],
        ],
    }
    item["bbox"] = [179.5, -16.0, -179.5, -15.0]
    toa = collection_from_config(load_collections()["S2_TOA-1"])
    backend.upsert(item, toa)
    backend.upsert(make_item("AM2", lon=170.0, lat=-20.0, collection="S2_TOA-1"), toa)
    stored = backend.get("S2_TOA-1", "AM1")
    assert stored is not None and stored["bbox"] == [179.5, -16.0, -179.5, -15.0]
    collection = backend.get_collection("S2_TOA-1")
    assert collection is not None
    assert collection["extent"]["spatial"]["bbox"][0] == [170.0, -20.0, -179.5, -15.0]
