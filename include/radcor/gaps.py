"""Gap check (DESIGN 1.3): per tile and month, the catalog's scenes against what is published.

A scene is *published* in a collection when the catalog backend has an item with the scene id in
that collection (the same test ``plan_scene`` uses to skip work). The collections checked are the
conf's publish nodes; a scene is *missing* when any of them lacks it. ``gap_confs`` turns the
missing scenes into confs (area by scene ids) that a run can take.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from include.collectors.base import Scene
from include.common.errors import FieldProblem, InvalidInputError
from include.radcor.conf import MAX_SCENES, Action, RadcorConf, TaskNode, TaskType

AREA_AND_FILTER_FIELDS = ("w", "s", "e", "n", "geom", "tiles", "scenes", "start", "end", "cloud")
"""Conf fields replaced by the scene ids in a gap run."""
UNKNOWN_TILE = "unknown"


@dataclass(frozen=True, slots=True)
class GapCell:
    """One tile and month: the catalog's scenes, what each collection has, what is missing."""

    tile: str
    month: str
    """``YYYY-MM`` of the acquisition (UTC)."""
    scenes: tuple[str, ...]
    published: dict[str, tuple[str, ...]]
    """Collection -> the scenes of this cell published there."""
    missing: tuple[str, ...]
    """Scenes not published in every checked collection."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "tile": self.tile,
            "month": self.month,
            "scenes": len(self.scenes),
            "published": {name: len(ids) for name, ids in self.published.items()},
            "missing": list(self.missing),
        }


@dataclass(frozen=True, slots=True)
class GapReport:
    """The gap check of one conf: checked collections and one cell per tile and month."""

    collections: tuple[str, ...]
    cells: tuple[GapCell, ...]

    @property
    def missing_scenes(self) -> list[str]:
        """Return every missing scene id, cells in order."""
        return [scene_id for cell in self.cells for scene_id in cell.missing]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict with totals."""
        return {
            "collections": list(self.collections),
            "scenes": sum(len(cell.scenes) for cell in self.cells),
            "missing": len(self.missing_scenes),
            "cells": [cell.to_dict() for cell in self.cells],
        }


def publish_collections(conf: RadcorConf) -> list[str]:
    """Return the collections the conf's publish nodes write, in tree order, once each."""
    found: list[str] = []

    def visit(nodes: Iterable[TaskNode]) -> None:
        for node in nodes:
            if node.type == TaskType.PUBLISH and node.collection not in found:
                found.append(node.collection)
            visit(node.tasks)

    visit(conf.tasks)
    return found


def check_gaps(
    conf: RadcorConf, scenes: Iterable[Scene], is_published: Callable[[str, str], bool]
) -> GapReport:
    """Compare the catalog's ``scenes`` with what is published, per tile and month.

    Args:
        conf: a validated conf; its publish nodes name the collections checked.
        scenes: what the conf's search found in the catalog.
        is_published: ``(collection, scene_id) -> bool``, as ``CatalogBackend.exists``.

    Returns:
        The report, cells sorted by tile then month, scene ids sorted inside a cell.

    Raises:
        InvalidInputError: when the conf has no publish node (nothing to compare with).
    """
    collections = publish_collections(conf)
    if not collections:
        raise InvalidInputError(
            FieldProblem(
                "tasks",
                "has no publish node, so nothing published can be compared with the catalog",
                'add a publish node such as {"type": "publish", "collection": "S2_L1C-1"}',
            )
        )
    by_cell: dict[tuple[str, str], list[str]] = defaultdict(list)
    for scene in scenes:
        by_cell[(scene.tile or UNKNOWN_TILE, f"{scene.datetime:%Y-%m}")].append(scene.scene_id)
    cells = []
    for (tile, month), scene_ids in sorted(by_cell.items()):
        ordered = tuple(sorted(set(scene_ids)))
        published = {
            name: tuple(s for s in ordered if is_published(name, s)) for name in collections
        }
        missing = tuple(s for s in ordered if any(s not in published[n] for n in collections))
        cells.append(GapCell(tile, month, ordered, published, missing))
    return GapReport(collections=tuple(collections), cells=tuple(cells))


def gap_confs(conf: RadcorConf, scene_ids: list[str]) -> list[dict[str, Any]]:
    """Return confs that process ``scene_ids`` with ``conf``'s catalog and task tree.

    The area becomes the scene ids (searched by id, no date or cloud filter), split in chunks of
    at most ``MAX_SCENES``; the action is ``start``.

    Args:
        conf: the validated conf of the gap check.
        scene_ids: the missing scenes.

    Returns:
        One JSON-ready conf per chunk; empty when nothing is missing.
    """
    base = conf.model_dump(mode="json", exclude_none=True)
    for name in AREA_AND_FILTER_FIELDS:
        base.pop(name, None)
    base["action"] = str(Action.START)
    return [
        {**base, "scenes": scene_ids[index : index + MAX_SCENES]}
        for index in range(0, len(scene_ids), MAX_SCENES)
    ]
