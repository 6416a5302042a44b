"""Complete searches for STAC APIs: a year over a large area, more items than one search lists.

The loopback STAC API (stac-fastapi-pgstac's protocol, tests/helpers/cdse_stac_server.py) lists
at most ``max_items`` items of one search (no next link past them) while ``numberMatched``
counts them all; the generic STAC driver (Earth Search, Planetary Computer) and the CDSE STAC
driver split such a search by time, then area, and return every product once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from include.collectors.base import SearchQuery
from include.collectors.cdse_stac import CdseStacDriver
from include.collectors.stac_api import StacApiDriver
from tests.helpers.cdse_stac_server import CdseStacServer, s2_stac_item

AREA = (-60.0, -30.0, -40.0, -10.0)
TILES = ("23LLF", "32TQM", "33UUP", "46RER")
YEAR_START = datetime(2024, 1, 1, tzinfo=UTC)
YEAR_END = datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)
BUSY = datetime(2024, 6, 15, 13, 0, 1, tzinfo=UTC)
CAP = 300
DATASETS = {"S2MSI2A": "sentinel-2-l2a"}


def _footprint(index: int) -> dict[str, Any]:
    w, s = AREA[0] + index % 19, AREA[1] + (index // 19) % 19
    ring = [[w, s], [w + 1, s], [w + 1, s + 1], [w, s + 1], [w, s]]
    return {"type": "Polygon", "coordinates": [ring]}


def _name(sensed: datetime, orbit: int, tile: str, baseline: str = "N0510") -> str:
    stamp = sensed.strftime("%Y%m%dT%H%M%S")
    return f"S2B_MSIL2A_{stamp}_{baseline}_R{orbit:03d}_T{tile}_{stamp}"


def _fill(server: CdseStacServer, *, yearly: int, busy: int, reprocessed: int) -> set[str]:
    """Serve ``yearly`` items over 2024, ``busy`` more sensed at one instant, older baselines."""
    expected: set[str] = set()

    def add(name: str, index: int) -> None:
        item = s2_stac_item(
            name,
            b"zip",
            footprint=_footprint(index),
            product_id=f"id-{name}",
            download_origin=server.url,
            stac_url=server.stac_url,
        )
        server.add_item(item)

    step = timedelta(days=366) / yearly
    for index in range(yearly):
        sensed = (YEAR_START + step * index).replace(microsecond=0)
        name = _name(sensed, 8, TILES[index % 4])
        add(name, index)
        expected.add(name)
        if index < reprocessed:
            add(_name(sensed, 8, TILES[index % 4], baseline="N0400"), index)
    for index in range(busy):  # one datatake: more items at one instant than a search lists
        name = _name(BUSY, 1 + index % 100, TILES[index // 100])
        add(name, index)
        expected.add(name)
    return expected


@pytest.fixture
def server() -> Iterator[CdseStacServer]:
    with CdseStacServer() as stac:
        stac.max_items = CAP
        yield stac


def _driver(kind: str, server: CdseStacServer, **options: Any) -> StacApiDriver:
    common = {"page_size": 100, "datasets": DATASETS, "timeout_s": 30.0, **options}
    if kind == "cdse_stac":
        return CdseStacDriver(
            url=server.stac_url,
            options={"catalog": "cdse-stac", "token_url": server.token_url, **common},
        )
    return StacApiDriver(url=server.stac_url, options={"catalog": "earthsearch", **common})


def _year() -> SearchQuery:
    return SearchQuery(dataset="S2MSI2A", bbox=AREA, start=YEAR_START, end=YEAR_END)


def _offsets(server: CdseStacServer) -> list[int]:
    tokens = [str(r.json().get("token") or "next:0") for r in server.search_requests()]
    return [int(token.removeprefix("next:")) for token in tokens]


@pytest.mark.parametrize("kind", ["stac", "cdse_stac"])
def test_stac_year_past_the_server_cap_returns_every_product_once(
    server: CdseStacServer, kind: str
) -> None:
    expected = _fill(server, yearly=2000, busy=400, reprocessed=100)
    driver = _driver(kind, server, max_items=CAP)
    try:
        scenes = driver.search(_year())
    finally:
        driver.close()
    ids = [scene.scene_id for scene in scenes]
    assert len(ids) == len(set(ids)) == 2400
    assert set(ids) == expected  # the N0510 processing won over N0400 for the 100 reprocessed
    assert ids == [s.scene_id for s in sorted(scenes, key=lambda s: (s.datetime, s.scene_id))]
    assert max(_offsets(server)) < CAP  # never paged past what the server lists
    bodies = [r.json() for r in server.search_requests()]
    assert any("intersects" in body or body["bbox"] != list(AREA) for body in bodies)


def test_stac_server_without_counts_is_split_when_its_listing_stops_at_max_items(
    server: CdseStacServer,
) -> None:
    server.count_matched = False  # no numberMatched: the cap shows as a full listing, no next
    expected = _fill(server, yearly=1000, busy=0, reprocessed=0)
    driver = _driver("stac", server, max_items=CAP)
    try:
        scenes = driver.search(_year())
    finally:
        driver.close()
    assert {s.scene_id for s in scenes} == expected and len(scenes) == 1000


def test_stac_driver_not_told_of_the_cap_returns_short_so_the_cap_is_real(
    server: CdseStacServer,
) -> None:
    server.count_matched = False
    _fill(server, yearly=1000, busy=0, reprocessed=0)
    driver = _driver("stac", server)  # neither max_items nor a count: nothing tells it
    try:
        scenes = driver.search(_year())
    finally:
        driver.close()
    assert len(scenes) == CAP  # what a driver unaware of the cap would have returned


def test_stac_page_budget_below_number_matched_splits_before_paging(
    server: CdseStacServer,
) -> None:
    server.max_items = None
    expected = _fill(server, yearly=1000, busy=0, reprocessed=0)
    driver = _driver("stac", server, max_pages=3)  # 3 pages of 100 < 1,000 matched
    try:
        scenes = driver.search(_year())
    finally:
        driver.close()
    assert {s.scene_id for s in scenes} == expected and len(scenes) == 1000
    assert max(_offsets(server)) < 300


def test_stac_iter_search_streams_windows_each_product_once(server: CdseStacServer) -> None:
    expected = _fill(server, yearly=1000, busy=0, reprocessed=0)
    driver = _driver("stac", server, max_items=CAP)
    try:
        iterator = driver.iter_search(_year())
        first = next(iterator)
        asked_before = len(server.search_requests())
        seen = [first.scene_id, *(scene.scene_id for scene in iterator)]
    finally:
        driver.close()
    assert len(seen) == len(set(seen)) and set(seen) == expected
    assert asked_before < len(server.search_requests())  # later windows asked after the first
