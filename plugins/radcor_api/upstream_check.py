"""The upstream's ``POST /api/check-scenes``: its request as a gap check, the report its answer.

The upstream (``CheckScenesForm``) took ``catalog``, ``dataset``, ``collections``
(``Name-Version``), ``start_date``, ``end_date``, an area as ``tiles`` (with ``grid``) or
``bbox`` (``[w, s, e, n]``), ``catalog_kwargs`` (search options) and ``only_tiles``; it answered
per collection the published and missing scenes plus ``total_external``. Here the gap check
(``include.radcor.gaps``) does the work: one publish node per collection, action preview.
``catalog_args`` (driver options, as in ``/api/radcor``) may be added: the upstream read them
from its database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from include.common.errors import FieldProblem, InvalidInputError
from include.radcor.gaps import GapReport

FIELDS = (
    "catalog",
    "dataset",
    "catalog_kwargs",
    "collections",
    "grid",
    "tiles",
    "bbox",
    "start_date",
    "end_date",
    "only_tiles",
    "catalog_args",
)
_REQUIRED = ("catalog", "dataset", "collections", "start_date", "end_date")


def _area(raw: Mapping[str, Any], problems: list[FieldProblem]) -> dict[str, Any]:
    if raw.get("grid") and "tiles" not in raw:
        problems.append(FieldProblem("tiles", 'Missing property "tiles".', "give tiles with grid"))
    if raw.get("tiles"):
        return {"tiles": raw["tiles"]}
    bbox = raw.get("bbox")
    if bbox is None:
        problems.append(
            FieldProblem(
                "bbox",
                'Missing "tiles"/"grid" or "bbox". Please refer one of.',
                'give tiles (["23LLF"]) or bbox ([w, s, e, n] in degrees)',
            )
        )
        return {}
    if not isinstance(bbox, list) or len(bbox) != 4:
        problems.append(FieldProblem("bbox", "must be a list of 4 numbers", "give [w, s, e, n]"))
        return {}
    return dict(zip(("w", "s", "e", "n"), bbox, strict=True))


def check_conf(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Return the radcor conf (action preview) that checks what an upstream request asked.

    ``catalog_kwargs`` become ``catalog_search_args`` (the upstream passed them to the search).
    The conf's own validation then checks every value.

    Raises:
        InvalidInputError: on unknown or missing fields and on an area that is not given.
    """
    problems = [
        FieldProblem(key, "is not a check-scenes field", f"use some of: {', '.join(FIELDS)}")
        for key in raw
        if key not in FIELDS
    ]
    problems += [
        FieldProblem(key, "is required", f"give {key} (check-scenes, as upstream)")
        for key in _REQUIRED
        if raw.get(key) in (None, "", [])
    ]
    collections = raw.get("collections")
    if collections is not None and not isinstance(collections, list):
        problems.append(
            FieldProblem("collections", "must be a list", 'give ["S2_L1C-1", "S2_L2A-1"]')
        )
        collections = []
    area = _area(raw, problems)
    if problems:
        raise InvalidInputError(problems)
    conf: dict[str, Any] = {
        "catalog": raw["catalog"],
        "dataset": raw["dataset"],
        "start": raw["start_date"],
        "end": raw["end_date"],
        "action": "preview",
        "tasks": [{"type": "publish", "collection": c, "args": {}} for c in collections or []],
        **area,
    }
    if raw.get("catalog_kwargs"):
        conf["catalog_search_args"] = raw["catalog_kwargs"]
    if raw.get("catalog_args"):
        conf["catalog_args"] = raw["catalog_args"]
    return conf


def check_answer(report: GapReport) -> dict[str, Any]:
    """Return the gap report as the upstream answered check-scenes.

    Per collection: ``total_scenes`` (the catalog's scenes published there), ``total_missing``
    and ``missing_external`` (the catalog's scenes not published there), ``scenes`` (all the
    catalog's), and for each other collection ``missing_<other>``/``total_missing_<other>``
    (published here, not there); plus ``total_external``.
    """
    external = sorted({s for cell in report.cells for s in cell.scenes})
    published = {
        name: {s for cell in report.cells for s in cell.published.get(name, ())}
        for name in report.collections
    }
    out: dict[str, Any] = {}
    for name, have in published.items():
        missing = [s for s in external if s not in have]
        entry: dict[str, Any] = {
            "total_scenes": len(have),
            "total_missing": len(missing),
            "missing_external": missing,
            "scenes": external,
        }
        for other, theirs in published.items():
            if other != name:
                diff = sorted(have - theirs)
                entry[f"total_missing_{other}"] = len(diff)
                entry[f"missing_{other}"] = diff
        out[name] = entry
    return {"collections": out, "total_external": len(external)}
