"""Online or not, where, and the order: ``availability.decide``/``poll`` against a loopback CDSE.

The fallback provider is the demo STAC API (it has ``DEMO_SCENE``, not ``ONLY_CDSE``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from include.collectors.availability import (
    archive_in_place,
    decide,
    describe,
    find_online_fallback,
    poll,
)
from include.collectors.base import Availability, CatalogDriver, Credentials
from include.collectors.retries import call_with_retries
from include.common.config import CatalogConfig, CollectionConfig
from include.common.errors import (
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
)
from tests.helpers.cdse_server import CdseServer
from tests.helpers.offline import (
    DEMO_SCENE,
    FOOTPRINT,
    ONLY_CDSE,
    ZIP,
    cdse_scene,
    factory_for,
    two_providers,
)


@pytest.fixture
def collection() -> CollectionConfig:
    return two_providers()


def _offline(cdse: CdseServer, scene_id: str = DEMO_SCENE) -> str:
    entity = cdse.add_s2_product(scene_id + ".SAFE", ZIP, footprint=FOOTPRINT, online=False)
    return str(entity["Id"])


def test_decide_online_at_own_catalog_orders_nothing(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    collection: CollectionConfig,
) -> None:
    cdse.add_s2_product(DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT)
    decision = decide(cdse_scene(factory), [collection], driver_factory=factory)
    assert decision.state == Availability.ONLINE
    assert decision.providers == {"S2_L1C-1": "cdse"}
    assert not decision.ordered and cdse.orders == []


def test_decide_offline_without_fallback_orders_once_and_poll_sees_it_online(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    collection: CollectionConfig,
) -> None:
    product_id = _offline(cdse)
    scene = cdse_scene(factory)
    decision = decide(scene, [collection], driver_factory=factory, use_fallback=False)
    assert decision.state == Availability.OFFLINE
    assert decision.ordered and decision.order_id
    assert decision.providers == {}
    assert not decision.is_online_for("S2_L1C-1")
    assert cdse.orders == [product_id]
    assert "ordered at cdse (order " in describe(decision)
    with factory("cdse") as driver:
        states = [poll(scene, driver).state for _ in range(3)]
    assert states == [Availability.OFFLINE, Availability.ONLINE, Availability.ONLINE]
    assert cdse.orders == [product_id]  # polling never orders again


def test_decide_offline_fallback_online_uses_it_without_ordering(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    collection: CollectionConfig,
) -> None:
    _offline(cdse)
    decision = decide(cdse_scene(factory), [collection], driver_factory=factory)
    assert decision.providers == {"S2_L1C-1": "demo"}
    assert not decision.ordered and cdse.orders == []
    assert "S2_L1C-1: online at demo" in describe(decision)


def test_decide_fallback_without_the_scene_is_noted_and_the_scene_ordered(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    collection: CollectionConfig,
) -> None:
    product_id = _offline(cdse, ONLY_CDSE)
    decision = decide(cdse_scene(factory, ONLY_CDSE), [collection], driver_factory=factory)
    assert decision.ordered and cdse.orders == [product_id]
    (note,) = decision.notes
    assert note.startswith("demo: ProviderError") and "no scene with this id" in note


def test_find_online_fallback_unreachable_provider_is_skipped(
    cdse: CdseServer,
    catalogs: dict[str, CatalogConfig],
    collection: CollectionConfig,
) -> None:
    _offline(cdse)
    broken = dict(catalogs)
    broken["demo"] = catalogs["demo"].model_copy(update={"url": "http://127.0.0.1:9"})
    sleeps: list[float] = []
    found, notes = find_online_fallback(
        cdse_scene(factory_for(catalogs)),
        collection,
        driver_factory=factory_for(broken),
        sleep=sleeps.append,
    )
    assert found is None
    assert notes[0].startswith("demo: ProviderUnavailableError")
    assert len(sleeps) == 2  # the lookup was retried in the task before giving up


def test_decide_transient_503_on_the_product_is_retried_in_the_task(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    collection: CollectionConfig,
) -> None:
    cdse.add_s2_product(DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT)
    scene = cdse_scene(factory)
    cdse.fail("product", 503, {"detail": "busy"}, times=2)
    sleeps: list[float] = []
    decision = decide(scene, [collection], driver_factory=factory, sleep=sleeps.append)
    assert decision.state == Availability.ONLINE
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.5 and 1.0 <= sleeps[1] <= 3.0


def test_decide_429_retry_after_is_honoured(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    collection: CollectionConfig,
) -> None:
    cdse.add_s2_product(DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT)
    scene = cdse_scene(factory)
    cdse.fail("product", 429, {"detail": "slow down"}, {"Retry-After": "7"})
    sleeps: list[float] = []
    decide(scene, [collection], driver_factory=factory, sleep=sleeps.append)
    assert sleeps == [7.0]


def test_decide_unknown_product_404_raises_provider_error_without_retry(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    collection: CollectionConfig,
) -> None:
    cdse.add_s2_product(DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT)
    scene = cdse_scene(factory)
    cdse.fail("product", 404, {"detail": "Product not found"})
    sleeps: list[float] = []
    with pytest.raises(ProviderError) as caught:
        decide(scene, [collection], driver_factory=factory, sleep=sleeps.append)
    assert caught.value.status_code == 404 and "not found" in str(caught.value)
    assert sleeps == []


def test_decide_order_with_a_wrong_password_raises_naming_the_connection(
    cdse: CdseServer,
    catalogs: dict[str, CatalogConfig],
    collection: CollectionConfig,
) -> None:
    _offline(cdse)
    wrong = factory_for(catalogs, Credentials(username="alice", password="wrong"))  # noqa: S106
    with pytest.raises(ProviderError, match="cdse_default") as caught:
        decide(cdse_scene(wrong), [collection], driver_factory=wrong, use_fallback=False)
    assert "s3cret" not in str(caught.value) and "wrong" not in str(caught.value)
    assert cdse.orders == []


def test_order_token_refused_is_renewed_once(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
) -> None:
    product_id = _offline(cdse)
    scene = cdse_scene(factory)
    with factory("cdse") as driver:
        driver.order(scene)
        cdse.expire_tokens()  # the server forgets the cached token: the next order gets 401
        assert driver.order(scene)
    assert cdse.orders == [product_id, product_id]
    assert cdse.grants.count("password") == 2


def test_poll_transient_error_is_reported_not_raised(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
) -> None:
    _offline(cdse)
    scene = cdse_scene(factory)
    cdse.fail("product", 502, b"bad gateway")
    with factory("cdse") as driver:
        result = poll(scene, driver)
    assert result.state is None and not result.is_online
    assert result.transient_error and "HTTP 502" in result.transient_error


def test_archive_in_place_verified_zip_only(
    cdse: CdseServer,
    factory: Callable[[str], CatalogDriver],
    tmp_path: Path,
) -> None:
    cdse.add_s2_product(DEMO_SCENE + ".SAFE", ZIP, footprint=FOOTPRINT)
    scene = cdse_scene(factory)
    assert archive_in_place(scene, tmp_path) is None
    middle = len(ZIP) // 2
    corrupt = ZIP[:middle] + bytes([ZIP[middle] ^ 0xFF]) + ZIP[middle + 1 :]
    (tmp_path / f"{DEMO_SCENE}.zip").write_bytes(corrupt)  # same size, wrong checksum
    assert archive_in_place(scene, tmp_path) is None
    (tmp_path / f"{DEMO_SCENE}.zip").write_bytes(ZIP)
    assert archive_in_place(scene, tmp_path) == tmp_path / f"{DEMO_SCENE}.zip"


def test_call_with_retries_long_retry_after_is_left_to_airflow() -> None:
    calls: list[int] = []

    def limited() -> None:
        calls.append(1)
        raise RateLimitedError("429", retry_after_s=600)

    with pytest.raises(RateLimitedError):
        call_with_retries(limited, what="test", sleep=lambda s: None)
    assert len(calls) == 1


def test_call_with_retries_gives_up_after_the_attempts() -> None:
    sleeps: list[float] = []

    def down() -> None:
        raise ProviderUnavailableError("HTTP 503")

    with pytest.raises(ProviderUnavailableError):
        call_with_retries(down, what="test", max_attempts=3, sleep=sleeps.append)
    assert len(sleeps) == 2
