"""The providers' download pools (``download_cdse``, ``download_usgs``...), made before use.

Each provider's download task runs in its own Airflow pool (``names.download_pool``), sized
by the provider's ``max_connections`` in ``config/catalogs.yaml``. Airflow does not create pools
on demand, and a task in a missing pool is never scheduled, so ``ensure_download_pools`` creates
the missing ones and leaves existing pools alone (a size set in the UI or CLI stays). It runs:

- from ``python -m radcor_api.pools`` (``scripts/prepare_db.sh``, ``docker/airflow-init.sh``),
  for every configured provider;
- from the plugin's listener when a radcor run starts (``listeners.py``), for the download pools
  of that run's DAG: a provider added to ``catalogs.yaml`` later, a deployment that skipped the
  init step.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from radcor_api.names import SCENE_GROUP, download_groups, download_pool, download_task_id

log = logging.getLogger(__name__)


def configured_pools() -> dict[str, int]:
    """Return every provider's download pool with its slots (``config/catalogs.yaml``)."""
    return {download_pool(group): slots for group, slots in download_groups().items()}


def dag_download_pools(dag: Any) -> dict[str, int]:
    """Return the providers' download pools the tasks of ``dag`` run in, with their slots.

    A pool a pipeline names itself (``pools: {download: ...}``) is the operator's to make.
    """
    wanted = {}
    for group, slots in download_groups().items():
        pool, task_id = download_pool(group), f"{SCENE_GROUP}.{download_task_id(group)}"
        if dag.has_task(task_id) and dag.get_task(task_id).pool == pool:
            wanted[pool] = slots
    return wanted


def ensure_download_pools(session: Any, wanted: Mapping[str, int]) -> list[str]:
    """Create the pools of ``wanted`` (name -> slots) that do not exist; return their names.

    Safe when two processes do it at once: a pool the other one created first is left as it is.
    """
    from airflow.models.pool import Pool
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    if not wanted:
        return []
    existing = set(session.scalars(select(Pool.pool).where(Pool.pool.in_(list(wanted)))))
    created = []
    for name, slots in wanted.items():
        if name in existing:
            continue
        try:
            with session.begin_nested():
                session.add(
                    Pool(
                        pool=name,
                        slots=slots,
                        description="one provider's download slots (max_connections in "
                        "config/catalogs.yaml)",
                        include_deferred=False,
                    )
                )
        except IntegrityError:
            continue
        created.append(name)
        log.info("pools.created pool=%s slots=%d", name, slots)
    return created


def main() -> int:
    """Create the missing download pools of every configured provider; print what exists."""
    from airflow.utils.session import create_session

    wanted = configured_pools()
    with create_session() as session:
        created = ensure_download_pools(session, wanted)
    for name, slots in wanted.items():
        state = f"created with {slots} slots" if name in created else "exists, size kept"
        print(f"pool {name}: {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
