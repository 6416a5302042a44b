"""The publish backend contract: a place STAC items are upserted into and read back from."""

from __future__ import annotations

import abc
import copy
from collections.abc import Callable
from typing import Any

from include.common.errors import FieldProblem, InvalidInputError


def _arc(west: float, east: float) -> tuple[float, float]:
    """Return ``(start, width)`` in degrees of a longitude interval; west > east crosses 180."""
    if west <= east:
        return west, east - west
    return west, east - west + 360.0


def _longitude_union(first: tuple[float, float], second: tuple[float, float]) -> list[float]:
    """Return ``[west, east]`` of the shortest interval covering two, either may cross 180."""
    arcs = [_arc(*first), _arc(*second)]
    best: tuple[float, float] | None = None
    for start, _ in arcs:
        width = max((other - start) % 360.0 + span for other, span in arcs)
        if best is None or width < best[1]:
            best = (start, width)
    start, width = best or arcs[0]
    if width >= 360.0:
        return [-180.0, 180.0]
    end = start + width
    return [start, end - 360.0 if end > 180.0 else end]


def grown_bbox(old: list[float], new: list[float]) -> list[float]:
    """Return the 2D ``[w, s, e, n]`` covering two boxes, one of which may cross the antimeridian.

    Boxes with west > east (RFC 7946 5.2) grow along the shorter way round; two boxes that do
    not cross give the plain min/max, as before.
    """
    south, north = min(old[1], new[1]), max(old[3], new[3])
    if old[0] <= old[2] and new[0] <= new[2]:
        return [min(old[0], new[0]), south, max(old[2], new[2]), north]
    west, east = _longitude_union((old[0], old[2]), (new[0], new[2]))
    return [west, south, east, north]


def check_item(
    item: dict[str, Any],
    collection: dict[str, Any] | None,
    extent: Callable[[dict[str, Any]], object],
) -> str:
    """Return the collection id of ``item`` after checking it is a STAC Item a backend can store.

    ``extent`` is the backend's own reader of the item's box and dates; it must raise
    ``KeyError``, ``TypeError`` or ``ValueError`` on an item it cannot index.

    Raises:
        InvalidInputError: naming the field that is wrong.
    """
    if not isinstance(item, dict) or item.get("type") != "Feature":
        raise InvalidInputError(
            FieldProblem("item.type", "is not a STAC Item (Feature)", "give an Item dict")
        )
    collection_id = item.get("collection")
    if not collection_id:
        raise InvalidInputError(
            FieldProblem("item.collection", "is missing", "set the item's collection id")
        )
    if collection is not None and collection.get("id") != collection_id:
        raise InvalidInputError(
            FieldProblem(
                "collection.id",
                f"{collection.get('id')!r} is not the item's collection {collection_id!r}",
                "pass the item's own collection",
            )
        )
    import pystac  # here, not at the top: download tasks import this module's base class

    try:
        pystac.Item.from_dict(copy.deepcopy(item), preserve_dict=False)
        extent(item)
    except (pystac.STACError, KeyError, TypeError, ValueError) as err:
        raise InvalidInputError(
            FieldProblem(
                f"item[{item.get('id')}]", f"is not a valid STAC Item: {err}", "fix the item"
            )
        ) from err
    return str(collection_id)


class CatalogBackend(abc.ABC):
    """A STAC catalog we publish into.

    Contract: ``upsert`` replaces an item with the same (collection, id) and never leaves two;
    it is atomic per item (a reader sees the old or the new item, never half of one); it creates
    the collection from ``collection`` metadata when missing and keeps its extent current.
    """

    name: str = ""

    @abc.abstractmethod
    def upsert(self, item: dict[str, Any], collection: dict[str, Any] | None = None) -> None:
        """Insert or replace ``item`` (a STAC Item dict naming its ``collection``)."""

    @abc.abstractmethod
    def get(self, collection_id: str, item_id: str) -> dict[str, Any] | None:
        """Return the item, or None when it is not published."""

    @abc.abstractmethod
    def search(self, collection_id: str) -> list[dict[str, Any]]:
        """Return every item of a collection."""

    def exists(self, collection_id: str, item_id: str) -> bool:
        """Return whether the item is published."""
        return self.get(collection_id, item_id) is not None
