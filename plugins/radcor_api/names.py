"""Names the radcor DAG, its tasks, the listener and the API share: task ids, XCom keys, pools.

Change a name here and every side follows. Cheap to import (no Airflow import at the top): the
plugin's listener loads it in every Airflow component.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import Asset

    from include.radcor.conf import RadcorConf

URL_PREFIX = "/radcor-api"
"""Where the plugin serves its own API and pages (the upstream's paths are served beside it)."""
VALIDATE_TASK_ID = "validate"
SEARCH_TASK_ID = "search"
REPORT_TASK_ID = "report"
CHILD_RUNS_TASK_ID = "child_runs"
SCENE_RUNS_TASK_ID = "scene_runs"
"""The parent run's wait for each child run (one mapped instance per child run)."""
CHILD_SCENES_TASK_ID = "scenes"
"""A radcor DAG has ``search``; its child DAG (``<dag_id>_scenes``) has ``scenes``."""
WAIT_ONLINE_TASK_ID = "wait_online"

SCENE_GROUP = "scene"
"""The mapped task group of one scene's chain: ``scene.wait_online``, ``scene.download_cdse``..."""
PUBLISH_TASK_ID = f"{SCENE_GROUP}.publish"

STEP_SKIPS_KEY = "skipmixin_key"
"""XCom key of ``search`` (``scenes`` in a child run) naming the steps the conf does not ask
for, read by the scheduler's ``NotPreviouslySkippedDep`` (``tasks.push_step_skips``)."""
PREVIEW_KEY = "preview"
COUNT_KEY = "count"
RUNS_KEY = "runs"
"""XComs of ``search``: the preview, how many scenes were planned, the child runs' confs."""
CONF_KEY = "conf"
PART_KEY = "part"
"""XComs of a child run's ``scenes``: the parent's validated conf and which range it runs."""

CHILD_SUFFIX = "_scenes"
"""The companion DAG of DAG ``x`` is ``x_scenes``."""

DOWNLOAD_TASK_PREFIX = "download_"
"""A scene's download task per provider: ``scene.download_cdse``, ``scene.download_usgs``..."""

PUBLISHED_ALIAS = "collection-builder-published"
"""The publish step's outlet: an asset alias resolving to one asset per published collection."""


def child_dag_id(dag_id: str) -> str:
    """Return the id of the DAG that runs ranges of ``dag_id``'s scenes."""
    return f"{dag_id}{CHILD_SUFFIX}"


def download_groups() -> dict[str, int]:
    """Return the providers' download slot groups (``config/catalogs.yaml``) and their slots."""
    from include.collectors.providers import download_slot_groups  # drivers: not at import
    from include.common.config import load_catalogs

    return download_slot_groups(load_catalogs())


def download_group_of(conf: RadcorConf) -> str:
    """Return the slot group of the conf's catalog: whose download task and pool it uses."""
    from include.collectors.providers import slot_group  # drivers: not at import
    from include.common.config import load_catalogs

    return slot_group(conf.catalog, load_catalogs())


def download_task_id(group: str) -> str:
    """Return the task id (in the scene group) of the downloads of slot group ``group``."""
    return DOWNLOAD_TASK_PREFIX + re.sub(r"[^A-Za-z0-9_-]", "_", group)


def download_pool(group: str) -> str:
    """Return the Airflow pool of slot group ``group``'s downloads: ``download_<group>``.

    Airflow ignores a pool given per mapped task instance (DESIGN 3.1, apache/airflow#33657),
    so every provider gets its own download task in the scene chain, in its own pool, sized by
    the provider's ``max_connections``; the run's catalog picks which one runs. The pools are
    made by ``python -m radcor_api.pools`` (scripts/prepare_db.sh, docker/airflow-init.sh) and,
    when missing, by the plugin's listener as a run starts (``radcor_api.pools``).
    """
    return DOWNLOAD_TASK_PREFIX + group


def published_asset(collection: str) -> Asset:
    """Return the Asset a downstream DAG schedules on to run when ``collection`` gets new data."""
    from airflow.sdk import Asset  # the listener imports this module in every component

    return Asset(f"stac://collection-builder/{collection}")
