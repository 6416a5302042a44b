"""Builds one scheduled radcor DAG per pipeline YAML (``dags/pipelines/*.yaml``).

Each file's DAG is built on its own: a bad file never breaks the others. Airflow attributes
import errors to the Python file that builds the DAGs (``dags/pipelines.py``), so the bad files
are reported through one placeholder DAG whose ``validate()`` raises their errors: the DagBag
records that as the import error of ``pipelines.py`` (file, field and fix in the message,
shown in the UI's *DAG Import Errors* and ``GET /api/v2/importErrors``) and still registers
every valid pipeline's DAG. The placeholder is never registered itself.

Runs cover data intervals (``CronDataIntervalTimetable`` / ``DeltaDataIntervalTimetable``, not
Airflow 3's point-in-time defaults), so a run's ``start``/``end`` are its interval and
``airflow backfill create`` collects each past interval once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, CronDataIntervalTimetable, DeltaDataIntervalTimetable
from airflow.sdk.exceptions import AirflowTimetableInvalid

from include.common.errors import ConfigError, FieldProblem
from include.processors.registry import registered_names
from include.radcor.pipelines import Pipeline, PipelineError, PipelineSet, load_pipelines
from radcor_api.dag_factory import build_radcor_dag

log = logging.getLogger(__name__)

INVALID_PIPELINES_DAG_ID = "pipelines_invalid_files"


class InvalidPipelinesDag(DAG):
    """Placeholder carrying the pipeline files' errors; the DagBag's ``validate()`` raises them."""

    def validate(self) -> None:
        """Raise the pipeline errors so Airflow records them as this file's import error.

        Raises:
            ConfigError: always; the message names each bad file, its fields and their fixes.
        """
        error: ConfigError = self.__dict__["pipeline_error"]
        raise error


def timetable_of(pipeline: Pipeline) -> Any:
    """Return the data-interval timetable of ``pipeline`` (UTC)."""
    schedule = pipeline.schedule
    if schedule.kind == "cron" and schedule.cron is not None:
        return CronDataIntervalTimetable(schedule.cron, timezone="UTC")
    return DeltaDataIntervalTimetable(schedule.period)


def doc_of(pipeline: Pipeline, module_doc: str) -> str:
    """Return the DAG's ``doc_md``: the description, the schedule and the fixed conf."""
    lines = [
        f"### Scheduled collection `{pipeline.path.stem}`",
        "",
        pipeline.description or module_doc.strip().splitlines()[0],
        "",
        f"Defined by `pipelines/{pipeline.path.name}`. Schedule `{pipeline.schedule.text}` from "
        f"{pipeline.start_date:%Y-%m-%d %H:%M} UTC"
        + (f" to {pipeline.end_date:%Y-%m-%d %H:%M} UTC" if pipeline.end_date else "")
        + f", catchup {'on' if pipeline.catchup else 'off'}. Each run collects its data "
        "interval: `start` is the interval's start, `end` just before its end.",
        "",
        f"Backfill: `airflow backfill create --dag-id {pipeline.dag_id} --from-date 2024-01-01 "
        "--to-date 2024-01-31` (or `POST /api/v2/backfills`).",
        "",
        "```json",
        json.dumps(pipeline.conf, indent=2),
        "```",
    ]
    return "\n".join(lines)


def build_pipeline_dag(pipeline: Pipeline, module_doc: str) -> Any:
    """Return the scheduled radcor DAG of one validated pipeline.

    Raises:
        PipelineError: when Airflow refuses a setting the file gave (named by field).
    """
    default_args: dict[str, Any] = {"owner": pipeline.owner, "retries": pipeline.retries}
    if pipeline.retry_delay is not None:
        default_args["retry_delay"] = pipeline.retry_delay
    try:
        timetable = timetable_of(pipeline)
        timetable.validate()
    except (AirflowTimetableInvalid, ValueError) as err:  # Airflow's own schedule check
        raise PipelineError(pipeline.path, [FieldProblem(
            "schedule", f"{pipeline.schedule.text!r} is refused by Airflow: {err}",
            "give a 5-field cron expression, a preset or a period such as '16 days'")]) from err
    return build_radcor_dag(
        pipeline.dag_id,
        doc_md=doc_of(pipeline, module_doc),
        schedule=timetable,
        start_date=pipeline.start_date,
        end_date=pipeline.end_date,
        catchup=pipeline.catchup,
        tags=list(pipeline.tags),
        defaults=pipeline.conf,
        default_args=default_args,
        dates_from_interval=True,
        max_active_runs=pipeline.max_active_runs,
        queues={str(step): queue for step, queue in pipeline.queues.items()},
        pools={str(step): pool for step, pool in pipeline.pools.items()},
    )


def register_pipeline_dags(
    folder: Path, namespace: MutableMapping[str, Any], *, module_doc: str
) -> PipelineSet:
    """Build one DAG per pipeline file of ``folder`` into ``namespace`` (a DAG file's globals).

    Valid files become DAGs ``pipeline_<stem>``. When some files are invalid, one
    ``InvalidPipelinesDag`` joins the namespace so Airflow reports them as an import error.

    Args:
        folder: the pipelines folder.
        namespace: where the DAGs go (``globals()`` of the DAG file).
        module_doc: the DAG file's docstring (a fallback description).

    Returns:
        The loaded pipelines and the errors of the invalid files.
    """
    loaded = load_pipelines(folder, processor_names=registered_names())
    built: list[Pipeline] = []
    errors = list(loaded.errors)
    for pipeline in loaded.pipelines:
        try:
            namespace[pipeline.dag_id] = build_pipeline_dag(pipeline, module_doc)
        except PipelineError as err:
            errors.append(err)
            continue
        built.append(pipeline)
    result = PipelineSet(pipelines=built, errors=errors)
    error = result.error()
    if error is not None:
        for bad in errors:
            log.error("pipeline.invalid file=%s problems=%s", bad.path, len(bad.problems))
        placeholder = InvalidPipelinesDag(
            dag_id=INVALID_PIPELINES_DAG_ID, schedule=None, doc_md=str(error)
        )
        placeholder.__dict__["pipeline_error"] = error
        namespace[INVALID_PIPELINES_DAG_ID] = placeholder
    return result
