"""Make each published collection's Asset, tied to the publish alias, exist before a run publishes.

The first time two ``publish`` tasks add an event for the same collection at the same moment,
Airflow's execution API can fail one of them. Both create the Asset the alias resolves to (or the
alias-to-asset link) in their own transaction. The second insert hits a unique key, and the API
sets that task instance to ``failed`` without a retry, although its scene was published. Its
asset event is lost too.

``listeners.on_dag_run_running`` calls :func:`prime` in the scheduler, with the run's
collections, when a run starts. By the time any publish task ends, the rows exist, so Airflow
only reads them. Runs in the scheduler (metadata DB access); never in a task.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from radcor_api.names import PUBLISHED_ALIAS, published_asset

log = logging.getLogger(__name__)


def prime(collections: Iterable[str], session: Session) -> list[str]:
    """Create the Asset of each collection and its link to the publish alias, where missing.

    Mirrors what Airflow does on the first event through an alias: an asset named by its URI,
    group ``asset``, no extra, not ``active`` (no DAG declares it). Safe to race with another
    scheduler or a publish task: a unique-key clash means the row is there already.

    Returns the collections for which something was created.
    """
    from airflow.models.asset import AssetAliasModel, AssetModel

    created: list[str] = []
    for collection in sorted(set(collections)):
        key = published_asset(collection)
        try:
            with session.begin_nested():
                asset = session.scalar(
                    select(AssetModel).where(AssetModel.name == key.name, AssetModel.uri == key.uri)
                )
                made = asset is None
                if asset is None:
                    asset = AssetModel(name=key.name, uri=key.uri, group=key.group, extra={})
                    session.add(asset)
                if all(alias.name != PUBLISHED_ALIAS for alias in asset.aliases):
                    alias = session.scalar(
                        select(AssetAliasModel).where(AssetAliasModel.name == PUBLISHED_ALIAS)
                    )
                    asset.aliases.append(alias or AssetAliasModel(name=PUBLISHED_ALIAS))
                    made = True
                session.flush()
        except IntegrityError:
            # made at the same moment by another scheduler's prime or by Airflow's first event:
            # both make the asset and its link in one transaction, so both exist now
            log.info("published asset %s: made concurrently elsewhere", key.uri)
            continue
        if made:
            created.append(collection)
    if created:
        log.info("published assets ready before publishing: %s", ", ".join(created))
    return created
