"""Radcor conf validation: the DESIGN example, every rule of DESIGN 1.1, and the UI form schema."""

from __future__ import annotations

import copy
import json
import logging
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from include.common.config import load_catalogs
from include.common.errors import FieldProblem, InvalidInputError
from include.radcor.conf import (
    CANONICAL_ORDER,
    Action,
    RadcorConf,
    TaskType,
    params_schema,
    to_search_query,
    validate_conf,
)

EXAMPLE: dict[str, Any] = {
    "w": -45.9,
    "s": -12.74,
    "e": -45.8,
    "n": -12.6,
    "catalog": "CDSE",
    "dataset": "S2MSI1C",
    "start": "2020-01-09T00:00:00",
    "end": "2020-01-10T23:59:59",
    "cloud": 100,
    "action": "start",
    "force": False,
    "tasks": [
        {
            "type": "download",
            "collection": "S2_L1C-1",
            "args": {},
            "tasks": [
                {
                    "type": "correction",
                    "collection": "S2_L2A-1",
                    "args": {},
                    "tasks": [{"type": "publish", "collection": "S2_L2A-1", "args": {}}],
                }
            ],
        }
    ],
}
S2 = "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429"
L8 = "LC08_L1TP_221069_20200110_20200114_02_T1"
SECRET = "hunter2-Sup3rSecret"  # noqa: S105  # a fake secret that must never be echoed
DROP = object()
BBOX_KEYS = ("w", "s", "e", "n")
SQUARE = "POLYGON ((-45.9 -12.74, -45.8 -12.74, -45.8 -12.6, -45.9 -12.6, -45.9 -12.74))"


def conf_with(**changes: Any) -> dict[str, Any]:
    conf = copy.deepcopy(EXAMPLE)
    for key, value in changes.items():
        if value is DROP:
            conf.pop(key, None)
        else:
            conf[key] = value
    return conf


def by_scenes(**changes: Any) -> dict[str, Any]:
    area = dict.fromkeys((*BBOX_KEYS, "start", "end"), DROP)
    return conf_with(**{**area, "scenes": [S2], **changes})


def node(kind: str, collection: str, *children: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": kind, "collection": collection, "args": {}, "tasks": list(children), **extra}


def problems_of(raw: Any, **context: Any) -> list[FieldProblem]:
    with pytest.raises(InvalidInputError) as caught:
        validate_conf(raw, **context)
    return caught.value.problems


def problem_at(problems: list[FieldProblem], field: str) -> FieldProblem:
    matching = [p for p in problems if p.field == field]
    assert matching, f"no problem for {field!r} in {[str(p) for p in problems]}"
    return matching[0]


# --- valid confs ---------------------------------------------------------------------------------


def test_validate_conf_design_example_canonical() -> None:
    conf = validate_conf(EXAMPLE)
    assert conf.catalog == "cdse"
    assert conf.bbox == (-45.9, -12.74, -45.8, -12.6)
    assert conf.area_mode == "bbox"
    assert conf.start == datetime(2020, 1, 9, tzinfo=UTC)
    assert conf.end == datetime(2020, 1, 10, 23, 59, 59, tzinfo=UTC)
    assert (conf.cloud, conf.action, conf.force) == (100.0, Action.START, False)
    download = conf.tasks[0]
    assert (download.type, download.collection) == (TaskType.DOWNLOAD, "S2_L1C-1")
    assert download.tasks[0].tasks[0].type == TaskType.PUBLISH


def test_validate_conf_own_json_dump_same_conf() -> None:
    conf = validate_conf(EXAMPLE)
    assert validate_conf(json.loads(json.dumps(conf.model_dump(mode="json")))) == conf


def test_validate_conf_none_values_absent() -> None:
    raw = by_scenes(geom=None, tiles=None, w=None, start=None, cloud=None, force=None)
    conf = validate_conf(raw)
    assert (conf.area_mode, conf.cloud, conf.force) == ("scenes", 100.0, False)


def test_validate_conf_dates_canonical_utc() -> None:
    conf = validate_conf(conf_with(start="2020-01-09", end="2020-01-10T02:00:00+03:00"))
    assert conf.start == datetime(2020, 1, 9, tzinfo=UTC)
    assert conf.end == datetime(2020, 1, 9, 23, 0, tzinfo=UTC)
    day = validate_conf(conf_with(start="2020-01-09", end="2020-01-09"))
    assert day.end == datetime(2020, 1, 9, 23, 59, 59, 999999, tzinfo=UTC)


def test_validate_conf_scenes_without_dates_canonical() -> None:
    conf = validate_conf(by_scenes(scenes=[S2.lower() + ".SAFE", L8, "LC82210692020010LGN00"]))
    assert conf.scenes == [S2, L8, "LC82210692020010LGN00"]
    assert conf.start is None and conf.area_mode == "scenes"


def test_validate_conf_tiles_canonical() -> None:
    conf = validate_conf(conf_with(**dict.fromkeys(BBOX_KEYS, DROP), tiles=["T23LLF", "221/069"]))
    assert conf.tiles == ["23LLF", "221069"]


@pytest.mark.parametrize(
    "geom",
    [
        SQUARE,
        {
            "type": "Polygon",
            "coordinates": [
                [[-45.9, -12.74], [-45.8, -12.74], [-45.8, -12.6], [-45.9, -12.6], [-45.9, -12.74]]
            ],
        },
        json.dumps(
            {
                "type": "Feature",
                "properties": {},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [
                            [-45.9, -12.74],
                            [-45.8, -12.74],
                            [-45.8, -12.6],
                            [-45.9, -12.6],
                            [-45.9, -12.74],
                        ]
                    ],
                },
            }
        ),
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {},
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [
                            [
                                [-45.9, -12.74],
                                [-45.8, -12.74],
                                [-45.8, -12.6],
                                [-45.9, -12.6],
                                [-45.9, -12.74],
                            ]
                        ],
                    },
                }
            ],
        },
    ],
    ids=["wkt", "geojson", "feature-text", "feature-collection"],
)
def test_validate_conf_geom_forms_same_geojson(geom: Any) -> None:
    conf = validate_conf(conf_with(**dict.fromkeys(BBOX_KEYS, DROP), geom=geom))
    assert conf.geom is not None and conf.geom["type"] == "Polygon"
    assert conf.geom["coordinates"][0][0] == [-45.9, -12.74]


def test_validate_conf_point_and_multipolygon_accepted() -> None:
    point = validate_conf(conf_with(**dict.fromkeys(BBOX_KEYS, DROP), geom="POINT (-45.85 -12.7)"))
    assert point.geom == {"type": "Point", "coordinates": [-45.85, -12.7]}
    multi = "MULTIPOLYGON (((179 0, 180 0, 180 1, 179 0)), ((-180 0, -179 0, -180 1, -180 0)))"
    conf = validate_conf(conf_with(**dict.fromkeys(BBOX_KEYS, DROP), geom=multi))
    assert conf.geom is not None and conf.geom["type"] == "MultiPolygon"


def test_validate_conf_preview_any_case_without_tasks() -> None:
    conf = validate_conf(conf_with(action="PREVIEW", tasks=DROP))
    assert (conf.action, conf.tasks) == (Action.PREVIEW, [])


def test_validate_conf_catalog_any_case_canonical_lowercase() -> None:
    assert validate_conf(conf_with(catalog=" EarthSearch ")).catalog == "earthsearch"


def test_validate_conf_alias_scihub_cdse_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="include.radcor.conf"):
        conf = validate_conf(conf_with(catalog="SciHub"))
    assert conf.catalog == "cdse"
    note = load_catalogs()["cdse"].deprecated_alias_note
    assert any("SciHub" in r.getMessage() and note in r.getMessage() for r in caplog.records)


def test_validate_conf_catalog_args_canonical() -> None:
    args = {
        "url": "https://catalogue.dataspace.copernicus.eu/odata/v1",
        "page_size": 50,
        "conn_id": "cdse_default",
        "timeout_s": 30,
        "verify_tls": "/etc/ssl/ca.pem",
        "max_connections": 2,
    }
    assert validate_conf(conf_with(catalog_args=args)).catalog_args.given() == args


def test_validate_conf_same_type_child_and_harmonization_tree_valid() -> None:
    tree = [
        node(
            "download",
            "S2_L1C-1",
            node(
                "correction",
                "S2_L2A-1",
                node("publish", "S2_L2A-1"),
                node("harmonization", "S2_NBAR-1", node("publish", "S2_NBAR-1")),
            ),
        )
    ]
    conf = validate_conf(conf_with(tasks=tree), processor_names=["provider-l2", "nbar"])
    assert conf.tasks[0].tasks[0].tasks[1].collection == "S2_NBAR-1"


# --- invalid confs: each names the field and gives a fix -----------------------------------------


def deep_tree(depth: int) -> list[dict[str, Any]]:
    current = node("publish", "S2_L2A-1")
    for _ in range(depth - 2):
        current = node("publish", "S2_L2A-1", current)
    return [node("download", "S2_L1C-1", current)]


BAD_CONFS: list[tuple[str, dict[str, Any], str, str]] = [
    ("w-type", conf_with(w="-45.9"), "w", "must be a valid number"),
    ("w-range", conf_with(w=-200), "w", "outside -180..180"),
    ("bbox-partial", conf_with(e=DROP, n=DROP), "e", "missing while w, s are given"),
    ("bbox-w-ge-e", conf_with(w=-45.7), "e", "not greater than west"),
    ("bbox-s-ge-n", conf_with(s=-12.5), "n", "not greater than south"),
    ("lat-range", conf_with(s=-95), "s", "outside -90..90"),
    ("no-area", conf_with(**dict.fromkeys(BBOX_KEYS, DROP)), "area", "no area"),
    ("two-areas", conf_with(tiles=["23LLF"]), "tiles", "more than once"),
    (
        "geom-wkt",
        conf_with(**dict.fromkeys(BBOX_KEYS, DROP), geom="POLYGON ((1 2"),
        "geom",
        "not valid WKT",
    ),
    (
        "geom-bowtie",
        conf_with(**dict.fromkeys(BBOX_KEYS, DROP), geom="POLYGON ((0 0, 1 1, 1 0, 0 1, 0 0))"),
        "geom",
        "Self-intersection",
    ),
    (
        "geom-line",
        conf_with(**dict.fromkeys(BBOX_KEYS, DROP), geom="LINESTRING (0 0, 1 1)"),
        "geom",
        "LineString",
    ),
    (
        "geom-projected",
        conf_with(**dict.fromkeys(BBOX_KEYS, DROP), geom="POINT (500000 8600000)"),
        "geom",
        "outside longitude",
    ),
    (
        "geom-2-features",
        conf_with(
            **dict.fromkeys(BBOX_KEYS, DROP),
            geom={"type": "FeatureCollection", "features": [{}, {}]},
        ),
        "geom",
        "2 features",
    ),
    ("geom-type", conf_with(**dict.fromkeys(BBOX_KEYS, DROP), geom=[1, 2]), "geom", "array"),
    (
        "scene-bad",
        by_scenes(scenes=[S2, "S2A_13TDE_20231008_0_L2A"]),
        "scenes[1]",
        "Earth Search sentinel-2 item id, which catalog",
    ),
    ("scene-path", by_scenes(scenes=["../" + S2]), "scenes[0]", "path separator"),
    ("scene-dup", by_scenes(scenes=[S2, S2 + ".SAFE"]), "scenes[1]", "repeats scenes[0]"),
    ("scene-type", by_scenes(scenes=[S2, 5]), "scenes[1]", "must be a valid string"),
    ("scenes-too-many", by_scenes(scenes=[L8] * 5001), "scenes", "limit 5000"),
    (
        "tile-bad",
        conf_with(**dict.fromkeys(BBOX_KEYS, DROP), tiles=["23LAF"]),
        "tiles[0]",
        "neither an MGRS tile nor a WRS-2",
    ),
    ("start-bad", conf_with(start="2020-13-01"), "start", "not an ISO 8601"),
    ("start-type", conf_with(start=20200109), "start", "ISO 8601 string"),
    ("start-missing", conf_with(start=DROP), "start", "required when the area is given by bbox"),
    ("end-before", conf_with(end="2020-01-08"), "end", "before start"),
    ("cloud-range", conf_with(cloud=120), "cloud", "outside 0..100"),
    ("cloud-type", conf_with(cloud="50"), "cloud", "must be a valid number"),
    ("action", conf_with(action="go"), "action", "'go' is not an action"),
    ("force-string", conf_with(force="true"), "force", "must be a valid boolean"),
    ("catalog-unknown", conf_with(catalog="Nope"), "catalog", "not a configured catalog"),
    ("catalog-missing", conf_with(catalog=DROP), "catalog", "is required"),
    ("dataset-empty", conf_with(dataset="  "), "dataset", "is empty"),
    ("dataset-missing", conf_with(dataset=DROP), "dataset", "is required"),
    ("unknown-field", conf_with(satellite="S2"), "satellite", "unknown field 'satellite'"),
    ("args-unknown", conf_with(catalog_args={"limit": 5}), "catalog_args.limit", "unknown field"),
    (
        "args-page-size",
        conf_with(catalog_args={"page_size": 0}),
        "catalog_args.page_size",
        "outside 1..10000",
    ),
    (
        "args-page-type",
        conf_with(catalog_args={"page_size": "100"}),
        "catalog_args.page_size",
        "must be a valid integer",
    ),
    (
        "args-url",
        conf_with(catalog_args={"url": "ftp://example.org"}),
        "catalog_args.url",
        "not an http(s) URL",
    ),
    (
        "args-conn-id",
        conf_with(catalog_args={"conn_id": "my conn"}),
        "catalog_args.conn_id",
        "not a Connection id",
    ),
    (
        "args-timeout",
        conf_with(catalog_args={"timeout_s": 0}),
        "catalog_args.timeout_s",
        "not greater than 0",
    ),
    (
        "args-connections",
        conf_with(catalog_args={"max_connections": 65}),
        "catalog_args.max_connections",
        "outside 1..64",
    ),
    (
        "args-verify",
        conf_with(catalog_args={"verify_tls": 1}),
        "catalog_args.verify_tls",
        "boolean or a CA bundle path",
    ),
    (
        "args-verify-string",
        conf_with(catalog_args={"verify_tls": "false"}),
        "catalog_args.verify_tls",
        "is the string 'false'",
    ),
    ("tasks-missing", conf_with(tasks=[]), "tasks", "required for action 'start'"),
    ("tasks-type", conf_with(tasks={"type": "download"}), "tasks", "must be a valid list"),
    (
        "node-type",
        conf_with(tasks=[node("fetch", "S2_L1C-1")]),
        "tasks[0].type",
        "'fetch' is not a task type",
    ),
    (
        "node-no-version",
        conf_with(tasks=[node("download", "S2_L1C-1", node("correction", "S2_L2A"))]),
        "tasks[0].tasks[0].collection",
        "'S2_L2A' is not configured",
    ),
    (
        "node-unknown-collection",
        conf_with(
            tasks=[
                node("download", "S2_L1C-1", node("publish", "S2_L1C-1"), node("publish", "S9_X-1"))
            ]
        ),
        "tasks[0].tasks[1].collection",
        "'S9_X-1' is not configured",
    ),
    (
        "node-missing-collection",
        conf_with(tasks=[{"type": "download"}]),
        "tasks[0].collection",
        "is required",
    ),
    (
        "node-unknown-key",
        conf_with(tasks=[node("download", "S2_L1C-1", when="now")]),
        "tasks[0].when",
        "unknown field 'when'",
    ),
    ("node-not-object", conf_with(tasks=["download"]), "tasks[0]", "must be an object"),
    (
        "node-args",
        conf_with(tasks=[node("download", "S2_L1C-1") | {"args": [1]}]),
        "tasks[0].args",
        "must be a valid dictionary",
    ),
    (
        "download-child",
        conf_with(tasks=[node("download", "S2_L1C-1", node("download", "S2_L1C-1"))]),
        "tasks[0].tasks[0].type",
        "downloads start the tree",
    ),
    (
        "order",
        conf_with(
            tasks=[
                node(
                    "download",
                    "S2_L1C-1",
                    node("publish", "S2_L2A-1", node("correction", "S2_L2A-1")),
                )
            ]
        ),
        "tasks[0].tasks[0].tasks[0].type",
        "cannot run after its parent publish",
    ),
    (
        "no-processor",
        conf_with(tasks=[node("download", "S2_L1C-1", node("correction", "S2_L1C-1"))]),
        "tasks[0].tasks[0].collection",
        "has no correction processor",
    ),
    (
        "no-providers",
        conf_with(tasks=[node("download", "S2_NBAR-1")]),
        "tasks[0].collection",
        "no providers",
    ),
    (
        "too-deep",
        conf_with(tasks=deep_tree(7)),
        "tasks[0]" + ".tasks[0]" * 6,
        "nested 7 levels deep",
    ),
    (
        "too-many",
        conf_with(tasks=[node("download", "S2_L1C-1", *[node("publish", "S2_L1C-1")] * 64)]),
        "tasks",
        "65 nodes",
    ),
]


@pytest.mark.parametrize(
    ("raw", "field", "text"), [c[1:] for c in BAD_CONFS], ids=[c[0] for c in BAD_CONFS]
)
def test_validate_conf_bad_conf_names_field_and_fix(
    raw: dict[str, Any], field: str, text: str
) -> None:
    problems = problems_of(raw)
    problem = problem_at(problems, field)
    assert text in problem.message
    assert problem.fix and problem.fix not in problem.message
    assert str(problem) == f"{field}: {problem.message}; {problem.fix}"


def test_validate_conf_missing_version_fix_suggests_name_version() -> None:
    raw = conf_with(tasks=[node("download", "S2_L1C-1", node("correction", "S2_L2A"))])
    problem = problem_at(problems_of(raw), "tasks[0].tasks[0].collection")
    assert problem.fix.startswith("use Name-Version such as 'S2_L2A-1' (configured: S2_L1C-1,")


def test_validate_conf_unregistered_processor_lists_registered() -> None:
    raw = conf_with()
    problem = problem_at(
        problems_of(raw, processor_names=["sen2cor", "lasrc"]), "tasks[0].tasks[0].collection"
    )
    assert "'provider-l2', which is not registered" in problem.message
    assert "registered: lasrc, sen2cor" in problem.fix


def test_validate_conf_unknown_catalog_lists_known_and_aliases() -> None:
    problem = problem_at(problems_of(conf_with(catalog="Nope")), "catalog")
    assert "cdse" in problem.fix and "earthsearch" in problem.fix
    assert "scihub -> cdse" in problem.fix


def test_validate_conf_many_problems_reported_together() -> None:
    raw = conf_with(
        w="x",
        cloud=-1,
        action="later",
        force="no",
        dataset="",
        start="soon",
        tasks=[node("fetch", "S2_L1C-1")],
    )
    fields = {p.field for p in problems_of(raw)}
    assert {"w", "cloud", "action", "force", "dataset", "start", "tasks[0].type"} <= fields


def test_validate_conf_long_list_problems_capped_with_count() -> None:
    problems = problems_of(by_scenes(scenes=[f"bad{i}" for i in range(30)]))
    assert [p.field for p in problems[:20]] == [f"scenes[{i}]" for i in range(20)]
    assert problems[20].field == "scenes" and "10 more problems" in problems[20].message
    assert len(problems) == 21


def test_validate_conf_not_an_object_rejected() -> None:
    assert problem_at(problems_of(["w", 1]), "conf").fix  # type: ignore[arg-type]


# --- credentials -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (conf_with(catalog_args={"password": SECRET}), "catalog_args.password"),
        (conf_with(catalog_args={"username": "bob", "pass": SECRET}), "catalog_args.pass"),
        (conf_with(catalog_args={"Access-Token": SECRET}), "catalog_args.Access-Token"),
        (conf_with(catalog_args={"apiKey": SECRET}), "catalog_args.apiKey"),
        (
            conf_with(catalog_args={"url": f"https://bob:{SECRET}@example.org/stac"}),
            "catalog_args.url",
        ),
        (
            conf_with(catalog_args={"url": f"https://example.org/stac?access_token={SECRET}"}),
            "catalog_args.url",
        ),
        (conf_with(token=SECRET), "token"),
        (
            conf_with(tasks=[node("download", "S2_L1C-1") | {"args": {"client_secret": SECRET}}]),
            "tasks[0].args.client_secret",
        ),
    ],
    ids=[
        "password",
        "pass",
        "access-token",
        "api-key",
        "url-userinfo",
        "url-token",
        "top-level",
        "task-args",
    ],
)
def test_validate_conf_credentials_refused_without_echo(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        validate_conf(raw)
    problem = problem_at(caught.value.problems, field)
    assert "credentials" in problem.message
    assert "Connection" in problem.fix and "conn_id" in problem.fix
    assert SECRET not in str(caught.value)
    assert SECRET not in json.dumps(caught.value.to_dict())
    assert SECRET not in repr(caught.value.problems)


def test_validate_conf_credentials_fix_names_catalog_connection() -> None:
    problem = problem_at(
        problems_of(conf_with(catalog="usgs", catalog_args={"password": "x"})),
        "catalog_args.password",
    )
    assert "'usgs_default'" in problem.fix


# --- search query --------------------------------------------------------------------------------


def test_to_search_query_keeps_the_conf_dataset_for_the_driver_to_map() -> None:
    conf = validate_conf(conf_with(catalog="earthsearch", cloud=20))
    query = to_search_query(conf)
    assert query.dataset == "S2MSI1C"
    assert query.bbox == (-45.9, -12.74, -45.8, -12.6)
    assert (query.start, query.cloud_pct) == (conf.start, 20.0)
    assert query.geometry is None and query.tiles == () and query.scene_ids == ()


def test_to_search_query_unlisted_dataset_kept() -> None:
    conf = validate_conf(conf_with(dataset="S2MSI2A"))
    assert to_search_query(conf).dataset == "S2MSI2A"


def test_to_search_query_scenes_without_date_and_cloud_filters() -> None:
    conf = validate_conf(by_scenes(start="2020-01-01", end="2020-01-02", cloud=10))
    query = to_search_query(conf)
    assert query.scene_ids == (S2,)
    assert (query.start, query.end, query.cloud_pct, query.bbox) == (None, None, 100.0, None)


def test_to_search_query_tiles_and_geometry_passed() -> None:
    tiles = validate_conf(conf_with(**dict.fromkeys(BBOX_KEYS, DROP), tiles=["23LLF"]))
    assert to_search_query(tiles).tiles == ("23LLF",)
    geom = validate_conf(conf_with(**dict.fromkeys(BBOX_KEYS, DROP), geom=SQUARE))
    assert to_search_query(geom).geometry == geom.geom


# --- UI form schema -----------------------------------------------------------------------


def schema_accepts(raw: dict[str, Any]) -> bool:
    """Validate as Airflow does: each Param's value (or its default) against its schema."""
    for name, schema in params_schema().items():
        value = raw.get(name, schema["default"])
        try:
            jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())
        except jsonschema.ValidationError:
            return False
    return True


def test_params_schema_every_field_titled_with_default() -> None:
    schemas = params_schema()
    assert tuple(schemas) == tuple(RadcorConf.model_fields)
    for name, schema in schemas.items():
        assert {"default", "title", "description"} <= set(schema), name
        jsonschema.Draft202012Validator.check_schema(schema)
    assert schemas["tasks"]["$defs"]["node"]["properties"]["type"]["enum"] == list(CANONICAL_ORDER)


GOOD_FOR_SCHEMA = [
    EXAMPLE,
    conf_with(action="START", cloud=0.5),
    conf_with(action="preview", tasks=DROP),
    by_scenes(),
    conf_with(**dict.fromkeys(BBOX_KEYS, DROP), geom=SQUARE),
    conf_with(**dict.fromkeys(BBOX_KEYS, DROP), geom={"type": "Point", "coordinates": [1, 2]}),
    conf_with(**dict.fromkeys(BBOX_KEYS, DROP), tiles=["23LLF", "221069"]),
    conf_with(catalog_args={"page_size": 10, "verify_tls": False}, geom=None, tiles=None),
]


@pytest.mark.parametrize("raw", GOOD_FOR_SCHEMA, ids=[str(i) for i in range(len(GOOD_FOR_SCHEMA))])
def test_params_schema_valid_conf_accepted(raw: dict[str, Any]) -> None:
    validate_conf(raw)  # the same conf passes the deep validation
    assert schema_accepts(raw)


def test_params_schema_own_dump_accepted() -> None:
    assert schema_accepts(validate_conf(EXAMPLE).model_dump(mode="json"))


@pytest.mark.parametrize(
    "raw",
    [
        conf_with(w="x"),
        conf_with(n=91),
        conf_with(cloud=120),
        conf_with(cloud="50"),
        conf_with(action="go"),
        conf_with(force="true"),
        conf_with(catalog=5),
        conf_with(catalog=DROP),
        conf_with(dataset=""),
        conf_with(scenes="S2A"),
        conf_with(tiles=[23]),
        conf_with(geom=5),
        conf_with(start=20200101),
        conf_with(catalog_args="url=x"),
        conf_with(tasks=[{"type": "fetch", "collection": "S2_L1C-1"}]),
        conf_with(tasks=[{"type": "download"}]),
        conf_with(tasks=[node("download", "S2_L1C-1", node("publish", "S2_L2A"))]),
        conf_with(tasks=[node("download", "S2_L1C-1", extra=1)]),
    ],
    ids=lambda raw: json.dumps(
        {k: v for k, v in raw.items() if k not in EXAMPLE or EXAMPLE[k] != v}
    )[:40],
)
def test_params_schema_malformed_conf_rejected(raw: dict[str, Any]) -> None:
    assert not schema_accepts(raw)


def test_task_types_walks_the_whole_tree_of_a_validated_conf() -> None:
    from include.radcor.conf import TaskType, task_types

    conf = {
        "tasks": [
            {"type": "download", "tasks": [{"type": "correction", "tasks": [{"type": "publish"}]}]},
            {"type": "download", "tasks": []},
        ]
    }
    assert task_types(conf) == {TaskType.DOWNLOAD, TaskType.CORRECTION, TaskType.PUBLISH}
    assert task_types({"tasks": []}) == frozenset()


def test_published_collections_names_every_publish_node_and_passes_over_malformed_ones() -> None:
    from include.radcor.conf import published_collections

    conf = {
        "tasks": [
            {
                "type": "download",
                "collection": "S2_L1C-1",
                "tasks": [
                    {"type": "publish", "collection": "S2_L1C-1"},
                    {
                        "type": "correction",
                        "collection": "S2_L2A-1",
                        "tasks": [{"type": "publish", "collection": "S2_L2A-1"}],
                    },
                ],
            },
            {"type": "publish", "collection": 7},  # malformed: not a name
            "not a node",
            {"type": "download", "tasks": "not a list"},
        ]
    }
    assert published_collections(conf) == {"S2_L1C-1", "S2_L2A-1"}
    assert published_collections({}) == frozenset()
