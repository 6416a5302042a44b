"""Complete searches by construction (include/collectors/split.py) against protocol servers.

A CDSE OData look-alike holding 25,000+ products over 12 months and a large area: the driver's
search splits past CDSE's ``$skip`` limit and returns every product exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest

from include.collectors.base import Scene, SearchQuery
from include.collectors.cdse_odata import CdseODataDriver
from include.collectors.split import (
    Splitting,
    WindowTooLargeError,
    complete_search,
    newest_processing,
    split_in_area,
    split_in_time,
)
from include.common.errors import InvalidInputError
from tests.helpers.cdse_server import CdseServer, s2_product_entity

TILES = ("23LLF", "32TQM", "33UUP", "46RER")
AREA = (-60.0, -30.0, -40.0, -10.0)
YEAR_START = datetime(2024, 1, 1, tzinfo=UTC)


def _footprint(index: int) -> dict[str, Any]:
    w = AREA[0] + (index % 19)
    s = AREA[1] + (index // 19) % 19
    ring = [[w, s], [w + 1, s], [w + 1, s + 1], [w, s + 1], [w, s]]
    return {"type": "Polygon", "coordinates": [ring]}


def _name(sensed: datetime, tile: str, baseline: str = "N0510") -> str:
    stamp = sensed.strftime("%Y%m%dT%H%M%S")
    return f"S2A_MSIL1C_{stamp}_{baseline}_R008_T{tile}_{stamp}.SAFE"


def _fill(server: CdseServer, count: int, *, reprocessed: int = 0) -> set[str]:
    """Serve ``count`` products over 2024 (plus older processings of ``reprocessed`` of them)."""
    step = timedelta(days=366) / count
    expected: set[str] = set()
    for index in range(count):
        sensed = (YEAR_START + step * index).replace(microsecond=0)
        name = _name(sensed, TILES[index % len(TILES)])
        footprint = _footprint(index)
        server.add_product(s2_product_entity(name, b"x", footprint=footprint, checksums=()))
        expected.add(name.removesuffix(".SAFE"))
        if index < reprocessed:
            old = _name(sensed, TILES[index % len(TILES)], baseline="N0400")
            server.add_product(s2_product_entity(old, b"x", footprint=footprint, checksums=()))
    return expected


@pytest.fixture
def cdse() -> Iterator[CdseServer]:
    server = CdseServer()
    try:
        yield server
    finally:
        server.close()


def _driver(server: CdseServer, **options: Any) -> CdseODataDriver:
    return CdseODataDriver(
        url=server.odata_url, options={"catalog": "cdse", "timeout_s": 30.0, **options}
    )


def _year() -> SearchQuery:
    return SearchQuery(
        dataset="S2MSI1C",
        bbox=AREA,
        start=YEAR_START,
        end=datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC),
    )


def _scene(scene_id: str) -> Scene:
    return Scene(
        scene_id=scene_id,
        catalog="t",
        dataset="d",
        datetime=YEAR_START,
        cloud_pct=None,
        tile=None,
        footprint=None,
    )


def test_cdse_search_25000_products_over_a_year_returns_each_once() -> None:
    with CdseServer() as server:
        expected = _fill(server, 25_200, reprocessed=300)
        driver = _driver(server, page_size=1000)
        try:
            scenes = driver.search(
                SearchQuery(
                    dataset="S2MSI1C",
                    bbox=AREA,
                    start=YEAR_START,
                    end=datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC),
                )
            )
        finally:
            driver.close()
    ids = [scene.scene_id for scene in scenes]
    assert len(ids) == len(set(ids)) == 25_200
    assert set(ids) == expected  # the N0510 processing won over N0400 for the 300 reprocessed
    assert ids == [s.scene_id for s in sorted(scenes, key=lambda s: (s.datetime, s.scene_id))]


def test_cdse_search_same_instant_past_the_limit_splits_by_area(cdse: CdseServer) -> None:
    sensed = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    expected = set()
    for index in range(30):  # one datatake: 30 tiles sensed in the same second
        name = _name(sensed, TILES[index % 4]).replace("_R008_", f"_R{index + 1:03d}_")
        cdse.add_product(s2_product_entity(name, b"x", footprint=_footprint(index), checksums=()))
        expected.add(name.removesuffix(".SAFE"))
    cdse.max_skip = 10
    driver = _driver(cdse, page_size=5, max_skip=10)
    try:
        scenes = driver.search(
            SearchQuery(
                dataset="S2MSI1C",
                bbox=AREA,
                start=sensed - timedelta(seconds=10),
                end=sensed + timedelta(seconds=10),
            )
        )
    finally:
        driver.close()
    assert sorted(s.scene_id for s in scenes) == sorted(expected)


def test_cdse_search_unsplittable_window_raises_invalid_input(cdse: CdseServer) -> None:
    sensed = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    for index in range(30):  # 30 products on one spot at one instant: nothing to cut
        name = _name(sensed, TILES[0]).replace("_R008_", f"_R{index + 1:03d}_")
        cdse.add_product(s2_product_entity(name, b"x", footprint=_footprint(0), checksums=()))
    cdse.max_skip = 10
    driver = _driver(cdse, page_size=5, max_skip=10)
    point = (-59.5, -29.5, -59.5 + 0.004, -29.5 + 0.004)
    with pytest.raises(InvalidInputError, match="too small to split"):
        driver.search(SearchQuery(dataset="S2MSI1C", bbox=point, start=sensed, end=sensed))
    driver.close()


def test_split_in_time_halves_share_the_middle_and_short_windows_stop() -> None:
    query = SearchQuery(dataset="d", start=YEAR_START, end=YEAR_START + timedelta(days=2))
    first, second = split_in_time(query, min_span_s=60) or []
    assert first.start == YEAR_START and first.end == second.start and second.end == query.end
    short = SearchQuery(dataset="d", start=YEAR_START, end=YEAR_START + timedelta(seconds=30))
    assert split_in_time(short, min_span_s=60) is None


def test_split_in_area_keeps_the_geometry_inside_each_quarter() -> None:
    triangle = {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [0, 2], [0, 0]]]}
    pieces = split_in_area(SearchQuery(dataset="d", geometry=triangle)) or []
    assert len(pieces) == 3  # the north-east quarter misses the triangle
    assert all(p.geometry is not None and p.bbox is None for p in pieces)


def test_newest_processing_keeps_the_newest_baseline_once() -> None:
    old = "S2A_MSIL1C_20240101T103021_N0400_R008_T32TQM_20240101T120000"
    new = "S2A_MSIL1C_20240101T103021_N0510_R008_T32TQM_20240102T120000"
    other = "S2A_MSIL1C_20240101T103021_N0400_R008_T33UUP_20240101T120000"
    kept = newest_processing([_scene(old), _scene(other), _scene(new), _scene(new)])
    assert [s.scene_id for s in kept] == [other, new]


def test_complete_search_runs_pieces_concurrently_and_merges() -> None:
    scenes = [_scene(f"X{i}") for i in range(40)]
    calls: list[SearchQuery] = []

    def run(window: SearchQuery) -> list[Scene]:
        calls.append(window)
        assert window.start is not None and window.end is not None
        span = (window.end - window.start).total_seconds()
        if span > 86400 * 3:
            raise WindowTooLargeError(10)
        offset = int((window.start - YEAR_START).total_seconds() // 86400)
        return scenes[offset : offset + 4]

    end = YEAR_START + timedelta(days=16)
    found = complete_search(
        SearchQuery(dataset="d", start=YEAR_START, end=end), run, Splitting("t", max_workers=3)
    )
    assert len({s.scene_id for s in found}) == len(found)
    assert len(calls) > 1


@pytest.mark.parametrize(
    ("dataset", "accepted"),
    [
        ("S2MSI1C", True),
        ("s2msi2a", True),
        ("SENTINEL-1/IW_GRDH_1S", True),
        ("S2MSI1X", False),
        ("x" * 100_000, False),
        ("S2MSI1C\x00", False),
    ],
)
def test_cdse_check_dataset_refuses_unknown_names_listing_known(
    cdse: CdseServer, dataset: str, accepted: bool
) -> None:
    driver = _driver(cdse)
    try:
        if accepted:
            assert driver.check_dataset(dataset) == dataset.strip()
        else:
            with pytest.raises(InvalidInputError) as caught:
                driver.check_dataset(dataset)
            problem = caught.value.problems[0]
            assert problem.field == "dataset" and "S2MSI1C, S2MSI2A" in problem.fix
            assert len(str(caught.value)) < 400
    finally:
        driver.close()


def test_cdse_check_dataset_names_the_confs_catalog_not_the_driver(cdse: CdseServer) -> None:
    driver = _driver(cdse, catalog="copernicus")
    try:
        with pytest.raises(InvalidInputError) as caught:
            driver.check_dataset("S2MSI1X")
        assert caught.value.problems[0].message == (
            "'S2MSI1X' is not a dataset of catalog 'copernicus'"
        )
        assert cdse.requests == []  # CDSE's product types are the driver's own: no request
    finally:
        driver.close()


def test_cdse_counts_on_first_pages_only_and_splits_a_large_window_without_paging_it(
    cdse: CdseServer,
) -> None:
    expected = _fill(cdse, 1500)
    cdse.max_skip = 300
    driver = _driver(cdse, page_size=100, max_skip=300)
    try:
        scenes = driver.search(_year())
    finally:
        driver.close()
    assert sorted(s.scene_id for s in scenes) == sorted(expected)
    queries = [parse_qs(r.query) for r in cdse.requests_to("/odata/v1/Products")]
    assert all(("$count" in q) == ("$skip" not in q) for q in queries)  # first pages only
    year = queries[0]["$filter"]
    assert [q for q in queries if q["$filter"] == year] == [queries[0]]  # its count split it


def test_cdse_server_stopping_short_of_its_count_is_split(cdse: CdseServer) -> None:
    expected = _fill(cdse, 900)
    cdse.max_skip = 300  # lists 400 a search; the driver believes CDSE's 10,000
    driver = _driver(cdse, page_size=100)
    try:
        scenes = driver.search(_year())
    finally:
        driver.close()
    assert sorted(s.scene_id for s in scenes) == sorted(expected)
