"""A static STAC catalog on disk, browsable by any STAC client (registered as ``static``).

Layout under ``root``::

    catalog.json                         root Catalog, one ``child`` link per collection
    <collection>/collection.json         Collection, one ``item`` link per item, extent of its items
    <collection>/items/<item id>.json    Items

Every structural link (self, root, parent, collection, child, item) is relative, and so is
every asset href under ``DATA_DIR/published`` (relative to the item's file, ``hrefs.py``): the
folder holding the catalog and ``published/`` (``DATA_DIR``) can be moved or served over HTTP as
is, and no item holds a path of the machine that published it. Other links (license, ...) and
other asset hrefs (URLs, paths elsewhere) are kept as given. An item whose bbox crosses the
antimeridian (west > east) grows the collection extent the shorter way round.

Files are written through a temporary name and ``os.replace``; every upsert holds an exclusive
``fcntl.flock`` on ``root/.lock``, so several tasks (processes or threads) can publish at once
without losing a link or an extent update.
"""

from __future__ import annotations

import copy
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pystac
from pystac.utils import datetime_to_str, str_to_datetime
from shapely.geometry import shape

from include.catalog.base import CatalogBackend, check_item, grown_bbox
from include.catalog.hrefs import published_root, relative_asset_hrefs
from include.catalog.registry import register
from include.common.config import CollectionConfig
from include.common.errors import IntegrityError
from include.common.storage import safe_component

log = logging.getLogger(__name__)

CATALOG_ID = "collection-builder"
CATALOG_FILE = "catalog.json"
COLLECTION_FILE = "collection.json"
ITEMS_DIR = "items"
LOCK_FILE = ".lock"
STRUCTURAL_RELS = frozenset({"self", "root", "parent", "collection", "child", "item", "items"})
MISSION_START = {
    "sentinel-2": datetime(2015, 6, 23, tzinfo=UTC),
    "landsat": datetime(2013, 2, 11, tzinfo=UTC),
}
"""Placeholder start of a new collection's temporal extent (Sentinel-2A / Landsat 8 launch)."""
_JSON = "application/json"
_GEOJSON = "application/geo+json"


def _instruments(config: CollectionConfig) -> list[str]:
    """Return the configured instruments, else the platform family's usual ones (as items)."""
    if config.instruments:
        return list(config.instruments)
    return ["msi"] if config.platform_family == "sentinel-2" else ["oli", "tirs"]


def collection_from_config(config: CollectionConfig) -> dict[str, Any]:
    """Return a STAC Collection dict describing a configured collection.

    The extent is a placeholder (world, mission start to open end): the static backend replaces it
    with the extent of the items it stores.

    Args:
        config: the collection's config.

    Returns:
        A Collection dict with summaries (constellation, instruments, gsd, eo:bands) and
        item_assets for the band COGs, without links.
    """
    collection = pystac.Collection(
        id=config.name,
        title=config.title,
        description=config.description or config.title,
        license=config.license,
        extent=pystac.Extent(
            pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
            pystac.TemporalExtent([[MISSION_START[config.platform_family], None]]),
        ),
        keywords=[config.platform_family, config.level, config.tile_system],
    )
    summaries = collection.summaries
    summaries.add("constellation", [config.platform_family])
    summaries.add("instruments", _instruments(config))
    summaries.add("gsd", sorted({band.resolution_m for band in config.bands}))
    summaries.add(
        "eo:bands",
        [
            {
                key: value
                for key, value in (
                    ("name", band.name),
                    ("common_name", band.common_name),
                    ("center_wavelength", band.center_wavelength_um),
                )
                if value is not None
            }
            for band in config.bands
        ],
    )
    data = collection.to_dict(include_self_link=False, transform_hrefs=False)
    data["links"] = []
    data["item_assets"] = {
        band.name: {
            "title": f"{band.name} - {band.resolution_m:g} m",
            "type": str(pystac.MediaType.COG),
            "roles": ["data"],
        }
        for band in config.bands
    }
    return data


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as err:
        raise IntegrityError(
            f"{path}: not valid JSON ({err}); restore it or publish the scene again"
        ) from err
    return data


def _link(rel: str, href: str, media_type: str, title: str | None = None) -> dict[str, Any]:
    link = {"rel": rel, "href": href, "type": media_type}
    if title:
        link["title"] = title
    return link


def _kept_links(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the non-structural links of a STAC object (license, via, ...), absolute or not."""
    return [link for link in data.get("links", []) if link.get("rel") not in STRUCTURAL_RELS]


def _item_extent(item: dict[str, Any]) -> tuple[list[float], datetime, datetime]:
    bbox = item.get("bbox")
    if bbox and len(bbox) in (4, 6):
        west, south = bbox[0], bbox[1]
        east, north = (bbox[3], bbox[4]) if len(bbox) == 6 else (bbox[2], bbox[3])
        box = [float(west), float(south), float(east), float(north)]
    else:
        box = [float(v) for v in shape(item["geometry"]).bounds]
    props = item.get("properties", {})
    start = props.get("start_datetime") or props["datetime"]
    end = props.get("end_datetime") or props["datetime"]
    return box, str_to_datetime(start), str_to_datetime(end)


def _union_extent(
    collection: dict[str, Any], box: list[float], start: datetime, end: datetime, *, first: bool
) -> None:
    extent = collection.setdefault("extent", {})
    spatial = extent.setdefault("spatial", {})
    temporal = extent.setdefault("temporal", {})
    if first or not spatial.get("bbox"):
        spatial["bbox"] = [box]
        temporal["interval"] = [[datetime_to_str(start), datetime_to_str(end)]]
        return
    spatial["bbox"][0] = grown_bbox(spatial["bbox"][0], box)
    interval = (temporal.get("interval") or [[None, None]])[0]
    old_start = str_to_datetime(interval[0]) if interval[0] else start
    old_end = str_to_datetime(interval[1]) if interval[1] else end
    temporal["interval"] = [
        [datetime_to_str(min(old_start, start)), datetime_to_str(max(old_end, end))]
    ]


@register("static")
class StaticStacBackend(CatalogBackend):
    """A static STAC catalog in a folder (see the module docstring for the layout).

    Contract (``CatalogBackend``): ``upsert`` replaces an item with the same (collection, id),
    adds exactly one ``item`` link and one ``child`` link, keeps the collection extent as the
    union of its items, writes each file atomically and serialises writers with a file lock.
    """

    name = "static"

    def __init__(self, root: Path, published: Path | None = None) -> None:
        """Use the catalog folder ``root`` (created on the first upsert).

        Args:
            root: the folder holding ``catalog.json``.
            published: the folder of published files whose asset hrefs become relative
                (default ``DATA_DIR/published``).
        """
        self.root = Path(root)
        self.published = Path(published).resolve() if published else published_root()

    # paths -------------------------------------------------------------------------------
    def catalog_path(self) -> Path:
        """Return the path of the root ``catalog.json``."""
        return self.root / CATALOG_FILE

    def collection_path(self, collection_id: str) -> Path:
        """Return the path of a collection's ``collection.json``.

        Raises:
            InvalidInputError: when the id cannot be a folder name.
        """
        return self.root / safe_component(collection_id, "item.collection") / COLLECTION_FILE

    def item_path(self, collection_id: str, item_id: str) -> Path:
        """Return the path of an item's JSON file.

        Raises:
            InvalidInputError: when an id cannot be a file name.
        """
        return (
            self.root
            / safe_component(collection_id, "item.collection")
            / ITEMS_DIR
            / f"{safe_component(item_id, 'item.id')}.json"
        )

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # reading -----------------------------------------------------------------------------
    def get(self, collection_id: str, item_id: str) -> dict[str, Any] | None:
        """Return the stored item dict, or None when it is not published.

        Raises:
            InvalidInputError: when an id cannot be a file name.
            IntegrityError: when the stored file is not valid JSON.
        """
        return _read_json(self.item_path(collection_id, item_id))

    def search(self, collection_id: str) -> list[dict[str, Any]]:
        """Return every item of a collection, oldest first (then by id).

        Raises:
            InvalidInputError: when the id cannot be a folder name.
            IntegrityError: when a stored file is not valid JSON.
        """
        items_dir = self.collection_path(collection_id).parent / ITEMS_DIR
        if not items_dir.is_dir():
            return []
        items = [
            item
            for path in sorted(items_dir.glob("*.json"))
            if not path.name.startswith(".") and (item := _read_json(path)) is not None
        ]
        items.sort(key=lambda item: (_item_extent(item)[1], item["id"]))
        return items

    def get_collection(self, collection_id: str) -> dict[str, Any] | None:
        """Return the stored collection dict, or None.

        Raises:
            InvalidInputError: when the id cannot be a folder name.
            IntegrityError: when the stored file is not valid JSON.
        """
        return _read_json(self.collection_path(collection_id))

    def collection_ids(self) -> list[str]:
        """Return the ids of the collections linked from ``catalog.json``, in link order.

        Raises:
            IntegrityError: when ``catalog.json`` is not valid JSON.
        """
        catalog = _read_json(self.catalog_path())
        if catalog is None:
            return []
        return [
            link["href"].removeprefix("./").split("/", 1)[0]
            for link in catalog.get("links", [])
            if link.get("rel") == "child"
        ]

    # writing -----------------------------------------------------------------------------
    def _validated(
        self, item: dict[str, Any], collection: dict[str, Any] | None
    ) -> tuple[str, str]:
        collection_id = check_item(item, collection, _item_extent)
        item_id = str(item.get("id"))
        self.item_path(str(collection_id), item_id)  # validates both ids as path components
        return str(collection_id), item_id

    def _ensure_catalog(self, collection_id: str, title: str | None) -> None:
        path = self.catalog_path()
        catalog = _read_json(path) or {
            "type": "Catalog",
            "stac_version": pystac.get_stac_version(),
            "id": CATALOG_ID,
            "title": "Collection Builder",
            "description": "Scenes published by collection-builder",
            "links": [],
        }
        href = f"./{collection_id}/{COLLECTION_FILE}"
        links = [
            _link("root", f"./{CATALOG_FILE}", _JSON),
            _link("self", f"./{CATALOG_FILE}", _JSON),
            *(link for link in catalog.get("links", []) if link.get("rel") not in ("root", "self")),
        ]
        if not any(link.get("rel") == "child" and link.get("href") == href for link in links):
            links.append(_link("child", href, _JSON, title or collection_id))
        if links != catalog.get("links"):
            catalog["links"] = links
            _write_json_atomic(path, catalog)

    def upsert(self, item: dict[str, Any], collection: dict[str, Any] | None = None) -> None:
        """Insert or replace ``item``; create its collection and links when missing.

        Args:
            item: a STAC Item dict whose ``collection`` names its collection.
            collection: the collection's metadata, used only when the collection is created
                (see ``collection_from_config``); a minimal one is made when None.

        Asset hrefs under the published folder are stored relative to the item's file.

        Raises:
            InvalidInputError: when the item is not a valid STAC Item, has no collection, or its
                ids cannot be file names, or ``collection`` is for another collection.
            IntegrityError: when a stored catalog file is not valid JSON.
        """
        collection_id, item_id = self._validated(item, collection)
        box, start, end = _item_extent(item)
        with self._locked():
            collection_path = self.collection_path(collection_id)
            stored = _read_json(collection_path)
            created = stored is None
            if stored is None:
                stored = (
                    copy.deepcopy(collection)
                    if collection is not None
                    else {
                        "type": "Collection",
                        "stac_version": pystac.get_stac_version(),
                        "id": collection_id,
                        "description": f"Items published by collection-builder: {collection_id}",
                        "license": "other",
                        "extent": {},
                    }
                )
                stored["links"] = _kept_links(stored)

            item_path = self.item_path(collection_id, item_id)
            record = relative_asset_hrefs(item, item_path, self.published)
            record["links"] = [
                _link("root", f"../../{CATALOG_FILE}", _JSON),
                _link("parent", f"../{COLLECTION_FILE}", _JSON, stored.get("title")),
                _link("collection", f"../{COLLECTION_FILE}", _JSON, stored.get("title")),
                _link("self", f"./{item_id}.json", _GEOJSON),
                *_kept_links(item),
            ]
            _write_json_atomic(item_path, record)

            before = copy.deepcopy(stored)
            _union_extent(stored, box, start, end, first=created)
            item_href = f"./{ITEMS_DIR}/{item_id}.json"
            links = [
                _link("root", f"../{CATALOG_FILE}", _JSON),
                _link("parent", f"../{CATALOG_FILE}", _JSON),
                _link("self", f"./{COLLECTION_FILE}", _JSON),
                *(
                    link
                    for link in stored.get("links", [])
                    if link.get("rel") not in ("root", "parent", "self")
                ),
            ]
            if not any(
                link.get("rel") == "item" and link.get("href") == item_href for link in links
            ):
                links.append(_link("item", item_href, _GEOJSON))
            stored["links"] = links
            if created or stored != before:
                _write_json_atomic(collection_path, stored)
            self._ensure_catalog(collection_id, stored.get("title"))
        log.info(
            "catalog.upsert backend=static collection=%s item=%s created_collection=%s",
            collection_id,
            item_id,
            created,
        )
