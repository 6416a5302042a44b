"""Provider priority and fallback: a loopback CDSE first, the demo STAC API as the fallback."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from include.collectors.base import CatalogDriver, Credentials, Scene, SearchQuery
from include.collectors.limiter import ProviderLimiter
from include.collectors.providers import (
    ProviderAttempt,
    candidates,
    download_slot_groups,
    download_with_fallback,
    most_relevant_error,
    slot_group,
)
from include.collectors.registry import make_driver
from include.collectors.tokens import clear_token_cache
from include.common.config import (
    CatalogConfig,
    CollectionConfig,
    ProviderConfig,
    load_catalogs,
    load_collections,
    parse_catalogs,
)
from include.common.errors import (
    InvalidInputError,
    ProviderError,
    ProviderUnavailableError,
    SceneOfflineError,
)
from tests.helpers.cdse_server import CdseServer, safe_zip

DEMO_SCENE = "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429"
FOOTPRINT = {
    "type": "Polygon",
    "coordinates": [
        [[-45.95, -12.8], [-45.7, -12.8], [-45.7, -12.55], [-45.95, -12.55], [-45.95, -12.8]]
    ],
}
ZIP = safe_zip(DEMO_SCENE, {"manifest.safe": b"<xfdu:XFDU/>"})


@pytest.fixture
def cdse() -> Iterator[CdseServer]:
    clear_token_cache()
    server = CdseServer()
    try:
        yield server
    finally:
        server.close()
        clear_token_cache()


@pytest.fixture
def catalogs(cdse: CdseServer, demo_url: str) -> dict[str, CatalogConfig]:
    return parse_catalogs(
        {
            "catalogs": {
                "cdse": {
                    "driver": "cdse",
                    "url": cdse.odata_url,
                    "max_connections": 1,
                    "options": {"token_url": cdse.token_url, "retry_base_delay_s": 0.01},
                },
                "demo": {
                    "driver": "stac",
                    "url": demo_url,
                    "datasets": {"S2MSI1C": "sentinel-2-l1c"},
                },
            }
        }
    )


@pytest.fixture
def collection() -> CollectionConfig:
    return load_collections()["S2_L1C-1"].model_copy(
        update={
            "providers": (
                ProviderConfig(catalog="cdse", dataset="S2MSI1C"),
                ProviderConfig(catalog="demo", dataset="S2MSI1C"),
            )
        }
    )


@pytest.fixture
def factory(catalogs: dict[str, CatalogConfig]) -> Callable[[str], CatalogDriver]:
    def build(name: str) -> CatalogDriver:
        credentials = Credentials(username="alice", password="s3cret")  # noqa: S106 - test
        return make_driver(
            name, credentials=credentials if name == "cdse" else None, catalogs=catalogs
        )

    return build


def cdse_scene(factory: Callable[[str], CatalogDriver], scene_id: str = DEMO_SCENE) -> Scene:
    with factory("cdse") as driver:
        found = driver.search(SearchQuery(dataset="S2MSI1C", scene_ids=(scene_id,)))
    assert len(found) == 1
    return found[0]


def test_fallback_own_catalog_online_delivers_without_asking_others(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    collection: CollectionConfig,
    catalogs: dict[str, CatalogConfig],
    tmp_path: Path,
) -> None:
    cdse.add_s2_product(DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT)
    result, provider = download_with_fallback(
        cdse_scene(factory), collection, tmp_path, driver_factory=factory, catalogs=catalogs
    )
    assert provider == "cdse"
    assert result.path == tmp_path / f"{DEMO_SCENE}.zip"
    assert result.path.read_bytes() == ZIP


def test_fallback_offline_at_cdse_demo_finds_same_scene_by_id_and_delivers(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    collection: CollectionConfig,
    catalogs: dict[str, CatalogConfig],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cdse.add_s2_product(DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT, online=False)
    with caplog.at_level(logging.INFO, logger="include.collectors.providers"):
        result, provider = download_with_fallback(
            cdse_scene(factory), collection, tmp_path, driver_factory=factory, catalogs=catalogs
        )
    assert provider == "demo"
    assert {p.name for p in result.files} >= {"B04.tif", "B03.tif", "B02.tif"}
    assert "download.fallthrough" in caplog.text and "SceneOfflineError" in caplog.text
    assert "download.fallback_used" in caplog.text


def test_fallback_all_fail_with_one_offline_raises_scene_offline(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    collection: CollectionConfig,
    catalogs: dict[str, CatalogConfig],
    tmp_path: Path,
) -> None:
    other = "S2B_MSIL1C_20200110T131239_N0208_R138_T23LLF_20200110T150351"  # not in the demo
    cdse.add_s2_product(other + ".SAFE", ZIP, footprint=FOOTPRINT, online=False)
    with pytest.raises(SceneOfflineError) as caught:
        download_with_fallback(
            cdse_scene(factory, other),
            collection,
            tmp_path,
            driver_factory=factory,
            catalogs=catalogs,
        )
    assert caught.value.catalog == "cdse"


def test_fallback_all_fail_raises_download_error_over_lookup_error(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    collection: CollectionConfig,
    catalogs: dict[str, CatalogConfig],
    tmp_path: Path,
) -> None:
    other = "S2B_MSIL1C_20200110T131239_N0208_R138_T23LLF_20200110T150351"  # not in the demo
    entity = cdse.add_s2_product(other + ".SAFE", ZIP, footprint=FOOTPRINT)
    scene = cdse_scene(factory, other)
    cdse.fail("value", 404, {"detail": "gone"})
    with pytest.raises(ProviderError) as caught:
        download_with_fallback(
            scene, collection, tmp_path, driver_factory=factory, catalogs=catalogs
        )
    assert caught.value.status_code == 404
    assert "gone" in str(caught.value)
    assert cdse.requests_to(cdse.value_path(entity["Id"]))


def test_fallback_bad_input_at_a_provider_stops_without_trying_more(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    collection: CollectionConfig,
    catalogs: dict[str, CatalogConfig],
    tmp_path: Path,
) -> None:
    cdse.add_s2_product(DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT, online=False)
    broken = collection.model_copy(
        update={"providers": (ProviderConfig(catalog="demo", dataset=" "),)}
    )
    with pytest.raises(InvalidInputError):
        download_with_fallback(
            cdse_scene(factory), broken, tmp_path, driver_factory=factory, catalogs=catalogs
        )


def test_fallback_busy_provider_slots_time_out_and_fall_through(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    collection: CollectionConfig,
    catalogs: dict[str, CatalogConfig],
    tmp_path: Path,
) -> None:
    entity = cdse.add_s2_product(DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT)
    scene = cdse_scene(factory)
    limiter = ProviderLimiter(lock_dir=tmp_path / "locks", poll_interval_s=0.02, timeout_s=0.1)
    with limiter.slot("cdse", 1):  # another download holds CDSE's only slot
        _, provider = download_with_fallback(
            scene,
            collection,
            tmp_path / "archive",
            driver_factory=factory,
            limiter=limiter,
            catalogs=catalogs,
        )
    assert provider == "demo"
    assert cdse.requests_to(cdse.value_path(entity["Id"])) == []


def test_fallback_catalogs_of_one_account_share_its_slots(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    collection: CollectionConfig,
    catalogs: dict[str, CatalogConfig],
    tmp_path: Path,
) -> None:
    """A download through cdse-stac holds the slot cdse needs: cdse is busy and falls through."""
    entity = cdse.add_s2_product(DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT)
    scene = cdse_scene(factory)
    shared = {**catalogs, "cdse": catalogs["cdse"].model_copy(update={"slot_group": "account"})}
    limiter = ProviderLimiter(lock_dir=tmp_path / "locks", poll_interval_s=0.02, timeout_s=0.1)
    with limiter.slot("cdse", 1):  # the catalog's own name is no longer its slot
        result, provider = download_with_fallback(
            scene,
            collection,
            tmp_path / "first",
            driver_factory=factory,
            limiter=limiter,
            catalogs=shared,
        )
    assert provider == "cdse" and result.path.is_file()
    with limiter.slot("account", 1):  # another catalog of the account holds its only slot
        _, provider = download_with_fallback(
            scene,
            collection,
            tmp_path / "second",
            driver_factory=factory,
            limiter=limiter,
            catalogs=shared,
        )
    assert provider == "demo"
    assert len(cdse.requests_to(cdse.value_path(entity["Id"]))) == 1


def test_slot_group_defaults_to_the_catalog_and_the_shipped_cdse_modes_share_one() -> None:
    shipped = load_catalogs()
    assert slot_group("cdse", shipped) == "cdse"
    assert slot_group("cdse-stac", shipped) == "cdse"
    assert shipped["cdse-stac"].max_connections == shipped["cdse"].max_connections
    assert slot_group("usgs", shipped) == "usgs"
    assert slot_group("not-configured", shipped) == "not-configured"


def test_download_slot_groups_one_per_account_sized_by_its_strictest_catalog() -> None:
    assert download_slot_groups(load_catalogs()) == {
        "demo": 4,
        "earthsearch": 4,
        "planetarycomputer": 4,
        "cdse": 4,
        "usgs": 2,
    }
    catalogs = parse_catalogs(
        {
            "catalogs": {
                "a": {
                    "driver": "stac",
                    "url": "https://a.example/v1",
                    "max_connections": 6,
                    "slot_group": "team",
                },
                "b": {
                    "driver": "stac",
                    "url": "https://b.example/v1",
                    "max_connections": 3,
                    "slot_group": "team",
                },
                "c": {"driver": "stac", "url": "https://c.example/v1"},
            }
        }
    )
    assert download_slot_groups(catalogs) == {"team": 3, "c": 4}


def test_candidates_own_catalog_first_then_providers_without_repeats(
    collection: CollectionConfig,
) -> None:
    scene = Scene(
        scene_id=DEMO_SCENE,
        catalog="demo",
        dataset="S2MSI1C",
        datetime=datetime(2020, 1, 9, tzinfo=UTC),
        cloud_pct=None,
        tile=None,
        footprint=None,
    )
    assert candidates(scene, collection) == [("demo", None), ("cdse", "S2MSI1C")]


def test_most_relevant_error_prefers_offline_then_download_stage() -> None:
    lookup = ProviderUnavailableError("down")
    download = ProviderError("404", status_code=404)
    offline = SceneOfflineError("x", "cdse")
    attempts: list[Any] = [
        ProviderAttempt("a", "download", download),
        ProviderAttempt("b", "lookup", lookup),
    ]
    assert most_relevant_error(attempts) is download
    assert most_relevant_error([ProviderAttempt("b", "lookup", lookup)]) is lookup
    assert most_relevant_error([*attempts, ProviderAttempt("c", "download", offline)]) is offline
    with pytest.raises(ValueError, match="no provider"):
        most_relevant_error([])
