"""The ``wait_online`` task: wait for an offline scene without holding a worker slot.

``SceneOnlineSensor`` runs first in each scene's chain (DESIGN 3). Its ``execute`` calls
``include.radcor.waiting.OnlineWait.start`` once per try: the scene is online (maybe at a
lower-priority provider: ``download`` then uses that one) -> success at once; nothing to
download (no download node, already downloaded, archive in place) -> skipped; offline -> ordered
once and recorded, then waited for in the mode the settings name (``wait_settings.py``):

- ``reschedule``: the sensor machinery of ``BaseSensorOperator`` in ``mode="reschedule"``: each
  ``poke`` asks the catalog once; between pokes the task is ``up_for_reschedule`` and no worker
  slot is held;
- ``deferrable``: ``self.defer`` to ``triggers.SceneOnlineTrigger``, which polls in the triggerer;
  ``execute_complete`` raises on anything but ``online``.

Poll interval and timeout are read at run time from the conf, the catalog config or
``TASK_RETRY_DELAY``, so one DAG serves both modes. Errors map as in the other steps: invalid
settings, refused requests (404 unknown scene, 401 credentials) -> ``AirflowFailException`` (no
retry); a transient failure of the first look -> raised, so Airflow retries; a transient failure
while polling -> logged, asked again at the next poll; a timeout -> ``AirflowSensorTimeout``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)

from include.common.errors import (
    CollectionBuilderError,
    ConfigError,
    InvalidInputError,
    ProviderError,
    SceneOfflineError,
)
from include.radcor.conf import RadcorConf, TaskType, task_types
from include.radcor.validation import trusted_conf
from include.radcor.wait_settings import WaitMode
from radcor_api.task_context import label_scene, run_context, scene_id_of

# The sensor's work (activities DB, drivers, the trigger) is imported when it runs, as
# ``tasks`` is: every task process parses the DAG file, which imports this module.
if TYPE_CHECKING:
    from include.radcor.waiting import OnlineWait, WaitStart
    from radcor_api.triggers import SceneOnlineTrigger

log = logging.getLogger(__name__)

PERMANENT_ERRORS: tuple[type[CollectionBuilderError], ...] = (
    InvalidInputError,
    ConfigError,
    ProviderError,
    SceneOfflineError,
)
"""Errors no retry can fix: the task fails at once with the message."""
DEFER_MARGIN_S = 120.0
"""Airflow's own deferral timeout is the wait's timeout plus this: the trigger times out first."""


class SceneOnlineSensor(BaseSensorOperator):
    """Wait until a scene is online at its catalog (ordering it once), in reschedule or defer mode.

    :param conf_dict: the validated radcor conf (the ``validate`` task's result).
    :param plan: the scene's plan (``ScenePlan.to_dict()``), mapped per scene.
    """

    template_fields = ("conf_dict", "plan")
    ui_color = "#fdf2d0"

    def __init__(self, *, conf_dict: Any, plan: Any, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        self.conf_dict = conf_dict
        self.plan = plan
        self._wait: OnlineWait | None = None
        self._conf_model: RadcorConf | None = None

    # -- helpers ------------------------------------------------------------------------------

    def _conf(self) -> RadcorConf:
        """The run's conf: the ``validate`` task's output, parsed once per task process."""
        if self._conf_model is None:
            self._conf_model = trusted_conf(self.conf_dict)
        return self._conf_model

    def _online_wait(self, context: Any) -> OnlineWait:
        from include.radcor.activities import ActivityStore
        from include.radcor.plan import ScenePlan
        from include.radcor.run_scenes import resolve_plan
        from include.radcor.waiting import OnlineWait
        from radcor_api.hooks import CatalogHook

        plan = ScenePlan.from_dict(resolve_plan(self.plan))
        label_scene(plan.scene.scene_id, context)
        conf = self._conf()
        self._wait = OnlineWait(
            plan,
            run_context(self.plan),
            store=ActivityStore(),
            driver_factory=CatalogHook.for_conf(conf).driver_factory,
            force=conf.force,
        )
        return self._wait

    def _fail(self, wait: OnlineWait, err: CollectionBuilderError) -> AirflowFailException:
        message = f"{type(err).__name__}: {err}"
        wait.mark_failed(message)
        return AirflowFailException(message)

    def _trigger(self, wait: OnlineWait, start: WaitStart) -> SceneOnlineTrigger:
        from radcor_api.hooks import CatalogHook
        from radcor_api.triggers import SceneOnlineTrigger

        conf = self._conf()
        catalog = wait.scene.catalog.lower()
        return SceneOnlineTrigger(
            scene=wait.scene.to_dict(),
            catalog=catalog,
            conn_id=CatalogHook(catalog, conf.catalog_args.driver_args()).conn_id(catalog),
            catalog_args=conf.catalog_args.driver_args(),
            poll_interval_s=start.settings.poll_interval_s,
            timeout_s=start.settings.timeout_s,
            started_at=start.started_at.isoformat() if start.started_at else None,
        )

    # -- Airflow entry points -----------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        """Decide (and order) once per try; then succeed, skip, reschedule or defer."""
        if TaskType.DOWNLOAD not in task_types(self._conf()):  # nothing to wait for
            scene_id = scene_id_of(self.plan)
            label_scene(scene_id, context)
            raise AirflowSkipException(f"{scene_id}: no download in this conf")
        wait = self._online_wait(context)
        try:
            start = wait.start()
        except PERMANENT_ERRORS as err:
            raise self._fail(wait, err) from err
        if start.outcome == "skipped":
            raise AirflowSkipException(f"{wait.scene.scene_id}: {start.message}")
        if start.outcome == "online":
            log.info("wait.online_now scene=%s %s", wait.scene.scene_id, start.message)
            return {"status": "online", "message": start.message}
        settings = start.settings
        if settings.mode == WaitMode.DEFERRABLE:
            log.info(
                "wait.defer scene=%s poll_interval_s=%g timeout_s=%g",
                wait.scene.scene_id,
                settings.poll_interval_s,
                settings.timeout_s,
            )
            self.defer(
                trigger=self._trigger(wait, start),
                method_name="execute_complete",
                timeout=timedelta(seconds=settings.timeout_s + DEFER_MARGIN_S),
            )
        self.poke_interval = settings.poll_interval_s
        self.timeout = settings.timeout_s
        try:
            return super().execute(context)
        except AirflowSensorTimeout as err:
            from include.radcor.waiting import timeout_message

            message = timeout_message(wait.scene.scene_id, wait.scene.catalog, settings)
            wait.mark_failed(message)
            raise AirflowSensorTimeout(message) from err

    def poke(self, context: Any) -> bool | PokeReturnValue:
        """Ask the catalog once; a transient failure means "not yet"."""
        wait = self._wait if self._wait is not None else self._online_wait(context)
        try:
            result = wait.check()
        except PERMANENT_ERRORS as err:
            raise self._fail(wait, err) from err
        log.info(
            "wait.poll scene=%s catalog=%s state=%s%s",
            wait.scene.scene_id,
            wait.scene.catalog,
            result.state or "unknown",
            f" error={result.transient_error}" if result.transient_error else "",
        )
        if not result.is_online:
            return False
        return PokeReturnValue(True, {"status": "online", "message": wait.mark_online()})

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired: succeed when online, fail otherwise."""
        wait = self._online_wait(context)
        status = (event or {}).get("status")
        message = str((event or {}).get("message") or "the trigger sent no event")
        if status == "online":
            return {"status": "online", "message": wait.mark_online()}
        if status == "timeout":
            settings = wait.settings()
            from include.radcor.waiting import timeout_message

            message = timeout_message(wait.scene.scene_id, wait.scene.catalog, settings)
            wait.mark_failed(message)
            raise AirflowSensorTimeout(message)
        wait.mark_failed(message)
        raise AirflowFailException(
            f"{wait.scene.scene_id}: waiting for the scene failed: {message}"
        )


__all__ = ["SceneOnlineSensor"]
