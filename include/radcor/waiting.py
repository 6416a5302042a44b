"""The ``wait_online`` step of one scene, free of Airflow: decide, order once, record, poll.

The step runs before ``download`` in every scene's chain (DESIGN 3). For the scene's download
nodes still to do (not skipped as published, not downloaded by an earlier try, archive not already
in place) it asks ``include.collectors.availability.decide`` once:

- online at the searched catalog: done, nothing recorded (the common case stays quiet);
- online at a lower-priority provider (``fallback_online``): a ``wait_online`` activity records
  that provider, and ``download`` tries it first (``preferred_provider``);
- offline: the scene is ordered once and a ``wait_online`` activity is recorded ``running`` with
  the order (catalog, order id, mode, poll interval, timeout); the orchestrator then polls
  (``check``) until ``mark_online`` or ``mark_failed`` closes it.

Activity rows of this step have node id ``<download node id>:wait_online``, task type
``wait_online`` and the download node's collection, one per download node that waited.
Re-entering the step in the same task try (a reschedule) makes no provider request: the running
rows say the order is placed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from include.collectors.availability import (
    PollResult,
    archive_in_place,
    decide,
    describe,
    poll,
)
from include.common.config import (
    CatalogConfig,
    CollectionConfig,
    load_catalogs,
    load_collections,
)
from include.common.storage import archive_dir
from include.radcor.activities import (
    DONE_STATES,
    Activity,
    ActivityKey,
    ActivityState,
    ActivityStore,
)
from include.radcor.conf import TaskType
from include.radcor.context import DriverFactory, RunContext
from include.radcor.plan import PlanNode, ScenePlan, nodes_of_type
from include.radcor.wait_settings import WaitSettings, resolve_wait_settings

log = logging.getLogger(__name__)

WAIT_TASK_TYPE = "wait_online"


def wait_node_id(node_id: str) -> str:
    """Return the activity node id of the wait for download node ``node_id``."""
    return f"{node_id}:{WAIT_TASK_TYPE}"


def preferred_provider(
    store: ActivityStore, run_id: str, scene_id: str, node_id: str
) -> str | None:
    """Return the provider the wait chose for download node ``node_id`` (None: the usual order).

    Only a finished wait (``success``) that recorded a ``provider`` in its outputs counts.
    """
    wanted = wait_node_id(node_id)
    for activity in store.for_run(run_id, scene_id):
        if activity.key.node_id == wanted and activity.status in DONE_STATES:
            provider = activity.outputs.get("provider")
            return str(provider) if provider else None
    return None


@dataclass(frozen=True, slots=True)
class WaitStart:
    """What the first look at the scene decided."""

    outcome: Literal["skipped", "online", "waiting"]
    message: str
    settings: WaitSettings
    started_at: datetime | None = None
    """When the wait began (the first ``running`` record), for the timeout."""

    @property
    def is_waiting(self) -> bool:
        """Whether the orchestrator must poll until online."""
        return self.outcome == "waiting"


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:  # SQLite drops the zone
        return value.replace(tzinfo=UTC)
    return value


class OnlineWait:
    """The wait of one scene for its download nodes, recorded as ``wait_online`` activities.

    Args:
        plan: the scene's plan.
        context: the orchestrator's opaque ids (the task instance string includes the try).
        store: the activities store.
        driver_factory: builds a driver by catalog name (the task layer adds credentials).
        collections: configured collections (default ``config/collections.yaml``).
        catalogs: configured catalogs (default ``config/catalogs.yaml``).
        env: the environment for ``TASK_RETRY_DELAY`` (default ``os.environ``).
        sleep: the wait between in-task retries of provider calls.
        force: the conf's ``force``: an archive already in place will be downloaded again, so
            the scene must be online for it.
    """

    def __init__(
        self,
        plan: ScenePlan,
        context: RunContext,
        *,
        store: ActivityStore,
        driver_factory: DriverFactory,
        collections: Mapping[str, CollectionConfig] | None = None,
        catalogs: Mapping[str, CatalogConfig] | None = None,
        env: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        force: bool = False,
    ) -> None:
        self.plan = plan
        self.force = force
        self.context = context
        self.store = store
        self.driver_factory = driver_factory
        self.collections = collections if collections is not None else load_collections()
        self.catalogs = catalogs if catalogs is not None else load_catalogs()
        self.env = env if env is not None else os.environ
        self.sleep = sleep
        self.scene = plan.scene
        self.log = logging.LoggerAdapter(log, {"scene": plan.scene.scene_id})

    # -- what to wait for ---------------------------------------------------------------------

    def download_nodes(self) -> list[PlanNode]:
        """Return the scene's download nodes (tree pre-order)."""
        return nodes_of_type(self.plan, TaskType.DOWNLOAD)

    def settings(self) -> WaitSettings:
        """Return the wait settings: the first download node's args over the catalog's options.

        Raises:
            ConfigError: a wait option of the catalog or ``TASK_RETRY_DELAY`` is invalid.
            InvalidInputError: a node's wait args are invalid.
        """
        nodes = self.download_nodes()
        catalog = self.scene.catalog.lower()
        return resolve_wait_settings(
            catalog,
            self.catalogs.get(catalog),
            nodes[0].args if nodes else None,
            self.env,
        )

    def _activities(self) -> dict[str, Activity]:
        return {
            a.key.node_id: a for a in self.store.for_run(self.context.run_id, self.scene.scene_id)
        }

    def _todo(self, activities: Mapping[str, Activity]) -> tuple[list[PlanNode], list[str]]:
        """Return the download nodes that need the scene, and why the others do not."""
        todo: list[PlanNode] = []
        reasons: list[str] = []
        for node in self.download_nodes():
            done = activities.get(node.node_id)
            if node.skip_reason:
                reasons.append(f"{node.collection}: {node.skip_reason}")
            elif done is not None and done.status in DONE_STATES:
                reasons.append(f"{node.collection}: downloaded already ({done.status})")
            else:
                dest = archive_dir(
                    node.collection, self.scene.tile, self.scene.datetime, self.scene.scene_id
                )
                found = None if self.force else archive_in_place(self.scene, dest)
                if found is not None:
                    reasons.append(f"{node.collection}: archive in place ({found.name})")
                else:
                    todo.append(node)
        return todo, reasons

    def _key(self, node: PlanNode) -> ActivityKey:
        return ActivityKey(
            dag_id=self.context.dag_id,
            run_id=self.context.run_id,
            scene_id=self.scene.scene_id,
            node_id=wait_node_id(node.node_id),
            task_type=WAIT_TASK_TYPE,
            collection=node.collection,
        )

    # -- the steps ----------------------------------------------------------------------------

    def start(self) -> WaitStart:
        """Look at the scene once: skip, online now (maybe elsewhere), or ordered and waiting.

        Raises:
            SceneOfflineError: the provider says the scene can never be ordered there.
            ProviderError: 404 unknown scene, 401/403 credentials (permanent).
            TransientError: the provider kept failing after the in-task retries.
            ConfigError, InvalidInputError: invalid wait settings.
        """
        settings = self.settings()
        if not self.download_nodes():
            return WaitStart("skipped", "no download node in this conf", settings)
        activities = self._activities()
        todo, reasons = self._todo(activities)
        if not todo:
            return WaitStart("skipped", "nothing to download: " + "; ".join(reasons), settings)
        waits = [activities.get(wait_node_id(n.node_id)) for n in todo]
        if all(
            w is not None
            and w.status == ActivityState.RUNNING
            and w.task_instance == self.context.task_instance
            for w in waits
        ):  # a reschedule of the same try: the order is placed, only poll
            started = min(
                (_aware(w.started_at) or _now() for w in waits if w is not None), default=_now()
            )
            return WaitStart(
                "waiting", "waiting for the order placed earlier", settings, started_at=started
            )
        decision = decide(
            self.scene,
            [self.collections[n.collection] for n in todo],
            driver_factory=self.driver_factory,
            use_fallback=settings.fallback_online,
            sleep=self.sleep,
        )
        summary = describe(decision)
        waiting = False
        for node, previous in zip(todo, waits, strict=True):
            provider = decision.providers.get(node.collection)
            if provider is None:
                waiting = True
                self.store.record(
                    self._key(node),
                    ActivityState.RUNNING,
                    catalog=decision.catalog,
                    provider=decision.catalog,
                    task_instance=self.context.task_instance,
                    message=(
                        f"{summary}; waiting until online ({settings.mode}, poll every "
                        f"{settings.poll_interval_s:g} s, timeout {settings.timeout_s:g} s)"
                    ),
                    outputs={
                        "order": {
                            "catalog": decision.catalog,
                            "order_id": decision.order_id,
                            "state": str(decision.state),
                            "ordered_at": _now().isoformat(),
                        },
                        "settings": settings.to_dict(),
                        "fallback_notes": list(decision.notes),
                    },
                )
            elif provider != decision.catalog or previous is not None:
                self.store.record(
                    self._key(node),
                    ActivityState.SUCCESS,
                    catalog=decision.catalog,
                    provider=provider,
                    task_instance=self.context.task_instance,
                    message=summary,
                    outputs={
                        "provider": provider,
                        "fallback": provider != decision.catalog,
                        "state": str(decision.state),
                    },
                )
        self.log.info(
            "wait.start scene=%s outcome=%s %s",
            self.scene.scene_id,
            "waiting" if waiting else "online",
            summary,
        )
        if not waiting:
            return WaitStart("online", summary, settings)
        return WaitStart("waiting", summary, settings, started_at=_now())

    def check(self) -> PollResult:
        """Ask the searched catalog once whether the scene is online (no in-task retry).

        Raises:
            ProviderError: the provider refused (the scene is gone, credentials are wrong).
            SceneOfflineError: the provider says the scene can never be online there.
        """
        with self.driver_factory(self.scene.catalog.lower()) as driver:
            return poll(self.scene, driver)

    def _running(self) -> list[Activity]:
        wanted = {wait_node_id(n.node_id) for n in self.download_nodes()}
        return [
            a
            for node_id, a in self._activities().items()
            if node_id in wanted and a.status == ActivityState.RUNNING
        ]

    def mark_online(self) -> str:
        """Close the running waits as ``success``; return a one-line summary."""
        now = _now()
        lines = []
        for activity in self._running():
            started = _aware(activity.started_at) or now
            waited_s = (now - started).total_seconds()
            outputs: dict[str, Any] = {
                **activity.outputs,
                "provider": activity.catalog,
                "online_at": now.isoformat(),
                "waited_s": round(waited_s),
            }
            message = f"online at {activity.catalog} after {waited_s:.0f} s"
            self.store.record(
                activity.key,
                ActivityState.SUCCESS,
                task_instance=self.context.task_instance,
                message=message,
                outputs=outputs,
            )
            lines.append(message)
        summary = "; ".join(dict.fromkeys(lines)) or "online"
        self.log.info("wait.online scene=%s %s", self.scene.scene_id, summary)
        return summary

    def mark_failed(self, error: str) -> None:
        """Close the running waits as ``failed`` with ``error`` (a timeout, a refusal)."""
        for activity in self._running():
            self.store.record(
                activity.key,
                ActivityState.FAILED,
                task_instance=self.context.task_instance,
                error=error,
            )
        self.log.error("wait.failed scene=%s error=%s", self.scene.scene_id, error)


def timeout_message(scene_id: str, catalog: str, settings: WaitSettings) -> str:
    """Return the error of a wait that ran out of time, with the fix."""
    return (
        f"{scene_id}: still offline at {catalog} after {settings.timeout_s:g} s "
        f"(wait_timeout_s); the order may still complete: clear the wait_online task later to "
        f"wait again, or raise wait_timeout_s in the download node's args or in "
        f"config/catalogs.yaml"
    )


__all__ = [
    "WAIT_TASK_TYPE",
    "OnlineWait",
    "WaitStart",
    "preferred_provider",
    "timeout_message",
    "wait_node_id",
]
