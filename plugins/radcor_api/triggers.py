"""Deferrable wait for an offline scene: ``SceneOnlineTrigger`` polls its catalog in the triggerer.

The ``wait_online`` task (``sensors.SceneOnlineSensor``) orders the scene, then defers to this
trigger when the wait mode is ``deferrable``. The triggerer imports it by the classpath
``serialize()`` returns (``radcor_api.triggers.SceneOnlineTrigger``: ``plugins/`` is on its
path), with JSON-only arguments. ``run()`` asks the catalog every ``poll_interval_s`` whether
the scene is online, running the synchronous driver call in a thread, and yields one event:
``{"status": "online" | "error" | "timeout", "message": ...}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from include.collectors.availability import PollResult, poll
from include.collectors.base import Scene
from include.common.errors import CollectionBuilderError
from radcor_api.hooks import CatalogHook

CLASSPATH = "radcor_api.triggers.SceneOnlineTrigger"


def _event(status: str, message: str) -> TriggerEvent:
    return TriggerEvent({"status": status, "message": message})  # type: ignore[no-untyped-call]


class SceneOnlineTrigger(BaseTrigger):
    """Fire once the scene is online at its catalog, or when the wait times out.

    :param scene: the scene as searched (``Scene.to_dict()``).
    :param catalog: the catalog to ask (the one the run searched).
    :param conn_id: the Airflow Connection with the catalog's credentials, if any, as
        ``CatalogHook.conn_id`` named it when the wait began; informational (the hook picks
        it again from ``catalog`` and ``catalog_args``), kept so stored triggers still load.
    :param catalog_args: the conf's ``catalog_args`` (endpoint overrides; never credentials).
    :param poll_interval_s: seconds between availability checks.
    :param timeout_s: the longest wait, counted from ``started_at``.
    :param started_at: ISO 8601 time the wait began (the order), so a restarted trigger keeps
        the same deadline; default now.
    """

    def __init__(
        self,
        *,
        scene: dict[str, Any],
        catalog: str,
        conn_id: str | None,
        catalog_args: dict[str, Any],
        poll_interval_s: float,
        timeout_s: float,
        started_at: str | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.scene = scene
        self.catalog = catalog
        self.conn_id = conn_id
        self.catalog_args = catalog_args
        self.poll_interval_s = float(poll_interval_s)
        self.timeout_s = float(timeout_s)
        self.started_at = started_at or datetime.now(UTC).isoformat()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and the JSON-only arguments that rebuild this trigger."""
        return (
            CLASSPATH,
            {
                "scene": self.scene,
                "catalog": self.catalog,
                "conn_id": self.conn_id,
                "catalog_args": self.catalog_args,
                "poll_interval_s": self.poll_interval_s,
                "timeout_s": self.timeout_s,
                "started_at": self.started_at,
            },
        )

    def _check(self) -> PollResult:
        """One availability check (blocking: run it in a thread)."""
        with CatalogHook(self.catalog, self.catalog_args).get_driver(self.catalog) as driver:
            return poll(Scene.from_dict(self.scene), driver)

    def _remaining_s(self) -> float:
        started = datetime.fromisoformat(self.started_at)
        if started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
        return self.timeout_s - (datetime.now(UTC) - started).total_seconds()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until online, a permanent error or the timeout; yield exactly one event."""
        scene_id = self.scene.get("scene_id", "?")
        polls = 0
        started = time.monotonic()
        while True:
            polls += 1
            try:
                result = await asyncio.to_thread(self._check)
            except CollectionBuilderError as err:  # refused for good: no later poll can help
                yield _event("error", f"{type(err).__name__}: {err}")
                return
            self.log.info(
                "wait.poll scene=%s catalog=%s poll=%d state=%s%s",
                scene_id,
                self.catalog,
                polls,
                result.state or "unknown",
                f" error={result.transient_error}" if result.transient_error else "",
            )
            if result.is_online:
                waited_s = time.monotonic() - started
                yield _event(
                    "online",
                    f"{scene_id}: online at {self.catalog} after {polls} "
                    f"polls ({waited_s:.0f} s in the triggerer)",
                )
                return
            remaining_s = self._remaining_s()
            if remaining_s <= 0:
                yield _event(
                    "timeout",
                    f"{scene_id}: still offline at {self.catalog} after "
                    f"{self.timeout_s:g} s ({polls} polls)",
                )
                return
            await asyncio.sleep(min(self.poll_interval_s, remaining_s))


__all__ = ["CLASSPATH", "SceneOnlineTrigger"]
