"""Scheduled collections: one pipeline YAML in ``dags/pipelines/`` describes one scheduled DAG.

A pipeline file holds a radcor conf *without dates* (each run collects its data interval) plus
the schedule and the DAG's settings::

    description: Daily Sentinel-2 L2A over two MGRS tiles
    schedule: "@daily"          # cron, preset (@daily, @weekly...) or a period ("16 days")
    start_date: 2024-01-01      # first data interval starts here (UTC)
    catchup: false              # true: the scheduler fills every interval since start_date
    tags: [sentinel-2]
    owner: data-team
    retries: 3
    pools: {download: download_earthsearch}
    queues: {download: download}
    conf: {tiles: [23LLF], catalog: EarthSearch, dataset: S2MSI2A, tasks: [...]}

``load_pipeline`` validates one file (the conf with ``validate_request``, as the REST endpoint
and the radcor DAG's ``validate`` task do) and returns a ``Pipeline``; every problem becomes a
``FieldProblem`` naming the field (``schedule``, ``conf.cloud``...), gathered in one
``PipelineError`` naming the file.
``load_pipelines`` loads a folder file by file, so one bad file never hides the others.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from croniter import CroniterBadCronError, croniter
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from include.common.errors import ConfigError, FieldProblem, InvalidInputError
from include.radcor.conf import TaskType
from include.radcor.validation import validate_request

PIPELINE_SUFFIXES = (".yaml", ".yml")
DAG_ID_PREFIX = "pipeline_"
CRON_PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
"""Presets Airflow knows, as cron expressions (``@annually`` is an alias of ``@yearly``)."""
_PERIOD_RE = re.compile(r"^\s*(?P<count>\d+)\s*(?P<unit>minute|hour|day|week)s?\s*$", re.IGNORECASE)
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_STEM_RE = re.compile(r"^[A-Za-z0-9_.-]{1,240}$")
_SCHEDULE_FIX = (
    "give a cron expression ('0 3 * * *'), a preset (@hourly, @daily, @weekly, @monthly, "
    "@quarterly, @yearly) or a period such as '16 days', '12 hours' or '2 weeks'"
)
_STEPS = tuple(str(t) for t in TaskType)
_FIXES = {
    "description": "give one line of text describing the collection",
    "schedule": _SCHEDULE_FIX,
    "start_date": "give an ISO 8601 date or datetime such as 2024-01-01 (UTC when naive)",
    "end_date": "give an ISO 8601 date or datetime after start_date, or leave it out",
    "catchup": "use true or false",
    "tags": "give a list of strings such as [sentinel-2, bahia]",
    "owner": "give the owner's name as a string",
    "retries": "give a whole number from 0 to 10",
    "retry_delay_s": "give the seconds between retries, a number from 1 to 86400",
    "max_active_runs": "give a whole number from 1 to 64",
    "pools": f"map steps ({', '.join(_STEPS)}) to Airflow pool names, e.g. "
    "{download: download_cdse}",
    "queues": f"map steps ({', '.join(_STEPS)}) to Celery queue names, e.g. {{download: download}}",
    "conf": "give the radcor conf as a mapping (catalog, dataset, area, tasks), without dates",
}


class _Steps(BaseModel):
    """A name (pool or queue) per step; absent steps keep the DAG's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    download: StrictStr | None = Field(default=None, pattern=_NAME_RE.pattern)
    correction: StrictStr | None = Field(default=None, pattern=_NAME_RE.pattern)
    harmonization: StrictStr | None = Field(default=None, pattern=_NAME_RE.pattern)
    post: StrictStr | None = Field(default=None, pattern=_NAME_RE.pattern)
    publish: StrictStr | None = Field(default=None, pattern=_NAME_RE.pattern)


class _RawPipeline(BaseModel):
    """The pipeline file's shape; ``load_pipeline`` checks the values beyond types."""

    model_config = ConfigDict(extra="forbid")

    description: StrictStr | None = None
    schedule: StrictStr
    start_date: Any
    end_date: Any = None
    catchup: StrictBool = False
    tags: list[StrictStr] = Field(default_factory=list)
    owner: StrictStr = Field(default="collection-builder", min_length=1)
    retries: int = Field(default=2, ge=0, le=10, strict=True)
    retry_delay_s: float | None = Field(default=None, ge=1, le=86400)
    max_active_runs: int = Field(default=4, ge=1, le=64, strict=True)
    pools: _Steps = Field(default_factory=_Steps)
    queues: _Steps = Field(default_factory=_Steps)
    conf: dict[str, Any]


_TOP_FIELDS = tuple(_RawPipeline.model_fields)


@dataclass(frozen=True, slots=True)
class PipelineSchedule:
    """When runs happen: a cron expression or a fixed period, each run covering one interval."""

    kind: Literal["cron", "period"]
    text: str
    """As written in the file (``@daily``, ``16 days``)."""
    cron: str | None = None
    """The cron expression (presets resolved) when ``kind == "cron"``."""
    period: timedelta | None = None
    """The interval length when ``kind == "period"``."""


@dataclass(frozen=True, slots=True)
class Pipeline:
    """One validated pipeline file: what the DAG factory needs to build its DAG."""

    dag_id: str
    path: Path
    description: str
    schedule: PipelineSchedule
    start_date: datetime
    end_date: datetime | None
    catchup: bool
    tags: tuple[str, ...]
    owner: str
    retries: int
    retry_delay: timedelta | None
    max_active_runs: int
    pools: Mapping[TaskType, str]
    queues: Mapping[TaskType, str]
    conf: dict[str, Any]
    """The canonical radcor conf as JSON, without ``start``/``end`` (they come from each run)."""


class PipelineError(ConfigError):
    """A pipeline file is invalid; lists every problem with its field and fix."""

    def __init__(self, path: Path | str, problems: list[FieldProblem]) -> None:
        first = problems[0]
        super().__init__(str(path), first.field, f"{first.message}; {first.fix}")
        self.path = Path(path)
        self.problems = list(problems)
        self.args = ("\n".join(f"{path}: {problem}" for problem in self.problems),)


class PipelineFilesError(ConfigError):
    """Several pipeline files are invalid; the message lists each file's problems."""

    def __init__(self, errors: list[PipelineError]) -> None:
        first = errors[0]
        super().__init__(first.file, first.field, str(first))
        self.errors = list(errors)
        self.args = (
            f"{len(errors)} pipeline files are invalid:\n" + "\n".join(str(e) for e in errors),
        )


@dataclass(frozen=True)
class PipelineSet:
    """The result of loading a folder: the valid pipelines and one error per invalid file."""

    pipelines: list[Pipeline] = field(default_factory=list)
    errors: list[PipelineError] = field(default_factory=list)

    def error(self) -> ConfigError | None:
        """Return one error covering every invalid file (None when all are valid)."""
        if not self.errors:
            return None
        return self.errors[0] if len(self.errors) == 1 else PipelineFilesError(self.errors)


def pipeline_files(folder: Path) -> list[Path]:
    """Return the pipeline files in ``folder`` (``*.yaml``, ``*.yml``), sorted; none if absent."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in PIPELINE_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def load_pipelines(folder: Path, *, processor_names: Collection[str] | None = None) -> PipelineSet:
    """Load every pipeline file of ``folder``; a bad file is reported, never hides the others.

    Args:
        folder: the pipelines folder (``dags/pipelines``).
        processor_names: registered processor names (default: the processor registry's, as the
            run's ``validate`` task checks them).

    Returns:
        The valid pipelines and one ``PipelineError`` per invalid file (two files giving the same
        DAG id, such as ``a.yaml`` and ``a.yml``, make the second one invalid).

    Raises:
        ConfigError: only when ``collections.yaml`` or ``catalogs.yaml`` is itself invalid.
    """
    result = PipelineSet()
    seen: dict[str, Path] = {}
    for path in pipeline_files(folder):
        try:
            pipeline = load_pipeline(path, processor_names=processor_names)
        except PipelineError as err:
            result.errors.append(err)
            continue
        if pipeline.dag_id in seen:
            result.errors.append(
                PipelineError(
                    path,
                    [
                        FieldProblem(
                            "(file name)",
                            f"gives DAG id {pipeline.dag_id!r}, as {seen[pipeline.dag_id].name}"
                            " does",
                            "rename one of the two files",
                        )
                    ],
                )
            )
            continue
        seen[pipeline.dag_id] = path
        result.pipelines.append(pipeline)
    return result


def load_pipeline(path: Path, *, processor_names: Collection[str] | None = None) -> Pipeline:
    """Read and validate one pipeline file.

    Args:
        path: the YAML file; its stem gives the DAG id ``pipeline_<stem>``.
        processor_names: registered processor names (default: the processor registry's).

    Returns:
        The validated pipeline.

    Raises:
        PipelineError: naming the file and listing every problem with its field and fix.
        ConfigError: when ``collections.yaml`` or ``catalogs.yaml`` is itself invalid.
    """
    problems: list[FieldProblem] = []
    if not _STEM_RE.match(path.stem):
        problems.append(
            FieldProblem(
                "(file name)",
                f"{path.stem!r} cannot be part of a DAG id",
                "rename the file with letters, digits, '_', '.' and '-' only",
            )
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"(line {mark.line + 1}, column {mark.column + 1})" if mark else "(yaml)"
        problems.append(
            FieldProblem(
                where,
                f"is not valid YAML: {err.problem or err}",
                "fix the YAML syntax (indentation, quotes, colons)",
            )
        )
        raise PipelineError(path, problems) from err
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        problems.append(FieldProblem("(file)", f"cannot be read: {err}", "save it as UTF-8 YAML"))
        raise PipelineError(path, problems) from err
    if not isinstance(data, Mapping):
        kind = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        problems.append(
            FieldProblem(
                "(file)", f"is {kind}", "give a mapping with at least schedule, start_date and conf"
            )
        )
        raise PipelineError(path, problems)
    try:
        raw = _RawPipeline.model_validate({str(k): v for k, v in data.items()})
    except ValidationError as err:
        problems.extend(_pydantic_problems(err))
        raise PipelineError(path, problems) from err
    schedule = _schedule(raw.schedule, problems)
    start = _instant(raw.start_date, "start_date", problems)
    end = _instant(raw.end_date, "end_date", problems) if raw.end_date is not None else None
    if start is not None and end is not None and end <= start:
        problems.append(
            FieldProblem(
                "end_date",
                f"{end.isoformat()} is not after start_date {start.isoformat()}",
                _FIXES["end_date"],
            )
        )
    conf = _conf(raw.conf, start, processor_names, problems)
    if problems or schedule is None or start is None or conf is None:
        raise PipelineError(path, problems)
    return Pipeline(
        dag_id=f"{DAG_ID_PREFIX}{path.stem}",
        path=path,
        description=(raw.description or "").strip(),
        schedule=schedule,
        start_date=start,
        end_date=end,
        catchup=raw.catchup,
        tags=tuple(dict.fromkeys(["pipeline", *raw.tags])),
        owner=raw.owner,
        retries=raw.retries,
        retry_delay=None if raw.retry_delay_s is None else timedelta(seconds=raw.retry_delay_s),
        max_active_runs=raw.max_active_runs,
        pools=_by_step(raw.pools),
        queues=_by_step(raw.queues),
        conf=conf,
    )


def parse_schedule(text: str) -> PipelineSchedule:
    """Parse a pipeline schedule: a cron expression, a preset or a period like ``16 days``.

    Raises:
        InvalidInputError: on ``schedule`` when the text is none of these.
    """
    problems: list[FieldProblem] = []
    schedule = _schedule(text, problems)
    if schedule is None:
        raise InvalidInputError(problems)
    return schedule


def _schedule(text: str, problems: list[FieldProblem]) -> PipelineSchedule | None:
    value = text.strip()
    lowered = value.lower()
    if lowered in ("", "none", "null", "@once", "@continuous"):
        problems.append(
            FieldProblem(
                "schedule",
                f"{value!r} is not a repeating schedule (backfills need intervals)",
                _SCHEDULE_FIX + "; for one-off runs trigger the radcor DAG instead",
            )
        )
        return None
    if value.startswith("@"):
        if lowered not in CRON_PRESETS:
            problems.append(FieldProblem("schedule", f"{value!r} is not a preset", _SCHEDULE_FIX))
            return None
        return PipelineSchedule("cron", value, cron=CRON_PRESETS[lowered])
    period = _PERIOD_RE.match(value)
    if period:
        count = int(period["count"])
        if count < 1:
            problems.append(
                FieldProblem("schedule", f"{value!r} is an empty period", _SCHEDULE_FIX)
            )
            return None
        unit = period["unit"].lower()
        return PipelineSchedule("period", value, period=timedelta(**{f"{unit}s": count}))
    fields = value.split()
    try:
        if len(fields) != 5:
            raise CroniterBadCronError(f"has {len(fields)} fields, a cron expression has 5")
        croniter(value)
    except (CroniterBadCronError, ValueError) as err:
        problems.append(
            FieldProblem("schedule", f"{value!r} is not a valid schedule ({err})", _SCHEDULE_FIX)
        )
        return None
    return PipelineSchedule("cron", value, cron=" ".join(fields))


def _instant(value: Any, where: str, problems: list[FieldProblem]) -> datetime | None:
    moment: datetime
    if value is None or value == "":
        problems.append(FieldProblem(where, "is empty", _FIXES[where]))
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            problems.append(
                FieldProblem(where, f"{value!r} is not an ISO 8601 date or datetime", _FIXES[where])
            )
            return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _conf(
    raw: dict[str, Any],
    start: datetime | None,
    processor_names: Collection[str] | None,
    problems: list[FieldProblem],
) -> dict[str, Any] | None:
    """Validate the conf with the REST model; dates are placeholders (each run sets its own)."""
    found = len(problems)
    for name in ("start", "end"):
        if raw.get(name) is not None:
            problems.append(
                FieldProblem(
                    f"conf.{name}",
                    "is set by the schedule: each run collects its data interval",
                    "remove it; use start_date (and end_date) at the top level of the file",
                )
            )
    if raw.get("scenes") is not None:
        problems.append(
            FieldProblem(
                "conf.scenes",
                "lists fixed scenes, but a scheduled run collects its data interval",
                "give the area instead (w/s/e/n, geom or tiles), or trigger radcor with the scenes",
            )
        )
    placeholder = start or datetime(2020, 1, 1, tzinfo=UTC)
    candidate = {k: v for k, v in raw.items() if k not in ("start", "end", "scenes")}
    candidate["start"] = placeholder.isoformat()
    candidate["end"] = (placeholder + timedelta(days=1)).isoformat()
    try:
        conf = validate_request(candidate, processor_names=processor_names)
    except InvalidInputError as err:
        problems.extend(
            FieldProblem(f"conf.{p.field}", p.message, p.fix)
            for p in err.problems
            if not (p.field == "area" and "scenes" in raw)  # already reported on conf.scenes
        )
        return None
    if len(problems) > found:
        return None
    return conf.model_dump(mode="json", exclude={"start", "end"}, exclude_none=True)


def _by_step(steps: _Steps) -> dict[TaskType, str]:
    return {TaskType(name): value for name, value in steps.model_dump().items() if value}


def _pydantic_problems(err: ValidationError) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    seen: set[str] = set()
    for error in err.errors():
        loc = [str(part) for part in error["loc"]]
        where = ".".join(loc)
        if where in seen:
            continue
        seen.add(where)
        top = loc[0]
        if error["type"] == "extra_forbidden":
            known = _TOP_FIELDS if len(loc) == 1 else _STEPS
            guess = difflib.get_close_matches(loc[-1], known, n=1)
            hint = f"did you mean {guess[0]!r}? " if guess else ""
            problems.append(
                FieldProblem(
                    where,
                    f"unknown field {loc[-1]!r}",
                    f"{hint}remove it (known fields: {', '.join(known)})",
                )
            )
        elif error["type"] == "missing":
            problems.append(FieldProblem(where, "is required", _FIXES.get(top, "add it")))
        else:
            message = re.sub(r"^Input should be", "must be", error["msg"])
            problems.append(
                FieldProblem(
                    where,
                    f"{message} (got {error['input']!r})"[:300],
                    _FIXES.get(top, "see docs/deploy.md"),
                )
            )
    return problems
