"""Builds radcor DAGs: validate -> search -> one mapped chain per scene -> report.

Only the DAG's shape lives here, with light imports: every task process parses the DAG file
again, so what the tasks do is in ``radcor_api.tasks``, imported inside each task (it never
imports this module back). A step the conf does not ask for is skipped before that import and
without any database access. No Connection, Variable, network or DB access happens at parse
time. Names shared with the tasks are in ``names.py``; the Airflow settings in ``settings.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import AssetAlias, Param, dag, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowSkipException

from include.radcor.conf import TaskType, params_schema, task_types
from include.radcor.validation import trusted_conf
from radcor_api import settings
from radcor_api.names import (
    CHILD_RUNS_TASK_ID,
    CHILD_SCENES_TASK_ID,
    PUBLISHED_ALIAS,
    REPORT_TASK_ID,
    RUNS_KEY,
    SCENE_GROUP,
    SCENE_RUNS_TASK_ID,
    SEARCH_TASK_ID,
    VALIDATE_TASK_ID,
    WAIT_ONLINE_TASK_ID,
    child_dag_id,
    download_group_of,
    download_groups,
    download_pool,
    download_task_id,
)
from radcor_api.scene_runs import SceneRunOperator
from radcor_api.sensors import SceneOnlineSensor
from radcor_api.task_context import label_scene, scene_id_of

log = logging.getLogger(__name__)

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "collection-builder",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
}


class _SharedSchema(dict[str, Any]):
    """A Param's JSON schema that deep copies return as is (it is never changed).

    Airflow deep-copies the DAG's params into each of its ~70 tasks; copying the conf's
    schemas (the task tree's above all) every time was half of the DAG file's parse time,
    which every task process pays (bench/dag_overhead.py, docs/scale.md).
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> _SharedSchema:
        return self


FORM_EXAMPLES: dict[str, list[str]] = {"action": ["preview", "start"]}
"""Suggestions the trigger form lists under a text field (the field still takes any case)."""


def form_schema(name: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """Return a conf field's JSON schema as the trigger form should get it.

    Every field takes null: Airflow's form marks a field whose type excludes null as required
    and keeps that "required" error even after the Advanced Options JSON fills the field in
    (Airflow 3.3 ``FieldRow`` sets it once), which leaves the Trigger button disabled. Missing
    values are refused anyway, with the field and its fix, by ``trigger_check`` before the run
    is created and by the ``validate`` task.
    """
    shaped = dict(schema)
    kind = shaped.get("type")
    if isinstance(kind, str):
        shaped["type"] = ["null", kind]
    if name in FORM_EXAMPLES:
        shaped["examples"] = FORM_EXAMPLES[name]
    return shaped


def radcor_params(defaults: Mapping[str, Any] | None = None) -> dict[str, Param]:
    """Return the DAG Params (the UI form) from the conf's JSON schema, with optional defaults."""
    params = {}
    for name, schema in params_schema().items():
        shaped = form_schema(name, schema)
        default = shaped.pop("default", None)
        description = shaped.pop("description", None)
        if defaults and name in defaults:
            default = defaults[name]
        params[name] = Param(default, description=description, schema=_SharedSchema(shaped))
    return params


def skips_steps(scene_source: Any) -> Any:
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
    scene_id = scene_id_of(plan)
    label_scene(scene_id)
    raise AirflowSkipException(f"{reason} for {scene_id}")


@dataclass(frozen=True, slots=True)
class _Placement:
    """Where a scene's steps run: the Celery queue and the Airflow pool of each step type."""

    queue_of: Mapping[TaskType, str]
    pool_of: Mapping[TaskType, str]


def _step_task(task_type: TaskType, placement: _Placement, group: str | None = None) -> Any:
    """Return the task of one step of a scene chain (``group``: a provider's download task)."""

    @task(
        task_id=str(task_type) if group is None else download_task_id(group),
        # download follows wait_online: it runs when the wait succeeded or was skipped
        trigger_rule="all_done" if task_type != TaskType.DOWNLOAD else "none_failed",
        queue=placement.queue_of[task_type],
        pool=placement.pool_of.get(task_type) or (download_pool(group) if group else None),
        map_index_template="{{ scene_id }}",
        outlets=[AssetAlias(PUBLISHED_ALIAS)] if task_type == TaskType.PUBLISH else [],
    )
    def run(conf_dict: dict[str, Any], plan: dict[str, Any]) -> dict[str, str]:
        conf = trusted_conf(conf_dict)  # no import, no DB: as cheap as it gets
        if task_type not in task_types(conf):
            _skip(plan, f"no {task_type} in this conf")
        if group is not None and download_group_of(conf) != group:
            _skip(plan, f"catalog {conf.catalog!r} downloads in another task")
        from radcor_api import tasks  # the work: imported only by a step that runs

        return tasks.run_step(task_type, conf, plan)

    return run


def _scene_chains(conf: Any, plans: Any, placement: _Placement) -> Any:
    """Add the mapped group ``scene`` (one chain of step tasks per scene) to the DAG in context.

    Returns the group's tasks, which the run's ``report`` waits for.
    """
    made: list[Any] = []

    @task_group(group_id=SCENE_GROUP)
    def scene(conf_dict: dict[str, Any], plan: dict[str, Any]) -> None:
        wait: Any = SceneOnlineSensor(  # offline scenes: order, then wait (sensors.py)
            task_id=WAIT_ONLINE_TASK_ID,
            conf_dict=conf_dict,
            plan=plan,
            queue=placement.queue_of[TaskType.DOWNLOAD],
            map_index_template="{{ scene_id }}",
        )
        # Each step waits for every earlier one, not only the one before: a step the conf does
        # not ask for is skipped by the scheduler at once (skips_steps), so waiting for it
        # alone would let the next asked step run before the scene's earlier steps are done.
        earlier: list[Any] = []
        for task_type in TaskType:
            if task_type == TaskType.DOWNLOAD:  # one per provider, in its pool; one runs
                current = [
                    _step_task(task_type, placement, group)(conf_dict, plan)
                    for group in download_groups()
                ]
            else:
                current = [_step_task(task_type, placement)(conf_dict, plan)]
            for each in current:
                (earlier or [wait]) >> each
            earlier.extend(current)
        # the report waits for every task of the group, not only its leaf (publish): a step
        # the conf does not ask for is skipped at once and would let the report run early
        made.extend([wait, *earlier])

    scene.partial(conf_dict=conf).expand(plan=plans)
    return made


def _radcor_tasks(dates_from_interval: bool, scenes_dag_id: str, placement: _Placement) -> None:
    """Add the tasks of a radcor run to the DAG in context: validate, search, scenes, report."""

    @task(task_id=VALIDATE_TASK_ID, retries=0)
    def validate() -> dict[str, Any]:
        from radcor_api import tasks

        return tasks.validate(dates_from_interval)

    @task(task_id=SEARCH_TASK_ID)
    def search(conf_dict: dict[str, Any]) -> list[dict[str, Any]]:
        from radcor_api import tasks

        return tasks.search(conf_dict)

    @task(task_id=REPORT_TASK_ID, trigger_rule="all_done", retries=0)
    def report(conf_dict: dict[str, Any]) -> dict[str, Any]:
        from radcor_api import tasks

        return tasks.report(conf_dict)

    @task(task_id=CHILD_RUNS_TASK_ID, retries=0)
    def child_runs() -> list[dict[str, Any]]:
        """Hand ``scene_runs`` the child runs' confs (Airflow maps return values only)."""
        runs = get_current_context()["ti"].xcom_pull(task_ids=SEARCH_TASK_ID, key=RUNS_KEY)
        return list(runs or [])

    conf = validate()
    refs = skips_steps(search(conf))  # type: ignore[arg-type]  # TaskFlow passes XComArgs
    scene_tasks = _scene_chains(conf, refs, placement)
    runs = child_runs()
    refs >> runs
    scene_runs = SceneRunOperator.partial(
        task_id=SCENE_RUNS_TASK_ID,
        trigger_dag_id=scenes_dag_id,
        map_index_template="scenes {{ task.conf.start }}-{{ task.conf.stop - 1 }}",
    ).expand(conf=runs)
    [*scene_tasks, scene_runs] >> report(conf)  # type: ignore[arg-type]


def _child_run_tasks(placement: _Placement) -> None:
    """Add the tasks of a child run (a range of a large run's scenes) to the DAG in context."""

    @task(task_id=CHILD_SCENES_TASK_ID, retries=0)
    def scenes() -> list[dict[str, Any]]:
        from radcor_api import tasks

        return tasks.part_scenes()

    @task(task_id=REPORT_TASK_ID, trigger_rule="all_done", retries=0)
    def report(part: dict[str, Any]) -> dict[str, Any]:
        from radcor_api import tasks

        return tasks.part_report(part)

    refs = skips_steps(scenes())
    scene_tasks = _scene_chains(refs["conf"], refs, placement)
    scene_tasks >> report(refs["part"])


def _task_default_args(default_args: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the tasks' default arguments: ours, the Airflow settings', then the caller's."""
    return {
        **DEFAULT_ARGS,
        **settings.task_retry_args(),
        "queue": settings.processing_queue(),
        **(default_args or {}),
    }


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
    ``settings.scenes_per_run()`` maps none itself: it starts one run of ``<dag_id>_scenes``
    per range of that many scenes (``scene_runs``), waits for them in the triggerer, and its
    ``report`` adds up every scene (docs/scale.md).

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
        queues: Celery queue per step (``download``...), over ``settings.step_queues()``.
        pools: Airflow pool per step, over ``settings.STEP_POOLS``; other steps use
            ``default_pool``.

    Returns:
        The DAG object.
    """
    placement = _Placement(settings.step_queues(queues), settings.step_pools(pools))
    all_default_args = _task_default_args(default_args)
    scenes_dag_id = child_dag_id(dag_id)

    @dag(
        dag_id=scenes_dag_id,
        schedule=None,
        doc_md=(
            f"Scenes of a large `{dag_id}` run: `{dag_id}` starts one run of this DAG per "
            f"range of scenes and adds up their totals. Trigger `{dag_id}`, not this DAG."
        ),
        tags=[*(tags or ["radcor"]), "radcor-scenes"],
        default_args=all_default_args,
        max_active_runs=settings.scene_runs_active(),
        is_paused_upon_creation=False,
        render_template_as_native_obj=True,
    )
    def radcor_scenes_dag() -> None:
        _child_run_tasks(placement)

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
        _radcor_tasks(dates_from_interval, scenes_dag_id, placement)

    radcor_scenes_dag()
    return radcor_dag()


__all__ = ["DEFAULT_ARGS", "build_radcor_dag", "form_schema", "radcor_params", "skips_steps"]
