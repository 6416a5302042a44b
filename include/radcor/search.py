"""Search the conf's catalog: the scenes a run works on, oldest first."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator

from include.collectors.base import CatalogDriver, Scene, SearchQuery
from include.collectors.retries import call_with_retries
from include.radcor.conf import RadcorConf, to_search_query

log = logging.getLogger(__name__)

SCENE_PAGE = 500
"""Scenes a streamed search hands on at a time (``iter_scene_pages``)."""


def search_scenes(conf: RadcorConf, driver: CatalogDriver) -> list[Scene]:
    """Search the conf's catalog and return the matching scenes, oldest first.

    Transient provider failures are retried in the task (``retries.call_with_retries``).
    """
    query = conf_query(conf)
    started = time.monotonic()
    scenes = call_with_retries(lambda: driver.search(query), what=f"{conf.catalog} search")
    if conf.platform_wanted:
        scenes = [s for s in scenes if platform_matches(s, conf.platform_wanted)]
    log.info(
        "search.done catalog=%s dataset=%s scenes=%d elapsed_s=%.1f",
        conf.catalog,
        query.dataset,
        len(scenes),
        time.monotonic() - started,
    )
    return scenes


def conf_query(conf: RadcorConf) -> SearchQuery:
    """Return the search the conf asks of its catalog."""
    return to_search_query(conf)


def iter_scene_pages(
    conf: RadcorConf, driver: CatalogDriver, *, page_size: int = SCENE_PAGE
) -> Iterator[list[Scene]]:
    """Yield the conf's scenes in pages of ``page_size``, as the catalog lists them (unsorted).

    Holds one page and what the driver holds (one window of a split search): a search of
    25,000 scenes never sits in memory at once. A driver's split search gives each scene id
    once; two processings of one product may both come (``split.newest_of`` keeps one).
    Transient failures are not retried here: the caller retries the whole stream.
    """
    page: list[Scene] = []
    for scene in driver.iter_search(conf_query(conf)):
        if conf.platform_wanted and not platform_matches(scene, conf.platform_wanted):
            continue
        page.append(scene)
        if len(page) >= page_size:
            yield page
            page = []
    if page:
        yield page


_ID_PLATFORMS = {"S2A": "sentinel2a", "S2B": "sentinel2b", "S2C": "sentinel2c"}


def _platform_key(text: str) -> str:
    """``Sentinel-2A``, ``sentinel_2a`` and ``SENTINEL2A`` compare equal; ``LANDSAT_8`` too."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def scene_platform(scene: Scene) -> str | None:
    """Return the scene's platform key: the catalog's, else read from the scene id."""
    if scene.platform:
        return _platform_key(scene.platform)
    head = scene.scene_id.split("_")[0].upper()
    if head in _ID_PLATFORMS:
        return _ID_PLATFORMS[head]
    match = re.fullmatch(r"L[COTEM]0?(\d)", head)
    return f"landsat{match.group(1)}" if match else None


def platform_matches(scene: Scene, wanted: str) -> bool:
    """Return whether the scene is of ``wanted`` (upstream's ``platform`` filter).

    A family matches its members: ``Sentinel-2`` takes S2A, S2B and S2C scenes.
    """
    have = scene_platform(scene)
    return have is not None and have.startswith(_platform_key(wanted))
