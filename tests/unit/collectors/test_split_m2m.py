"""Complete searches for USGS M2M: a year over a large area, more scenes than one search lists.

The loopback M2M server lists at most ``max_results`` scenes of one ``scene-search`` (M2M's
50,000, here 500) while ``totalHits`` counts them all, and compares acquisition dates only.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from include.collectors.base import Credentials, SearchQuery
from include.collectors.usgs_m2m import UsgsM2MDriver
from include.common.errors import InvalidInputError
from tests.helpers.m2m_server import APP_TOKEN, USERNAME, M2MScene, M2MServer
from tests.helpers.realdata import realdata_dir

AREA = (-60.0, -30.0, -40.0, -10.0)
YEAR_START = datetime(2024, 1, 1, tzinfo=UTC)
YEAR_END = datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)
BUSY_DAY = datetime(2024, 6, 15, 13, 0, tzinfo=UTC)
CAP = 500


def _scene(acquired: datetime, path: int, row: int, processed: str = "20250110") -> M2MScene:
    w, s = AREA[0] + path % 20, AREA[1] + row % 20
    return M2MScene(
        dataset="landsat_ot_c2_l1",
        display_id=f"LC08_L1TP_{path:03d}{row:03d}_{acquired:%Y%m%d}_{processed}_02_T1",
        entity_id=f"LC8{path:03d}{row:03d}{acquired:%Y%j}LGN00",
        acquired=acquired,
        cloud_pct=10.0,
        path=path,
        row=row,
        corners=[(w, s + 0.9), (w + 0.9, s + 0.9), (w + 0.9, s), (w, s)],
        published="2025-01-10 12:00:00",
    )


def _fill(server: M2MServer, *, yearly: int, busy: int, reprocessed: int) -> set[str]:
    """Serve ``yearly`` scenes over 2024, ``busy`` more on one day, older processings too."""
    expected: set[str] = set()
    scenes: list[M2MScene] = []
    for index in range(yearly):
        day, slot = index % 366, index // 366
        acquired = YEAR_START + timedelta(days=day, hours=13, seconds=slot)
        scenes.append(_scene(acquired, 10 + slot, 1 + day % 19))
        if index < reprocessed:  # an older processing of the same acquisition
            scenes.append(_scene(acquired, 10 + slot, 1 + day % 19, processed="20250105"))
    for index in range(busy):  # one day with more scenes than one search lists: split by area
        scenes.append(
            _scene(BUSY_DAY + timedelta(seconds=index), 100 + index // 20, 1 + index % 20)
        )
    for scene in scenes:
        server.scenes.append(scene)
        if "_20250105_" not in scene.display_id:
            expected.add(scene.display_id)
    return expected


@pytest.fixture
def m2m() -> Iterator[M2MServer]:
    folder = realdata_dir()
    if not (folder / "kapadia-usgs").is_dir() or not (folder / "usgs-m2m-docs").is_dir():
        pytest.skip(f"real USGS samples not found under {folder}; set REALDATA_DIR")
    server = M2MServer(Path(folder), max_results=CAP)
    try:
        yield server
    finally:
        server.close()


def _driver(server: M2MServer, **options: Any) -> UsgsM2MDriver:
    defaults: dict[str, Any] = {"catalog": "usgs", "page_size": 100, "timeout_s": 30.0}
    return UsgsM2MDriver(
        url=server.url,
        credentials=Credentials(username=USERNAME, password=APP_TOKEN),
        options={**defaults, **options},
    )


def _year(**changes: Any) -> SearchQuery:
    values: dict[str, Any] = {
        "dataset": "landsat_ot_c2_l1",
        "bbox": AREA,
        "start": YEAR_START,
        "end": YEAR_END,
    }
    return SearchQuery(**{**values, **changes})


def _starting_numbers(server: M2MServer) -> list[int]:
    return [int(r.json()["startingNumber"]) for r in server.calls("scene-search")]


def test_m2m_year_past_max_results_returns_every_scene_once(m2m: M2MServer) -> None:
    expected = _fill(m2m, yearly=3000, busy=600, reprocessed=100)
    driver = _driver(m2m, max_results=CAP)
    try:
        scenes = driver.search(_year())
    finally:
        driver.close()
    ids = [scene.scene_id for scene in scenes]
    assert len(ids) == len(set(ids)) == 3600
    assert set(ids) == expected  # the newer processing won
    assert ids == [s.scene_id for s in sorted(scenes, key=lambda s: (s.datetime, s.scene_id))]
    assert max(_starting_numbers(m2m)) <= CAP  # never asked past what M2M lists
    days = {
        (r.json()["sceneFilter"]["acquisitionFilter"]["start"],) for r in m2m.calls("scene-search")
    }
    assert len(days) > 8  # split by time (whole days), and the busy day by area too
    areas = {
        str(r.json()["sceneFilter"]["spatialFilter"]["lowerLeft"])
        for r in m2m.calls("scene-search")
    }
    assert len(areas) > 1


def test_m2m_driver_unaware_of_the_cap_still_splits_when_the_server_stops_short(
    m2m: M2MServer,
) -> None:
    expected = _fill(m2m, yearly=1200, busy=0, reprocessed=0)
    driver = _driver(m2m)  # believes M2M's 50,000: learns the cap from a short listing
    try:
        scenes = driver.search(_year())
    finally:
        driver.close()
    assert {s.scene_id for s in scenes} == expected and len(scenes) == 1200


def test_m2m_iter_search_streams_windows_each_scene_once(m2m: M2MServer) -> None:
    expected = _fill(m2m, yearly=1500, busy=0, reprocessed=0)
    driver = _driver(m2m, max_results=CAP, describe_downloads=False)
    seen: list[str] = []
    try:
        iterator = driver.iter_search(_year())
        first = next(iterator)
        # the first window came out while later windows were still to be asked
        asked_before = len(m2m.calls("scene-search"))
        seen = [first.scene_id, *(scene.scene_id for scene in iterator)]
    finally:
        driver.close()
    assert len(seen) == len(set(seen)) and set(seen) == expected
    assert asked_before < len(m2m.calls("scene-search"))


def test_m2m_one_day_on_one_spot_past_the_cap_is_refused_naming_the_fix(m2m: M2MServer) -> None:
    for index in range(CAP + 10):  # 510 scenes on one day over one spot: nothing left to cut
        scene = _scene(BUSY_DAY + timedelta(seconds=index), 100 + index // 20, 1 + index % 20)
        scene.corners = [(-60.0, -29.0), (-59.0, -29.0), (-59.0, -30.0), (-60.0, -30.0)]
        m2m.scenes.append(scene)
    spot = (AREA[0] + 0.1, AREA[1] + 0.1, AREA[0] + 0.105, AREA[1] + 0.105)
    driver = _driver(m2m, max_results=CAP)
    try:
        with pytest.raises(InvalidInputError, match="too small to split") as caught:
            driver.search(_year(bbox=spot, start=BUSY_DAY, end=BUSY_DAY + timedelta(hours=1)))
    finally:
        driver.close()
    assert "options.max_pages" in caught.value.problems[0].fix
