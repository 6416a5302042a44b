"""A corpus of bad radcor confs, each with the field its refusal names (kinds: docs/api.md).

Built from a valid conf (the README's demo conf) so that each entry breaks one rule; the unit
test (tests/unit/radcor/test_validation_corpus.py) and the end-to-end test
(tests/e2e/test_validation_corpus.py) check the same entries at every door.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from tests.helpers.airflow_stack import REPO

FAKE_PASSWORD = "Fuzz-Pa55word-Never-Logged"  # noqa: S105 - a fake secret that must never show
S2_SCENE = "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429"
BBOX = ("w", "s", "e", "n")
DATES = ("start", "end")
ASKS_CATALOG = frozenset({"unknown_dataset_stac", "unknown_dataset_cdse_stac"})
"""Entries a STAC API refuses: a collection neither configured nor among the API's own."""


@dataclass(frozen=True)
class BadConf:
    """One bad conf (any JSON value) and the field its refusal names (or a prefix of it)."""

    name: str
    conf: Any
    field: str
    asks_catalog: bool = False
    """Refused on the catalog's answer (its collections), so its ``catalog_args.url`` must
    reach a STAC API (``at_catalog``); the others are refused without a request."""

    def at_catalog(self, url: str) -> Any:
        """Return the conf, sent to the STAC API at ``url`` when it ``asks_catalog``."""
        if not self.asks_catalog:
            return self.conf
        return {**self.conf, "catalog_args": {**self.conf["catalog_args"], "url": url}}

    @property
    def is_object(self) -> bool:
        """Whether the conf is a JSON object (pipelines and Airflow's Params take only those)."""
        return isinstance(self.conf, dict)

    @property
    def has_dates_or_scenes(self) -> bool:
        """Whether its start, end or scenes matter (a pipeline replaces or refuses them)."""
        return self.is_object and (
            self.field.split(".")[0].split("[")[0] in ("start", "end", "scenes", "area")
            or "scenes" in self.conf
        )

    def names(self, fields: list[str]) -> bool:
        """Return whether one of ``fields`` is this entry's field or lies inside it."""
        return any(
            f == self.field or f.startswith((self.field + ".", self.field + "[")) for f in fields
        )


def demo_conf(catalog_url: str | None = None) -> dict[str, Any]:
    """The README's demo conf (valid), with the demo catalog's URL when given."""
    conf: dict[str, Any] = json.loads((REPO / "examples" / "demo_conf.json").read_text())
    if catalog_url is not None:
        conf["catalog_args"] = {"url": catalog_url}
    return conf


def node(kind: str, collection: str, *children: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A task node."""
    return {"type": kind, "collection": collection, "args": {}, "tasks": list(children), **extra}


def _deep(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"x": value}
    return value


def _chain(depth: int) -> dict[str, Any]:
    tree = node("publish", "S2_L1C-1")
    for _ in range(depth - 1):
        tree = node("publish", "S2_L1C-1", tree)
    return node("download", "S2_L1C-1", tree)


def bad_confs(base: dict[str, Any]) -> list[BadConf]:
    """Return the corpus built from the valid conf ``base`` (each entry breaks one rule)."""
    args = dict(base.get("catalog_args") or {})
    url = args.get("url", "http://127.0.0.1:8089")

    def conf(changes: dict[str, Any] | None = None, *drop: str) -> dict[str, Any]:
        out = copy.deepcopy(base)
        for key in drop:
            out.pop(key, None)
        out.update(copy.deepcopy(changes or {}))
        return out

    def catalog_args(**changes: Any) -> dict[str, Any]:
        return conf({"catalog_args": {**args, **changes}})

    def tree(*nodes: dict[str, Any]) -> dict[str, Any]:
        return conf({"tasks": list(nodes)})

    def with_args(**node_args: Any) -> dict[str, Any]:
        return tree(node("download", "S2_L1C-1", node("publish", "S2_L1C-1"), args=node_args))

    by_tiles = conf({"tiles": ["23LLF"]}, *BBOX)
    by_scenes = conf({"scenes": [S2_SCENE]}, *BBOX, *DATES)
    cdse = {"catalog": "cdse", "catalog_args": {}}
    usgs = {"catalog": "usgs", "catalog_args": {}}

    def catalog_args_and(changes: dict[str, Any]) -> dict[str, Any]:
        return conf({"catalog_args": {**args, "url": url}, **changes})

    entries: list[tuple[str, Any, str]] = [
        # missing fields
        ("no_catalog", conf(None, "catalog"), "catalog"),
        ("no_dataset", conf(None, "dataset"), "dataset"),
        ("no_area", conf(None, *BBOX), "area"),
        ("bbox_without_north", conf(None, "n"), "n"),
        # wrong types
        ("cloud_string", conf({"cloud": "low"}), "cloud"),
        ("cloud_boolean", conf({"cloud": True}), "cloud"),
        ("west_string", conf({"w": "-45.9"}), "w"),
        ("force_string", conf({"force": "true"}), "force"),
        ("tags_string", conf({"tags": "bdc"}), "tags"),
        ("tiles_number", conf({"tiles": 23}, *BBOX), "tiles"),
        ("scenes_string", conf({"scenes": S2_SCENE}, *BBOX, *DATES), "scenes"),
        ("scene_number", conf({"scenes": [123]}, *BBOX, *DATES), "scenes[0]"),
        ("tasks_object", conf({"tasks": {"type": "download"}}), "tasks"),
        ("catalog_number", conf({"catalog": 5}), "catalog"),
        ("dataset_list", conf({"dataset": ["S2MSI1C"]}), "dataset"),
        ("catalog_args_list", conf({"catalog_args": ["url"]}), "catalog_args"),
        (
            "search_args_string",
            conf({"catalog_search_args": "platform=S2A"}),
            "catalog_search_args",
        ),
        ("action_number", conf({"action": 1}), "action"),
        ("start_number", conf({"start": 20200109}), "start"),
        ("end_list", conf({"end": ["2020-01-31"]}), "end"),
        # unknown names
        ("unknown_catalog", conf({"catalog": "nope"}), "catalog"),
        ("unknown_dataset_cdse", conf({**cdse, "dataset": "S2MSI1X"}), "dataset"),
        ("unknown_dataset_usgs", conf({**usgs, "dataset": "landsat_8_c1"}), "dataset"),
        ("unknown_dataset_stac", catalog_args_and({"dataset": "S2MSI1X"}), "dataset"),
        (
            "unknown_dataset_cdse_stac",
            catalog_args_and({"catalog": "cdse-stac", "dataset": "sentinel-9"}),
            "dataset",
        ),
        ("unknown_dataset_characters", conf({"dataset": "S2 MSI 1C!"}), "dataset"),
        ("unknown_collection", tree(node("download", "S2_L1C-9")), "tasks[0].collection"),
        ("unknown_task_type", tree(node("fetch", "S2_L1C-1")), "tasks[0].type"),
        (
            "collection_without_processor",
            tree(node("download", "S2_L1C-1", node("correction", "S2_L1C-1"))),
            "tasks[0].tasks[0].collection",
        ),
        ("unknown_field", conf({"foo": 1}), "foo"),
        ("unknown_catalog_arg", catalog_args(proxy="http://127.0.0.1:3128"), "catalog_args.proxy"),
        ("unknown_search_arg", conf({"catalog_search_args": {"orbit": 38}}), "catalog_search_args"),
        ("unknown_node_field", tree(node("download", "S2_L1C-1", when="now")), "tasks[0].when"),
        # dates and ranges
        ("date_words", conf({"start": "yesterday"}), "start"),
        ("date_month_13", conf({"start": "2020-13-45"}), "start"),
        ("end_before_start", conf({"end": "2020-01-01T00:00:00"}), "end"),
        ("cloud_150", conf({"cloud": 150}), "cloud"),
        ("cloud_negative", conf({"cloud": -1}), "cloud"),
        ("page_size_zero", catalog_args(page_size=0), "catalog_args.page_size"),
        ("max_connections_100", catalog_args(max_connections=100), "catalog_args.max_connections"),
        ("timeout_negative", catalog_args(timeout_s=-1), "catalog_args.timeout_s"),
        ("search_limit_zero", conf({"catalog_search_args": {"limit": 0}}), "catalog_search_args"),
        # bbox, geom, tiles, scenes
        ("west_east_swapped", conf({"w": -45.7, "e": -45.9}), "e"),
        ("south_north_swapped", conf({"s": -12.6, "n": -12.74}), "n"),
        ("west_beyond_180", conf({"w": -200}), "w"),
        ("north_beyond_90", conf({"n": 95}), "n"),
        ("west_nan", conf({"w": float("nan")}), "w"),
        ("geom_bad_wkt", conf({"geom": "POLYGON ((1 2, 3"}, *BBOX), "geom"),
        ("geom_linestring", conf({"geom": "LINESTRING (0 0, 1 1)"}, *BBOX), "geom"),
        ("geom_number", conf({"geom": 5}, *BBOX), "geom"),
        (
            "geom_two_features",
            conf(
                {
                    "geom": {
                        "type": "FeatureCollection",
                        "features": [
                            {
                                "type": "Feature",
                                "geometry": {"type": "Point", "coordinates": [0, 0]},
                            },
                            {
                                "type": "Feature",
                                "geometry": {"type": "Point", "coordinates": [1, 1]},
                            },
                        ],
                    }
                },
                *BBOX,
            ),
            "geom",
        ),
        (
            "geom_beyond_180",
            conf({"geom": "POLYGON ((200 0, 201 0, 201 1, 200 0))"}, *BBOX),
            "geom",
        ),
        ("two_areas", conf({"tiles": ["23LLF"]}), "tiles"),
        ("bad_tile", {**by_tiles, "tiles": ["ZZ999"]}, "tiles[0]"),
        ("empty_tile", {**by_tiles, "tiles": ["  ", "23LLF"]}, "tiles"),
        ("scenes_and_tiles", {**by_scenes, "tiles": ["23LLF"]}, "tiles"),
        # oversize strings
        ("dataset_100k_characters", conf({"dataset": "S" * 100_000}), "dataset"),
        ("catalog_5k_characters", conf({"catalog": "demo" * 1250}), "catalog"),
        ("platform_1k_characters", conf({"platform": "S" * 1000}), "platform"),
        ("tag_1k_characters", conf({"tags": ["t" * 1000]}), "tags[0]"),
        ("too_many_tags", conf({"tags": [f"t{i}" for i in range(60)]}), "tags"),
        ("url_5k_characters", catalog_args(url=url + "/" + "a" * 5000), "catalog_args.url"),
        ("collection_1k_characters", tree(node("download", "S" * 1000)), "tasks[0].collection"),
        ("field_name_1k_characters", conf({"x" * 1000: 1}), "(field name)"),
        ("args_value_5k_characters", with_args(note="n" * 5000), "tasks[0].args.note"),
        ("args_nested_30_levels", with_args(x=_deep(30)), "tasks[0].args.x"),
        # NUL and control characters
        ("dataset_nul", conf({"dataset": "S2MSI1C\x00"}), "dataset"),
        ("catalog_nul", conf({"catalog": "demo\x00"}), "catalog"),
        ("platform_line_break", conf({"platform": "Sentinel-2A\nINFO forged line"}), "platform"),
        ("tag_escape_sequence", conf({"tags": ["\x1b[31mred"]}), "tags[0]"),
        ("start_nul", conf({"start": "2020-01-09\x00"}), "start"),
        ("args_value_nul", with_args(note="a\x00b"), "tasks[0].args.note"),
        ("field_name_nul", conf({"fo\x00o": 1}), "(field name)"),
        ("url_nul", catalog_args(url=url + "/\x00"), "catalog_args.url"),
        ("dataset_lone_surrogate", conf({"dataset": "S2MSI1C\ud800"}), "dataset"),
        ("collection_tab", tree(node("download", "S2_L1C-1\t")), "tasks[0].collection"),
        ("geom_nul", conf({"geom": "POLYGON ((0 0, 1 0, 1 1, 0 0))\x00"}, *BBOX), "geom"),
        # credentials
        ("catalog_args_password", catalog_args(password=FAKE_PASSWORD), "catalog_args.password"),
        ("catalog_args_api_key", catalog_args(api_key=FAKE_PASSWORD), "catalog_args.api_key"),
        ("top_level_token", conf({"access_token": FAKE_PASSWORD}), "access_token"),
        (
            "url_with_user_info",
            catalog_args(url=url.replace("://", f"://bob:{FAKE_PASSWORD}@")),
            "catalog_args.url",
        ),
        ("url_with_token", catalog_args(url=f"{url}/?token={FAKE_PASSWORD}"), "catalog_args.url"),
        (
            "search_args_secret",
            conf({"catalog_search_args": {"client_secret": FAKE_PASSWORD}}),
            "catalog_search_args.client_secret",
        ),
        ("node_args_password", with_args(password=FAKE_PASSWORD), "tasks[0].args.password"),
        # URL overrides to hosts the deployment does not allow
        (
            "url_cloud_metadata",
            catalog_args(url="http://169.254.169.254/latest"),
            "catalog_args.url",
        ),
        ("url_private_address", catalog_args(url="http://10.0.0.1/stac"), "catalog_args.url"),
        ("url_unlisted_host", catalog_args(url="https://example.org/stac"), "catalog_args.url"),
        ("url_not_http", catalog_args(url="ftp://127.0.0.1/stac"), "catalog_args.url"),
        (
            "url_other_host_with_connection",
            conf({**cdse, "catalog_args": {"url": "https://mirror.example.org/odata/v1"}}),
            "catalog_args.url",
        ),
        (
            "token_url_other_host",
            conf({**cdse, "catalog_args": {"token_url": "https://evil.example.net/token"}}),
            "catalog_args.token_url",
        ),
        ("conn_id_bad_characters", catalog_args(conn_id="bad id!"), "catalog_args.conn_id"),
        ("verify_tls_string", catalog_args(verify_tls="true"), "catalog_args.verify_tls"),
        # task trees
        (
            "download_under_download",
            tree(node("download", "S2_L1C-1", node("download", "S2_L1C-1"))),
            "tasks[0].tasks[0].type",
        ),
        (
            "correction_under_publish",
            tree(
                node(
                    "download",
                    "S2_L1C-1",
                    node("publish", "S2_L2A-1", node("correction", "S2_L2A-1")),
                )
            ),
            "tasks[0].tasks[0].tasks[0].type",
        ),
        ("tree_too_deep", tree(_chain(7)), "tasks[0]"),
        ("tree_too_many_nodes", tree(*[node("download", "S2_L1C-1")] * 65), "tasks"),
        ("node_without_collection", tree({"type": "download"}), "tasks[0].collection"),
        ("node_type_number", tree({"type": 1, "collection": "S2_L1C-1"}), "tasks[0].type"),
        ("node_not_object", conf({"tasks": ["download"]}), "tasks[0]"),
        # values
        ("bad_action", conf({"action": "go"}), "action"),
        ("blank_dataset", conf({"dataset": "   "}), "dataset"),
        ("blank_catalog", conf({"catalog": ""}), "catalog"),
        # not a JSON object
        ("body_array", [base], "conf"),
        ("body_string", "radcor", "conf"),
        ("body_number", 42, "conf"),
    ]
    return [
        BadConf(name, value, field, asks_catalog=name in ASKS_CATALOG)
        for name, value, field in entries
    ]


__all__ = ["FAKE_PASSWORD", "BadConf", "bad_confs", "demo_conf", "node"]
