"""Size and character limits of a raw radcor conf, checked before any other rule reads it.

Every string of a conf (values and object keys, at any depth) must be free of control
characters and lone surrogates, and not longer than its field's limit; objects and lists may not
nest deeper than ``MAX_DEPTH``. PostgreSQL refuses NUL in JSONB, a log line with a line break
or an escape sequence can forge other lines, and a 100,000-character name is never a name: such
a value is reported by its field and position only (never echoed) and its top-level field is
left out of the other checks, so nothing that breaks these limits reaches a message, a log line
or the database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from include.collectors.base import MAX_DATASET_CHARS
from include.common.errors import FieldProblem

MAX_DEPTH = 20
"""Deepest nesting of objects and lists (a task tree of 6 nodes takes 12 levels; args a few)."""
MAX_KEY_CHARS = 100
"""Longest object key (field names, ``args`` names)."""
MAX_TEXT_CHARS = 1000
"""Longest string of a field without its own limit (``args`` values...)."""
MAX_GEOM_CHARS = 1_000_000
"""Longest WKT or GeoJSON text in ``geom`` (a detailed state border fits)."""
MAX_TAGS = 50
MAX_REPORTED = 20
"""Problems of this kind listed per conf; the rest are counted in one entry."""
TEXT_LIMITS: dict[str, int] = {
    "catalog": 100,
    "dataset": MAX_DATASET_CHARS,  # the drivers' own limit (check_dataset)
    "platform": 100,
    "action": 20,
    "start": 64,
    "end": 64,
    "tags[]": 100,
    "scenes[]": 100,
    "tiles[]": 20,
    "geom": MAX_GEOM_CHARS,
    "catalog_args.url": 2048,
    "catalog_args.token_url": 2048,
    "catalog_args.conn_id": 250,
    "catalog_args.verify_tls": 4096,
    "catalog_search_args.platform": 100,
    "tasks[].type": 50,
    "tasks[].collection": 100,
}
"""Longest string per field (list items as ``name[]``, any node of the tree as ``tasks[]``)."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
"""Multi-line text (WKT or GeoJSON in ``geom``) may hold tabs and line breaks."""
_TEXT_FIELDS = frozenset({"geom"})
CONTROL_FIX = (
    "remove control characters (NUL, line breaks, tabs, escape sequences) and invalid "
    "Unicode: give plain printable text"
)


def _generic(path: str) -> str:
    """``tasks[0].tasks[1].collection`` -> ``tasks[].collection``; ``tags[3]`` -> ``tags[]``."""
    generic = re.sub(r"\[\d+\]", "[]", path)
    return re.sub(r"^(?:tasks\[\]\.)+(?=tasks\[\])", "", generic)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _character_name(char: str) -> str:
    return {"\x00": "NUL", "\n": "a line break", "\r": "a carriage return", "\t": "a tab"}.get(
        char, f"U+{ord(char):04X}"
    )


def _string_problem(path: str, value: str, *, is_key: bool = False) -> FieldProblem | None:
    top = re.split(r"[.\[]", path, maxsplit=1)[0]
    pattern = _CONTROL_IN_TEXT if top in _TEXT_FIELDS and not is_key else _CONTROL
    bad = pattern.search(value)
    what = "a field name" if is_key else "the value"
    if bad is not None:
        return FieldProblem(
            path,
            f"{what} contains a control character ({_character_name(bad.group())} at "
            f"position {bad.start()}; not shown)",
            CONTROL_FIX,
        )
    limit = MAX_KEY_CHARS if is_key else TEXT_LIMITS.get(_generic(path), MAX_TEXT_CHARS)
    if len(value) > limit:
        return FieldProblem(
            path,
            f"{what} has {len(value)} characters, more than {limit} (not shown)",
            f"give at most {limit} characters",
        )
    return None


def _problems_of(path: str, value: Any, depth: int) -> list[FieldProblem]:
    """Return the problems of ``value`` and everything inside it (iteratively, depth-capped)."""
    problems: list[FieldProblem] = []
    pending: list[tuple[str, Any, int]] = [(path, value, depth)]
    while pending:
        where, item, level = pending.pop()
        if isinstance(item, str):
            problem = _string_problem(where, item)
            if problem is not None:
                problems.append(problem)
            continue
        if not isinstance(item, Mapping | list):
            continue
        if level >= MAX_DEPTH:
            problems.append(
                FieldProblem(
                    where,
                    f"nests objects or lists deeper than {MAX_DEPTH} levels",
                    "flatten it: a conf's values nest a few levels at most",
                )
            )
            continue
        if isinstance(item, list):
            pending.extend((_join(where, i), child, level + 1) for i, child in enumerate(item))
            continue
        for key, child in item.items():
            text = str(key)
            problem = _string_problem(_join(where, "(field name)"), text, is_key=True)
            if problem is not None:
                problems.append(problem)
            else:
                pending.append((_join(where, text), child, level + 1))
    return problems


def text_problems(conf: Mapping[str, Any]) -> tuple[list[FieldProblem], set[str]]:
    """Check every string and the nesting of a raw conf against the limits.

    Args:
        conf: the raw conf (a JSON object).

    Returns:
        The problems, in field order (at most ``MAX_REPORTED`` listed and the rest counted),
        and the top-level keys whose values break a limit: the caller leaves them out of the
        other checks (a key that is itself bad is left out too).
    """
    problems: list[FieldProblem] = []
    bad: set[str] = set()
    for key, value in conf.items():
        name = str(key)
        key_problem = _string_problem("(field name)", name, is_key=True)
        found = [key_problem] if key_problem is not None else _problems_of(name, value, 0)
        if name == "tags" and isinstance(value, list) and len(value) > MAX_TAGS:
            found.append(
                FieldProblem(
                    name, f"has {len(value)} tags, more than {MAX_TAGS}", f"give at most {MAX_TAGS}"
                )
            )
        if found:
            bad.add(name)
            problems.extend(sorted(found, key=lambda p: p.field))
    if len(problems) > MAX_REPORTED:
        rest = len(problems) - MAX_REPORTED
        problems = [
            *problems[:MAX_REPORTED],
            FieldProblem(
                "conf",
                f"has {rest} more values past the size or character limits, not listed",
                "fix the values above and validate again",
            ),
        ]
    return problems, bad


__all__ = ["CONTROL_FIX", "MAX_DEPTH", "TEXT_LIMITS", "text_problems"]
