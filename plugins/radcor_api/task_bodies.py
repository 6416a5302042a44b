"""What the radcor DAG's tasks do, imported only when a task runs.

``dag_factory`` builds the DAG's shape with light imports, because every task process parses
the DAG file again; the work of each task (drivers, processors, the catalog backend, rasterio,
pystac, shapely...) is imported from here inside the task, so a task that has nothing to do
for its scene never pays for it (bench/dag_overhead.py, docs/scale.md).

Each function is a thin wrapper: it turns Airflow context into plain values, calls
``include.radcor.steps`` and maps errors to Airflow outcomes (STYLE 2.3):
``InvalidInputError`` -> fail without retry; ``TransientError`` -> raise so Airflow retries;
anything else unchanged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.sdk import AssetAlias, Connection, get_current_context
from airflow.sdk import conf as airflow_conf
from airflow.sdk.exceptions import (
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSkipException,
)

from include.catalog.base import CatalogBackend
from include.collectors.base import CatalogDriver, Credentials
from include.collectors.registry import make_driver
from include.common.config import data_dir, load_catalogs
from include.common.errors import FieldProblem, InvalidInputError, ProviderError
from include.radcor.activities import ActivityState, ActivityStore
from include.radcor.conf import Action, RadcorConf, TaskType, task_types
from include.radcor.plan import ScenePlan, nodes_of_type
from include.radcor.run_scenes import RunScenes, resolve_plan, split_into_runs
from include.radcor.steps import (
    RunContext,
    RunSummary,
    StepRunner,
    first_error_to_raise,
    plan_scenes,
    preview,
    search_scenes,
    summarize,
    validate_request,
)
from radcor_api.dag_factory import (
    DOWNLOAD_TASK_PREFIX,
    PUBLISHED_ALIAS,
    SCENE_GROUP,
    STEP_SKIPS_KEY,
    download_group_of,
    download_task_id,
    published_asset,
)
from radcor_api.scene_runs import child_conf

log = logging.getLogger(__name__)

INLINE_PREVIEW_SCENES = 1000
"""A preview with more scenes goes to a file (and the run-scenes table); XCom keeps a reference."""


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


def validated_conf(raw: Mapping[str, Any]) -> RadcorConf:
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


def task_credentials(conn_id: str | None, *, required: bool) -> Credentials | None:
    """Return the credentials of Airflow Connection ``conn_id`` (None when there is none)."""
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


def driver_factory(conf: RadcorConf) -> Any:
    """Return ``catalog name -> driver`` for the conf (its catalog_args apply to its catalog)."""
    catalog_args = dict(conf.catalog_args or {})

    def factory(catalog_name: str) -> CatalogDriver:
        catalog = load_catalogs()[catalog_name]
        explicit = catalog_args.get("conn_id") if catalog_name == conf.catalog else None
        conn_id = explicit or catalog.conn_id
        credentials = task_credentials(conn_id, required=bool(explicit))
        args = catalog_args if catalog_name == conf.catalog else {}
        return make_driver(catalog_name, catalog_args=args, credentials=credentials)

    return factory


def run_context(plan_ref: Mapping[str, Any] | None = None) -> RunContext:
    """Return the ids the activities are recorded under, and the running task instance.

    The activities of a scene belong to the radcor run that searched it: a scene reference
    ``{dag_id, run_id, idx}`` handed to a child run (``<dag_id>_scenes``) names that run.
    """
    ti = get_current_context()["ti"]
    ref = plan_ref if plan_ref is not None and "idx" in plan_ref else {}
    return RunContext(
        dag_id=str(ref.get("dag_id") or ti.dag_id),
        run_id=str(ref.get("run_id") or ti.run_id),
        task_instance=f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{ti.map_index}/try{ti.try_number}",
    )


def _default_backend() -> CatalogBackend:
    from include.catalog.registry import default_backend

    return default_backend()


def run_step(
    task_type: TaskType, conf_dict: dict[str, Any], plan_dict: dict[str, Any]
) -> dict[str, str]:
    """A per-scene step task: run the plan's ``task_type`` nodes; return their states."""
    plan = ScenePlan.from_dict(resolve_plan(plan_dict))
    get_current_context()["scene_id"] = plan.scene.scene_id  # type: ignore[typeddict-unknown-key]
    if not nodes_of_type(plan, task_type):
        raise AirflowSkipException(f"no {task_type} in this conf for {plan.scene.scene_id}")
    conf = RadcorConf.model_validate(conf_dict)  # the validate task's output: trusted
    runner = StepRunner(
        plan,
        run_context(plan_dict),
        store=ActivityStore(),
        backend=_default_backend,  # built only by a publish: pystac, psycopg, shapely
        driver_factory=driver_factory(conf),
        force=conf.force,  # downloads fetch again what is in place (DESIGN 1.2)
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


def validate(dates_from_interval: bool) -> dict[str, Any]:
    """The ``validate`` task: the run's conf (dates from the data interval when asked)."""
    context = get_current_context()
    raw = dict(context["params"])
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if dates_from_interval and start is not None and end is not None:
        raw["start"] = start.isoformat()
        raw["end"] = (end - timedelta(microseconds=1)).isoformat()
    conf = validated_conf(raw)
    _check_download_task(context["dag"], conf.model_dump(mode="json"))
    log.info(
        "conf.valid catalog=%s dataset=%s action=%s",
        conf.catalog,
        conf.dataset,
        conf.action,
    )
    return conf.model_dump(mode="json")


def _check_download_task(dag: Any, conf_dict: Mapping[str, Any]) -> None:
    """Fail at once when this DAG version has no download task for the conf's catalog.

    That happens only when ``config/catalogs.yaml`` gained a provider after the DAG was parsed.
    """
    if TaskType.DOWNLOAD not in task_types(conf_dict) or conf_dict.get("action") != "start":
        return
    wanted = f"{SCENE_GROUP}.{download_task_id(download_group_of(conf_dict))}"
    if wanted not in dag.task_ids:
        raise AirflowFailException(
            f"invalid radcor conf:\ncatalog: {conf_dict['catalog']!r} downloads in task "
            f"{wanted}, which this version of DAG {dag.dag_id!r} does not have yet "
            "(config/catalogs.yaml changed after the DAG was parsed); wait for the DAG "
            "processor to parse it again (or run `airflow dags reserialize`) and trigger again"
        )


def push_step_skips(ti: Any, conf_dict: Mapping[str, Any]) -> None:
    """Name the scene steps this conf does not ask for, so the scheduler skips them unqueued.

    Pushed by the task that maps the scenes (``dag_factory._skips_steps``). ``wait_online``
    goes with ``download``: without a download there is nothing to wait for. Of the providers'
    download tasks only the one of the conf's catalog runs (its Airflow pool): the others are
    skipped here too.
    """
    asked = task_types(conf_dict)
    steps = [] if TaskType.DOWNLOAD in asked else ["wait_online"]
    # every provider's download task but the one of the conf's catalog (all when not asked)
    mine = download_task_id(download_group_of(conf_dict)) if TaskType.DOWNLOAD in asked else None
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


def search(conf_dict: dict[str, Any], per_run: int) -> list[dict[str, Any]]:
    """The ``search`` task: store the scene plans; return the references this run maps.

    Up to ``per_run`` scenes are mapped by this run. More go to child runs, ``per_run`` scenes
    each: their confs are the XCom ``runs`` (``scene_runs`` maps over it) and the run maps none.
    """
    conf = validated_conf(conf_dict)
    try:
        with driver_factory(conf)(conf.catalog) as driver:
            scenes = search_scenes(conf, driver)
    except (InvalidInputError, ProviderError) as err:  # refused: retrying cannot help
        raise AirflowFailException(f"{type(err).__name__}: {err}") from err
    ti = get_current_context()["ti"]
    ti.xcom_push(key="preview", value=_store_preview(ti.run_id, preview(scenes)))
    plans = plan_scenes(conf, scenes, _default_backend())
    max_runs = airflow_conf.getint("core", "max_map_length", fallback=1024)
    try:
        ranges = split_into_runs(len(plans), per_run, max_runs)
    except ValueError as err:
        raise AirflowFailException(f"search: {err}") from err
    RunScenes().save(ti.run_id, "plan", plans)
    ti.xcom_push(key="count", value=len(plans))
    push_step_skips(ti, conf_dict)
    if len(ranges) <= 1:
        ti.xcom_push(key="runs", value=[])
        log.info("search.planned scenes=%d action=%s child_runs=0", len(plans), conf.action)
        return [
            {"run_id": ti.run_id, "idx": i, "scene_id": plan["scene"]["scene_id"]}
            for i, plan in enumerate(plans)
        ]
    runs = [
        child_conf(conf_dict, ti.dag_id, ti.run_id, part, indices)
        for part, indices in enumerate(ranges)
    ]
    ti.xcom_push(key="runs", value=runs)
    log.info(
        "search.planned scenes=%d action=%s child_runs=%d scenes_per_run=%d",
        len(plans),
        conf.action,
        len(runs),
        per_run,
    )
    return []


PART_KEYS = ("parent_dag_id", "parent_run_id", "part", "start", "stop", "conf")


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
    part = {key: raw[key] for key in PART_KEYS if key != "conf"}
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
    ti.xcom_push(key="conf", value=raw["conf"])
    ti.xcom_push(key="part", value=part)
    push_step_skips(ti, raw["conf"])
    return refs


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


def _run_duration_s() -> float:
    started = get_current_context()["dag_run"].start_date
    return time.time() - started.timestamp() if started else 0.0


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


def report(conf_dict: dict[str, Any]) -> dict[str, Any]:
    """The ``report`` task: log and return the totals; fail the run when a scene failed.

    The totals count every scene of the run, those of its child runs included: activities are
    recorded under the run that searched the scene.
    """
    ti = get_current_context()["ti"]
    if conf_dict.get("action") == Action.PREVIEW:
        result = ti.xcom_pull(task_ids="search", key="preview")
        if result is None:  # search failed: a preview of nothing would read as "no scenes"
            raise AirflowFailException("preview: the search task failed; see its log")
        log.info("report.preview scenes=%s", result.get("Results"))
        return dict(result)
    count = ti.xcom_pull(task_ids="search", key="count")
    if count is None:  # search failed: "0 scenes" would read as a successful empty run
        raise AirflowFailException("report: the search task failed; see its log")
    plans = [ScenePlan.from_dict(p) for p in RunScenes().iterate(ti.run_id, "plan")]
    if len(plans) != count:
        raise AirflowFailException(f"report: {count} scenes planned, {len(plans)} stored")
    summary = summarize(plans, ti.run_id, ActivityStore(), _run_duration_s())
    return _finish(summary, "report.summary")
