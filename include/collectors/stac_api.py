"""A driver for any STAC API with item search (Earth Search, Planetary Computer, stac-fastapi).

Protocol (STAC API - Item Search 1.0): ``POST {url}/search`` with ``collections``, ``bbox`` or
``intersects``, ``datetime`` (``start/end``, RFC 3339 UTC), ``limit`` and ``ids``; filters through
the Query extension (``eo:cloud_cover``, tile properties). A server answering 405 to POST is asked
with ``GET {url}/search`` instead. Pages follow the ``rel="next"`` link: a GET of its ``href``, or a
POST of its ``body`` (merged into the previous body when ``merge`` is true), with its ``headers``.
Every filter is applied again on the client (an item dated by an interval only matches a period
its interval meets), so the result is right whatever extensions the server honours.

Limits: the driver reads at most ``max_pages`` pages of one search, and a server may list no
further than ``max_items`` (it then gives no next link). A search whose first page says it matched
more (``numberMatched``, or ``context.matched``) than that, or that runs out of pages, or that
stops at ``max_items``, is split by time, then by area (``include.collectors.split``) and merged.

Scene ids: a search by ids sends them as STAC item ids; ids not found that way (ESA product names
such as ``S2A_MSIL2A_..._N0509_..._T13TDE_...`` are not Earth Search item ids) are looked up one by
one with ``query: {"s2:product_uri": {"eq": "<id>.SAFE"}}`` (legacy Landsat scene ids such as
``LC80330322023281LGN00`` with ``landsat:scene_id``). Tiles: MGRS tiles are asked with
``s2:mgrs_tile`` (Planetary Computer, stac-fastapi) and, when that finds nothing, with the
``mgrs:utm_zone``/``mgrs:latitude_band``/``mgrs:grid_square`` triple (Earth Search v1); the style
that worked is kept for the next tiles. WRS-2 path/rows are asked with ``landsat:wrs_path`` and
``landsat:wrs_row``. A catalog configured with ``mgrs_query_style: grid`` (STAC 1.1 items whose
only tile property is the Grid extension's ``grid:code``, such as CDSE's) is asked with
``{"grid:code": {"eq": "MGRS-<tile>"}}`` (``WRS2-<pathrow>``) alone. An item's tile is read from
``s2:mgrs_tile``, the ``mgrs:*`` triple, ``landsat:wrs_path``/``row``, then ``grid:code``
(``MGRS-33UUP``, ``WRS2-221069``), then the tile in its product id.

Scene ids: ``s2:product_uri`` without ``.SAFE`` for Sentinel-2; for Landsat the full product id
(``landsat:product_id``, else the id the item's file names carry, since Earth Search and Planetary
Computer item ids drop the processing date), else the item id. The item id is kept in
``properties["stac_id"]``.

Assets: only files reachable over HTTP(S) are downloadable. ``s3://`` hrefs (requester-pays
buckets: every Earth Search Landsat and Sentinel-2 L1C asset) are listed in
``properties["non_http_assets"]`` and skipped; a scene with nothing else fails its download with
an error naming the providers to use instead. Preview-only assets (``visual`` true colour,
thumbnails, tiles) are not downloaded.

Planetary Computer: its blob storage (``*.blob.core.windows.net``) needs a SAS token per
collection, from ``GET {sas_url}/token/{collection}`` (answer ``{"token", "msft:expiry"}``). With
``options.sign_assets: true`` tokens are fetched at download time, cached per collection until
shortly before they expire, and appended as the query string of blob hrefs (a 403 during a
scene's download drops the token and downloads once more with a new one); signed URLs are
never logged. ``sas_url`` defaults to the ``/api/sas/v1`` beside the catalog's ``/api/stac/v1``
(so ``catalog_args.url`` moves both), else Planetary Computer's own.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from include.collectors.base import (
    Asset,
    DownloadedFile,
    DownloadJob,
    Scene,
    SearchQuery,
    known_size,
)
from include.collectors.download import download_assets_detailed
from include.collectors.http import (
    error_for_status,
    error_for_transport,
    json_object,
    redact_url,
)
from include.collectors.scene_ids import catalog_item_id, is_mgrs_tile, parse_wrs2_pathrow
from include.collectors.settings import DriverSettings, StacApiSettings
from include.collectors.split import SplitSearchDriver, WindowTooLargeError
from include.collectors.stac_collections import CollectionDirectory
from include.collectors.timestamps import parse_utc_timestamp
from include.common.errors import (
    FieldProblem,
    InvalidInputError,
    ProviderError,
)

log = logging.getLogger(__name__)

CLOUD_COVER_PROP = "eo:cloud_cover"
S2_PRODUCT_URI_PROP = "s2:product_uri"
S2_MGRS_TILE_PROP = "s2:mgrs_tile"
MGRS_UTM_ZONE_PROP = "mgrs:utm_zone"
MGRS_LATITUDE_BAND_PROP = "mgrs:latitude_band"
MGRS_GRID_SQUARE_PROP = "mgrs:grid_square"
GRID_CODE_PROP = "grid:code"
"""The STAC Grid extension's ``<grid>-<code>``, e.g. ``MGRS-33UUP`` or ``WRS2-221069``."""
LANDSAT_WRS_PATH_PROP = "landsat:wrs_path"
LANDSAT_WRS_ROW_PROP = "landsat:wrs_row"
LANDSAT_SCENE_ID_PROP = "landsat:scene_id"
LANDSAT_PRODUCT_ID_PROP = "landsat:product_id"
FILE_SIZE_PROP = "file:size"
FILE_CHECKSUM_PROP = "file:checksum"

PLANETARY_COMPUTER_SAS_URL = "https://planetarycomputer.microsoft.com/api/sas/v1"
SAS_EXPIRY_PROP = "msft:expiry"
DATA_ROLES = frozenset({"data", "reflectance"})
NON_DATA_ROLES = frozenset({"thumbnail", "overview", "visual", "tiles"})
NON_DATA_KEYS = frozenset({"visual", "visual-jp2", "preview", "tilejson", "rendered_preview"})
"""Preview assets some catalogs give a ``data`` role (Planetary Computer's ``visual`` TCI)."""
DATA_MEDIA_TYPES = ("image/tiff", "image/jp2", "application/x-hdf", "image/vnd.stac.geotiff")
METADATA_MEDIA_TYPES = frozenset({"application/xml", "text/xml", "text/plain"})
QUICKLOOK_MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/jpg", "image/webp"})

_WRS2_PATHROW = re.compile(r"^(\d{3})(\d{3})$")
_S2_PRODUCT_TILE = re.compile(r"_T(\d{2}[C-HJ-NP-X][A-HJ-NP-Z]{2})(?:_|$)")
_LANDSAT_PRODUCT_ID = re.compile(
    r"^L[COTEM]0\d_L[0-9A-Z]{3}_(\d{6})_\d{8}(?:_\d{8})?_\d{2}_(?:T1|T2|RT)$"
)
_LANDSAT_SCENE_ID = re.compile(r"L[COTEM]\d{14}[A-Z]{3}\d{2}")  # legacy LXSPPPRRRYYYYDDDGSIVV
_LANDSAT_FULL_ID_IN_HREF = re.compile(
    r"(?<![A-Z0-9])(L[COTEM]0\d_L[0-9A-Z]{3}_\d{6}_\d{8}_\d{8}_\d{2}_(?:T1|T2|RT))(?=[_./]|$)"
)
_PROPERTY_SELECTION = {
    "s2:processing_baseline": "processing_baseline",
    "s2:product_type": "product_type",
    "s2:datatake_id": "datatake_id",
    # Earth Search v1 sentinel-2-l2a: COGs already hold DN + BOA_ADD_OFFSET (read by
    # include.processors.products.package.SceneHints; its raster:bands offset is not updated)
    "earthsearch:boa_offset_applied": "boa_offset_applied",
    "landsat:scene_id": "landsat_scene_id",
    "landsat:correction": "landsat_correction",
    "landsat:collection_category": "collection_category",
    "proj:epsg": "proj_epsg",
    "view:sun_elevation": "sun_elevation",
    "view:sun_azimuth": "sun_azimuth",
}


# --------------------------------------------------------------------------------------------
# Small pure helpers


def canonical_tile(tile: str) -> str | None:
    """Return an MGRS tile as ``NNLLL`` or a WRS-2 path/row as ``PPPRRR``; None otherwise."""
    return is_mgrs_tile(tile) or parse_wrs2_pathrow(tile)


def parse_datetime(value: str) -> datetime:
    """Parse an RFC 3339 timestamp as aware UTC (see ``timestamps.parse_utc_timestamp``).

    Raises:
        ValueError: when ``value`` is not a timestamp.
    """
    return parse_utc_timestamp(value)


def format_datetime(value: datetime) -> str:
    """Return ``value`` as RFC 3339 UTC with ``Z`` (a naive value is taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _is_http(href: object) -> bool:
    return isinstance(href, str) and href.lower().startswith(("http://", "https://"))


def _http_href(asset: Mapping[str, Any]) -> str | None:
    """Return the asset's href, or an HTTP(S) ``alternate`` href when the main one is not."""
    href = asset.get("href")
    if _is_http(href):
        return str(href)
    alternates = asset.get("alternate")
    if isinstance(alternates, Mapping):
        for alternate in alternates.values():
            if isinstance(alternate, Mapping) and _is_http(alternate.get("href")):
                return str(alternate["href"])
    return None


def _media_type(asset: Mapping[str, Any]) -> str:
    return str(asset.get("type") or "").split(";")[0].strip().lower()


def _roles(asset: Mapping[str, Any]) -> tuple[str, ...]:
    roles = asset.get("roles")
    return tuple(str(role) for role in roles) if isinstance(roles, list) else ()


def _is_wanted_asset(asset: Mapping[str, Any]) -> bool:
    roles = set(_roles(asset))
    media = _media_type(asset)
    if roles & DATA_ROLES:
        return True
    if media.startswith(DATA_MEDIA_TYPES) and not roles & NON_DATA_ROLES:
        return True
    return "metadata" in roles and media in METADATA_MEDIA_TYPES


def select_assets(assets: Mapping[str, Any]) -> tuple[tuple[Asset, ...], list[str]]:
    """Return the downloadable data and metadata assets, and the keys skipped as non-HTTP(S)."""
    selected: list[Asset] = []
    skipped: list[str] = []
    for key, raw in assets.items():
        if str(key).lower() in NON_DATA_KEYS:
            continue
        if not isinstance(raw, Mapping) or not _is_wanted_asset(raw):
            continue
        href = _http_href(raw)
        if href is None:
            skipped.append(str(key))
            continue
        checksum = raw.get(FILE_CHECKSUM_PROP)
        selected.append(
            Asset(
                key=str(key),
                href=href,
                size_bytes=known_size(raw.get(FILE_SIZE_PROP)),
                checksum=checksum if isinstance(checksum, str) and checksum else None,
                media_type=str(raw["type"]) if raw.get("type") else None,
                roles=_roles(raw),
            )
        )
    return tuple(selected), skipped


def _quicklook(item: Mapping[str, Any]) -> str | None:
    assets = item.get("assets") or {}
    for key in ("rendered_preview", "thumbnail"):
        asset = assets.get(key)
        if isinstance(asset, Mapping) and _is_http(asset.get("href")):
            return str(asset["href"])
    for asset in assets.values():
        if (
            isinstance(asset, Mapping)
            and "thumbnail" in _roles(asset)
            and _media_type(asset) in QUICKLOOK_MEDIA_TYPES
            and _is_http(asset.get("href"))
        ):
            return str(asset["href"])
    thumbnail = _link(item, "thumbnail")
    if thumbnail is not None and _is_http(thumbnail.get("href")):
        return str(thumbnail["href"])
    return None


def _link(item: Mapping[str, Any], rel: str) -> Mapping[str, Any] | None:
    for link in item.get("links") or ():
        if isinstance(link, Mapping) and link.get("rel") == rel and link.get("href"):
            return link
    return None


def _landsat_product_id(item: Mapping[str, Any]) -> str | None:
    """Return the full Landsat product id (with processing date) the item's files are named by."""
    props: Mapping[str, Any] = item.get("properties") or {}
    declared = props.get(LANDSAT_PRODUCT_ID_PROP)
    if isinstance(declared, str) and _LANDSAT_FULL_ID_IN_HREF.fullmatch(declared):
        return declared
    for raw in (item.get("assets") or {}).values():
        href = raw.get("href") if isinstance(raw, Mapping) else None
        match = _LANDSAT_FULL_ID_IN_HREF.search(str(href or "").rsplit("/", 1)[-1])
        if match:
            return match.group(1)
    return None


def _scene_id(item_id: str, props: Mapping[str, Any], landsat_product_id: str | None) -> str:
    product_uri = props.get(S2_PRODUCT_URI_PROP)
    if isinstance(product_uri, str) and product_uri:
        return product_uri.removesuffix(".SAFE")
    if landsat_product_id is not None:
        return landsat_product_id
    if _LANDSAT_PRODUCT_ID.match(item_id):
        return item_id
    stem, _, suffix = item_id.rpartition("_")
    if suffix in ("SR", "ST") and _LANDSAT_PRODUCT_ID.match(stem):
        return stem  # USGS LandsatLook items: <product id>_SR / _ST
    landsat_scene = props.get(LANDSAT_SCENE_ID_PROP)
    if isinstance(landsat_scene, str) and landsat_scene:
        return landsat_scene
    return item_id


def grid_code_tile(value: object) -> str | None:
    """Return the tile of a ``grid:code``, or None for other grids and malformed codes.

    ``MGRS-33UUP`` -> ``33UUP``; ``WRS2-221069`` -> ``221069``.
    """
    if not isinstance(value, str):
        return None
    grid, _, code = value.strip().partition("-")
    if grid.upper() == "MGRS":
        return is_mgrs_tile(code)
    if grid.upper() == "WRS2":
        return parse_wrs2_pathrow(code)
    return None


def _tile(scene_id: str, item_id: str, props: Mapping[str, Any]) -> str | None:
    mgrs = props.get(S2_MGRS_TILE_PROP)
    if isinstance(mgrs, str) and canonical_tile(mgrs):
        return canonical_tile(mgrs)
    zone = props.get(MGRS_UTM_ZONE_PROP)
    band = props.get(MGRS_LATITUDE_BAND_PROP)
    square = props.get(MGRS_GRID_SQUARE_PROP)
    if zone is not None and isinstance(band, str) and isinstance(square, str):
        tile = canonical_tile(f"{zone}{band}{square}")
        if tile:
            return tile
    path = props.get(LANDSAT_WRS_PATH_PROP)
    row = props.get(LANDSAT_WRS_ROW_PROP)
    if path is not None and row is not None:
        try:
            return f"{int(path):03d}{int(row):03d}"
        except (TypeError, ValueError):
            pass
    grid_tile = grid_code_tile(props.get(GRID_CODE_PROP))
    if grid_tile is not None:
        return grid_tile
    for candidate in (scene_id, item_id):
        match = _S2_PRODUCT_TILE.search(candidate)
        if match:
            return match.group(1)
        landsat = _LANDSAT_PRODUCT_ID.match(candidate)
        if landsat:
            return landsat.group(1)
    return None


def item_to_scene(item: Mapping[str, Any], *, catalog: str, dataset: str) -> Scene:
    """Map one STAC item (a GeoJSON Feature) to a :class:`Scene`.

    Raises:
        ValueError: when the item has no id or no parseable datetime.
    """
    item_id = str(item.get("id") or "")
    if not item_id:
        raise ValueError("item has no id")
    props: Mapping[str, Any] = item.get("properties") or {}
    when_text = props.get("datetime") or props.get("start_datetime")
    if not isinstance(when_text, str):
        raise ValueError(f"item {item_id} has no datetime")
    landsat_product_id = _landsat_product_id(item)
    scene_id = _scene_id(item_id, props, landsat_product_id)
    raw_assets = item.get("assets") or {}
    assets, skipped = select_assets(raw_assets)
    sizes = [asset.size_bytes for asset in assets]
    cloud = props.get(CLOUD_COVER_PROP)
    properties: dict[str, Any] = {
        "stac_id": item_id,
        "stac_collection": item.get("collection"),
    }
    for prop, name in _PROPERTY_SELECTION.items():
        if props.get(prop) is not None:
            properties[name] = props[prop]
    if skipped:
        properties["non_http_assets"] = sorted(skipped)
        if any(
            str((raw_assets.get(key) or {}).get("href", "")).startswith("s3://") for key in skipped
        ):
            properties["requester_pays"] = True
    self_link = _link(item, "self")
    platform = props.get("platform")
    return Scene(
        scene_id=scene_id,
        catalog=catalog,
        dataset=dataset,
        datetime=parse_datetime(when_text),
        cloud_pct=float(cloud) if isinstance(cloud, int | float) else None,
        tile=_tile(scene_id, item_id, props),
        footprint=item.get("geometry"),
        size_bytes=sum(s for s in sizes if s is not None) if sizes and None not in sizes else None,
        link=str(self_link["href"]) if self_link else None,
        quicklook=_quicklook(item),
        online=True,
        platform=str(platform).strip().lower().replace(" ", "-") if platform else None,
        assets=assets,
        properties=properties,
    )


def _ids_of(item: Mapping[str, Any], scene: Scene) -> set[str]:
    """Return every id ``item`` answers to: scene id, item id and Landsat scene id."""
    ids = {scene.scene_id, str(item.get("id"))}
    landsat_scene = (item.get("properties") or {}).get(LANDSAT_SCENE_ID_PROP)
    if isinstance(landsat_scene, str) and landsat_scene:
        ids.add(landsat_scene)
    return ids


def _end_of(item: Mapping[str, Any], scene: Scene) -> datetime:
    """Return when ``item`` ends: its ``end_datetime`` if it has no ``datetime``, else datetime.

    An item dated by an interval only matches a query period that intersects the interval
    (STAC API Item Search), so its end, not its start, is compared with the period's start.
    """
    props: Mapping[str, Any] = item.get("properties") or {}
    end_text = props.get("end_datetime")
    if props.get("datetime") is None and isinstance(end_text, str):
        try:
            return max(parse_datetime(end_text), scene.datetime)
        except ValueError:
            return scene.datetime
    return scene.datetime


def _short_landsat_id(scene_id: str) -> str | None:
    """Return Earth Search/PC's Landsat item id (no processing date) for a full product id."""
    parts = scene_id.split("_")
    if len(parts) == 7 and _LANDSAT_PRODUCT_ID.match(scene_id):
        return "_".join(parts[:4] + parts[5:])
    return None


def _tile_queries(tile: str, *, grid: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """Return ``(style, query)`` candidates that select ``tile`` (canonical) on a server.

    With ``grid`` (a catalog whose items carry only ``grid:code``), the one ``grid:code`` query.
    """
    wrs = _WRS2_PATHROW.match(tile)
    if grid:
        code = f"WRS2-{tile}" if wrs else f"MGRS-{tile}"
        return [("grid", {GRID_CODE_PROP: {"eq": code}})]
    if wrs:
        return [
            (
                "landsat",
                {
                    LANDSAT_WRS_PATH_PROP: {"eq": wrs.group(1)},
                    LANDSAT_WRS_ROW_PROP: {"eq": wrs.group(2)},
                },
            )
        ]
    return [
        ("s2", {S2_MGRS_TILE_PROP: {"eq": tile}}),
        (
            "mgrs",
            {
                MGRS_UTM_ZONE_PROP: {"eq": int(tile[:2])},
                MGRS_LATITUDE_BAND_PROP: {"eq": tile[2]},
                MGRS_GRID_SQUARE_PROP: {"eq": tile[3:]},
            },
        ),
    ]


def _matched(page: Mapping[str, Any]) -> int | None:
    """Return how many items a search page says the search matched, when it says."""
    context = page.get("context")
    for value in (
        page.get("numberMatched"),
        context.get("matched") if isinstance(context, Mapping) else None,
    ):
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def _get_params(body: Mapping[str, Any]) -> dict[str, str]:
    """Return ``body`` as GET ``/search`` query parameters (STAC API item search, GET form)."""
    params: dict[str, str] = {}
    for key, value in body.items():
        if key in ("collections", "ids", "bbox") and isinstance(value, list | tuple):
            params[key] = ",".join(str(part) for part in value)
        elif isinstance(value, dict | list):
            params[key] = json.dumps(value, separators=(",", ":"))
        else:
            params[key] = str(value)
    return params


# --------------------------------------------------------------------------------------------
# The driver


class StacApiDriver(SplitSearchDriver):
    """Search and download through a STAC API (item search, query extension, next links).

    Options (from ``config/catalogs.yaml`` through ``make_driver``): ``catalog`` (the configured
    name), ``datasets`` (conf dataset name -> STAC collection id), ``page_size``, ``timeout_s``,
    ``verify_tls`` (True, False or a CA bundle path), ``max_connections`` (parallel asset
    downloads and pooled connections), ``max_pages`` (pages read of one search, default 1000),
    ``max_items`` (the most items the server lists for one search, if it caps them),
    ``search_workers`` (windows of a split search at once, 2),
    ``mgrs_query_style`` (``s2`` for ``s2:mgrs_tile``, ``mgrs`` for Earth Search's
    ``mgrs:*`` triple; unset: try both and keep the one that works; ``grid`` for
    ``grid:code`` alone, as CDSE's STAC 1.1 items need), ``sign_assets``
    (Planetary Computer SAS signing of blob hrefs), ``sas_url`` (its token endpoint),
    ``sas_host_suffixes`` (hosts whose hrefs are signed, default Azure blob storage) and
    ``sas_refresh_margin_s`` (renew a cached token expiring this soon, default 300).

    Credentials (token as Bearer, or username/password as Basic) are only sent to the catalog's
    own host, never to asset hosts elsewhere.

    A ``dataset`` neither configured nor a collection the API serves is refused before a search
    (``check_dataset``; the API's answer: ``include.collectors.stac_collections``).
    """

    settings_model: ClassVar[type[DriverSettings] | None] = StacApiSettings
    settings: StacApiSettings
    url_kind = "STAC API URL"
    url_example = "https://earth-search.aws.element84.com/v1"

    def configure(self) -> None:
        """Read the STAC settings: datasets, platforms, tile query style, asset signing."""
        settings = self.settings
        self.max_items = settings.max_items
        self.datasets = dict(settings.datasets)
        self._datasets_lower = settings.datasets_by_lower_name()
        self._platforms_lower = {
            name.lower(): tuple(platform.lower() for platform in platforms)
            for name, platforms in settings.dataset_platforms.items()
        }
        self._use_get = False
        self._mgrs_style: str | None = settings.mgrs_query_style
        self.sign = settings.sign_assets
        self.sas_url = settings.sas_url or default_sas_url(self.base_url)
        self.sas_host_suffixes = tuple(suffix.lower() for suffix in settings.sas_host_suffixes)
        self.sas_refresh_margin_s = settings.sas_refresh_margin_s
        self._sas_tokens: dict[str, tuple[str, float | None]] = {}
        """collection -> (token, expiry as a time.time() value or None)."""
        self._sas_lock = threading.Lock()
        self.collections = CollectionDirectory(
            catalog=self.catalog,
            base_url=self.base_url,
            client=lambda: self.client,
            headers=self.auth_headers,
            timeout_s=self.timeout_s,
        )

    # -- HTTP ---------------------------------------------------------------------------------

    def auth_headers(self, url: str) -> dict[str, str]:
        """Return the Authorization header for ``url`` when it is on the catalog's host."""
        if self.credentials is None or urlsplit(url).netloc != urlsplit(self.base_url).netloc:
            return {}
        if self.credentials.token:
            return {"Authorization": f"Bearer {self.credentials.token}"}
        if self.credentials.username and self.credentials.password is not None:
            pair = f"{self.credentials.username}:{self.credentials.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        return {}

    def _request_json(
        self,
        method: str,
        url: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        action: str = "search",
        allow_405: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """Send one request and return its JSON object (None for a tolerated 405).

        ``headers`` (a next link's) are sent too; they cannot replace the Authorization header.

        Raises:
            ProviderUnavailableError, RateLimitedError, ProviderError: mapped HTTP failures.
        """
        headers = {
            "Accept": "application/geo+json, application/json",
            **{k: v for k, v in (headers or {}).items() if k.lower() != "authorization"},
            **self.auth_headers(url),
        }
        try:
            response = self.client.request(
                method,
                url,
                json=dict(body) if body is not None else None,
                params=dict(params) if params is not None else None,
                headers=headers,
            )
        except httpx.RequestError as err:
            raise error_for_transport(err, url=url, action=f"{self.catalog} {action}") from err
        if response.status_code == 405 and allow_405:
            return None
        if response.status_code >= 400:
            raise error_for_status(
                response.status_code,
                response.text,
                url=url,
                action=f"{self.catalog} {action}",
                headers=response.headers,
            )
        return json_object(
            response,
            where=f"{self.catalog} {action}",
            url=url,
            hint="check that url points to a STAC API root",
        )

    def get_collection(self, dataset: str) -> dict[str, Any]:
        """Return the STAC collection document for ``dataset`` (mapped through ``datasets``).

        Raises:
            ProviderError: 404 and other 4xx, with the server's description.
            ProviderUnavailableError, RateLimitedError: transient failures.
        """
        collection = self.collection_id(dataset)
        data = self._request_json(
            "GET", f"{self.base_url}/collections/{collection}", action="collection"
        )
        return data or {}

    # -- search -------------------------------------------------------------------------------

    def offers_dataset(self, name: str) -> bool | None:
        """Ask the STAC API whether it serves ``name``'s collection (cached; None: cannot tell)."""
        return self.collections.serves(self.collection_id(name))

    def offered_datasets(self) -> list[str]:
        """Return the collection ids the STAC API listed when it denied one."""
        return self.collections.listed

    def search(self, query: SearchQuery) -> list[Scene]:
        """Return every scene matching ``query`` (``SplitSearchDriver``), its dataset checked.

        Raises:
            InvalidInputError: a dataset neither configured nor a collection of the API.
        """
        self.check_dataset(query.dataset)
        return super().search(query)

    def iter_search(self, query: SearchQuery) -> Iterator[Scene]:
        """Yield every scene matching ``query`` (``SplitSearchDriver``), its dataset checked."""
        self.check_dataset(query.dataset)
        yield from super().iter_search(query)

    def collection_id(self, dataset: str) -> str:
        """Return the STAC collection id for a conf dataset name (mapped ignoring case, else as is).

        Raises:
            InvalidInputError: when ``dataset`` is empty.
        """
        if not dataset.strip():
            raise InvalidInputError(
                FieldProblem(
                    "dataset",
                    "is empty",
                    f"name a dataset of catalog {self.catalog!r}, e.g. "
                    f"{', '.join(sorted(self.datasets)) or 'sentinel-2-l2a'}",
                )
            )
        return self._datasets_lower.get(dataset.strip().lower(), dataset.strip())

    def _pages(self, body: dict[str, Any], *, whole: bool) -> Iterator[list[dict[str, Any]]]:
        """Yield the feature lists of every page, following ``rel="next"`` links.

        ``whole``: the search must list everything it matches, so a first page whose
        ``numberMatched`` (or ``context.matched``) passes what ``max_pages`` pages (and
        ``max_items``) hold fails at once.

        Raises:
            WindowTooLargeError: the matched count passes the limit (``whole``), ``max_pages``
                pages did not exhaust the results, or the server stopped linking at
                ``max_items`` (the rest cannot be listed); ``search`` then splits the query.
            ProviderError: when the server repeats a next link (a paging loop).
        """
        limit = self.page_size * self.max_pages
        if self.max_items is not None:
            limit = min(limit, self.max_items)
        search_url = f"{self.base_url}/search"
        data: dict[str, Any] | None = None
        if not self._use_get:
            data = self._request_json("POST", search_url, body=body, allow_405=True)
            if data is None:
                log.info("search.post_refused catalog=%s; using GET /search", self.catalog)
                self._use_get = True
        if data is None:
            data = self._request_json("GET", search_url, params=_get_params(body)) or {}
        matched = _matched(data)
        if whole and matched is not None and matched > limit:
            raise WindowTooLargeError(limit, matched)
        previous_body: dict[str, Any] = body
        seen: set[str] = set()
        pages = listed = 0
        while True:
            pages += 1
            features = [f for f in data.get("features") or () if isinstance(f, dict)]
            listed += len(features)
            yield features
            next_link = _link(data, "next")
            if not features or next_link is None:
                if self.max_items is not None and listed >= self.max_items:
                    raise WindowTooLargeError(self.max_items, matched)
                return
            if pages >= self.max_pages:
                raise WindowTooLargeError(listed, matched)
            method = str(next_link.get("method") or "GET").upper()
            href = str(next_link["href"])
            link_headers = next_link.get("headers")  # "must be included in the next request"
            extra = (
                {str(k): str(v) for k, v in link_headers.items()}
                if isinstance(link_headers, Mapping)
                else None
            )
            if method == "POST":
                link_body = next_link.get("body")
                link_body = dict(link_body) if isinstance(link_body, Mapping) else {}
                if next_link.get("merge"):
                    link_body = {**previous_body, **link_body}
                previous_body = link_body
                fingerprint = f"POST {href} {json.dumps(link_body, sort_keys=True)}"
            else:
                fingerprint = f"GET {href}"
            if fingerprint in seen:
                raise ProviderError(
                    f"{self.catalog} search {redact_url(href)}: the server repeated a next "
                    "link; its paging is broken, try again later or use another catalog"
                )
            seen.add(fingerprint)
            if method == "POST":
                page = self._request_json("POST", href, body=previous_body, headers=extra)
            else:
                page = self._request_json("GET", href, headers=extra)
            data = page or {}

    def platforms(self, dataset: str) -> tuple[str, ...]:
        """Return the platforms a dataset keeps (``landsat_tm_c2_l2``: Landsat 4 and 5), or ()."""
        return self._platforms_lower.get(dataset.strip().lower(), ())

    def _base_body(self, query: SearchQuery, collection: str) -> dict[str, Any]:
        body: dict[str, Any] = {"collections": [collection], "limit": self.page_size}
        if query.scene_ids:
            return body
        platforms = self.platforms(query.dataset)
        if platforms:
            body["query"] = {"platform": {"in": list(platforms)}}
        if query.bbox is not None:
            body["bbox"] = [float(v) for v in query.bbox]
        elif query.geometry is not None:
            body["intersects"] = query.geometry
        if query.start is not None or query.end is not None:
            start = format_datetime(query.start) if query.start is not None else ".."
            end = format_datetime(query.end) if query.end is not None else ".."
            body["datetime"] = f"{start}/{end}"
        if query.cloud_pct < 100:
            body["query"] = {**body.get("query", {}), CLOUD_COVER_PROP: {"lte": query.cloud_pct}}
        return body

    def _collect(
        self,
        body: dict[str, Any],
        query: SearchQuery,
        collection: str,
        found: dict[str, Scene],
    ) -> int:
        """Run one paged search, adding kept scenes to ``found``; return the items seen."""
        seen = 0
        platforms = self.platforms(query.dataset)
        for features in self._pages(body, whole=query.limit is None):
            for item in features:
                seen += 1
                scene = self._scene_or_none(item, query.dataset)
                if scene is None or not self._keep(item, scene, query, collection):
                    continue
                if platforms and scene.platform not in platforms:
                    continue
                found.setdefault(scene.scene_id, scene)
            if query.limit is not None and len(found) >= query.limit:
                break
        return seen

    def _scene_or_none(self, item: Mapping[str, Any], dataset: str) -> Scene | None:
        try:
            return item_to_scene(item, catalog=self.catalog, dataset=dataset)
        except (ValueError, TypeError) as err:
            log.warning("search.item_skipped catalog=%s reason=%s", self.catalog, err)
            return None

    @staticmethod
    def _keep(item: Mapping[str, Any], scene: Scene, query: SearchQuery, collection: str) -> bool:
        """Apply every filter again on the client (servers may ignore some of them)."""
        item_collection = item.get("collection")
        if item_collection is not None and item_collection != collection:
            return False
        if query.scene_ids:
            wanted = set(query.scene_ids)
            wanted |= {s for s in map(_short_landsat_id, query.scene_ids) if s}
            return bool(_ids_of(item, scene) & wanted)
        if query.start is not None and _end_of(item, scene) < _aware(query.start):
            return False
        if query.end is not None and scene.datetime > _aware(query.end):
            return False
        if query.cloud_pct < 100 and scene.cloud_pct is not None:
            if scene.cloud_pct > query.cloud_pct:
                return False
        if query.tiles:
            wanted_tiles = {canonical_tile(tile) for tile in query.tiles}
            return scene.tile in wanted_tiles
        return True

    def _tiles(self, query: SearchQuery) -> list[str]:
        tiles: list[str] = []
        problems: list[FieldProblem] = []
        for index, tile in enumerate(query.tiles):
            canonical = canonical_tile(tile)
            if canonical is None:
                problems.append(
                    FieldProblem(
                        f"tiles[{index}]",
                        f"{tile!r} is neither an MGRS tile nor a WRS-2 path/row",
                        "write MGRS like '23LLF' or WRS-2 path/row like '221069'",
                    )
                )
            else:
                tiles.append(canonical)
        if problems:
            raise InvalidInputError(problems)
        return tiles

    def search_window(self, query: SearchQuery) -> list[Scene]:
        """Return the scenes of one window (``SplitSearchDriver``).

        Raises:
            WindowTooLargeError: the window passes ``max_pages`` or ``max_items``.
            InvalidInputError: empty dataset, a malformed tile.
            ProviderUnavailableError: 5xx, timeouts, dropped connections.
            RateLimitedError: HTTP 429.
            ProviderError: other 4xx (with the server's description), broken paging.
        """
        collection = self.collection_id(query.dataset)
        tiles = self._tiles(query)
        base = self._base_body(query, collection)
        found: dict[str, Scene] = {}
        if tiles:
            for tile in tiles:
                self._search_tile(query, base, collection, tile, found)
        else:
            self._collect(base, query, collection, found)
        return list(found.values())

    def search_ids(self, query: SearchQuery) -> list[Scene]:
        """Return the scenes of a search by scene ids.

        Raises:
            WindowTooLargeError, InvalidInputError, ProviderError, TransientError: as
                ``search_window``.
        """
        collection = self.collection_id(query.dataset)
        self._tiles(query)
        found: dict[str, Scene] = {}
        self._search_ids(query, self._base_body(query, collection), collection, found)
        return list(found.values())

    def _search_ids(
        self, query: SearchQuery, base: dict[str, Any], collection: str, found: dict[str, Scene]
    ) -> None:
        ids: list[str] = []
        for scene_id in query.scene_ids:
            ids.append(scene_id)
            short = _short_landsat_id(scene_id)
            if short:
                ids.append(short)
        self._collect({**base, "ids": ids}, query, collection, found)
        matched = {scene.scene_id for scene in found.values()}
        for scene in found.values():
            matched |= {str(scene.properties.get(key)) for key in ("stac_id", "landsat_scene_id")}
        for scene_id in query.scene_ids:
            if scene_id in matched or _short_landsat_id(scene_id) in matched:
                continue
            if catalog_item_id(scene_id) is not None:  # an item id: the ids search was the one
                continue
            if _LANDSAT_SCENE_ID.fullmatch(scene_id):  # LC82210692020010LGN00
                product_query = {LANDSAT_SCENE_ID_PROP: {"eq": scene_id}}
            else:
                product_query = {S2_PRODUCT_URI_PROP: {"eq": f"{scene_id}.SAFE"}}
            self._collect({**base, "query": product_query}, query, collection, found)

    def _search_tile(
        self,
        query: SearchQuery,
        base: dict[str, Any],
        collection: str,
        tile: str,
        found: dict[str, Scene],
    ) -> None:
        candidates = _tile_queries(tile, grid=self._mgrs_style == "grid")
        if self._mgrs_style is not None:
            candidates.sort(key=lambda candidate: candidate[0] != self._mgrs_style)
        for style, tile_query in candidates:
            body = {**base, "query": {**base.get("query", {}), **tile_query}}
            if self._collect(body, query, collection, found):
                if style != "landsat":
                    self._mgrs_style = style
                return

    # -- download -----------------------------------------------------------------------------

    def sas_token(self, collection: str) -> str:
        """Return a Planetary Computer SAS token for ``collection`` (cached until near expiry).

        Raises:
            ProviderError: the SAS endpoint refused (4xx) or answered no token.
            ProviderUnavailableError, RateLimitedError: 5xx, timeouts, 429.
        """
        with self._sas_lock:
            cached = self._sas_tokens.get(collection)
            if cached is not None:
                token, expires_at = cached
                if expires_at is not None and expires_at - time.time() > self.sas_refresh_margin_s:
                    return token
            url = f"{self.sas_url.rstrip('/')}/token/{collection}"
            data = self._request_json("GET", url, action="sas token") or {}
            answered = data.get("token")
            if not isinstance(answered, str) or not answered.strip():
                raise ProviderError(
                    f"{self.catalog} sas token {redact_url(url)}: the answer holds no token; "
                    "check options.sas_url of this catalog (Planetary Computer's is "
                    f"{PLANETARY_COMPUTER_SAS_URL})"
                )
            token = answered.strip().lstrip("?")
            expires_at = _expiry(data.get(SAS_EXPIRY_PROP))
            self._sas_tokens[collection] = (token, expires_at)
            log.info(
                "sas.token catalog=%s collection=%s expires=%s",
                self.catalog,
                collection,
                data.get(SAS_EXPIRY_PROP),
            )
            return token

    def _sas_collection(self, scene: Scene) -> str:
        return str(scene.properties.get("stac_collection") or self.collection_id(scene.dataset))

    def sign_assets(self, scene: Scene) -> tuple[Asset, ...]:
        """Return ``scene``'s assets with hrefs the provider will serve.

        With ``options.sign_assets`` (Planetary Computer), hrefs on Azure blob storage get the
        collection's SAS token as their query string (hrefs already carrying a ``sig`` are kept);
        other hrefs are unchanged. The signed hrefs are secrets: never log them.

        Raises:
            ProviderError, ProviderUnavailableError, RateLimitedError: as ``sas_token``.
        """
        if not self.sign:
            return tuple(scene.assets)
        collection = self._sas_collection(scene)
        signed: list[Asset] = []
        token: str | None = None
        for asset in scene.assets:
            if _needs_sas(asset.href, self.sas_host_suffixes):
                token = token or self.sas_token(collection)
                joiner = "&" if urlsplit(asset.href).query else "?"
                asset = replace(asset, href=f"{asset.href}{joiner}{token}")
            signed.append(asset)
        return tuple(signed)

    def fetch(self, job: DownloadJob) -> DownloadedFile:
        """Download every asset of ``scene`` into the folder ``dest`` (``<key><ext>`` each).

        Valid files already in place are reused unless ``force``.

        Raises:
            ProviderError: the scene lists no HTTP(S) asset (requester-pays ``s3://`` only), the
                SAS endpoint refused, or a 4xx answer.
            ChecksumMismatchError, ProviderUnavailableError, RateLimitedError: as
                ``download_file``.
        """
        scene, dest, progress, force = job.scene, job.dest, job.progress, job.force
        if not scene.assets:
            raise _no_http_assets(scene, self.catalog)

        def fetch() -> dict[str, DownloadedFile]:
            return download_assets_detailed(
                self.client,
                self.sign_assets(scene),
                dest,
                max_workers=self.max_connections,
                progress=progress,
                headers_for=self.auth_headers,
                force=force,
            )

        try:
            results = fetch()
        except ProviderError as err:
            if not self.sign or err.status_code != 403:
                raise
            # The SAS token expired (or was revoked) mid-scene: one fresh token, files already
            # complete are reused (fetched again when forced), partial ones resume.
            collection = self._sas_collection(scene)
            log.info(
                "sas.refused catalog=%s collection=%s; signing again with a new token",
                self.catalog,
                collection,
            )
            with self._sas_lock:
                self._sas_tokens.pop(collection, None)
            results = fetch()
        files = tuple(result.path for result in results.values())
        return DownloadedFile(
            path=dest,
            size_bytes=sum(result.size_bytes for result in results.values()),
            checksum=None,
            reused=all(result.reused for result in results.values()),
            files=files,
            checksums=tuple(
                (result.path.name, result.checksum)
                for result in results.values()
                if result.checksum is not None
            ),
        )


def default_sas_url(stac_url: str) -> str:
    """Return the SAS API beside a Planetary Computer-style STAC API, else Planetary Computer's.

    ``https://host/api/stac/v1`` -> ``https://host/api/sas/v1``.
    """
    parts = urlsplit(stac_url)
    path = parts.path.rstrip("/")
    if path.endswith("/api/stac/v1"):
        sas_path = path[: -len("/api/stac/v1")] + "/api/sas/v1"
        return urlunsplit((parts.scheme, parts.netloc, sas_path, "", ""))
    return PLANETARY_COMPUTER_SAS_URL


def _needs_sas(href: str, host_suffixes: tuple[str, ...]) -> bool:
    parts = urlsplit(href)
    host = (parts.hostname or "").lower()
    return host.endswith(host_suffixes) and "sig=" not in parts.query


def _expiry(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_datetime(value).timestamp()
    except ValueError:
        return None


def _no_http_assets(scene: Scene, catalog: str) -> ProviderError:
    skipped = scene.properties.get("non_http_assets") or []
    listed = ", ".join(skipped) or "none"
    if not scene.properties.get("requester_pays"):
        return ProviderError(
            f"{scene.scene_id}: catalog {catalog!r} lists no asset downloadable over HTTP(S) "
            f"(skipped: {listed}); download this dataset from another provider"
        )
    if scene.scene_id.startswith("L"):
        instead = "download Landsat from catalog USGS or PlanetaryComputer"
    else:
        instead = "download Sentinel-2 L1C from catalog CDSE (L2A: EarthSearch sentinel-2-c1-l2a)"
    return ProviderError(
        f"{scene.scene_id}: catalog {catalog!r} keeps its files in requester-pays S3 buckets "
        f"(s3:// hrefs: {listed}), which this builder does not download; {instead} (list them "
        "as the collection's providers in config/collections.yaml)"
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# Registered last: importing the registry imports every built-in driver module, and one of them
# (cdse_stac) subclasses StacApiDriver, which must exist by then whichever module came first.
from include.collectors.registry import register  # noqa: E402

register("stac")(StacApiDriver)

__all__ = [
    "StacApiDriver",
    "canonical_tile",
    "default_sas_url",
    "format_datetime",
    "grid_code_tile",
    "item_to_scene",
    "parse_datetime",
    "select_assets",
]
