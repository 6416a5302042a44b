"""Search the conf's catalog: the scenes a run works on, oldest first."""

from __future__ import annotations

import logging
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
    log.info(
        "search.done catalog=%s dataset=%s scenes=%d elapsed_s=%.1f",
        conf.catalog,
        query.dataset,
        len(scenes),
        time.monotonic() - started,
    )
    return scenes
