"""The publish backend contract: a place STAC items are upserted into and read back from."""

from __future__ import annotations

import abc
from typing import Any


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
