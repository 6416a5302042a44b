"""Search the conf's catalog: the scenes a run works on, oldest first."""

from __future__ import annotations

import logging
import re
import time

from include.collectors.base import CatalogDriver, Scene
from include.collectors.retries import call_with_retries
from include.common.config import load_catalogs
from include.radcor.conf import RadcorConf, to_search_query

log = logging.getLogger(__name__)


def search_scenes(conf: RadcorConf, driver: CatalogDriver) -> list[Scene]:
    """Search the conf's catalog and return the matching scenes, oldest first.

    Transient provider failures are retried in the task (``retries.call_with_retries``).
    """
    catalog = load_catalogs()[conf.catalog]
    query = to_search_query(conf, catalog)
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
