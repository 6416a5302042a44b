"""The Copernicus Data Space Ecosystem (CDSE) driver: OData search, orders, ``$value`` downloads.

Protocol (CDSE OData v1, ``https://catalogue.dataspace.copernicus.eu/odata/v1``):

- Search: ``GET {url}/Products`` with ``$filter`` (``Collection/Name eq 'SENTINEL-2'``, the
  ``productType`` string attribute, ``OData.CSC.Intersects(area=geography'SRID=4326;POLYGON(..)')``,
  ``ContentDate/Start ge/le``, the ``cloudCover`` double attribute, the ``tileId`` string attribute,
  ``Name eq '<id>.SAFE'`` for scene ids), ``$expand=Attributes``, ``$top`` (page size, at most
  1000), ``$orderby=ContentDate/Start asc``. Pages follow ``@odata.nextLink`` verbatim, up to
  ``max_pages``. Search needs no token, so ``preview`` works without a Connection.
- One product: ``GET {url}/Products(<Id>)`` (``Online`` tells whether it is in the long-term
  archive); order an offline one with ``POST {url}/Products(<Id>)/OData.CSC.Order``.
- Download: ``GET {url}/Products(<Id>)/$value`` with a bearer token; it redirects to
  ``zipper.dataspace.copernicus.eu``. The Authorization header is sent only to CDSE hosts (the
  catalog's and token endpoint's hosts and ``*.dataspace.copernicus.eu``, or ``auth_hosts``) and
  only over HTTPS (plain HTTP to loopback is allowed, for tests), also across redirects.
- Token: Keycloak password grant at ``token_url`` (client ``cdse-public``) with the login and
  password of the catalog's Airflow Connection (``cdse_default``), refreshed before expiry,
  shared by the task processes of a worker (``include.collectors.tokens``).

Datasets: ``S2MSI1C`` and ``S2MSI2A`` (collection SENTINEL-2 with that product type),
``<COLLECTION>/<productType>`` such as ``SENTINEL-1/IW_GRDH_1S``, or a bare collection name such as
``SENTINEL-1``. Scene ids: the product ``Name`` without ``.SAFE``. For SENTINEL-2 and LANDSAT-*
collections the id must parse as a Sentinel-2 or Landsat product id (``scene_ids.parse_scene_id``);
a product whose name does not is skipped with a ``search.product_skipped`` warning, since our
collections, file layout and processors are built on those ids. Products of any other collection
(Sentinel-1, Sentinel-3, ...) keep their name as a relaxed id: it only has to be a safe file name;
they can be previewed and downloaded, not processed.

A scene's archive is the product zip, one ``Asset`` (``archive``) whose checksum comes from the
product's ``Checksum`` list (BLAKE3 when the ``blake3`` package is installed, else MD5); the
download lands in ``dest/<scene_id>.zip``, verified, through the engine in ``download.py``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import httpx

from include.collectors.base import (
    Asset,
    Availability,
    DownloadedFile,
    DownloadJob,
    Scene,
    SearchQuery,
    known_size,
)
from include.collectors.cdse_auth import CdseAccountMixin, CdseAuth
from include.collectors.checksums import is_available
from include.collectors.download import reuse_existing
from include.collectors.http import (
    error_for_transport,
    json_object,
    redact_url,
)
from include.collectors.registry import register
from include.collectors.scene_ids import is_mgrs_tile, parse_scene_id
from include.collectors.settings import CdseODataSettings, DriverSettings
from include.collectors.split import SplitSearchDriver, WindowTooLargeError
from include.collectors.timestamps import parse_utc_timestamp
from include.common.errors import (
    FieldProblem,
    InvalidInputError,
    ProviderError,
    SceneOfflineError,
)
from include.common.storage import safe_component

log = logging.getLogger(__name__)

SCENE_IDS_PER_REQUEST = 20
MAX_QUERY_VERTICES = 200
"""A query geometry with more vertices is sent as its bounding box and filtered here."""

S2_PRODUCT_TYPES = ("S2MSI1C", "S2MSI2A")
_COLLECTION_RE = re.compile(r"^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*$")  # SENTINEL-2, SMOS, ENVISAT
_LITERAL_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")
_FOOTPRINT_RE = re.compile(r"^geography'(?:SRID=(\d+);)?(.*)'$", re.DOTALL | re.IGNORECASE)
_WKT_TYPE_SPACE = re.compile(r"^([A-Z]+) \(")

_ATTRIBUTE_PROPERTIES = {
    "productType": "product_type",
    "processingBaseline": "processing_baseline",
    "processingLevel": "processing_level",
    "relativeOrbitNumber": "relative_orbit",
    "orbitNumber": "orbit",
    "orbitDirection": "orbit_direction",
    "platformShortName": "platform_short_name",
    "platformSerialIdentifier": "platform_serial",
    "instrumentShortName": "instrument",
    "tileId": "tile_id",
}


# --------------------------------------------------------------------------------------------
# Datasets, literals and filters


CDSE_COLLECTIONS = frozenset(
    {
        "SENTINEL-1",
        "SENTINEL-2",
        "SENTINEL-3",
        "SENTINEL-5P",
        "SENTINEL-6",
        "SENTINEL-1-RTC",
        "SMOS",
        "ENVISAT",
        "COP-DEM",
        "TERRAAQUA",
        "S2GLC",
        "CCM",
    }
)
"""Collections CDSE's OData lists (``GET .../odata/v1/Collections``); a bare collection or
``<COLLECTION>/<productType>`` must name one of them or ``LANDSAT-*``."""


@dataclass(frozen=True, slots=True)
class CdseDataset:
    """A CDSE collection and, optionally, one product type in it."""

    collection: str
    product_type: str | None = None

    @property
    def strict_ids(self) -> bool:
        """Whether product names must be Sentinel-2 or Landsat product ids."""
        return self.collection == "SENTINEL-2" or self.collection.startswith("LANDSAT")


def parse_dataset(dataset: str) -> CdseDataset:
    """Return the CDSE collection and product type a conf's ``dataset`` names.

    Accepts ``S2MSI1C``/``S2MSI2A`` (any case), ``<COLLECTION>/<productType>`` and a bare
    collection name such as ``SENTINEL-1`` (collections in uppercase, as CDSE names them, so a
    STAC id such as ``sentinel-2-l1c`` is refused rather than sent).

    Raises:
        InvalidInputError: naming ``dataset`` and the accepted forms.
    """
    text = dataset.strip()
    fix = (
        "use S2MSI1C or S2MSI2A, a CDSE collection such as 'SENTINEL-1', or "
        "'<COLLECTION>/<productType>' such as 'SENTINEL-1/IW_GRDH_1S'"
    )
    if text.upper() in S2_PRODUCT_TYPES:
        return CdseDataset("SENTINEL-2", text.upper())
    collection, slash, product_type = text.partition("/")
    collection = collection.strip()  # CDSE collection names are uppercase
    product_type = product_type.strip()
    if _COLLECTION_RE.match(collection) and (
        not slash or (product_type and _LITERAL_RE.match(product_type))
    ):
        return CdseDataset(collection, product_type or None)
    raise InvalidInputError(FieldProblem("dataset", f"{dataset!r} is not a CDSE dataset", fix))


def odata_string(value: str) -> str:
    """Return ``value`` as an OData string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def format_odata_datetime(value: datetime) -> str:
    """Return ``value`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC (a naive value is UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_odata_datetime(value: str) -> datetime:
    """Parse an OData ``DateTimeOffset`` as aware UTC (see ``timestamps.parse_utc_timestamp``).

    Raises:
        ValueError: when ``value`` is not a timestamp.
    """
    return parse_utc_timestamp(value)


def _attribute_clause(kind: str, name: str, operator: str, literal: str) -> str:
    return (
        f"Attributes/OData.CSC.{kind}/any(att:att/Name eq {odata_string(name)} and "
        f"att/OData.CSC.{kind}/Value {operator} {literal})"
    )


def _checked_literal(value: str, field: str, fix: str) -> str:
    if not _LITERAL_RE.match(value):
        raise InvalidInputError(FieldProblem(field, f"{value!r} cannot be sent to CDSE", fix))
    return value


@dataclass(frozen=True, slots=True)
class ODataQuery:
    """A ``$filter`` and the geometry to check again on this side (None when exact)."""

    filter: str
    area: Any = None
    """A shapely geometry when the query sent its bounding box instead of it."""


def query_area_wkt(query: SearchQuery) -> tuple[str | None, Any]:
    """Return the WKT to send for the query's area and the shapely geometry to re-check, if any.

    Raises:
        InvalidInputError: when ``geometry`` is not a valid GeoJSON geometry.
    """
    import shapely
    from shapely.geometry import box, shape

    if query.bbox is not None:
        geometry = box(*query.bbox)
    elif query.geometry is not None:
        try:
            geometry = shape(query.geometry)
        except (ValueError, TypeError, AttributeError, KeyError) as err:
            raise InvalidInputError(
                FieldProblem(
                    "geom",
                    f"is not a valid GeoJSON geometry ({err})",
                    "give a GeoJSON Polygon, MultiPolygon or Point in WGS84",
                )
            ) from err
    else:
        return None, None
    recheck = None
    if shapely.get_num_coordinates(geometry) > MAX_QUERY_VERTICES:
        recheck = geometry
        geometry = box(*geometry.bounds)
    text = shapely.to_wkt(geometry, rounding_precision=7, trim=True)
    return _WKT_TYPE_SPACE.sub(r"\1(", text), recheck


def build_filter(
    query: SearchQuery, dataset: CdseDataset, *, scene_ids: Sequence[str] = ()
) -> ODataQuery:
    """Return the OData ``$filter`` for ``query`` (or for ``scene_ids`` only, when given).

    Raises:
        InvalidInputError: a tile that is not MGRS, a product id CDSE cannot be asked for.
    """
    clauses = [f"Collection/Name eq {odata_string(dataset.collection)}"]
    if dataset.product_type:
        clauses.append(
            _attribute_clause(
                "StringAttribute", "productType", "eq", odata_string(dataset.product_type)
            )
        )
    if scene_ids:
        names = []
        for index, scene_id in enumerate(scene_ids):
            checked = _checked_literal(
                scene_id, f"scenes[{index}]", "give a product name without path or quotes"
            )
            if dataset.collection == "SENTINEL-2":
                names.append(f"Name eq {odata_string(checked + '.SAFE')}")
            else:
                names.append(f"startswith(Name,{odata_string(checked)})")
        clauses.append("(" + " or ".join(names) + ")")
        return ODataQuery(" and ".join(clauses))
    wkt, recheck = query_area_wkt(query)
    if wkt is not None:
        clauses.append(f"OData.CSC.Intersects(area=geography'SRID=4326;{wkt}')")
    if query.start is not None:
        clauses.append(f"ContentDate/Start ge {format_odata_datetime(query.start)}")
    if query.end is not None:
        clauses.append(f"ContentDate/Start le {format_odata_datetime(query.end)}")
    if query.cloud_pct < 100:
        clauses.append(
            _attribute_clause("DoubleAttribute", "cloudCover", "le", f"{query.cloud_pct:.2f}")
        )
    if query.tiles:
        tiles = []
        problems = []
        for index, tile in enumerate(query.tiles):
            canonical = is_mgrs_tile(tile)
            if canonical is None:
                problems.append(
                    FieldProblem(
                        f"tiles[{index}]",
                        f"{tile!r} is not an MGRS tile; CDSE selects tiles by tileId",
                        "give MGRS tiles such as '23LLF' (WRS-2 path/rows need a Landsat catalog)",
                    )
                )
            else:
                tiles.append(
                    _attribute_clause("StringAttribute", "tileId", "eq", odata_string(canonical))
                )
        if problems:
            raise InvalidInputError(problems)
        clauses.append("(" + " or ".join(tiles) + ")")
    return ODataQuery(" and ".join(clauses), recheck)


# --------------------------------------------------------------------------------------------
# Products -> scenes


def attributes(product: Mapping[str, Any]) -> dict[str, Any]:
    """Return a product's expanded ``Attributes`` as name -> value."""
    found: dict[str, Any] = {}
    for entry in product.get("Attributes") or ():
        if isinstance(entry, Mapping) and isinstance(entry.get("Name"), str):
            found[entry["Name"]] = entry.get("Value")
    return found


def parse_footprint(product: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the product's footprint as GeoJSON: ``GeoFootprint``, else the ``Footprint`` WKT.

    ``Footprint`` reads ``geography'SRID=4326;POLYGON ((lon lat, ...))'``; None when absent or
    unreadable.
    """
    geo = product.get("GeoFootprint")
    if isinstance(geo, Mapping) and isinstance(geo.get("type"), str):
        return dict(geo)
    text = product.get("Footprint")
    if not isinstance(text, str) or not text.strip():
        return None
    match = _FOOTPRINT_RE.match(text.strip())
    if match is None or match.group(1) not in (None, "4326"):
        return None
    import shapely.wkt
    from shapely.errors import ShapelyError
    from shapely.geometry import mapping

    try:
        geometry = shapely.wkt.loads(match.group(2))
    except (ShapelyError, ValueError):
        return None
    result: dict[str, Any] = json.loads(json.dumps(mapping(geometry)))
    return result


def select_checksum(entries: object) -> str | None:
    """Return ``<algo>:<hex>`` of a product's ``Checksum`` list: BLAKE3 if computable, else MD5."""
    by_algorithm: dict[str, str] = {}
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, Mapping):
            continue
        algorithm, value = entry.get("Algorithm"), entry.get("Value")
        if isinstance(algorithm, str) and isinstance(value, str) and value:
            by_algorithm[algorithm.strip().lower()] = value.strip().lower()
    if "blake3" in by_algorithm and is_available("blake3"):
        return f"blake3:{by_algorithm['blake3']}"
    if "md5" in by_algorithm:
        return f"md5:{by_algorithm['md5']}"
    if "blake3" in by_algorithm:
        return f"blake3:{by_algorithm['blake3']}"
    return None


def _quicklook(product: Mapping[str, Any]) -> str | None:
    for entry in product.get("Assets") or ():
        if not isinstance(entry, Mapping) or str(entry.get("Type", "")).upper() != "QUICKLOOK":
            continue
        link = entry.get("DownloadLink")
        if isinstance(link, str) and link.lower().startswith(("http://", "https://")):
            return link
    return None


def _float_or_none(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def product_to_scene(
    product: Mapping[str, Any],
    *,
    catalog: str,
    dataset: str,
    base_url: str,
    strict_ids: bool,
) -> Scene:
    """Map one OData product entity to a :class:`Scene`.

    Raises:
        InvalidInputError: the name is not a valid (strict) product id or safe (relaxed) name.
        ValueError: the entity lacks ``Id``, ``Name`` or a parseable ``ContentDate/Start``.
    """
    product_id = product.get("Id")
    name = product.get("Name")
    if not isinstance(product_id, str) or not product_id or not isinstance(name, str) or not name:
        raise ValueError("product has no Id or Name")
    content_date = product.get("ContentDate")
    start = content_date.get("Start") if isinstance(content_date, Mapping) else None
    if not isinstance(start, str):
        raise ValueError(f"product {name} has no ContentDate/Start")
    when = parse_odata_datetime(start)
    attrs = attributes(product)
    scene_id = name.removesuffix(".SAFE")
    tile: str | None = None
    platform: str | None = None
    if strict_ids:
        identity = parse_scene_id(scene_id, field="Name")
        scene_id, tile, platform = identity.scene_id, identity.tile, identity.platform
    else:
        safe_component(scene_id, "Name")
        short, serial = attrs.get("platformShortName"), attrs.get("platformSerialIdentifier")
        if isinstance(short, str) and short:
            platform = (short + (serial if isinstance(serial, str) else "")).lower()
    tile_id = attrs.get("tileId")
    if isinstance(tile_id, str) and is_mgrs_tile(tile_id):
        tile = is_mgrs_tile(tile_id)
    size_bytes = known_size(product.get("ContentLength"))  # 0: not sized yet
    base = base_url.rstrip("/")
    checksums = {
        str(e.get("Algorithm", "")).lower(): e.get("Value")
        for e in product.get("Checksum") or ()
        if isinstance(e, Mapping) and e.get("Algorithm") and e.get("Value")
    }
    properties: dict[str, Any] = {"product_id": product_id, "product_name": name}
    for attribute, prop in _ATTRIBUTE_PROPERTIES.items():
        if attrs.get(attribute) is not None:
            properties[prop] = attrs[attribute]
    if checksums:
        properties["checksums"] = checksums
    if isinstance(product.get("S3Path"), str):
        properties["s3_path"] = product["S3Path"]
    online = product.get("Online")
    return Scene(
        scene_id=scene_id,
        catalog=catalog,
        dataset=dataset,
        datetime=when,
        cloud_pct=_float_or_none(attrs.get("cloudCover")),
        tile=tile,
        footprint=parse_footprint(product),
        size_bytes=size_bytes,
        link=f"{base}/Products({product_id})",
        quicklook=_quicklook(product),
        online=online if isinstance(online, bool) else True,
        platform=platform,
        assets=(
            Asset(
                key="archive",
                href=f"{base}/Products({product_id})/$value",
                size_bytes=size_bytes,
                checksum=select_checksum(product.get("Checksum")),
                media_type="application/zip",
                roles=("data", "archive"),
            ),
        ),
        properties=properties,
    )


# --------------------------------------------------------------------------------------------
# The driver


@register("cdse", aliases=("scihub",))
class CdseODataDriver(CdseAccountMixin, SplitSearchDriver):
    """Search, order and download through the CDSE OData API.

    Options (``config/catalogs.yaml`` through ``make_driver``): ``catalog``, ``page_size``
    (``$top``, at most 1000), ``max_pages`` (default 100), ``max_skip`` (CDSE's ``$skip``
    limit, 10000), ``timeout_s``, ``verify_tls``,
    ``max_connections``, ``conn_id`` (named in messages; default ``cdse_default``), ``datasets``,
    ``token_url``, ``client_id`` (default ``cdse-public``), ``auth_hosts`` (host suffixes that
    may receive the token; default ``dataspace.copernicus.eu``), ``expand_assets`` (also
    ``$expand`` Assets, for quicklooks; default true), ``max_attempts`` and
    ``retry_base_delay_s`` (in-task download retries).
    """

    settings_model: ClassVar[type[DriverSettings] | None] = CdseODataSettings
    settings: CdseODataSettings
    url_kind = "OData URL"
    url_example = "https://catalogue.dataspace.copernicus.eu/odata/v1"

    def configure(self) -> None:
        """Read the OData settings; the account (``auth``) signs downloads and orders only."""
        settings = self.settings
        self.max_skip = settings.max_skip
        self._datasets_lower = settings.datasets_by_lower_name()
        self.expand_assets = settings.expand_assets
        self.auth = CdseAuth(settings, self.credentials, base_url=self.base_url)
        """The CDSE account: its token and the client that sends it (downloads, orders)."""
        self.retry_sleep: Callable[[float], None] = time.sleep
        """The wait between in-task download retries (tests record instead of sleeping)."""

    # -- HTTP clients and the token ------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP clients, the catalog's and the account's (idempotent)."""
        super().close()
        self.auth.close()

    def _get_json(
        self, url: str, *, params: Mapping[str, str] | None = None, action: str
    ) -> dict[str, Any]:
        """GET a JSON object without credentials.

        Raises:
            ProviderUnavailableError, RateLimitedError, ProviderError: mapped HTTP failures.
        """
        where = f"{self.catalog} {action}"
        try:
            response = self.client.get(
                url,
                params=dict(params) if params is not None else None,
                headers={"Accept": "application/json"},
            )
        except httpx.RequestError as err:
            raise error_for_transport(err, url=url, action=where) from err
        self.auth.raise_for_status(response, url=url, action=action)
        return json_object(
            response,
            where=where,
            url=url,
            hint="check that url points to the CDSE OData root (.../odata/v1)",
        )

    # -- search -------------------------------------------------------------------------------

    def dataset_of(self, dataset: str) -> CdseDataset:
        """Return the CDSE collection/product type for a conf dataset (``datasets`` mapped).

        Raises:
            InvalidInputError: naming ``dataset`` when it is not a CDSE dataset.
        """
        return parse_dataset(self._datasets_lower.get(dataset.strip().lower(), dataset))

    def known_datasets(self) -> list[str]:
        """Return the configured datasets and the Sentinel-2 product types, sorted."""
        return sorted({*super().known_datasets(), "S2MSI1C", "S2MSI2A"})

    def accepts_dataset(self, name: str) -> bool:
        """Return whether ``name`` is a CDSE collection or ``<COLLECTION>/<productType>``."""
        try:
            dataset = self.dataset_of(name)
        except InvalidInputError:
            return False
        return dataset.collection in CDSE_COLLECTIONS or dataset.collection.startswith("LANDSAT-")

    def _pages(self, odata_filter: str, *, whole: bool) -> Iterator[list[dict[str, Any]]]:
        """Yield the products of every page, following ``@odata.nextLink``.

        The first page asks ``$count=true``; CDSE repeats it in its next links, which are
        followed verbatim but for it (counting again on every page would slow each one).
        ``whole``: the search must list everything it matches, so a count past what can be
        listed (``$skip`` ``max_skip`` plus a page, or ``max_pages`` pages) fails at once.

        Raises:
            WindowTooLargeError: the count passes that, or the listing stops short of it
                (``whole``), ``max_pages`` pages did not exhaust the results, or the results go
                on past CDSE's ``$skip`` limit (a full
                page at the limit comes without a next link: the rest cannot be listed, so
                nothing is returned as if it were all); ``search`` then splits the query
                (``include.collectors.split``).
            ProviderError: when the server repeats a next link (a paging loop).
        """
        url = f"{self.base_url}/Products"
        params = {
            "$filter": odata_filter,
            "$orderby": "ContentDate/Start asc",
            "$top": str(self.page_size),
            "$count": "true",
            "$expand": "Attributes,Assets" if self.expand_assets else "Attributes",
        }
        data = self._get_json(url, params=params, action="search")
        count = data.get("@odata.count")
        limit = min(self.max_skip + self.page_size, self.max_pages * self.page_size)
        if whole and isinstance(count, int) and not isinstance(count, bool) and count > limit:
            raise WindowTooLargeError(limit, count)
        pages, listed = 1, 0
        seen: set[str] = set()
        while True:
            products = [p for p in data.get("value") or () if isinstance(p, dict)]
            listed += len(products)
            next_link = data.get("@odata.nextLink")
            has_next = isinstance(next_link, str) and bool(next_link)
            if products and not has_next and len(products) >= self.page_size:
                if listed > self.max_skip:
                    raise WindowTooLargeError(self.max_skip, listed)
            if whole and not has_next and isinstance(count, int) and listed < count:
                raise WindowTooLargeError(listed, count)  # the server stopped short of its count
            yield products
            if not products or not has_next:
                return
            if pages >= self.max_pages:
                raise WindowTooLargeError(self.max_pages * self.page_size, listed)
            next_url = without_count(urljoin(url, str(next_link)))
            if next_url in seen:
                raise ProviderError(
                    f"{self.catalog} search {redact_url(next_url)}: the server repeated a next "
                    "link; its paging is broken, try again later"
                )
            seen.add(next_url)
            pages += 1
            data = self._get_json(next_url, action="search")

    def _scene_or_none(
        self, product: Mapping[str, Any], query: SearchQuery, dataset: CdseDataset
    ) -> Scene | None:
        try:
            return product_to_scene(
                product,
                catalog=self.catalog,
                dataset=query.dataset,
                base_url=self.base_url,
                strict_ids=dataset.strict_ids,
            )
        except (InvalidInputError, ValueError) as err:
            log.warning(
                "search.product_skipped catalog=%s product=%s reason=%s",
                self.catalog,
                product.get("Name"),
                str(err).replace("\n", "; "),
            )
            return None

    @staticmethod
    def _keep(scene: Scene, query: SearchQuery, area: Any) -> bool:
        """Check again on this side what the server was asked (and the exact area)."""
        if query.scene_ids:
            return scene.scene_id in {s.upper() for s in query.scene_ids} or any(
                scene.scene_id.startswith(s) for s in query.scene_ids
            )
        if query.start is not None and scene.datetime < _aware(query.start):
            return False
        if query.end is not None and scene.datetime > _aware(query.end):
            return False
        if query.cloud_pct < 100 and scene.cloud_pct is not None:
            if scene.cloud_pct > query.cloud_pct:
                return False
        if query.tiles and scene.tile is not None:
            if scene.tile not in {is_mgrs_tile(t) for t in query.tiles}:
                return False
        if area is not None and scene.footprint is not None:
            from shapely.geometry import shape

            return bool(area.intersects(shape(scene.footprint)))
        return True

    def _collect(
        self,
        odata: ODataQuery,
        query: SearchQuery,
        dataset: CdseDataset,
        found: dict[str, Scene],
    ) -> None:
        for products in self._pages(odata.filter, whole=query.limit is None):
            for product in products:
                scene = self._scene_or_none(product, query, dataset)
                if scene is not None and self._keep(scene, query, odata.area):
                    found.setdefault(scene.scene_id, scene)
            if query.limit is not None and len(found) >= query.limit:
                return

    def search_window(self, query: SearchQuery) -> list[Scene]:
        """Return the products of one window (``SplitSearchDriver``).

        Raises:
            WindowTooLargeError: past ``$skip`` or ``max_pages``.
            InvalidInputError: a bad dataset, tile or geometry.
            ProviderUnavailableError: 5xx, timeouts, dropped connections.
            RateLimitedError: HTTP 429 (``retry_after_s`` from ``Retry-After``).
            ProviderError: other 4xx (with the server's description), broken paging.
        """
        dataset = self.dataset_of(query.dataset)
        found: dict[str, Scene] = {}
        self._collect(build_filter(query, dataset), query, dataset, found)
        return list(found.values())

    def search_ids(self, query: SearchQuery) -> list[Scene]:
        """Return the products of a search by names (20 a request).

        Raises:
            WindowTooLargeError, InvalidInputError, ProviderError, TransientError: as
                ``search_window``.
        """
        dataset = self.dataset_of(query.dataset)
        found: dict[str, Scene] = {}
        ids = list(query.scene_ids)
        for first in range(0, len(ids), SCENE_IDS_PER_REQUEST):
            chunk = ids[first : first + SCENE_IDS_PER_REQUEST]
            self._collect(build_filter(query, dataset, scene_ids=chunk), query, dataset, found)
        return list(found.values())

    # -- one product: availability, order ------------------------------------------------------

    def product_id(self, scene: Scene) -> str:
        """Return the OData ``Id`` of ``scene`` (from its search, else looked up by name).

        Raises:
            ProviderError: when CDSE has no product of that name.
            ProviderUnavailableError, RateLimitedError: transient failures of the lookup.
        """
        known = scene.properties.get("product_id")
        if isinstance(known, str) and known:
            return known
        name = _checked_literal(scene.scene_id, "scene_id", "give a bare product name")
        data = self._get_json(
            f"{self.base_url}/Products",
            params={"$filter": f"startswith(Name,{odata_string(name)})", "$top": "5"},
            action="lookup",
        )
        for product in data.get("value") or ():
            product_name = str(product.get("Name", "")) if isinstance(product, dict) else ""
            if product_name.removesuffix(".SAFE").upper() == name.upper() and product.get("Id"):
                return str(product["Id"])
        raise ProviderError(
            f"{scene.scene_id}: catalog {self.catalog!r} has no product of that name; "
            "check the scene id or use another provider",
            status_code=404,
        )

    def product(self, scene: Scene) -> dict[str, Any]:
        """Return the product entity of ``scene`` as CDSE has it now.

        Raises:
            ProviderError: 404 (the product is gone) and other 4xx.
            ProviderUnavailableError, RateLimitedError: transient failures.
        """
        return self._get_json(
            f"{self.base_url}/Products({self.product_id(scene)})", action="product"
        )

    def availability(self, scene: Scene) -> Availability:
        """Return ONLINE or OFFLINE from the product's ``Online`` flag, read again now.

        Raises:
            ProviderError, ProviderUnavailableError, RateLimitedError: as ``product``.
        """
        online = self.product(scene).get("Online", True)
        return Availability.ONLINE if online is not False else Availability.OFFLINE

    def order(self, scene: Scene) -> str | None:
        """Ask CDSE to restore an offline product from its long-term archive (idempotent).

        ``POST {url}/Products(<Id>)/OData.CSC.Order`` with the token; an online product is not
        ordered, and an order already placed (HTTP 409) counts as done. A token CDSE refuses
        (401) is renewed once. Callers poll ``availability``.

        Returns:
            The order's ``Id`` when CDSE gives one (None for an online product or a 409).

        Raises:
            ProviderError: no credentials, 401/403 (check the Connection), other 4xx.
            ProviderUnavailableError, RateLimitedError: transient failures.
        """
        if self.availability(scene) == Availability.ONLINE:
            log.info(
                "order.skipped scene=%s catalog=%s reason=online", scene.scene_id, self.catalog
            )
            return None
        url = f"{self.base_url}/Products({self.product_id(scene)})/OData.CSC.Order"
        response = self.auth.post(url, action="order")
        if response.status_code == 409:
            log.info("order.already scene=%s catalog=%s", scene.scene_id, self.catalog)
            return None
        self.auth.raise_for_status(response, url=url, action="order")
        status = "-"
        order_id: str | None = None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            value = body.get("value")
            entity: dict[str, Any] = value if isinstance(value, dict) else body
            status = str(entity.get("Status") or "-")
            order_id = str(entity["Id"]) if entity.get("Id") else None
        log.info(
            "order.placed scene=%s catalog=%s status=%s order_id=%s",
            scene.scene_id,
            self.catalog,
            status,
            order_id or "-",
        )
        return order_id

    # -- download -----------------------------------------------------------------------------

    def fetch(self, job: DownloadJob) -> DownloadedFile:
        """Download the product zip of ``scene`` to ``dest/<scene_id>.zip``, verified.

        A verified copy already in place (size and checksum as searched) is reused without any
        request unless ``force``. Otherwise the product is read again: an offline product raises
        ``SceneOfflineError``; the size and checksum to verify come from that fresh entity.

        Raises:
            SceneOfflineError: the product is in the long-term archive (order it, wait).
            ProviderError: no credentials, 401/403 (check Connection ``cdse_default``), 404.
            ChecksumMismatchError, ProviderUnavailableError, RateLimitedError, DiskFullError:
                as ``download_file``.
        """
        scene, dest, progress, force = job.scene, job.dest, job.progress, job.force
        target = dest / f"{safe_component(scene.scene_id, 'scene_id')}.zip"
        known = scene.assets[0] if scene.assets else None
        if not force:  # force: fetch again, the old file is replaced only once verified
            kept = reuse_existing(
                target,
                expected_size=scene.size_bytes,
                checksum=known.checksum if known is not None else None,
                progress=progress,
            )
            if kept is not None:  # a rerun: no request at all
                return kept
        product_id = self.product_id(scene)
        product = self._get_json(f"{self.base_url}/Products({product_id})", action="product")
        size_bytes = known_size(product.get("ContentLength"))
        checksum = select_checksum(product.get("Checksum"))
        if product.get("Online") is False:
            raise SceneOfflineError(
                scene.scene_id,
                self.catalog,
                f"{scene.scene_id}: offline at catalog {self.catalog!r} (in the long-term "
                "archive); order it and wait until it is online",
            )
        return self.auth.download(
            f"{self.base_url}/Products({product_id})/$value",
            target,
            expected_size=size_bytes,
            checksum=checksum,
            progress=progress,
            force=force,
            sleep=self.retry_sleep,
        )


def without_count(url: str) -> str:
    """Return ``url`` without its ``$count`` parameter, the rest of it verbatim."""
    parts = urlsplit(url)
    kept = [p for p in parts.query.split("&") if unquote(p.partition("=")[0]) != "$count"]
    return urlunsplit(parts._replace(query="&".join(kept)))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


__all__ = [
    "CdseDataset",
    "CdseODataDriver",
    "ODataQuery",
    "build_filter",
    "format_odata_datetime",
    "parse_dataset",
    "parse_footprint",
    "product_to_scene",
    "select_checksum",
]
