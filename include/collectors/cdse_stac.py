"""CDSE's STAC API as a second CDSE mode: STAC search, the same product zip as the OData mode.

Protocol (STAC API 1.0, STAC 1.1 items, stac-fastapi-pgstac at
``https://stac.dataspace.copernicus.eu/v1``): search, paging, the Query extension and the
GET fallback are the generic STAC driver's (``stac_api.StacApiDriver``). What differs:

- Items: one per product; the item id is the product name (``S2B_MSIL2A_..._T33UUP_...``, maybe
  with ``.SAFE``, which is dropped). Properties as the STAC 1.1 extensions define them:
  ``datetime``, ``platform``, ``eo:cloud_cover``, ``grid:code`` (``MGRS-33UUP``),
  ``product:type`` (``S2MSI1C``/``S2MSI2A``), ``processing:version`` (the baseline, ``05.10``),
  ``sat:relative_orbit``, ``sat:absolute_orbit``, ``published``/``updated``. In Sentinel-2
  collections the id must be a valid Sentinel-2 product name (``scene_ids.parse_scene_id``), as
  in the OData mode; an item whose id is not is skipped with a ``search.product_skipped``
  warning.
- Tiles are asked with ``{"grid:code": {"eq": "MGRS-<tile>"}}`` (``mgrs_query_style: grid``, set
  by default here). Scene ids are asked as item ids, each also with ``.SAFE``.
- The scene's archive is the product zip, the asset whose href (or ``alternate`` https href) is
  ``.../odata/v1/Products(<id>)/$value`` (``download.dataspace.copernicus.eu``); failing that the
  asset keyed ``Product``/``product`` with a zip media type. Its ``file:size`` and
  ``file:checksum`` (a multihash) are verified. The per-file assets (``s3://eodata/...`` hrefs,
  OData ``Nodes(...)`` alternates) are never downloaded: the zip is the SAFE the OData mode
  downloads, so every processor works unchanged. It lands in ``dest/<scene_id>.zip``.
- The download needs a CDSE bearer token, from the same identity service and Airflow Connection
  (``cdse_default``) as the OData mode (``tokens.OidcTokenSource``, one login per worker). The
  token goes only to CDSE hosts (the catalog's and the token endpoint's hosts and
  ``*.dataspace.copernicus.eu``, or ``auth_hosts``) over HTTPS, or plain HTTP on loopback, on
  every redirect hop (``tokens.may_receive_token``); a product href elsewhere is refused before
  any request. A 401 logs in again once. Search sends no credentials at all.
- CDSE's STAC catalogue lists online products only: no availability check, no orders (the
  ``cdse`` OData mode orders long-term-archive products).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from include.collectors.base import (
    Asset,
    DownloadedFile,
    DownloadJob,
    Scene,
    SearchQuery,
    known_size,
)
from include.collectors.cdse_auth import CdseAccountMixin, CdseAuth
from include.collectors.download import reuse_existing
from include.collectors.http import redact_url
from include.collectors.registry import register
from include.collectors.scene_ids import parse_scene_id
from include.collectors.settings import CdseStacSettings, DriverSettings
from include.collectors.stac_api import (
    FILE_CHECKSUM_PROP,
    FILE_SIZE_PROP,
    StacApiDriver,
    item_to_scene,
)
from include.common.errors import InvalidInputError, ProviderError
from include.common.storage import safe_component

log = logging.getLogger(__name__)

DEFAULT_URL = "https://stac.dataspace.copernicus.eu/v1"
PRODUCT_ASSET_KEYS = ("Product", "product")
"""Keys CDSE gives the whole-product asset (used when no href names ``Products(<id>)/$value``)."""
ZIP_MEDIA_TYPES = frozenset(
    {"application/zip", "application/x-zip-compressed", "application/x-zip"}
)
ARCHIVE_KEY = "archive"
"""The scene's one asset, as the OData mode names it (role ``archive`` marks it for reuse)."""

_PRODUCT_VALUE_PATH = re.compile(r"/odata/v1/Products\(([^()/]+)\)/\$value$")

_ITEM_PROPERTIES = {
    "product:type": "product_type",
    "processing:version": "processing_baseline",
    "sat:relative_orbit": "relative_orbit",
    "sat:absolute_orbit": "orbit",
    "sat:orbit_state": "orbit_direction",
    "published": "published",
    "updated": "updated",
}


# --------------------------------------------------------------------------------------------
# Items -> scenes


def _http_hrefs(asset: Mapping[str, Any]) -> list[str]:
    """Return the asset's HTTP(S) hrefs: its own, then its ``alternate`` ones."""
    hrefs = [asset.get("href")]
    alternates = asset.get("alternate")
    if isinstance(alternates, Mapping):
        hrefs += [a.get("href") for a in alternates.values() if isinstance(a, Mapping)]
    return [
        str(href)
        for href in hrefs
        if isinstance(href, str) and href.lower().startswith(("http://", "https://"))
    ]


def product_id_of(href: str) -> str | None:
    """Return ``<id>`` of an OData product href ``.../odata/v1/Products(<id>)/$value``, or None."""
    try:
        path = unquote(urlsplit(href).path)
    except ValueError:
        return None
    match = _PRODUCT_VALUE_PATH.search(path)
    return match.group(1).strip("'") if match else None


def _is_zip(asset: Mapping[str, Any]) -> bool:
    media = str(asset.get("type") or "").split(";")[0].strip().lower()
    return media in ZIP_MEDIA_TYPES


def select_product_asset(assets: Mapping[str, Any]) -> tuple[str, Asset] | None:
    """Return ``(key, asset)`` of the whole-product zip among an item's assets, or None.

    The product is the asset with an href (or ``alternate`` href) ``.../odata/v1/Products(<id>)/
    $value``, the ``Product``/``product`` key first when several have one; failing that, the
    ``Product``/``product`` asset with a zip media type and an HTTP(S) href. The returned asset
    is keyed ``archive`` with roles ``data`` and ``archive``, its href the ``$value`` one.
    """
    ordered = sorted(
        (item for item in assets.items() if isinstance(item[1], Mapping)),
        key=lambda item: str(item[0]) not in PRODUCT_ASSET_KEYS,
    )
    chosen: tuple[str, Mapping[str, Any], str] | None = None
    for key, raw in ordered:
        value_hrefs = [href for href in _http_hrefs(raw) if product_id_of(href)]
        if value_hrefs:
            chosen = (str(key), raw, value_hrefs[0])
            break
    if chosen is None:
        for key in PRODUCT_ASSET_KEYS:
            raw = assets.get(key)
            if isinstance(raw, Mapping) and _is_zip(raw) and _http_hrefs(raw):
                chosen = (key, raw, _http_hrefs(raw)[0])
                break
    if chosen is None:
        return None
    key, raw, href = chosen
    size = raw.get(FILE_SIZE_PROP)
    checksum = raw.get(FILE_CHECKSUM_PROP)
    return key, Asset(
        key=ARCHIVE_KEY,
        href=href,
        size_bytes=known_size(size),
        checksum=checksum.strip() if isinstance(checksum, str) and checksum.strip() else None,
        media_type=str(raw.get("type") or "application/zip"),
        roles=("data", "archive"),
    )


def item_to_cdse_scene(
    item: Mapping[str, Any], *, catalog: str, dataset: str, strict_ids: bool
) -> Scene:
    """Map one CDSE STAC item to a :class:`Scene` whose one asset is the product zip.

    Args:
        item: the STAC item (GeoJSON Feature).
        catalog: the configured catalog name (``cdse-stac``).
        dataset: the conf's dataset, kept on the scene.
        strict_ids: the id must be a Sentinel-2 or Landsat product name (Sentinel-2 collections).

    Raises:
        InvalidInputError: the id is not a valid (strict) product name or safe (relaxed) name.
        ValueError: the item has no id or no parseable datetime.
    """
    base = item_to_scene(item, catalog=catalog, dataset=dataset)
    item_id = str(item.get("id") or "")
    name = item_id.removesuffix(".SAFE")
    props: Mapping[str, Any] = item.get("properties") or {}
    platform = base.platform
    tile = base.tile
    if strict_ids:
        identity = parse_scene_id(name, field="id")
        scene_id = identity.scene_id
        tile = tile or identity.tile
        platform = platform or identity.platform
    else:
        scene_id = safe_component(name, "id")
    properties: dict[str, Any] = {
        key: value
        for key, value in base.properties.items()
        if key not in ("non_http_assets", "requester_pays")
    }
    properties["product_name"] = item_id
    for prop, key in _ITEM_PROPERTIES.items():
        if props.get(prop) is not None:
            properties[key] = props[prop]
    assets: tuple[Asset, ...] = ()
    size_bytes: int | None = None
    selected = select_product_asset(item.get("assets") or {})
    if selected is not None:
        key, product = selected
        assets = (product,)
        size_bytes = product.size_bytes
        properties["product_asset"] = key
        product_id = product_id_of(product.href)
        if product_id:
            properties["product_id"] = product_id
    return replace(
        base,
        scene_id=scene_id,
        tile=tile,
        platform=platform,
        size_bytes=size_bytes,
        assets=assets,
        properties=properties,
    )


def _no_product_asset(scene: Scene, catalog: str) -> ProviderError:
    return ProviderError(
        f"{scene.scene_id}: catalog {catalog!r} lists no product zip for this item (an asset "
        "whose href is .../odata/v1/Products(<id>)/$value, or a 'Product' asset of type "
        "application/zip); download it from catalog CDSE (OData) instead, e.g. list cdse among "
        "the collection's providers in config/collections.yaml"
    )


# --------------------------------------------------------------------------------------------
# The driver


@register("cdse_stac")
class CdseStacDriver(CdseAccountMixin, StacApiDriver):
    """Search CDSE's STAC API; download the product zip from OData ``$value`` with a CDSE token.

    Options: those of ``StacApiDriver`` (``mgrs_query_style`` defaults to ``grid``), plus, as
    the OData mode: ``conn_id`` (named in messages; default ``cdse_default``), ``token_url``,
    ``client_id`` (default ``cdse-public``), ``auth_hosts`` (host suffixes that may receive the
    token; default ``dataspace.copernicus.eu``), ``max_attempts`` and ``retry_base_delay_s``
    (in-task download retries).
    """

    settings_model: ClassVar[type[DriverSettings] | None] = CdseStacSettings
    settings: CdseStacSettings

    def configure(self) -> None:
        """Read the STAC settings, then the account's (``auth`` signs downloads only)."""
        super().configure()
        self.options.setdefault("mgrs_query_style", self.settings.mgrs_query_style)
        self.auth = CdseAuth(self.settings, self.credentials, base_url=self.base_url)
        """The CDSE account: its token and the client that sends it (downloads only)."""
        self.retry_sleep: Callable[[float], None] = time.sleep
        """The wait between in-task download retries (tests record instead of sleeping)."""

    # -- HTTP clients and the token ------------------------------------------------------------

    def auth_headers(self, url: str) -> dict[str, str]:
        """Return no header: searches are public.

        The Connection's password only ever goes to the identity service; downloads carry a
        bearer token through ``auth_client``.
        """
        return {}

    def close(self) -> None:
        """Close the HTTP clients (idempotent)."""
        super().close()
        self.auth.close()

    # -- search -------------------------------------------------------------------------------

    def _strict_ids(self, dataset: str) -> bool:
        collection = self.collection_id(dataset).lower()
        return collection.startswith(("sentinel-2", "landsat"))

    def _scene_or_none(self, item: Mapping[str, Any], dataset: str) -> Scene | None:
        try:
            return item_to_cdse_scene(
                item, catalog=self.catalog, dataset=dataset, strict_ids=self._strict_ids(dataset)
            )
        except (InvalidInputError, ValueError, TypeError) as err:
            log.warning(
                "search.product_skipped catalog=%s item=%s reason=%s",
                self.catalog,
                item.get("id"),
                str(err).replace("\n", "; "),
            )
            return None

    def _search_ids(
        self, query: SearchQuery, base: dict[str, Any], collection: str, found: dict[str, Scene]
    ) -> None:
        """Ask the product names as item ids, each also with ``.SAFE`` (no other lookup)."""
        ids: list[str] = []
        for scene_id in query.scene_ids:
            stem = scene_id.removesuffix(".SAFE")
            ids += [stem, f"{stem}.SAFE"]
        self._collect({**base, "ids": ids}, query, collection, found)

    # -- download -----------------------------------------------------------------------------

    def fetch(self, job: DownloadJob) -> DownloadedFile:
        """Download the product zip of ``scene`` to ``dest/<scene_id>.zip``, verified.

        A verified copy already in place (the asset's size and checksum) is reused without any
        request unless ``force``. The per-file assets of the item are never downloaded.

        Raises:
            ProviderError: the item had no product asset, its href is not on a CDSE host, no
                credentials, 401/403 (check Connection ``cdse_default``), 404.
            ChecksumMismatchError, ProviderUnavailableError, RateLimitedError, DiskFullError:
                as ``download_file``.
        """
        scene, dest, progress, force = job.scene, job.dest, job.progress, job.force
        product = next((a for a in scene.assets if "archive" in a.roles), None)
        if product is None:
            raise _no_product_asset(scene, self.catalog)
        target = dest / f"{safe_component(scene.scene_id, 'scene_id')}.zip"
        if not force:  # force: fetch again, the old file is replaced only once verified
            kept = reuse_existing(
                target,
                expected_size=product.size_bytes,
                checksum=product.checksum,
                progress=progress,
            )
            if kept is not None:  # a rerun: no request at all
                return kept
        if not self.may_receive_token(product.href):
            raise ProviderError(
                f"{scene.scene_id}: the product href {redact_url(product.href)} of catalog "
                f"{self.catalog!r} is not on a CDSE host (the catalog's, the token endpoint's or "
                f"*.{', *.'.join(self.auth_hosts)} over https), so it may not receive the "
                "account's token; check the catalog's url, or add the host to options.auth_hosts "
                "in config/catalogs.yaml if CDSE moved its downloads there"
            )
        return self.auth.download(
            product.href,
            target,
            expected_size=product.size_bytes,
            checksum=product.checksum,
            progress=progress,
            force=force,
            sleep=self.retry_sleep,
        )


__all__ = [
    "DEFAULT_URL",
    "CdseStacDriver",
    "item_to_cdse_scene",
    "product_id_of",
    "select_product_asset",
]
