"""Builds radcor DAGs: validate -> search -> one mapped chain per scene -> report.

Each task is a thin wrapper: it turns Airflow context into plain values, calls one function of
``include.radcor.steps`` and maps errors to Airflow outcomes (STYLE 2.3):
``InvalidInputError`` -> fail without retry; ``TransientError`` -> raise so Airflow retries;
anything else unchanged. No Connection, Variable, network or DB access happens at parse time.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import (
    Asset,
    AssetAlias,
    Connection,
    Param,
    dag,
    get_current_context,
    task,
    task_group,
)
from airflow.sdk import conf as airflow_conf
from airflow.sdk.exceptions import (
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSkipException,
)

from include.catalog.registry import default_backend
from include.collectors.base import CatalogDriver, Credentials
from include.collectors.registry import make_driver
from include.common.config import data_dir, load_catalogs
from include.common.errors import FieldProblem, InvalidInputError, ProviderError
from include.radcor.activities import ActivityState, ActivityStore
from include.radcor.conf import Action, RadcorConf, TaskType, params_schema
from include.radcor.plan import ScenePlan, nodes_of_type
from include.radcor.run_scenes import RunScenes, resolve_plan, split_into_groups
from include.radcor.steps import (
    RunContext,
    StepRunner,
    first_error_to_raise,
    plan_scenes,
    preview,
    search_scenes,
    summarize,
    validate_request,
)
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
STEP_POOLS = {TaskType.DOWNLOAD: "download"}
"""Airflow pool per step: all downloads share the global ``download`` pool (create it with
``airflow pools set download 8 "downloads"``; scripts/prepare_db.sh does). Per-provider limits
are ``include.collectors.limiter`` (a pool given per mapped instance is ignored, DESIGN 3.1)."""


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


INLINE_PREVIEW_SCENES = 1000
"""A preview with more scenes goes to a file (and the run-scenes table); XCom keeps a reference."""


def scene_grouping() -> tuple[int, int]:
    """Return (scenes per mapped group, number of groups) for this deployment.

    Airflow maps at most ``[core] max_map_length`` instances per task (DESIGN 3), so a run's
    scenes are spread over several identical mapped task groups (``scene``, ``scene_2``...).
    ``COLLECTION_BUILDER_SCENE_GROUPS`` sets how many (default: enough for 10,240 scenes).
    """
    group_size = airflow_conf.getint("core", "max_map_length", fallback=1024)
    default_groups = max(1, math.ceil(10240 / group_size))
    groups = int(os.environ.get("COLLECTION_BUILDER_SCENE_GROUPS", default_groups))
    return group_size, max(1, groups)


def _store_preview(run_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """Keep a small preview inline; write a large one to a file and return a reference."""
    count = int(result.get("Results", 0))
    if count <= INLINE_PREVIEW_SCENES:
        return result
    folder = data_dir() / "runs" / run_id.replace("/", "_").replace(":", "_")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "preview.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    tmp.replace(path)
    entries = [v for k, v in result.items() if k != "Results"]
    RunScenes().save(run_id, "preview", entries)
    log.info("search.preview_stored scenes=%d path=%s", count, path)
    return {"Results": count, "file": str(path), "table": "radcor_run_scenes", "run_id": run_id}


PUBLISHED_ALIAS = "collection-builder-published"
"""The publish step's outlet: an asset alias resolving to one asset per published collection."""


def published_asset(collection: str) -> Asset:
    """Return the Asset a downstream DAG schedules on to run when ``collection`` gets new data."""
    return Asset(f"stac://collection-builder/{collection}")


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


def radcor_params(defaults: Mapping[str, Any] | None = None) -> dict[str, Param]:
    """Return the DAG Params (the UI form) from the conf's JSON schema, with optional defaults."""
    params = {}
    for name, schema in params_schema().items():
        schema = dict(schema)
        default = schema.pop("default", None)
        if defaults and name in defaults:
            default = defaults[name]
        params[name] = Param(default, **schema)
    return params


def _validated(raw: Mapping[str, Any]) -> RadcorConf:
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


def _credentials(conn_id: str | None, *, required: bool) -> Credentials | None:
    if not conn_id:
        return None
    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException as err:
        if not required:
            return None
        raise InvalidInputError(
            FieldProblem(
                "catalog_args.conn_id",
                f"Airflow Connection {conn_id!r} does not exist",
                f"create it: airflow connections add {conn_id} --conn-login ... --conn-password ..",
            )
        ) from err
    return Credentials(
        username=conn.login, password=conn.password, extra=dict(conn.extra_dejson or {})
    )


def _driver_factory(conf: RadcorConf) -> Any:
    catalog_args = dict(conf.catalog_args or {})

    def factory(catalog_name: str) -> CatalogDriver:
        catalog = load_catalogs()[catalog_name]
        explicit = catalog_args.get("conn_id") if catalog_name == conf.catalog else None
        conn_id = explicit or catalog.conn_id
        credentials = _credentials(conn_id, required=bool(explicit))
        args = catalog_args if catalog_name == conf.catalog else {}
        return make_driver(catalog_name, catalog_args=args, credentials=credentials)

    return factory


def _run_context() -> RunContext:
    context = get_current_context()
    ti = context["ti"]
    return RunContext(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_instance=f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{ti.map_index}/try{ti.try_number}",
    )


def _run_step(
    task_type: TaskType, conf_dict: dict[str, Any], plan_dict: dict[str, Any]
) -> dict[str, str]:
    plan = ScenePlan.from_dict(resolve_plan(plan_dict))
    get_current_context()["scene_id"] = plan.scene.scene_id  # type: ignore[typeddict-unknown-key]
    if not nodes_of_type(plan, task_type):
        raise AirflowSkipException(f"no {task_type} in this conf for {plan.scene.scene_id}")
    conf = _validated(conf_dict)
    runner = StepRunner(
        plan,
        _run_context(),
        store=ActivityStore(),
        backend=default_backend(),
        driver_factory=_driver_factory(conf),
    )
    outcome = runner.run(task_type)
    if outcome.published:
        _emit_published(outcome.published)
    error = first_error_to_raise(outcome)
    if isinstance(error, (InvalidInputError, ProviderError)):
        raise AirflowFailException(f"{type(error).__name__}: {error}") from error
    if error is not None:
        raise error
    if outcome.states and all(s == ActivityState.UPSTREAM_FAILED for s in outcome.states.values()):
        raise AirflowSkipException(f"not run: the parent step failed for {plan.scene.scene_id}")
    return outcome.states


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
    """Return a radcor DAG.

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
    group_size, groups = scene_grouping()
    queue_of = step_queues(queues)
    pool_of = {**STEP_POOLS, **{TaskType(step): pool for step, pool in (pools or {}).items()}}
    other_queue = airflow_conf.get("collection_builder", "processing_queue", fallback="processing")

    @dag(
        dag_id=dag_id,
        schedule=schedule,
        start_date=start_date,
        end_date=end_date,
        catchup=catchup,
        doc_md=doc_md,
        tags=tags or ["radcor"],
        params=radcor_params(defaults),
        default_args={
            **DEFAULT_ARGS, **task_retry_args(), "queue": other_queue, **(default_args or {})
        },
        max_active_runs=max_active_runs,
        render_template_as_native_obj=True,
    )
    def radcor_dag() -> None:
        @task(retries=0)
        def validate() -> dict[str, Any]:
            context = get_current_context()
            raw = dict(context["params"])
            start, end = context.get("data_interval_start"), context.get("data_interval_end")
            if dates_from_interval and start is not None and end is not None:
                raw["start"] = start.isoformat()
                raw["end"] = (end - timedelta(microseconds=1)).isoformat()
            conf = _validated(raw)
            log.info(
                "conf.valid catalog=%s dataset=%s action=%s",
                conf.catalog,
                conf.dataset,
                conf.action,
            )
            return conf.model_dump(mode="json")

        @task
        def search(conf_dict: dict[str, Any]) -> list[dict[str, Any]]:
            conf = _validated(conf_dict)
            try:
                with _driver_factory(conf)(conf.catalog) as driver:
                    scenes = search_scenes(conf, driver)
            except (InvalidInputError, ProviderError) as err:  # refused: retrying cannot help
                raise AirflowFailException(f"{type(err).__name__}: {err}") from err
            ti = get_current_context()["ti"]
            ti.xcom_push(key="preview", value=_store_preview(ti.run_id, preview(scenes)))
            plans = plan_scenes(conf, scenes, default_backend())
            try:
                indices = split_into_groups(len(plans), group_size, groups)
            except ValueError as err:
                raise AirflowFailException(f"search: {err}") from err
            RunScenes().save(ti.run_id, "plan", plans)
            log.info(
                "search.planned scenes=%d action=%s groups_used=%d group_size=%d",
                len(plans),
                conf.action,
                sum(1 for g in indices if g),
                group_size,
            )
            refs = [[{"run_id": ti.run_id, "idx": i} for i in group] for group in indices]
            ti.xcom_push(key="count", value=len(plans))
            ti.xcom_push(key="overflow", value=refs[1:])
            return refs[0]

        @task(retries=0)
        def more_scenes(group: int) -> list[dict[str, Any]]:
            """Hand one extra mapped group its share of a run larger than max_map_length."""
            overflow = get_current_context()["ti"].xcom_pull(task_ids="search", key="overflow")
            refs: list[dict[str, Any]] = (overflow or [])[group - 1] if overflow else []
            if not refs:
                raise AirflowSkipException(f"the run fits in {group} mapped group(s)")
            return refs

        def step(task_type: TaskType) -> Any:
            @task(
                task_id=str(task_type),
                # download follows wait_online: it runs when the wait succeeded or was skipped
                trigger_rule="all_done" if task_type != TaskType.DOWNLOAD else "none_failed",
                queue=queue_of[task_type],
                pool=pool_of.get(task_type),
                map_index_template="{{ scene_id }}",
                outlets=[AssetAlias(PUBLISHED_ALIAS)] if task_type == TaskType.PUBLISH else [],
            )
            def run(conf_dict: dict[str, Any], plan: dict[str, Any]) -> dict[str, str]:
                return _run_step(task_type, conf_dict, plan)

            return run

        @task_group(group_id="scene")
        def scene(conf_dict: dict[str, Any], plan: dict[str, Any]) -> None:
            previous: Any = SceneOnlineSensor(  # offline scenes: order, then wait (sensors.py)
                task_id="wait_online",
                conf_dict=conf_dict,
                plan=plan,
                queue=queue_of[TaskType.DOWNLOAD],
                map_index_template="{{ scene_id }}",
            )
            for task_type in TaskType:
                current = step(task_type)(conf_dict, plan)
                if previous is not None:
                    previous >> current
                previous = current

        @task(trigger_rule="all_done", retries=0)
        def report(conf_dict: dict[str, Any]) -> dict[str, Any]:
            context = get_current_context()
            ti = context["ti"]
            if conf_dict.get("action") == Action.PREVIEW:
                result = ti.xcom_pull(task_ids="search", key="preview")
                if result is None:  # search failed: a preview of nothing would read as "no scenes"
                    raise AirflowFailException("preview: the search task failed; see its log")
                log.info("report.preview scenes=%s", result.get("Results"))
                return dict(result)
            started = context["dag_run"].start_date
            duration_s = time.time() - started.timestamp() if started else 0.0
            count = ti.xcom_pull(task_ids="search", key="count")
            if count is None:  # search failed: "0 scenes" would read as a successful empty run
                raise AirflowFailException("report: the search task failed; see its log")
            plans = [ScenePlan.from_dict(p) for p in RunScenes().iterate(ti.run_id, "plan")]
            if len(plans) != count:
                raise AirflowFailException(f"report: {count} scenes planned, {len(plans)} stored")
            summary = summarize(
                plans,
                ti.run_id,
                ActivityStore(),
                duration_s,
            )
            log.info(
                "report.summary found=%d done=%d skipped=%d failed=%d bytes=%d duration_s=%.1f "
                "failed_scenes=%s",
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

        conf = validate()
        first = search(conf)  # type: ignore[arg-type]  # TaskFlow passes XComArgs
        shares = [first] + [
            more_scenes.override(task_id=f"scenes_{k + 1}")(k) for k in range(1, groups)
        ]
        for share in shares[1:]:
            first >> share
        chains = [
            scene.override(group_id="scene" if k == 0 else f"scene_{k + 1}")
            .partial(conf_dict=conf)
            .expand(plan=share)
            for k, share in enumerate(shares)
        ]
        chains >> report(conf)  # type: ignore[arg-type]

    return radcor_dag()
