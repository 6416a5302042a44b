"""The pgstac catalog backend: STAC in PostgreSQL + PostGIS (registered as ``pgstac``).

What stac-fastapi-pgstac serves as a STAC API (see docs/publish.md). The database is a dedicated
one, ``$COLLECTION_BUILDER_PGSTAC_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/
collection_builder_stac``). On first use the backend creates the database when missing and runs
``pypgstac migrate`` (pgstac 0.10.x; it creates the postgis, btree_gist and unaccent extensions
and the pgstac roles, so the first connection must be a superuser or the database owner), under a
PostgreSQL advisory lock so concurrent tasks migrate once; later uses find the version current
and skip it. It also turns pgstac's ``context`` setting on, so searches report ``numberMatched``.

``upsert`` runs in one transaction: take an advisory lock per collection id, create the
collection from the config's Collection when missing (or refresh its metadata from the config)
with its extent grown to include the item, then ``upsert_item`` (pgstac replaces an item with the
same id and collection, never duplicates it). Readers see the old or the new item, never half.

Asset hrefs under ``DATA_DIR/published`` are stored as ``<$COLLECTION_BUILDER_PUBLIC_BASE_URL>/
<path relative to DATA_DIR/published>``, the URLs API clients download from; without that
setting, as the bare relative path (with a warning): never a path of the publishing machine.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any

import psycopg
import pystac
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb
from pystac.utils import datetime_to_str, str_to_datetime
from shapely.geometry import shape

from include.catalog.base import CatalogBackend, check_item, grown_bbox
from include.catalog.hrefs import local_asset_hrefs, public_asset_hrefs, published_root
from include.catalog.registry import register
from include.common.config import public_base_url
from include.common.errors import FieldProblem, InvalidInputError, TransientError

log = logging.getLogger(__name__)

DSN_ENV = "COLLECTION_BUILDER_PGSTAC_DSN"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/collection_builder_stac"
PGSTAC_VERSION = "0.10.0"
"""The pgstac schema version ``pypgstac migrate`` installs (the pinned pypgstac's)."""
_MIGRATE_LOCK = 7_262_611_001
"""Advisory lock key held while checking and running migrations."""
_UPSERT_LOCK = 72_626
"""Advisory lock class (with the collection id's hash) held by an upsert's transaction."""
_READY: set[str] = set()
"""DSNs already migrated in this process."""


def default_dsn() -> str:
    """Return ``$COLLECTION_BUILDER_PGSTAC_DSN`` or the default local database."""
    return os.environ.get(DSN_ENV, "").strip() or DEFAULT_DSN


def _item_box(item: dict[str, Any]) -> tuple[list[float], str, str]:
    bbox = item.get("bbox")
    if bbox and len(bbox) in (4, 6):
        half = len(bbox) // 2
        box = [float(bbox[0]), float(bbox[1]), float(bbox[half]), float(bbox[half + 1])]
    else:
        box = [float(v) for v in shape(item["geometry"]).bounds]
    props = item.get("properties", {})
    start = props.get("start_datetime") or props["datetime"]
    end = props.get("end_datetime") or props["datetime"]
    return box, start, end


def _grown_extent(
    extent: dict[str, Any] | None, box: list[float], start: str, end: str, *, first: bool
) -> dict[str, Any]:
    """Return ``extent`` grown to include an item's box and interval (replaced when ``first``)."""
    start_dt, end_dt = str_to_datetime(start), str_to_datetime(end)
    old_box = ((extent or {}).get("spatial") or {}).get("bbox") or []
    old_interval = ((extent or {}).get("temporal") or {}).get("interval") or []
    if first or not old_box or not old_interval:
        return {
            "spatial": {"bbox": [box]},
            "temporal": {"interval": [[datetime_to_str(start_dt), datetime_to_str(end_dt)]]},
        }
    first_box = old_box[0]
    half = len(first_box) // 2
    old_2d = [float(first_box[i]) for i in (0, 1, half, half + 1)]
    low, high = old_interval[0]
    low_dt = str_to_datetime(low) if low else start_dt
    high_dt = str_to_datetime(high) if high else end_dt
    return {
        "spatial": {"bbox": [grown_bbox(old_2d, box)]},
        "temporal": {
            "interval": [
                [datetime_to_str(min(low_dt, start_dt)), datetime_to_str(max(high_dt, end_dt))]
            ]
        },
    }


@register("pgstac")
class PgstacBackend(CatalogBackend):
    """STAC items and collections in a pgstac database.

    Contract (``CatalogBackend``): ``upsert`` replaces an item with the same (collection, id)
    and never leaves two, in one transaction; it creates the collection from the config's
    Collection when missing, refreshes its metadata from the config, and grows its extent.
    Connection failures raise ``TransientError`` (worth a retry: the server may be restarting).
    """

    name = "pgstac"

    def __init__(
        self, dsn: str | None = None, base_url: str | None = None, published: Path | None = None
    ) -> None:
        """Use the pgstac database at ``dsn`` (default ``default_dsn()``).

        Args:
            dsn: a libpq connection string or URL of a dedicated database.
            base_url: the URL serving ``published`` (default
                ``$COLLECTION_BUILDER_PUBLIC_BASE_URL``; None: relative asset hrefs).
            published: the folder of published files (default ``DATA_DIR/published``).

        Raises:
            ConfigError: when the base URL setting is not an http(s) URL.
        """
        self.dsn = dsn or default_dsn()
        self.base_url = base_url.rstrip("/") if base_url else public_base_url()
        self.published = Path(published).resolve() if published else published_root()

    # connection and migrations -----------------------------------------------------------
    def _connect(self, dsn: str | None = None) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(dsn or self.dsn, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as err:
            raise TransientError(
                f"pgstac: cannot connect to {self._safe_dsn()}: {err}; is PostgreSQL up?"
            ) from err
        conn.execute("SET search_path TO pgstac, public")
        return conn

    def _safe_dsn(self) -> str:
        params = conninfo_to_dict(self.dsn)
        params.pop("password", None)
        return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})

    def create_database(self) -> bool:
        """Create the database named in the DSN when it does not exist.

        Returns:
            Whether it was created.

        Raises:
            TransientError: when the server cannot be reached.
        """
        params = conninfo_to_dict(self.dsn)
        dbname = str(params.get("dbname") or "")
        if not dbname:
            raise InvalidInputError(
                FieldProblem(DSN_ENV, "names no database", f"use a DSN such as {DEFAULT_DSN}")
            )
        admin = make_conninfo(**{**{k: str(v) for k, v in params.items()}, "dbname": "postgres"})
        with self._connect(admin) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if exists.fetchone() is not None:
                return False
            try:
                conn.execute(
                    psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(dbname))
                )
            except psycopg.errors.DuplicateDatabase:
                return False
        log.info("catalog.pgstac.database_created database=%s", dbname)
        return True

    def ensure_ready(self) -> str:
        """Create the database when missing and migrate it to ``PGSTAC_VERSION``, idempotently.

        Returns:
            The pgstac version of the database.

        Raises:
            TransientError: when the server cannot be reached.
        """
        if self.dsn in _READY:
            return PGSTAC_VERSION
        from pypgstac.db import PgstacDB
        from pypgstac.migrate import Migrate

        self.create_database()
        with self._connect() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATE_LOCK,))
            try:
                db = PgstacDB(connection=conn, commit_on_exit=False)
                version = str(Migrate(db).run_migration(PGSTAC_VERSION))
                conn.autocommit = True
                conn.execute(
                    "INSERT INTO pgstac.pgstac_settings (name, value) VALUES ('context', 'on') "
                    "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
                )
            finally:
                conn.autocommit = True
                conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATE_LOCK,))
        _READY.add(self.dsn)
        log.info("catalog.pgstac.ready dsn=%s version=%s", self._safe_dsn(), version)
        return version

    # reading -----------------------------------------------------------------------------
    def get(self, collection_id: str, item_id: str) -> dict[str, Any] | None:
        """Return the stored item (hydrated), or None when it is not published.

        Raises:
            TransientError: when the server cannot be reached.
        """
        self.ensure_ready()
        with self._connect() as conn:
            row = conn.execute("SELECT get_item(%s, %s)", (item_id, collection_id)).fetchone()
        return dict(row[0]) if row and row[0] is not None else None

    def search(self, collection_id: str) -> list[dict[str, Any]]:
        """Return every item of a collection, oldest first (then by id).

        Raises:
            TransientError: when the server cannot be reached.
        """
        self.ensure_ready()
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT content_hydrate(items) FROM items WHERE collection = %s "
                "ORDER BY datetime, id",
                (collection_id,),
            ).fetchall()
        return [dict(row[0]) for row in rows]

    def get_collection(self, collection_id: str) -> dict[str, Any] | None:
        """Return the stored collection, or None.

        Raises:
            TransientError: when the server cannot be reached.
        """
        self.ensure_ready()
        with self._connect() as conn:
            row = conn.execute("SELECT get_collection(%s)", (collection_id,)).fetchone()
        return dict(row[0]) if row and row[0] is not None else None

    def count(self, collection_id: str, item_id: str | None = None) -> int:
        """Return how many rows the collection (or one item id in it) has.

        Raises:
            TransientError: when the server cannot be reached.
        """
        self.ensure_ready()
        with self._connect() as conn:
            row = conn.execute(
                "SELECT count(*) FROM items "
                "WHERE collection = %s AND (%s::text IS NULL OR id = %s)",
                (collection_id, item_id, item_id),
            ).fetchone()
        return int(row[0]) if row else 0

    # writing -----------------------------------------------------------------------------
    def _public(self, item: dict[str, Any]) -> dict[str, Any]:
        """Return a copy of ``item`` with published files' hrefs as URLs (``hrefs.py``)."""
        record = public_asset_hrefs(item, self.base_url, self.published)
        if self.base_url is None and record != item:
            log.warning(
                "catalog.pgstac.relative_hrefs item=%s: asset hrefs are relative to "
                "DATA_DIR/published; set COLLECTION_BUILDER_PUBLIC_BASE_URL to the URL serving it",
                item.get("id"),
            )
        local = local_asset_hrefs(record)
        if local:
            log.warning(
                "catalog.pgstac.local_hrefs item=%s assets=%s: paths outside DATA_DIR/published "
                "are stored as given",
                item.get("id"),
                ",".join(local),
            )
        return record

    @staticmethod
    def _validated(item: dict[str, Any], collection: dict[str, Any] | None) -> str:
        collection_id = check_item(item, collection, _item_box)
        return str(collection_id)

    def upsert(self, item: dict[str, Any], collection: dict[str, Any] | None = None) -> None:
        """Insert or replace ``item``; create or refresh its collection and grow its extent.

        Asset hrefs under the published folder are stored as ``<base_url>/<relative path>``.

        Args:
            item: a STAC Item dict whose ``collection`` names its collection.
            collection: the collection's metadata from config (``collection_from_config``);
                a minimal one is made when None and the collection is missing.

        Raises:
            InvalidInputError: when the item is not a valid STAC Item or has no collection, or
                ``collection`` is for another collection.
            TransientError: when the server cannot be reached.
        """
        collection_id = self._validated(item, collection)
        box, start, end = _item_box(item)
        record = self._public(item)
        # stac-fastapi makes self/parent/collection/root links from its own URL
        record["links"] = [
            link
            for link in record.get("links", [])
            if link.get("rel") not in ("self", "root", "parent", "collection")
        ]
        self.ensure_ready()
        with self._connect() as conn, conn.transaction():
            # one writer per collection at a time: the row lock alone cannot cover creation
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_UPSERT_LOCK, collection_id)
            )
            row = conn.execute(
                "SELECT content FROM collections WHERE id = %s FOR UPDATE", (collection_id,)
            ).fetchone()
            created = row is None
            stored = dict(row[0]) if row else None
            base = copy.deepcopy(collection) if collection is not None else stored
            if base is None:
                base = {
                    "type": "Collection",
                    "stac_version": pystac.get_stac_version(),
                    "id": collection_id,
                    "description": f"Items published by collection-builder: {collection_id}",
                    "license": "other",
                    "links": [],
                    "extent": {},
                }
            base["extent"] = _grown_extent(
                stored.get("extent") if stored else None, box, start, end, first=created
            )
            if created:
                conn.execute("SELECT create_collection(%s)", (Jsonb(base),))
            elif base != stored:
                conn.execute("SELECT update_collection(%s)", (Jsonb(base),))
            conn.execute("SELECT upsert_item(%s)", (Jsonb(record),))
        log.info(
            "catalog.upsert backend=pgstac collection=%s item=%s created_collection=%s",
            collection_id,
            record.get("id"),
            created,
        )
