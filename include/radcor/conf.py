"""The radcor conf (DESIGN 1.1): its typed model, its validation and the UI form's JSON schema.

``validate_conf`` checks a raw conf against the configured collections, catalogs and
processors, collects every problem and raises one ``InvalidInputError`` whose entries name the
field and the fix. The returned ``RadcorConf`` is canonical: lowercase catalog name, aware UTC
datetimes, GeoJSON geometry, canonical scene ids and tiles.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)

from include.collectors.base import SearchQuery
from include.collectors.registry import is_credential_key
from include.collectors.scene_ids import (
    catalog_item_id,
    is_mgrs_tile,
    item_id_problem,
    parse_scene_id,
    parse_wrs2_pathrow,
)
from include.common.config import (
    COLLECTION_NAME_RE,
    PROCESSING_TYPES,
    CatalogConfig,
    CollectionConfig,
    load_catalogs,
    load_collections,
    resolve_catalog_name,
)
from include.common.errors import FieldProblem, InvalidInputError
from include.radcor.conf_limits import text_problems
from include.radcor.wait_settings import check_wait_args

log = logging.getLogger(__name__)

MAX_SCENES = 5000
MAX_DEPTH = 6
MAX_NODES = 64
MAX_LISTED = 20
"""Problems reported per list (scenes, tiles); the rest are counted in one summary entry."""
AreaMode = Literal["bbox", "geom", "scenes", "tiles"]


class TaskType(StrEnum):
    """A node type of the processing tree, in canonical order."""

    DOWNLOAD = "download"
    CORRECTION = "correction"
    HARMONIZATION = "harmonization"
    POST = "post"
    PUBLISH = "publish"


CANONICAL_ORDER: tuple[TaskType, ...] = tuple(TaskType)


class Action(StrEnum):
    """What a run does: search only, or search and process."""

    PREVIEW = "preview"
    START = "start"


_Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class TaskNode(BaseModel):
    """One node of the processing tree; children run after it for the same scene."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: TaskType
    collection: str = Field(pattern=COLLECTION_NAME_RE.pattern)
    args: dict[str, Any] = Field(default_factory=dict)
    tasks: list[TaskNode] = Field(default_factory=list)


class CatalogArgs(BaseModel):
    """Driver options a conf may override; never credentials (use ``conn_id``).

    ``progress`` is the upstream's switch for a download progress bar: accepted so upstream
    confs validate, and ignored (progress always goes to the task log).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: StrictStr | None = None
    page_size: StrictInt | None = None
    conn_id: StrictStr | None = None
    timeout_s: _Finite | None = None
    verify_tls: bool | str | None = None
    max_connections: StrictInt | None = None
    token_url: StrictStr | None = None
    """Token endpoint of catalogs that declare one (CDSE); only on the url's host or loopback."""
    progress: StrictBool | None = None
    """Upstream's progress-bar switch: accepted, ignored (logged when given)."""

    def given(self) -> dict[str, Any]:
        """Return the options the conf set (None left out), as the conf wrote them."""
        return self.model_dump(exclude_none=True)

    def driver_args(self) -> dict[str, Any]:
        """Return the options the catalog layer takes (``progress`` left out: ignored)."""
        return {k: v for k, v in self.given().items() if k not in IGNORED_CATALOG_ARGS}


UPSTREAM_TASK_ARGS: frozenset[str] = frozenset(
    {"glob_pattern", "path_include_month", "items_to_publish"}
)
"""Task args of the upstream guide's trees, accepted and dropped (``_without_upstream_args``)."""
IGNORED_CATALOG_ARGS: tuple[str, ...] = ("progress",)
"""Upstream ``catalog_args`` accepted and ignored (with a logged note)."""
SEARCH_ARG_FIELDS: tuple[str, ...] = ("platform", "limit")
"""Upstream ``catalog_search_args`` keys this project applies; others are refused."""
_SEARCH_ARG_TYPES = {"platform": "a non-empty string", "limit": "a whole number above 0"}


class RadcorConf(BaseModel):
    """A validated, canonical radcor conf. Build it with ``validate_conf``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    w: float | None = Field(default=None, ge=-180, le=180)
    s: float | None = Field(default=None, ge=-90, le=90)
    e: float | None = Field(default=None, ge=-180, le=180)
    n: float | None = Field(default=None, ge=-90, le=90)
    geom: dict[str, Any] | None = None
    scenes: list[str] | None = None
    tiles: list[str] | None = None
    catalog: str
    catalog_args: CatalogArgs = Field(default_factory=CatalogArgs)
    catalog_search_args: dict[str, Any] = Field(default_factory=dict)
    """Upstream's extra search filters; only ``SEARCH_ARG_FIELDS`` (checked)."""
    platform: str | None = None
    """Only scenes of this platform (``Sentinel-2A``, ``sentinel-2``, ``LANDSAT_8``...)."""
    tags: list[str] = Field(default_factory=list)
    """Upstream's free labels of a request; kept with the run's conf."""
    dataset: str = Field(min_length=1)
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    cloud: float = Field(default=100.0, ge=0, le=100)
    action: Action = Action.START
    force: bool = False
    tasks: list[TaskNode] = Field(default_factory=list)

    @property
    def area_mode(self) -> AreaMode:
        """Return which field gives the area: ``bbox``, ``geom``, ``scenes`` or ``tiles``."""
        if self.geom is not None:
            return "geom"
        if self.scenes is not None:
            return "scenes"
        if self.tiles is not None:
            return "tiles"
        return "bbox"

    @property
    def platform_wanted(self) -> str | None:
        """Return the platform scenes must be of (``platform``, else the search args')."""
        return self.platform or self.catalog_search_args.get("platform")

    @property
    def bbox(self) -> tuple[float, float, float, float] | None:
        """Return ``(w, s, e, n)`` when the area is a bounding box."""
        if self.w is None or self.s is None or self.e is None or self.n is None:
            return None
        return (self.w, self.s, self.e, self.n)


def _tree_nodes(conf: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Return every node of a conf's task tree, in no particular order (a plain dict walk)."""
    found: list[Mapping[str, Any]] = []
    pending = list(conf.get("tasks") or [])
    while pending:
        node = pending.pop()
        if not isinstance(node, Mapping):
            continue
        found.append(node)
        children = node.get("tasks")
        pending.extend(children if isinstance(children, list) else [])
    return found


def task_types(conf: RadcorConf | Mapping[str, Any]) -> frozenset[TaskType]:
    """Return the task types of a validated conf's tree (the model or its ``model_dump()``).

    A plain walk, without validating again: what a per-scene task checks first, so a step the
    conf does not ask for is skipped before any import or database access.
    """
    if isinstance(conf, RadcorConf):
        pending: list[TaskNode] = list(conf.tasks)
        found: set[TaskType] = set()
        while pending:
            node = pending.pop()
            found.add(node.type)
            pending.extend(node.tasks)
        return frozenset(found)
    return frozenset(TaskType(node["type"]) for node in _tree_nodes(conf))


def published_collections(conf: Mapping[str, Any]) -> frozenset[str]:
    """Return the collections a conf's ``publish`` nodes name, from a raw or validated conf.

    Malformed nodes are passed over rather than raised on: the caller checks the names against
    the configured collections, and the run's ``validate`` task reports what is wrong.
    """
    return frozenset(
        node["collection"]
        for node in _tree_nodes(conf)
        if node.get("type") == TaskType.PUBLISH.value and isinstance(node.get("collection"), str)
    )


class _RawConf(BaseModel):
    """Types only; ``validate_conf`` checks values and canonicalises."""

    model_config = ConfigDict(extra="forbid")

    w: _Finite | None = None
    s: _Finite | None = None
    e: _Finite | None = None
    n: _Finite | None = None
    geom: Any = None
    scenes: list[StrictStr] | None = None
    tiles: list[StrictStr] | None = None
    catalog: StrictStr
    catalog_args: dict[str, Any] | None = None
    catalog_search_args: dict[str, Any] | None = None
    platform: StrictStr | None = None
    tags: list[StrictStr] | None = None
    dataset: StrictStr
    start: Any = None
    end: Any = None
    cloud: _Finite | None = None
    action: StrictStr | None = None
    force: StrictBool | None = None
    tasks: list[Any] | None = None


class _RawNode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: StrictStr
    collection: StrictStr
    args: dict[str, Any] | None = None
    tasks: list[Any] | None = None


CONF_FIELDS: tuple[str, ...] = tuple(RadcorConf.model_fields)
_NODE_FIELDS = tuple(TaskNode.model_fields)
_ARG_FIELDS = tuple(CatalogArgs.model_fields)
_CONN_ID_RE = re.compile(r"^[\w.-]{1,250}$")
_ORDER_TEXT = " -> ".join(CANONICAL_ORDER)
_DATE_FIX = "give an ISO 8601 date or datetime such as '2020-01-09' or '2020-01-09T13:22:31Z'"
_FIXES = {
    "w": "give the west longitude in degrees, a number from -180 to 180",
    "s": "give the south latitude in degrees, a number from -90 to 90",
    "e": "give the east longitude in degrees, a number from -180 to 180",
    "n": "give the north latitude in degrees, a number from -90 to 90",
    "geom": "give WKT such as 'POLYGON ((-45.9 -12.7, -45.8 -12.7, -45.8 -12.6, -45.9 -12.7))' "
    "or a GeoJSON Polygon, MultiPolygon or Point in WGS84 longitude/latitude",
    "scenes": "give a list of scene ids such as ['S2A_MSIL1C_20200109T132231_N0208_R038_"
    "T23LLF_20200109T145429']",
    "scenes[]": "give the scene id as a string",
    "tiles": "give a list of MGRS tiles or WRS-2 path/rows such as ['23LLF', '221069']",
    "tiles[]": "give an MGRS tile such as '23LLF' or a WRS-2 path/row such as '221069'",
    "catalog": "name a configured catalog such as 'CDSE', 'EarthSearch' or 'USGS'",
    "catalog_args": f"give an object with some of: {', '.join(_ARG_FIELDS)}",
    "catalog_args.url": "give an http(s) URL such as 'https://earth-search.aws.element84.com/v1'",
    "catalog_args.page_size": "give a whole number from 1 to 10000",
    "catalog_args.conn_id": "give an Airflow Connection id such as 'cdse_default'",
    "catalog_args.timeout_s": "give a number of seconds greater than 0",
    "catalog_args.verify_tls": "give true, false or the path of a CA bundle file",
    "catalog_args.max_connections": "give a whole number from 1 to 64",
    "catalog_args.progress": "use true or false (accepted and ignored: progress goes to the "
    "task log)",
    "catalog_search_args": "give an object with some of: platform (e.g. 'Sentinel-2A'), "
    "limit (most scenes, a whole number)",
    "platform": "give a platform such as 'Sentinel-2A', 'sentinel-2' or 'LANDSAT_8'",
    "tags": "give a list of strings such as ['bdc', 'test']",
    "tags[]": "give the tag as a string",
    "catalog_args.token_url": "leave it out (the catalog's own is used), or give the token "
    "endpoint on the host of catalog_args.url or on loopback",
    "dataset": "name the dataset as the catalog does, e.g. 'S2MSI1C', 'S2MSI2A', "
    "'landsat_ot_c2_l2' or 'sentinel-2-l2a'",
    "start": _DATE_FIX,
    "end": _DATE_FIX,
    "cloud": "give the maximum cloud cover in percent, a number from 0 to 100",
    "action": "use 'preview' (search only) or 'start' (search and process)",
    "force": "use true or false (a JSON boolean, not a string)",
    "tasks": 'give a list of nodes such as [{"type": "download", "collection": "S2_L1C-1", '
    '"args": {}, "tasks": []}]',
    "tasks[]": 'give an object {"type": ..., "collection": ..., "args": {}, "tasks": []}',
    "tasks[].type": f"use one of {', '.join(CANONICAL_ORDER)}",
    "tasks[].collection": "use Name-Version of a configured collection such as 'S2_L2A-1'",
    "tasks[].args": "give a JSON object ({} for none)",
    "tasks[].tasks": "give a list of child nodes ([] for none)",
    "conf": 'give a JSON object such as {"catalog": "CDSE", "dataset": "S2MSI1C", "tiles": '
    '["23LLF"], "start": "2020-01-09", "end": "2020-01-10", "tasks": []}',
}


@dataclass
class _Checker:
    """Holds the context of one validation and the problems found so far."""

    collections: Mapping[str, CollectionConfig]
    catalogs: Mapping[str, CatalogConfig]
    processor_names: frozenset[str] | None
    problems: list[FieldProblem] = field(default_factory=list)
    node_count: int = 0
    order_problems: list[int] = field(default_factory=list)
    """Indexes in ``problems`` of nodes out of the canonical order (get the equivalent tree)."""

    def add(self, where: str, message: str, fix: str) -> None:
        self.problems.append(FieldProblem(where, message, fix))

    def add_capped(self, where: str, problems: list[FieldProblem]) -> None:
        """Add the first ``MAX_LISTED`` problems of one list and count the rest."""
        self.problems.extend(problems[:MAX_LISTED])
        if len(problems) > MAX_LISTED:
            self.add(
                where,
                f"has {len(problems) - MAX_LISTED} more problems not listed",
                "fix the entries above and validate again",
            )

    def catalog_fix(self) -> str:
        aliases = ", ".join(
            f"{alias} -> {canonical}"
            for canonical, catalog in self.catalogs.items()
            for alias in catalog.aliases
        )
        return f"use one of: {', '.join(self.catalogs)}" + (
            f" (aliases: {aliases})" if aliases else ""
        )

    def add_pydantic(
        self,
        err: ValidationError,
        prefix: str,
        known: tuple[str, ...],
        *,
        reported: Collection[str] = (),
    ) -> None:
        """Add pydantic's errors as problems; a ``reported`` field's missing error is left out."""
        for error in err.errors():
            where = _join(prefix, error["loc"])
            if error["type"] == "missing" and where in reported:
                continue
            if error["type"] == "extra_forbidden":
                name = str(error["loc"][-1])
                self.add(
                    where,
                    f"unknown field {_short(name)}",
                    f"remove it (known fields: {', '.join(known)})",
                )
            elif error["type"] == "missing":
                self.add(
                    where,
                    "is required",
                    self.catalog_fix() if where == "catalog" else _fix_for(where),
                )
            else:
                message = re.sub(r"^Input should be", "must be", error["msg"])
                self.add(where, f"{message} (got {_json_type(error['input'])})", _fix_for(where))


def validate_conf(
    raw: Mapping[str, Any],
    *,
    collections: Mapping[str, CollectionConfig] | None = None,
    catalogs: Mapping[str, CatalogConfig] | None = None,
    processor_names: Collection[str] | None = None,
) -> RadcorConf:
    """Validate a raw radcor conf and return it canonical.

    A None value counts as absent (Airflow Params send None for fields left empty).

    Args:
        raw: the conf as sent (JSON object).
        collections: configured collections; None loads ``config/collections.yaml``.
        catalogs: configured catalogs keyed by lowercase name; None loads ``catalogs.yaml``.
        processor_names: registered processor names; None accepts any configured name.

    Returns:
        The canonical conf.

    Raises:
        InvalidInputError: listing every problem, each with its field and fix.
        ConfigError: when the configuration files themselves are invalid.
    """
    checker = _Checker(
        collections=load_collections() if collections is None else collections,
        catalogs=load_catalogs() if catalogs is None else catalogs,
        processor_names=(
            None if processor_names is None else frozenset(p.lower() for p in processor_names)
        ),
    )
    values = {str(k): v for k, v in conf_object(raw).items() if v is not None}
    text_problems_found, over_limits = text_problems(values)
    checker.problems.extend(text_problems_found)
    values = {k: v for k, v in values.items() if k not in over_limits}
    for key in [k for k in values if k not in CONF_FIELDS and is_credential_key(k)]:
        del values[key]
        checker.add(
            key,
            "raw credentials are not accepted in a conf (value not shown)",
            _connection_fix(None, checker.catalogs),
        )
    bad: set[str] = set(over_limits)
    try:
        _RawConf.model_validate(values)
    except ValidationError as err:
        checker.add_pydantic(err, "", CONF_FIELDS, reported=over_limits)
        bad |= {str(error["loc"][0]) for error in err.errors()}
    good = {k: v for k, v in values.items() if k in CONF_FIELDS and k not in bad}
    canonical = _check_fields(good, bad, checker)
    if checker.problems:
        raise InvalidInputError(checker.problems)
    try:
        return RadcorConf.model_validate(canonical)
    except ValidationError as err:  # a canonical value broke a model constraint: report it
        checker.add_pydantic(err, "", CONF_FIELDS)
        raise InvalidInputError(checker.problems) from err


def conf_object(raw: object) -> Mapping[str, Any]:
    """Return ``raw`` when it is a JSON object (a mapping).

    Raises:
        InvalidInputError: on ``conf`` when it is anything else (an array, a string, null...).
    """
    if isinstance(raw, Mapping):
        return raw
    raise InvalidInputError(
        FieldProblem("conf", f"must be a JSON object (got {_json_type(raw)})", _fix_for("conf"))
    )


def _check_fields(good: dict[str, Any], bad: set[str], checker: _Checker) -> dict[str, Any]:
    out: dict[str, Any] = {}
    catalog = _check_catalog(good["catalog"], checker) if "catalog" in good else None
    if catalog is not None:
        out["catalog"] = catalog
    if "dataset" in good:
        out["dataset"] = good["dataset"].strip()
        if not out["dataset"]:
            checker.add("dataset", "is empty", _FIXES["dataset"])
    args_problems = len(checker.problems)
    out["catalog_args"] = _check_catalog_args(good.get("catalog_args") or {}, catalog, checker)
    if catalog is not None:
        args_checked = len(checker.problems) == args_problems
        args = out["catalog_args"] if args_checked else {}
        _check_on_driver(catalog, args, out.get("dataset") or None, checker)
    search_args = _check_search_args(good.get("catalog_search_args") or {}, checker)
    if search_args:
        out["catalog_search_args"] = search_args
    if "platform" in good:
        out["platform"] = good["platform"].strip()
        if not out["platform"]:
            checker.add("platform", "is empty", _FIXES["platform"])
    if "tags" in good:
        out["tags"] = [tag.strip() for tag in good["tags"] if tag.strip()]
    mode = _check_area(good, bad, checker, out)
    _check_dates(good, bad, mode, checker, out)
    if "cloud" in good:
        out["cloud"] = float(good["cloud"])
        if not 0 <= out["cloud"] <= 100:
            checker.add("cloud", f"{good['cloud']} is outside 0..100", _FIXES["cloud"])
    action = Action.START
    if "action" in good:
        try:
            action = out["action"] = Action(good["action"].strip().lower())
        except ValueError:
            checker.add("action", f"{_short(good['action'])} is not an action", _FIXES["action"])
    if "force" in good:
        out["force"] = good["force"]
    if "tasks" not in bad:
        out["tasks"] = _check_tasks(good.get("tasks") or [], action, checker)
    return out


def _check_catalog(value: str, checker: _Checker) -> str | None:
    name = value.strip()
    fix = checker.catalog_fix()
    if not name:
        checker.add("catalog", "is empty", fix)
        return None
    try:
        canonical, used_alias = resolve_catalog_name(name, dict(checker.catalogs))
    except KeyError:
        checker.add("catalog", f"{_short(name)} is not a configured catalog", fix)
        return None
    if used_alias:
        note = checker.catalogs[canonical].deprecated_alias_note or "use the canonical name"
        log.warning("conf.catalog_alias given=%s catalog=%s note=%s", name, canonical, note)
    return canonical


def _check_catalog_args(
    value: Mapping[str, Any], catalog: str | None, checker: _Checker
) -> dict[str, Any]:
    args = {str(k): v for k, v in value.items() if v is not None}
    for key in [k for k in args if is_credential_key(k) and k not in _ARG_FIELDS]:
        del args[key]
        checker.add(
            f"catalog_args.{_short(key, quote=False)}",
            "raw credentials are not accepted in a conf (value not shown)",
            _connection_fix(catalog, checker.catalogs),
        )
    verify_tls = args.pop("verify_tls", None)
    if isinstance(verify_tls, str) and verify_tls.strip().lower() in ("true", "false", ""):
        checker.add(
            "catalog_args.verify_tls",
            f"is the string {verify_tls!r}, not a boolean or a CA bundle path",
            "use true or false (a JSON boolean, not a string)",
        )
        verify_tls = None
    elif verify_tls is not None and not isinstance(verify_tls, bool | str):
        checker.add(
            "catalog_args.verify_tls",
            f"must be a boolean or a CA bundle path (got {_json_type(verify_tls)})",
            _FIXES["catalog_args.verify_tls"],
        )
        verify_tls = None
    try:
        parsed = CatalogArgs.model_validate(args)
    except ValidationError as err:
        checker.add_pydantic(err, "catalog_args", _ARG_FIELDS)
        wrong = {error["loc"][0] for error in err.errors()}
        parsed = CatalogArgs.model_validate({k: v for k, v in args.items() if k not in wrong})
    if parsed.url is not None:
        _check_url(parsed.url, catalog, checker)
    if parsed.token_url is not None:
        _check_token_url(parsed.token_url, parsed.url, catalog, checker)
    _check_range("catalog_args.page_size", parsed.page_size, 1, 10000, checker)
    _check_range("catalog_args.max_connections", parsed.max_connections, 1, 64, checker)
    if parsed.timeout_s is not None and parsed.timeout_s <= 0:
        checker.add(
            "catalog_args.timeout_s",
            f"{parsed.timeout_s} is not greater than 0",
            _FIXES["catalog_args.timeout_s"],
        )
    if parsed.conn_id is not None and not _CONN_ID_RE.match(parsed.conn_id):
        checker.add(
            "catalog_args.conn_id",
            f"{_short(parsed.conn_id)} is not a Connection id",
            "use letters, digits, '_', '.' and '-' only, e.g. 'cdse_default'",
        )
    if parsed.progress is not None:
        log.info(
            "conf.catalog_args_ignored progress=%s: progress always goes to the task log",
            parsed.progress,
        )
    out = parsed.model_dump(exclude_none=True)
    if verify_tls is not None:
        out["verify_tls"] = verify_tls.strip() if isinstance(verify_tls, str) else verify_tls
    return out


def _check_on_driver(
    catalog: str, args: Mapping[str, Any], dataset: str | None, checker: _Checker
) -> None:
    """Build the catalog's driver as a search will, without credentials, and ask it.

    Whatever building refuses (a ``url`` override to a host the deployment does not allow) is
    refused here, before any run exists; a ``url`` on another host than the catalog's while
    the catalog uses a Connection is refused too (its credentials would go there). The driver
    then checks ``dataset`` against what the catalog offers, naming the known datasets.
    ``args`` are the checked ``catalog_args`` (empty when they had problems).
    """
    # the registry imports every driver: only when a conf is validated, never at DAG parse
    from include.collectors.outbound import catalog_policy
    from include.collectors.registry import endpoint_override_problem, make_driver

    config = checker.catalogs[catalog]
    driver_args = {k: v for k, v in args.items() if k not in IGNORED_CATALOG_ARGS}
    if "url" in driver_args:
        problem = endpoint_override_problem(
            "catalog_args.url",
            driver_args["url"],
            home_url=config.url,
            policy=catalog_policy(catalog, config),
            receives_credentials=bool(config.conn_id or driver_args.get("conn_id")),
        )
        if problem is not None:
            checker.problems.append(problem)
            driver_args.pop("url")
    try:
        driver = make_driver(catalog, catalog_args=driver_args, catalogs=checker.catalogs)
    except InvalidInputError as err:
        checker.problems.extend(err.problems)
        return
    with driver:
        if dataset is None:
            return
        try:
            driver.check_dataset(dataset)
        except InvalidInputError as err:
            checker.problems.extend(err.problems)


def _check_search_args(value: Mapping[str, Any], checker: _Checker) -> dict[str, Any]:
    """Check upstream's ``catalog_search_args``: the filters this project can apply.

    Upstream handed them to its driver's search as keyword arguments; here ``platform``
    filters the scenes and ``limit`` caps them. Any other key is refused rather than ignored:
    a filter dropped in silence would collect more than asked.
    """
    out: dict[str, Any] = {}
    for key, item in value.items():
        where = f"catalog_search_args.{_short(str(key), quote=False)}"
        if is_credential_key(str(key)):
            checker.add(
                where,
                "raw credentials are not accepted in a conf (value not shown)",
                "keep secrets in an Airflow Connection and name it in catalog_args.conn_id",
            )
        elif key == "platform" and isinstance(item, str) and item.strip():
            out["platform"] = item.strip()
        elif key == "limit" and isinstance(item, int) and not isinstance(item, bool) and item > 0:
            out["limit"] = item
        elif key in SEARCH_ARG_FIELDS:
            checker.add(
                where,
                f"must be {_SEARCH_ARG_TYPES[key]} (got {_json_type(item)})",
                _FIXES["catalog_search_args"],
            )
        else:
            checker.add(
                where,
                "is a search filter this project does not apply",
                f"remove it; {_FIXES['catalog_search_args']}, or use the conf's own fields "
                "(cloud, start, end, tiles, geom)",
            )
    return out


def _check_token_url(
    token_url: str, url: str | None, catalog: str | None, checker: _Checker
) -> None:
    """The catalog must declare a token endpoint; it must stay on the url's host or loopback."""
    where = "catalog_args.token_url"
    config = checker.catalogs.get(catalog) if catalog else None
    if config is not None and "token_url" not in config.options:
        checker.add(
            where,
            f"catalog {catalog!r} takes no token_url",
            "remove it (only catalogs that log in at a token endpoint, such as cdse)",
        )
        return
    before = len(checker.problems)
    _check_url(token_url, catalog, checker, where=where)
    home = url or (config.url if config is not None else "")
    from include.collectors.registry import endpoint_override_problem  # imports every driver

    problem = endpoint_override_problem(where, token_url, home_url=home)
    if len(checker.problems) == before and problem is not None:
        checker.problems.append(problem)


def _check_url(
    url: str, catalog: str | None, checker: _Checker, *, where: str = "catalog_args.url"
) -> None:
    try:
        parts = urlsplit(url.strip())
        has_userinfo = "@" in parts.netloc
        query_keys = [key for key, _ in parse_qsl(parts.query, keep_blank_values=True)]
        hostname = parts.hostname
    except ValueError:
        checker.add(where, "is not a valid URL (not shown)", _FIXES[where])
        return
    if has_userinfo or any(is_credential_key(key) for key in query_keys):
        checker.add(
            where,
            "contains credentials (user:password@ or a token parameter; not shown)",
            _connection_fix(catalog, checker.catalogs),
        )
    elif parts.scheme not in ("http", "https") or not hostname:
        checker.add(where, "is not an http(s) URL with a host", _FIXES[where])


def _check_range(where: str, value: int | None, low: int, high: int, checker: _Checker) -> None:
    if value is not None and not low <= value <= high:
        checker.add(where, f"{value} is outside {low}..{high}", _FIXES[where])


def _check_area(
    good: dict[str, Any], bad: set[str], checker: _Checker, out: dict[str, Any]
) -> AreaMode | None:
    sides = [side for side in "wsen" if side in good or side in bad]
    modes: list[AreaMode] = ["bbox"] if sides else []
    others: tuple[AreaMode, ...] = ("geom", "scenes", "tiles")
    for name in others:
        if name in bad or good.get(name) not in (None, "", []):
            modes.append(name)
    if not modes:
        checker.add(
            "area",
            "no area given",
            "give exactly one of: w, s, e, n (a bbox), geom "
            "(WKT or GeoJSON), scenes (scene ids) or tiles (MGRS or WRS-2)",
        )
        return None
    if len(modes) > 1:
        names = {"bbox": "w,s,e,n", "geom": "geom", "scenes": "scenes", "tiles": "tiles"}
        checker.add(
            names[modes[1]],
            f"the area is given more than once ({', '.join(modes)})",
            f"keep exactly one of w,s,e,n / geom / scenes / tiles; remove {modes[1]}",
        )
    if "bbox" in modes:
        _check_bbox(good, sides, checker, out)
    if "geom" in modes and "geom" in good:
        out["geom"] = _check_geom(good["geom"], checker)
    if "scenes" in modes and "scenes" in good:
        out["scenes"] = _check_scenes(good["scenes"], checker, out.get("catalog"))
    if "tiles" in modes and "tiles" in good:
        out["tiles"] = _check_tiles(good["tiles"], checker)
    return modes[0]


def _check_bbox(
    good: dict[str, Any], sides: list[str], checker: _Checker, out: dict[str, Any]
) -> None:
    missing = [side for side in "wsen" if side not in sides]
    for side in missing:
        verb = "is" if len(sides) == 1 else "are"
        checker.add(
            side,
            f"is missing while {', '.join(sides)} {verb} given",
            "give all four of w, s, e, n (west, south, east, north in degrees) or none",
        )
    limits = {"w": 180.0, "e": 180.0, "s": 90.0, "n": 90.0}
    valid: dict[str, float] = {}
    for side in "wsen":
        if side in good:
            value = float(good[side])
            out[side] = value
            if abs(value) > limits[side]:
                checker.add(
                    side, f"{value} is outside -{limits[side]:g}..{limits[side]:g}", _FIXES[side]
                )
            else:
                valid[side] = value
    if "w" in valid and "e" in valid and valid["w"] >= valid["e"]:
        checker.add(
            "e",
            f"east {valid['e']} is not greater than west {valid['w']}",
            "give w < e; for an area across the antimeridian use a geom MultiPolygon",
        )
    if "s" in valid and "n" in valid and valid["s"] >= valid["n"]:
        checker.add("n", f"north {valid['n']} is not greater than south {valid['s']}", "give s < n")


def _check_geom(value: Any, checker: _Checker) -> dict[str, Any] | None:
    import shapely
    from shapely.errors import ShapelyError
    from shapely.geometry import shape

    fix = _FIXES["geom"]
    data: Any = value
    geometry: Any = None
    if isinstance(value, str) and not value.strip().startswith("{"):
        try:
            geometry = shapely.from_wkt(value.strip())
        except (ShapelyError, ValueError) as err:
            checker.add("geom", f"is not valid WKT ({err})", fix)
            return None
    elif isinstance(value, str):
        try:
            data = json.loads(value)
        except ValueError as err:
            checker.add("geom", f"is not valid GeoJSON text ({err})", fix)
            return None
    if geometry is None:
        data = _geojson_geometry(data, checker)
        if data is None:
            return None
        try:
            geometry = shape(data)
        except (ShapelyError, ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
            checker.add(
                "geom", f"is not a valid GeoJSON geometry ({type(err).__name__}: {err})", fix
            )
            return None
    return _checked_geometry(geometry, checker)


def _geojson_geometry(data: Any, checker: _Checker) -> Mapping[str, Any] | None:
    """Return the geometry of a GeoJSON Geometry, Feature or one-feature FeatureCollection."""
    fix = _FIXES["geom"]
    if not isinstance(data, Mapping):
        checker.add("geom", f"must be WKT text or a GeoJSON object (got {_json_type(data)})", fix)
        return None
    if data.get("type") == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list) or len(features) != 1:
            count = len(features) if isinstance(features, list) else 0
            checker.add(
                "geom",
                f"is a FeatureCollection with {count} features, not 1",
                "give one geometry (merge the features into a MultiPolygon)",
            )
            return None
        data = features[0]
    if isinstance(data, Mapping) and data.get("type") == "Feature":
        data = data.get("geometry")
        if not isinstance(data, Mapping):
            checker.add("geom", "is a Feature without a geometry", fix)
            return None
    return data if isinstance(data, Mapping) else None


def _checked_geometry(geometry: Any, checker: _Checker) -> dict[str, Any] | None:
    import numpy as np
    import shapely

    kind = geometry.geom_type
    if kind not in ("Polygon", "MultiPolygon", "Point"):
        checker.add("geom", f"is a {kind}", "give a Polygon, MultiPolygon or Point")
        return None
    if geometry.is_empty:
        checker.add("geom", f"is an empty {kind}", _FIXES["geom"])
        return None
    coords = shapely.get_coordinates(geometry)
    if not np.isfinite(coords).all():
        checker.add("geom", "has coordinates that are not finite numbers", _FIXES["geom"])
        return None
    west, south, east, north = geometry.bounds
    if west < -180 or east > 180 or south < -90 or north > 90:
        checker.add(
            "geom",
            f"lies outside longitude -180..180 / latitude -90..90 "
            f"(bounds {west:g}, {south:g}, {east:g}, {north:g})",
            "give WGS84 longitude/latitude (x = lon, y = lat), not projected coordinates",
        )
        return None
    if not geometry.is_valid:
        checker.add(
            "geom",
            f"is not a valid {kind}: {shapely.is_valid_reason(geometry)}",
            "close each ring and remove self-intersections (shapely.make_valid repairs it)",
        )
        return None
    result: dict[str, Any] = json.loads(shapely.to_geojson(shapely.force_2d(geometry)))
    return result


def _check_scenes(value: list[str], checker: _Checker, catalog: str | None) -> list[str]:
    """Return the scene ids: product names, or item ids of ``catalog`` (its own naming)."""
    if len(value) > MAX_SCENES:
        checker.add(
            "scenes",
            f"has {len(value)} scene ids (limit {MAX_SCENES})",
            f"split the request into runs of at most {MAX_SCENES} scenes",
        )
    seen: dict[str, int] = {}
    out: list[str] = []
    problems: list[FieldProblem] = []
    for index, scene_id in enumerate(value):
        where = f"scenes[{index}]"
        item = catalog_item_id(scene_id)
        try:
            if item is None or catalog is None:
                canonical = parse_scene_id(scene_id, field=where).scene_id
            elif catalog in item.catalogs:  # its STAC ids search finds the product
                canonical = item.item_id
            else:
                raise InvalidInputError(item_id_problem(item, where, catalog))
        except InvalidInputError as err:
            problems.extend(err.problems)
            continue
        if canonical in seen:
            problems.append(
                FieldProblem(
                    where,
                    f"{canonical!r} repeats scenes[{seen[canonical]}]",
                    "remove the duplicate",
                )
            )
            continue
        seen[canonical] = index
        out.append(canonical)
    checker.add_capped("scenes", problems)
    return out


def _check_tiles(value: list[str], checker: _Checker) -> list[str]:
    seen: dict[str, int] = {}
    out: list[str] = []
    problems: list[FieldProblem] = []
    for index, tile in enumerate(value):
        where = f"tiles[{index}]"
        canonical = is_mgrs_tile(tile) or parse_wrs2_pathrow(tile)
        if canonical is None:
            problems.append(
                FieldProblem(
                    where,
                    f"{_short(tile)} is neither an MGRS tile nor a WRS-2 path/row",
                    _FIXES["tiles[]"] + " (path 001-233, row 001-248)",
                )
            )
        elif canonical in seen:
            problems.append(
                FieldProblem(
                    where, f"{canonical!r} repeats tiles[{seen[canonical]}]", "remove the duplicate"
                )
            )
        else:
            seen[canonical] = index
            out.append(canonical)
    checker.add_capped("tiles", problems)
    return out


def _check_dates(
    good: dict[str, Any],
    bad: set[str],
    mode: AreaMode | None,
    checker: _Checker,
    out: dict[str, Any],
) -> None:
    start = _instant(good["start"], "start", False, checker) if "start" in good else None
    end = _instant(good["end"], "end", True, checker) if "end" in good else None
    out.update({k: v for k, v in (("start", start), ("end", end)) if v is not None})
    if mode in ("bbox", "geom", "tiles"):
        for name in ("start", "end"):
            if good.get(name) in (None, "") and name not in bad:  # a bad one is reported
                checker.add(
                    name,
                    f"is required when the area is given by {mode}",
                    _DATE_FIX + " (only scenes may omit dates)",
                )
    if start is not None and end is not None and start > end:
        checker.add(
            "end",
            f"{end.isoformat()} is before start {start.isoformat()}",
            "give end at or after start",
        )


def _instant(value: Any, where: str, end_of_day: bool, checker: _Checker) -> datetime | None:
    """Parse ISO 8601; naive means UTC; a date-only end means that day's 23:59:59.999999."""
    day_time = time.max if end_of_day else time.min
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, day_time)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            moment = datetime.combine(date.fromisoformat(text), day_time)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                checker.add(where, f"{_short(text)} is not an ISO 8601 date or datetime", _DATE_FIX)
                return None
    elif isinstance(value, str):
        return None
    else:
        checker.add(where, f"must be an ISO 8601 string (got {_json_type(value)})", _DATE_FIX)
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _check_tasks(value: list[Any], action: Action, checker: _Checker) -> list[TaskNode]:
    if not value and action == Action.START:
        checker.add(
            "tasks",
            "is required for action 'start' (at least one node)",
            _FIXES["tasks"] + ", or use action 'preview' to search only",
        )
        return []
    nodes = _check_nodes(value, "tasks", None, 1, checker)
    if checker.order_problems:
        _suggest_equivalent_tree(value, checker)
    if checker.node_count > MAX_NODES:
        checker.add(
            "tasks",
            f"has {checker.node_count} nodes (limit {MAX_NODES})",
            "split the work into several confs",
        )
    return nodes


def _check_nodes(
    items: list[Any], prefix: str, parent: TaskType | None, depth: int, checker: _Checker
) -> list[TaskNode]:
    nodes: list[TaskNode] = []
    for index, item in enumerate(items):
        where = f"{prefix}[{index}]"
        checker.node_count += 1
        if depth > MAX_DEPTH:
            checker.add(
                where,
                f"is nested {depth} levels deep (limit {MAX_DEPTH})",
                "flatten the tree: siblings of one parent run independently",
            )
            continue
        node = _check_node(item, where, parent, depth, checker)
        if node is not None:
            nodes.append(node)
    return nodes


def _check_node(
    item: Any, where: str, parent: TaskType | None, depth: int, checker: _Checker
) -> TaskNode | None:
    if not isinstance(item, Mapping):
        checker.add(where, f"must be an object (got {_json_type(item)})", _FIXES["tasks[]"])
        return None
    try:
        raw = _RawNode.model_validate(dict(item))
    except ValidationError as err:
        checker.add_pydantic(err, where, _NODE_FIELDS)
        children = item.get("tasks")
        if isinstance(children, list):  # still report problems further down
            _check_nodes(children, f"{where}.tasks", None, depth + 1, checker)
        return None
    problems_before = len(checker.problems)
    task_type = _check_node_type(raw.type, where, parent, checker)
    if task_type is not None:
        _check_collection(raw.collection, f"{where}.collection", task_type, checker)
    args = _without_upstream_args(raw.args or {}, f"{where}.args")
    _check_args(args, f"{where}.args", checker)
    if task_type == TaskType.DOWNLOAD:  # how an offline scene is waited for (wait_settings.py)
        checker.problems.extend(check_wait_args(args, f"{where}.args"))
    children = _check_nodes(raw.tasks or [], f"{where}.tasks", task_type, depth + 1, checker)
    if task_type is None or len(checker.problems) > problems_before:
        return None
    return TaskNode(type=task_type, collection=raw.collection, args=args, tasks=children)


def _without_upstream_args(args: dict[str, Any], where: str) -> dict[str, Any]:
    """Drop the upstream's task args that mean nothing here, with a note in the log.

    The upstream guide's trees carry ``glob_pattern`` and ``path_include_month`` (where its
    download stored files) and ``items_to_publish`` (file patterns per band); here the
    collection's configuration lays out and names the files, so those trees run as they are.
    """
    dropped = sorted(key for key in args if key in UPSTREAM_TASK_ARGS)
    if dropped:
        log.info(
            "conf.upstream_args_ignored at=%s args=%s: the collection's configuration decides "
            "file layout and bands",
            where,
            ",".join(dropped),
        )
    return {k: v for k, v in args.items() if k not in UPSTREAM_TASK_ARGS}


def _check_node_type(
    value: str, where: str, parent: TaskType | None, checker: _Checker
) -> TaskType | None:
    try:
        task_type = TaskType(value)
    except ValueError:
        checker.add(f"{where}.type", f"{_short(value)} is not a task type", _FIXES["tasks[].type"])
        return None
    if parent is not None and task_type == TaskType.DOWNLOAD:
        checker.order_problems.append(len(checker.problems))
        checker.add(
            f"{where}.type",
            "download has a parent; downloads start the tree",
            "move the download node to the top level of tasks",
        )
    elif parent is not None and CANONICAL_ORDER.index(task_type) < CANONICAL_ORDER.index(parent):
        checker.order_problems.append(len(checker.problems))
        checker.add(
            f"{where}.type",
            f"{task_type} cannot run after its parent {parent}",
            f"children follow the order {_ORDER_TEXT}; move this node higher up",
        )
    return task_type


def _suggest_equivalent_tree(value: list[Any], checker: _Checker) -> None:
    """Add the equivalent tree in canonical order to each order problem's fix.

    The upstream chained Celery tasks in any order; here each scene runs its steps in the order
    download -> correction -> harmonization -> post -> publish, so a child that must run first
    (``publish`` -> ``post``) is lifted above its parent. Each node keeps its collection and
    args, and runs after the same nodes it needed before.
    """
    equivalent = json.dumps(equivalent_tree(value), separators=(", ", ": "))
    for index in checker.order_problems:
        problem = checker.problems[index]
        checker.problems[index] = FieldProblem(
            problem.field,
            problem.message,
            f"{problem.fix}; the equivalent tree, in the order this project runs a scene's "
            f"steps: {equivalent}",
        )


def _rank(node: Mapping[str, Any]) -> int:
    try:
        return CANONICAL_ORDER.index(TaskType(str(node.get("type"))))
    except ValueError:
        return len(CANONICAL_ORDER)


def equivalent_tree(nodes: list[Any]) -> list[dict[str, Any]]:
    """Return a task tree with every child after its parent in the canonical order.

    A child that belongs before its parent is lifted above it: ``publish -> post`` becomes
    ``post -> publish``; several such children become a chain in canonical order, the parent
    at its end. Nodes that are not objects are dropped (validation reports them).
    """
    return [_reordered(node) for node in nodes if isinstance(node, Mapping)]


def _reordered(node: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(node)
    children = equivalent_tree(list(node.get("tasks") or []))
    early = sorted((c for c in children if _rank(c) < _rank(out)), key=_rank)
    out["tasks"] = [c for c in children if _rank(c) >= _rank(out)]
    if not early:
        return out
    lifted = out
    for child in reversed(early):
        lifted = {**child, "tasks": [*child.get("tasks", []), lifted]}
    return _reordered(lifted)


def _check_collection(name: str, where: str, task_type: TaskType, checker: _Checker) -> None:
    configured = list(checker.collections)
    collection = checker.collections.get(name) if COLLECTION_NAME_RE.match(name) else None
    if collection is None:
        guesses = [c for c in configured if c.lower().startswith(name.lower().rstrip("-") + "-")]
        guesses += [c for c in configured if c.lower() == name.lower()]
        example = (guesses or configured or ["S2_L2A-1"])[0]
        checker.add(
            where,
            f"{_short(name)} is not configured",
            f"use Name-Version such as {example!r} (configured: {', '.join(configured)})",
        )
        return
    if task_type == TaskType.DOWNLOAD and not collection.providers:
        sources = [c for c, conf in checker.collections.items() if conf.providers]
        checker.add(
            where,
            f"{name!r} has no providers to download it from",
            f"download one of: {', '.join(sources)}",
        )
    if str(task_type) not in PROCESSING_TYPES:
        return
    processor = collection.processors.get(str(task_type))
    if processor is None:
        makers = [c for c, conf in checker.collections.items() if str(task_type) in conf.processors]
        checker.add(
            where,
            f"{name!r} has no {task_type} processor configured",
            f"use a collection with processors.{task_type} (configured: "
            f"{', '.join(makers) or 'none'}) or add one in collections.yaml",
        )
    elif checker.processor_names is not None and processor.name.lower() not in (
        checker.processor_names
    ):
        checker.add(
            where,
            f"{name!r} uses {task_type} processor {processor.name!r}, which is not registered",
            f"register it or pick another collection (registered: "
            f"{', '.join(sorted(checker.processor_names)) or 'none'})",
        )


def _check_args(args: dict[str, Any], where: str, checker: _Checker) -> None:
    for key in args:
        if is_credential_key(key) and _normal(key) not in ("key", "auth", "user", "pass"):
            checker.add(
                f"{where}.{_short(key, quote=False)}",
                "raw credentials are not accepted in a conf (value not shown)",
                "keep secrets in an Airflow Connection and name it in catalog_args.conn_id",
            )
    try:
        json.dumps(args, allow_nan=False)
    except (TypeError, ValueError) as err:
        checker.add(where, f"is not a JSON object ({err})", _FIXES["tasks[].args"])


def to_search_query(conf: RadcorConf) -> SearchQuery:
    """Return the canonical search for ``conf`` on its catalog.

    The dataset keeps the conf's own name: the catalog's driver maps it through ``catalog.datasets``
    (``S2MSI1C`` -> ``sentinel-2-l1c``) and reads what the name alone says (the platforms of
    ``landsat_tm_c2_l2`` in ``landsat-c2-l2``). Searching by scene ids drops the date and
    cloud filters (DESIGN 1.1).
    """
    by_scene = conf.scenes is not None
    return SearchQuery(
        dataset=conf.dataset.strip(),
        bbox=conf.bbox,
        geometry=conf.geom,
        tiles=tuple(conf.tiles or ()),
        scene_ids=tuple(conf.scenes or ()),
        start=None if by_scene else conf.start,
        end=None if by_scene else conf.end,
        cloud_pct=100.0 if by_scene else conf.cloud,
        limit=conf.catalog_search_args.get("limit"),
    )


def params_schema() -> dict[str, dict[str, Any]]:
    """Return one JSON schema per conf field for Airflow ``Param(**schema)`` (the UI form).

    Each schema holds ``default``, ``title`` and ``description``. It rejects wrong types and
    obvious range errors at trigger time and stays permissive where ``validate_conf`` checks
    more (geometry, scene ids, tiles, dates, catalog names, credentials). The form shows the
    fields in this order: area, catalog, filters and action, the task tree.
    """
    return {**_area_schemas(), **_catalog_schemas(), **_filter_schemas(), "tasks": _tasks_schema()}


def _number_schema(title: str, low: float, high: float, text: str) -> dict[str, Any]:
    return {
        "default": None,
        "type": ["null", "number"],
        "minimum": low,
        "maximum": high,
        "title": title,
        "description": text,
    }


def _text_list_schema(title: str, text: str) -> dict[str, Any]:
    return {
        "default": None,
        "type": ["null", "array"],
        "items": {"type": "string"},
        "title": title,
        "description": text,
    }


def _area_schemas() -> dict[str, dict[str, Any]]:
    """The area fields: a bounding box, a geometry, scene ids or tiles."""
    return {
        "w": _number_schema("West", -180, 180, "Bounding box west longitude (degrees)."),
        "s": _number_schema("South", -90, 90, "Bounding box south latitude (degrees)."),
        "e": _number_schema("East", -180, 180, "Bounding box east longitude (degrees)."),
        "n": _number_schema("North", -90, 90, "Bounding box north latitude (degrees)."),
        "geom": {
            "default": None,
            "type": ["null", "string", "object"],
            "title": "Geometry",
            "description": "Area as WKT or GeoJSON (Polygon, MultiPolygon or Point), "
            "instead of the bounding box.",
        },
        "scenes": _text_list_schema(
            "Scenes", "Scene ids to fetch by id (no date or cloud filter), instead of an area."
        ),
        "tiles": _text_list_schema(
            "Tiles", "MGRS tiles (23LLF) or WRS-2 path/rows (221069), instead of an area."
        ),
    }


def _catalog_schemas() -> dict[str, dict[str, Any]]:
    """Which catalog, its options and the dataset."""
    return {
        "catalog": {
            "default": None,
            "type": "string",
            "minLength": 1,
            "title": "Catalog",
            "description": "Catalog to search: CDSE, EarthSearch, PlanetaryComputer, "
            "USGS, ... (case-insensitive).",
        },
        "catalog_args": {
            "default": {},
            "type": ["null", "object"],
            "title": "Catalog options",
            "description": f"Driver options: {', '.join(_ARG_FIELDS)}. Never "
            "credentials: name an Airflow Connection in conn_id.",
        },
        "catalog_search_args": {
            "default": {},
            "type": ["null", "object"],
            "title": "Search options",
            "description": "Upstream's extra search filters: platform, limit.",
        },
        "platform": {
            "default": None,
            "type": ["null", "string"],
            "title": "Platform",
            "description": "Only scenes of this platform: Sentinel-2A, sentinel-2, LANDSAT_8, ...",
        },
        "tags": {
            **_text_list_schema("Tags", "Free labels kept with the run's conf."),
            "default": [],
        },
        "dataset": {
            "default": None,
            "type": "string",
            "minLength": 1,
            "title": "Dataset",
            "description": "Dataset as the catalog names it: S2MSI1C, S2MSI2A, "
            "landsat_ot_c2_l2, sentinel-2-l2a, ...",
        },
    }


def _filter_schemas() -> dict[str, dict[str, Any]]:
    """Dates, cloud cover, the action and ``force``."""
    return {
        "start": {
            "default": None,
            "type": ["null", "string"],
            "title": "Start",
            "description": "ISO 8601 date or datetime (UTC when naive).",
        },
        "end": {
            "default": None,
            "type": ["null", "string"],
            "title": "End",
            "description": "ISO 8601 date or datetime; a date means the end of that day.",
        },
        "cloud": {
            "default": 100,
            "type": ["null", "number"],
            "minimum": 0,
            "maximum": 100,
            "title": "Max cloud %",
            "description": "Maximum cloud cover in percent.",
        },
        "action": {
            "default": "start",
            "type": "string",
            "pattern": "^([Pp][Rr][Ee][Vv][Ii][Ee][Ww]|[Ss][Tt][Aa][Rr][Tt])$",
            "title": "Action",
            "description": "preview: search only; start: search and process.",
        },
        "force": {
            "default": False,
            "type": ["null", "boolean"],
            "title": "Force",
            "description": "Redo nodes whose output is already published.",
        },
    }


def _tasks_schema() -> dict[str, Any]:
    """The task tree: nodes referring to themselves through ``$defs``."""
    node: dict[str, Any] = {
        "type": "object",
        "required": ["type", "collection"],
        "additionalProperties": False,
        "properties": {
            "type": {"type": "string", "enum": list(CANONICAL_ORDER)},
            "collection": {"type": "string", "pattern": COLLECTION_NAME_RE.pattern},
            "args": {"type": ["null", "object"]},
            "tasks": {"type": ["null", "array"], "items": {"$ref": "#/$defs/node"}},
        },
    }
    return {
        "default": [],
        "type": ["null", "array"],
        # "type": "object" beside the $ref: Airflow's form shows an array whose items have no
        # type as a one-string-per-line box (a typed tree is refused, a pasted one shows
        # [object Object]); with it, the form gives the field a JSON editor
        "items": {"type": "object", "$ref": "#/$defs/node"},
        "$defs": {"node": node},
        "title": "Tasks",
        "description": "Processing tree: nodes {type, collection, args, tasks}; "
        f"types in order {_ORDER_TEXT}.",
    }


def _normal(key: str) -> str:
    return re.sub(r"[^a-z]", "", key.lower())


def _connection_fix(catalog: str | None, catalogs: Mapping[str, CatalogConfig]) -> str:
    config = catalogs.get(catalog) if catalog else None
    conn_id = (config.conn_id if config else None) or f"{catalog or 'cdse'}_default"
    return (
        f"create an Airflow Connection (e.g. {conn_id!r}) holding the credentials and pass "
        "catalog_args.conn_id instead"
    )


def _join(prefix: str, loc: tuple[int | str, ...]) -> str:
    where = prefix
    for part in loc:
        where = (
            f"{where}[{part}]"
            if isinstance(part, int)
            else (f"{where}.{part}" if where else str(part))
        )
    return where


def _fix_for(where: str) -> str:
    generic = re.sub(r"\[\d+\]", "[]", where)
    generic = re.sub(r"^(?:tasks\[\]\.)+(?=tasks\[\])", "", generic)
    return _FIXES.get(generic) or _FIXES.get(generic.split(".")[-1], "see DESIGN 1.1 for the field")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _short(value: str, *, quote: bool = True) -> str:
    text = value if len(value) <= 60 else value[:57] + "..."
    return repr(text) if quote else text
