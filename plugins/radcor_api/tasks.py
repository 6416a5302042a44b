"""The radcor DAG's task functions, imported only when a task runs.

``dag_factory`` builds the DAG's shape with light imports, because every task process parses
the DAG file again; the work of each task (drivers, processors, the catalog backend, rasterio,
pystac, shapely...) is imported from here inside the task, so a task that has nothing to do
for its scene never pays for it (bench/dag_overhead.py, docs/scale.md).

Each function is thin (STYLE 2.3): it takes plain values from Airflow (the validated conf's
JSON, a scene reference), builds drivers through ``hooks.CatalogHook``, calls one
``include.radcor`` function and maps its errors to Airflow outcomes: ``InvalidInputError`` and
refused provider requests -> fail without retry; ``TransientError`` -> raise so Airflow
retries; anything else unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.sdk import AssetAlias, get_current_context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from include.catalog.base import CatalogBackend
from include.common.errors import InvalidInputError, ProviderError
from include.radcor.activities import ActivityState, ActivityStore
from include.radcor.conf import Action, RadcorConf, TaskType, task_types
from include.radcor.plan import ScenePlan, nodes_of_type
from include.radcor.run_planning import RunPlan, plan_run
from include.radcor.run_scenes import RunScenes, TooManyScenesError, resolve_plan
from include.radcor.step_runner import StepRunner, first_error_to_raise
from include.radcor.summary import RunSummary, summarize
from include.radcor.validation import trusted_conf, validate_request
from radcor_api import settings
from radcor_api.hooks import CatalogHook
from radcor_api.names import (
    CONF_KEY,
    COUNT_KEY,
    DOWNLOAD_TASK_PREFIX,
    PART_KEY,
    PREVIEW_KEY,
    PUBLISHED_ALIAS,
    RUNS_KEY,
    SCENE_GROUP,
    SEARCH_TASK_ID,
    STEP_SKIPS_KEY,
    WAIT_ONLINE_TASK_ID,
    download_group_of,
    download_task_id,
    published_asset,
)
from radcor_api.scene_runs import PART_KEYS, child_conf
from radcor_api.task_context import label_scene, run_context

log = logging.getLogger(__name__)

REFUSED_ERRORS = (InvalidInputError, ProviderError)
"""Errors no retry can fix: the task fails at once, without retry."""


def _default_backend() -> CatalogBackend:
    from include.catalog.registry import default_backend  # pystac, psycopg: only when used

    return default_backend()


# --- validate ------------------------------------------------------------------------------


def validate(dates_from_interval: bool) -> dict[str, Any]:
    """The ``validate`` task: the run's conf (dates from the data interval when asked)."""
    context = get_current_context()
    raw = dict(context["params"])
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if dates_from_interval and start is not None and end is not None:
        raw["start"] = start.isoformat()
        raw["end"] = (end - timedelta(microseconds=1)).isoformat()
    conf = _validated_conf(raw)
    _check_download_task(context["dag"], conf)
    log.info("conf.valid catalog=%s dataset=%s action=%s", conf.catalog, conf.dataset, conf.action)
    return conf.model_dump(mode="json")


def _validated_conf(raw: Mapping[str, Any]) -> RadcorConf:
    """Return the validated conf; an invalid one fails the task (no retry), naming each field."""
    try:
        return validate_request(raw)
    except InvalidInputError as err:
        for problem in err.problems:
            log.error(
                "conf.invalid field=%s message=%s fix=%s",
                problem.field,
                problem.message,
                problem.fix,
            )
        raise AirflowFailException(f"invalid radcor conf:\n{err}") from err


def _check_download_task(dag: Any, conf: RadcorConf) -> None:
    """Fail at once when this DAG version has no download task for the conf's catalog.

    That happens only when ``config/catalogs.yaml`` gained a provider after the DAG was parsed.
    """
    if TaskType.DOWNLOAD not in task_types(conf) or conf.action != Action.START:
        return
    wanted = f"{SCENE_GROUP}.{download_task_id(download_group_of(conf))}"
    if wanted not in dag.task_ids:
        raise AirflowFailException(
            f"invalid radcor conf:\ncatalog: {conf.catalog!r} downloads in task "
            f"{wanted}, which this version of DAG {dag.dag_id!r} does not have yet "
            "(config/catalogs.yaml changed after the DAG was parsed); wait for the DAG "
            "processor to parse it again (or run `airflow dags reserialize`) and trigger again"
        )


# --- search and a child run's scenes -------------------------------------------------------


def push_step_skips(ti: Any, conf: RadcorConf) -> None:
    """Name the scene steps this conf does not ask for, so the scheduler skips them unqueued.

    Pushed by the task that maps the scenes (``dag_factory.skips_steps``). ``wait_online``
    goes with ``download``: without a download there is nothing to wait for. Of the providers'
    download tasks only the one of the conf's catalog runs (its Airflow pool): the others are
    skipped here too.
    """
    asked = task_types(conf)
    steps = [] if TaskType.DOWNLOAD in asked else [WAIT_ONLINE_TASK_ID]
    # every provider's download task but the one of the conf's catalog (all when not asked)
    mine = download_task_id(download_group_of(conf)) if TaskType.DOWNLOAD in asked else None
    prefix = f"{SCENE_GROUP}.{DOWNLOAD_TASK_PREFIX}"
    steps += [
        task_id.partition(".")[2]
        for task_id in ti.task.dag.task_ids
        if task_id.startswith(prefix) and task_id.partition(".")[2] != mine
    ]
    steps += [str(step) for step in TaskType if step not in asked and step != TaskType.DOWNLOAD]
    ti.xcom_push(key=STEP_SKIPS_KEY, value={"skipped": [f"{SCENE_GROUP}.{s}" for s in steps]})
    if steps:
        log.info("scene steps not in this conf, skipped unqueued: %s", ", ".join(steps))


def search(conf_dict: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``search`` task: plan the run (``include.radcor.run_planning``); return its scenes.

    Up to ``settings.scenes_per_run()`` scenes are mapped by this run. More go to child runs,
    that many scenes each: their confs are the XCom ``runs`` (``scene_runs`` maps over it) and
    the run maps none.
    """
    conf = trusted_conf(conf_dict)
    ti = get_current_context()["ti"]
    try:
        run_plan = plan_run(
            conf,
            run_id=ti.run_id,
            driver_factory=CatalogHook.for_conf(conf).driver_factory,
            backend=_default_backend(),
            scenes_per_run=settings.scenes_per_run(),
            max_runs=settings.max_map_length(),
        )
    except REFUSED_ERRORS as err:  # refused: retrying cannot help
        raise AirflowFailException(f"{type(err).__name__}: {err}") from err
    except TooManyScenesError as err:
        raise AirflowFailException(f"search: {err}") from err
    ActivityStore().tag_run(ti.dag_id, ti.run_id, conf.tags)  # listed with each activity
    _push_run_plan(ti, conf_dict, run_plan)
    push_step_skips(ti, conf)
    return run_plan.scene_refs


def _push_run_plan(ti: Any, conf_dict: dict[str, Any], run_plan: RunPlan) -> None:
    """Hand the plan to the later tasks: preview, scene count and the child runs' confs."""
    ti.xcom_push(key=PREVIEW_KEY, value=run_plan.preview)
    ti.xcom_push(key=COUNT_KEY, value=run_plan.scene_count)
    runs = [
        child_conf(conf_dict, ti.dag_id, ti.run_id, part, indices)
        for part, indices in enumerate(run_plan.child_ranges)
    ]
    ti.xcom_push(key=RUNS_KEY, value=runs)


def part_scenes() -> list[dict[str, Any]]:
    """The ``scenes`` task of a child run: return its scene references.

    Also pushes the XComs ``conf`` (the parent's validated conf) and ``part`` (which range).
    """
    context = get_current_context()
    raw = dict(context["dag_run"].conf or {})
    missing = [key for key in PART_KEYS if key not in raw]
    if missing:
        dag_id = context["ti"].dag_id
        raise AirflowFailException(
            f"{dag_id} runs ranges of the scenes of a large radcor run and is started by its "
            f"parent DAG; its conf lacks {', '.join(missing)}. Trigger the parent DAG instead."
        )
    part = {key: raw[key] for key in PART_KEYS if key != CONF_KEY}
    indices = range(int(part["start"]), int(part["stop"]))
    parent_run_id = str(part["parent_run_id"])
    try:
        scene_ids = RunScenes().scene_ids(parent_run_id, "plan", indices)
    except KeyError as err:
        raise AirflowFailException(f"scenes: {err.args[0]}") from err
    log.info(
        "scenes.part parent=%s/%s part=%s scenes=%d..%d",
        part["parent_dag_id"],
        parent_run_id,
        part["part"],
        indices.start,
        indices.stop - 1,
    )
    refs = [
        {"dag_id": part["parent_dag_id"], "run_id": parent_run_id, "idx": idx, "scene_id": sid}
        for idx, sid in zip(indices, scene_ids, strict=True)
    ]
    ti = context["ti"]
    ti.xcom_push(key=CONF_KEY, value=raw[CONF_KEY])
    ti.xcom_push(key=PART_KEY, value=part)
    push_step_skips(ti, trusted_conf(raw[CONF_KEY]))
    return refs


# --- one step of one scene -----------------------------------------------------------------


def run_step(task_type: TaskType, conf: RadcorConf, plan_dict: dict[str, Any]) -> dict[str, str]:
    """A per-scene step task: run the plan's ``task_type`` nodes; return their states."""
    plan = ScenePlan.from_dict(resolve_plan(plan_dict))
    label_scene(plan.scene.scene_id)
    if not nodes_of_type(plan, task_type):
        raise AirflowSkipException(f"no {task_type} in this conf for {plan.scene.scene_id}")
    runner = StepRunner(
        plan,
        run_context(plan_dict),
        store=ActivityStore(),
        backend=_default_backend,  # built only by a publish: pystac, psycopg, shapely
        driver_factory=CatalogHook.for_conf(conf).driver_factory,
        force=conf.force,  # downloads fetch again what is in place (DESIGN 1.2)
    )
    outcome = runner.run(task_type)
    if outcome.published:
        _emit_published(outcome.published)
    error = first_error_to_raise(outcome)
    if isinstance(error, REFUSED_ERRORS):
        raise AirflowFailException(f"{type(error).__name__}: {error}") from error
    if error is not None:
        raise error
    if outcome.states and all(s == ActivityState.UPSTREAM_FAILED for s in outcome.states.values()):
        raise AirflowSkipException(f"not run: the parent step failed for {plan.scene.scene_id}")
    return outcome.states


def _emit_published(published: list[dict[str, str]]) -> None:
    """Add one asset event per published collection (extra: scene_id, item_id) to the alias."""
    events = get_current_context()["outlet_events"]
    seen: set[str] = set()
    for entry in published:
        if entry["collection"] in seen:
            continue
        seen.add(entry["collection"])
        events[AssetAlias(PUBLISHED_ALIAS)].add(
            published_asset(entry["collection"]),
            extra={"scene_id": entry["scene_id"], "item_id": entry["item_id"]},
        )
        log.info(
            "publish.asset_event collection=%s scene=%s item=%s",
            entry["collection"],
            entry["scene_id"],
            entry["item_id"],
        )


# --- report --------------------------------------------------------------------------------


def report(conf_dict: dict[str, Any]) -> dict[str, Any]:
    """The ``report`` task: log and return the totals; fail the run when a scene failed.

    The totals count every scene of the run, those of its child runs included: activities are
    recorded under the run that searched the scene.
    """
    conf = trusted_conf(conf_dict)
    ti = get_current_context()["ti"]
    if conf.action == Action.PREVIEW:
        result = ti.xcom_pull(task_ids=SEARCH_TASK_ID, key=PREVIEW_KEY)
        if result is None:  # search failed: a preview of nothing would read as "no scenes"
            raise AirflowFailException("preview: the search task failed; see its log")
        log.info("report.preview scenes=%s", result.get("Results"))
        return dict(result)
    count = ti.xcom_pull(task_ids=SEARCH_TASK_ID, key=COUNT_KEY)
    if count is None:  # search failed: "0 scenes" would read as a successful empty run
        raise AirflowFailException("report: the search task failed; see its log")
    plans = [ScenePlan.from_dict(p) for p in RunScenes().iterate(ti.run_id, "plan")]
    if len(plans) != count:
        raise AirflowFailException(f"report: {count} scenes planned, {len(plans)} stored")
    summary = summarize(plans, ti.run_id, ActivityStore(), _run_duration_s())
    return _finish(summary, "report.summary")


def part_report(part: dict[str, Any]) -> dict[str, Any]:
    """The ``report`` task of a child run: the totals of its range of scenes."""
    indices = range(int(part["start"]), int(part["stop"]))
    parent_run_id = str(part["parent_run_id"])
    plans = [
        ScenePlan.from_dict(p)
        for p in RunScenes().iterate(parent_run_id, "plan", start=indices.start, stop=indices.stop)
    ]
    if len(plans) != len(indices):
        raise AirflowFailException(
            f"report: {len(indices)} scenes in this part, {len(plans)} stored"
        )
    summary = summarize(plans, parent_run_id, ActivityStore(), _run_duration_s())
    return _finish(summary, f"report.part part={part['part']}")


def _run_duration_s() -> float:
    started = get_current_context()["dag_run"].start_date
    return time.time() - started.timestamp() if started else 0.0


def _finish(summary: RunSummary, what: str) -> dict[str, Any]:
    """Log the totals; fail the task, naming the failed scenes, when any failed."""
    log.info(
        "%s found=%d done=%d skipped=%d failed=%d bytes=%d duration_s=%.1f failed_scenes=%s",
        what,
        summary.found,
        summary.done,
        summary.skipped,
        summary.failed,
        summary.bytes_downloaded,
        summary.duration_s,
        ",".join(summary.failed_scenes),
    )
    if summary.failed:
        raise AirflowFailException(
            f"{summary.failed} of {summary.found} scenes failed: "
            + ", ".join(summary.failed_scenes)
        )
    return summary.to_dict()
