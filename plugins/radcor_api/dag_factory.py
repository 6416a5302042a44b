"""Builds radcor DAGs: validate -> search -> one mapped chain per scene -> report.

Only the DAG's shape lives here, with light imports: every task process parses the DAG file
again, so what the tasks do is in ``radcor_api.task_bodies``, imported inside each task. A step
the conf does not ask for is skipped before that import and without any database access. No
Connection, Variable, network or DB access happens at parse time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Asset, AssetAlias, Param, dag, get_current_context, task, task_group
from airflow.sdk import conf as airflow_conf
from airflow.sdk.exceptions import AirflowSkipException

from include.radcor.conf import TaskType, params_schema, task_types
from radcor_api.sensors import SceneOnlineSensor

log = logging.getLogger(__name__)

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "collection-builder",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
}


def task_retry_args() -> dict[str, Any]:
    """Return Airflow's retry arguments of the tasks from ``[collection_builder]`` (docs/faults.md).

    ``task_retries`` (default 2), ``task_retry_delay_s`` (30), ``task_retry_exponential_backoff``
    (the delay multiplier, 2.0; 0 turns it off) and ``task_max_retry_delay_s`` (1800); set them in
    ``airflow.cfg`` or as ``AIRFLOW__COLLECTION_BUILDER__TASK_RETRIES`` and so on. ``validate``
    and ``report`` never retry; permanent errors fail without retry whatever these say.
    """
    section = "collection_builder"
    return {
        "retries": airflow_conf.getint(section, "task_retries", fallback=2),
        "retry_delay": timedelta(
            seconds=airflow_conf.getfloat(section, "task_retry_delay_s", fallback=30.0)
        ),
        "retry_exponential_backoff": airflow_conf.getfloat(
            section, "task_retry_exponential_backoff", fallback=2.0
        ),
        "max_retry_delay": timedelta(
            seconds=airflow_conf.getfloat(section, "task_max_retry_delay_s", fallback=1800.0)
        ),
    }


STEP_QUEUES = {TaskType.DOWNLOAD: "download"}
"""Celery queue per step; every other step runs on ``processing``."""
STEP_POOLS: dict[TaskType, str] = {}
"""Airflow pool per step, over ``default_pool``. Downloads are not here: each provider's
download task has its own pool (``download_pool``)."""

DOWNLOAD_TASK_PREFIX = "download_"
"""A scene's download task per provider: ``scene.download_cdse``, ``scene.download_usgs``..."""


def download_groups() -> dict[str, int]:
    """Return the providers' download slot groups (``config/catalogs.yaml``) and their slots."""
    from include.collectors.providers import download_slot_groups
    from include.common.config import load_catalogs

    return download_slot_groups(load_catalogs())


def download_group_of(conf_dict: Mapping[str, Any]) -> str:
    """Return the slot group of the conf's catalog: whose download task and pool it uses."""
    from include.collectors.providers import slot_group
    from include.common.config import load_catalogs

    return slot_group(str(conf_dict["catalog"]), load_catalogs())


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


def step_queues(overrides: Mapping[str, str] | None = None) -> dict[TaskType, str]:
    """Return the Celery queue of every step: overrides, else the Airflow config, else defaults.

    ``[collection_builder] download_queue`` (default ``download``) takes the download step;
    ``processing_queue`` (default ``processing``) every other step and the DAG's other tasks.
    Set them in ``airflow.cfg`` or as ``AIRFLOW__COLLECTION_BUILDER__DOWNLOAD_QUEUE``.
    """
    download = airflow_conf.get("collection_builder", "download_queue", fallback="download")
    processing = airflow_conf.get("collection_builder", "processing_queue", fallback="processing")
    queues = {t: download if STEP_QUEUES.get(t) == "download" else processing for t in TaskType}
    queues.update({TaskType(step): queue for step, queue in (overrides or {}).items()})
    return queues


def scenes_per_run() -> int:
    """Return how many scenes one DAG run maps at most (``[collection_builder] scenes_per_run``).

    A run with more scenes hands ranges of this many to child runs of ``<dag_id>_scenes``
    (docs/scale.md). Default 100; never more than Airflow's ``[core] max_map_length``.
    """
    limit = airflow_conf.getint("core", "max_map_length", fallback=1024)
    wanted = airflow_conf.getint("collection_builder", "scenes_per_run", fallback=100)
    return max(1, min(wanted, limit))


def scene_runs_active() -> int:
    """Return how many child runs of one radcor DAG run at once (``scene_runs_active``, 4)."""
    return max(1, airflow_conf.getint("collection_builder", "scene_runs_active", fallback=4))


PUBLISHED_ALIAS = "collection-builder-published"
"""The publish step's outlet: an asset alias resolving to one asset per published collection."""


def published_asset(collection: str) -> Asset:
    """Return the Asset a downstream DAG schedules on to run when ``collection`` gets new data."""
    return Asset(f"stac://collection-builder/{collection}")


class _SharedSchema(dict[str, Any]):
    """A Param's JSON schema that deep copies return as is (it is never changed).

    Airflow deep-copies the DAG's params into each of its ~70 tasks; copying the conf's
    schemas (the task tree's above all) every time was half of the DAG file's parse time,
    which every task process pays (bench/dag_overhead.py, docs/scale.md).
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> _SharedSchema:
        return self


def radcor_params(defaults: Mapping[str, Any] | None = None) -> dict[str, Param]:
    """Return the DAG Params (the UI form) from the conf's JSON schema, with optional defaults."""
    params = {}
    for name, schema in params_schema().items():
        schema = dict(schema)
        default = schema.pop("default", None)
        description = schema.pop("description", None)
        if defaults and name in defaults:
            default = defaults[name]
        params[name] = Param(default, description=description, schema=_SharedSchema(schema))
    return params


SCENE_GROUP = "scene"
"""The mapped task group of one scene's chain: ``scene.wait_online``, ``scene.download_cdse``..."""
STEP_SKIPS_KEY = "skipmixin_key"
"""XCom key of ``search`` (``scenes`` in a child run) naming the steps the conf does not ask
for, read by the scheduler's ``NotPreviouslySkippedDep`` (``task_bodies.push_step_skips``)."""


def _skips_steps(scene_source: Any) -> Any:
    """Let the task behind ``scene_source`` skip scene steps without them running.

    Every step takes the scene references as input, so ``search`` is a direct upstream of each.
    Marked this way (what ``SkipMixin`` subclasses declare), its ``skipmixin_key`` XCom is read
    by the scheduler, which sets a step the conf does not ask for to skipped instead of queueing
    it: no task process (fork, DAG parse, API calls) only to skip itself, four of the six tasks
    per scene of a download-only conf (docs/scale.md).
    """
    scene_source.operator._can_skip_downstream = True
    return scene_source


def _skip(plan: Mapping[str, Any], reason: str) -> None:
    """Skip this scene's step, naming the scene (the task instance's map index) first."""
    scene_id = str(plan.get("scene_id") or plan.get("scene", {}).get("scene_id"))
    get_current_context()["scene_id"] = scene_id  # type: ignore[typeddict-unknown-key]
    raise AirflowSkipException(f"{reason} for {scene_id}")


def _scene_chains(
    conf: Any,
    plans: Any,
    queue_of: Mapping[TaskType, str],
    pool_of: Mapping[TaskType, str],
) -> Any:
    """Add the mapped group ``scene`` (one chain of step tasks per scene) to the DAG in context.

    Returns the group's tasks, which the run's ``report`` waits for.
    """

    def step(task_type: TaskType, group: str | None = None) -> Any:
        @task(
            task_id=str(task_type) if group is None else download_task_id(group),
            # download follows wait_online: it runs when the wait succeeded or was skipped
            trigger_rule="all_done" if task_type != TaskType.DOWNLOAD else "none_failed",
            queue=queue_of[task_type],
            pool=pool_of.get(task_type) or (download_pool(group) if group else None),
            map_index_template="{{ scene_id }}",
            outlets=[AssetAlias(PUBLISHED_ALIAS)] if task_type == TaskType.PUBLISH else [],
        )
        def run(conf_dict: dict[str, Any], plan: dict[str, Any]) -> dict[str, str]:
            if task_type not in task_types(conf_dict):  # no import, no DB: as cheap as it gets
                _skip(plan, f"no {task_type} in this conf")
            if group is not None and download_group_of(conf_dict) != group:
                _skip(plan, f"catalog {conf_dict['catalog']!r} downloads in another task")
            from radcor_api import task_bodies

            return task_bodies.run_step(task_type, conf_dict, plan)

        return run

    made: list[Any] = []

    @task_group(group_id=SCENE_GROUP)
    def scene(conf_dict: dict[str, Any], plan: dict[str, Any]) -> None:
        wait: Any = SceneOnlineSensor(  # offline scenes: order, then wait (sensors.py)
            task_id="wait_online",
            conf_dict=conf_dict,
            plan=plan,
            queue=queue_of[TaskType.DOWNLOAD],
            map_index_template="{{ scene_id }}",
        )
        # Each step waits for every earlier one, not only the one before: a step the conf does
        # not ask for is skipped by the scheduler at once (_skips_steps), so waiting for it
        # alone would let the next asked step run before the scene's earlier steps are done.
        earlier: list[Any] = []
        for task_type in TaskType:
            if task_type == TaskType.DOWNLOAD:  # one per provider, in its pool; one runs
                current = [step(task_type, group)(conf_dict, plan) for group in download_groups()]
            else:
                current = [step(task_type)(conf_dict, plan)]
            for each in current:
                (earlier or [wait]) >> each
            earlier.extend(current)
        # the report waits for every task of the group, not only its leaf (publish): a step
        # the conf does not ask for is skipped at once and would let the report run early
        made.extend([wait, *earlier])

    scene.partial(conf_dict=conf).expand(plan=plans)
    return made


def build_radcor_dag(
    dag_id: str,
    *,
    doc_md: str,
    schedule: Any = None,
    start_date: datetime | None = None,
    catchup: bool = False,
    tags: list[str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    default_args: Mapping[str, Any] | None = None,
    dates_from_interval: bool = False,
    end_date: datetime | None = None,
    max_active_runs: int = 16,
    queues: Mapping[str, str] | None = None,
    pools: Mapping[str, str] | None = None,
) -> Any:
    """Return a radcor DAG; its companion ``<dag_id>_scenes`` is registered beside it.

    A run maps one chain of step tasks per scene. A run with more scenes than
    ``scenes_per_run()`` maps none itself: it starts one run of ``<dag_id>_scenes`` per range
    of that many scenes (``scene_runs``), waits for them in the triggerer, and its ``report``
    adds up every scene (docs/scale.md).

    Args:
        dag_id: the DAG id.
        doc_md: the DAG's documentation (its module docstring).
        schedule: an Airflow schedule, None for trigger-only DAGs.
        start_date: first data interval start for scheduled DAGs.
        catchup: whether the scheduler fills past intervals.
        tags: UI tags.
        defaults: conf defaults shown in the form (a pipeline's fixed conf).
        default_args: overrides of retries and friends.
        dates_from_interval: take ``start``/``end`` from the run's data interval.
        end_date: last data interval end for scheduled DAGs.
        max_active_runs: runs of this DAG at once (backfills take their own limit).
        queues: Celery queue per step (``download``...), over ``step_queues()``.
        pools: Airflow pool per step, over ``STEP_POOLS``; other steps use ``default_pool``.

    Returns:
        The DAG object.
    """
    from radcor_api.scene_runs import SceneRunOperator, child_dag_id

    queue_of = step_queues(queues)
    pool_of = {**STEP_POOLS, **{TaskType(step): pool for step, pool in (pools or {}).items()}}
    other_queue = airflow_conf.get("collection_builder", "processing_queue", fallback="processing")
    all_default_args = {
        **DEFAULT_ARGS,
        **task_retry_args(),
        "queue": other_queue,
        **(default_args or {}),
    }
    scenes_dag_id = child_dag_id(dag_id)

    @dag(
        dag_id=dag_id,
        schedule=schedule,
        start_date=start_date,
        end_date=end_date,
        catchup=catchup,
        doc_md=doc_md,
        tags=tags or ["radcor"],
        params=radcor_params(defaults),
        default_args=all_default_args,
        max_active_runs=max_active_runs,
        render_template_as_native_obj=True,
    )
    def radcor_dag() -> None:
        @task(retries=0)
        def validate() -> dict[str, Any]:
            from radcor_api import task_bodies

            return task_bodies.validate(dates_from_interval)

        @task
        def search(conf_dict: dict[str, Any]) -> list[dict[str, Any]]:
            from radcor_api import task_bodies

            return task_bodies.search(conf_dict, scenes_per_run())

        @task(trigger_rule="all_done", retries=0)
        def report(conf_dict: dict[str, Any]) -> dict[str, Any]:
            from radcor_api import task_bodies

            return task_bodies.report(conf_dict)

        @task(retries=0)
        def child_runs() -> list[dict[str, Any]]:
            """Hand ``scene_runs`` the child runs' confs (Airflow maps return values only)."""
            runs = get_current_context()["ti"].xcom_pull(task_ids="search", key="runs")
            return list(runs or [])

        conf = validate()
        refs = _skips_steps(search(conf))  # type: ignore[arg-type]  # TaskFlow passes XComArgs
        scene_tasks = _scene_chains(conf, refs, queue_of, pool_of)
        runs = child_runs()
        refs >> runs
        scene_runs = SceneRunOperator.partial(
            task_id="scene_runs",
            trigger_dag_id=scenes_dag_id,
            map_index_template="scenes {{ task.conf.start }}-{{ task.conf.stop - 1 }}",
        ).expand(conf=runs)
        [*scene_tasks, scene_runs] >> report(conf)  # type: ignore[arg-type]

    @dag(
        dag_id=scenes_dag_id,
        schedule=None,
        doc_md=(
            f"Scenes of a large `{dag_id}` run: `{dag_id}` starts one run of this DAG per "
            f"range of scenes and adds up their totals. Trigger `{dag_id}`, not this DAG."
        ),
        tags=[*(tags or ["radcor"]), "radcor-scenes"],
        default_args=all_default_args,
        max_active_runs=scene_runs_active(),
        is_paused_upon_creation=False,
        render_template_as_native_obj=True,
    )
    def radcor_scenes_dag() -> None:
        @task(retries=0)
        def scenes() -> list[dict[str, Any]]:
            from radcor_api import task_bodies

            return task_bodies.part_scenes()

        @task(trigger_rule="all_done", retries=0)
        def report(part: dict[str, Any]) -> dict[str, Any]:
            from radcor_api import task_bodies

            return task_bodies.part_report(part)

        refs = _skips_steps(scenes())
        scene_tasks = _scene_chains(refs["conf"], refs, queue_of, pool_of)
        scene_tasks >> report(refs["part"])

    radcor_scenes_dag()
    return radcor_dag()
