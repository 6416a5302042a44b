"""Builds one scheduled radcor DAG per pipeline YAML (``dags/pipelines/*.yaml``).

Two DAG files share this module. ``dags/pipelines.py`` builds a DAG for every *valid* file and
skips the invalid ones; ``dags/pipeline_check.py`` builds nothing and raises the invalid files'
errors, so Airflow shows them as *its* import error (file, field and fix in the message, in the
UI's *DAG Import Errors* and ``GET /api/v2/importErrors``). The split matters: Airflow marks
every DAG of a file that has an import error as stale and stops scheduling them, so the errors
must never be raised from the file that holds the good pipelines.

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

from airflow.sdk import CronDataIntervalTimetable, DeltaDataIntervalTimetable
from airflow.sdk.exceptions import AirflowTimetableInvalid

from include.common.errors import FieldProblem
from include.processors.registry import registered_names
from include.radcor.pipelines import Pipeline, PipelineError, PipelineSet, load_pipelines
from radcor_api.dag_factory import build_radcor_dag

log = logging.getLogger(__name__)


SCHEDULE_FIX = "give a 5-field cron expression, a preset or a period such as '16 days'"


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


def check_pipelines(folder: Path) -> PipelineSet:
    """Load and check every pipeline file of ``folder``, Airflow's schedule check included.

    Returns:
        The valid pipelines and one ``PipelineError`` per invalid file.
    """
    loaded = load_pipelines(folder, processor_names=registered_names())
    valid: list[Pipeline] = []
    errors = list(loaded.errors)
    for pipeline in loaded.pipelines:
        try:
            timetable_of(pipeline).validate()
        except (AirflowTimetableInvalid, ValueError) as err:
            errors.append(
                PipelineError(
                    pipeline.path,
                    [
                        FieldProblem(
                            "schedule",
                            f"{pipeline.schedule.text!r} is refused by Airflow: {err}",
                            SCHEDULE_FIX,
                        )
                    ],
                )
            )
            continue
        valid.append(pipeline)
    errors.sort(key=lambda error: error.path.name)
    return PipelineSet(pipelines=valid, errors=errors)


def build_pipeline_dag(pipeline: Pipeline, module_doc: str) -> Any:
    """Return the scheduled radcor DAG of one checked pipeline."""
    default_args: dict[str, Any] = {"owner": pipeline.owner, "retries": pipeline.retries}
    if pipeline.retry_delay is not None:
        default_args["retry_delay"] = pipeline.retry_delay
    return build_radcor_dag(
        pipeline.dag_id,
        doc_md=doc_of(pipeline, module_doc),
        schedule=timetable_of(pipeline),
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
    """Build one DAG ``pipeline_<stem>`` per valid pipeline file into ``namespace``.

    Invalid files are logged and skipped here; ``raise_pipeline_errors`` reports them.

    Args:
        folder: the pipelines folder.
        namespace: where the DAGs go (``globals()`` of the DAG file).
        module_doc: the DAG file's docstring (a fallback description).

    Returns:
        The valid pipelines and the errors of the invalid files.
    """
    checked = check_pipelines(folder)
    for pipeline in checked.pipelines:
        namespace[pipeline.dag_id] = build_pipeline_dag(pipeline, module_doc)
    for error in checked.errors:
        log.warning(
            "pipeline.skipped file=%s problems=%d (see the import error of pipeline_check.py)",
            error.path,
            len(error.problems),
        )
    return checked


def raise_pipeline_errors(folder: Path) -> None:
    """Raise the errors of the invalid pipeline files of ``folder``, if any.

    Raises:
        PipelineError: one file is invalid (file, fields and fixes in the message).
        PipelineFilesError: several files are invalid; the message lists each.
    """
    error = check_pipelines(folder).error()
    if error is not None:
        raise error
