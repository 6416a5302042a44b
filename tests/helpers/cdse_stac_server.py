"""A loopback CDSE STAC API (stac-fastapi-pgstac's protocol) on top of the loopback CDSE.

``CdseStacServer`` is a ``CdseServer`` (tests/helpers/cdse_server.py: the OData ``$value`` and
zipper endpoints that serve the product zips, the Keycloak token endpoint, faults) that also
answers CDSE's STAC API under ``/v1``::

    server = CdseStacServer()
    item = server.add_s2_item(name, zip_bytes, footprint=..., cloud_pct=12.5)
    driver = CdseStacDriver(url=server.stac_url, credentials=Credentials("alice", "s3cret"),
                            options={"token_url": server.token_url, "datasets": {...}})

Endpoints (as ``https://stac.dataspace.copernicus.eu/v1`` has them):

- ``GET /v1`` (landing page: conformance classes, links to ``search`` GET and POST, ``data``,
  ``conformance``), ``GET /v1/conformance``, ``GET /v1/collections``,
  ``GET /v1/collections/<id>`` (404 ``{"code": "NotFoundError", "description": ...}``),
  ``GET /v1/collections/<id>/items/<item id>``.
- ``POST /v1/search`` (JSON body) and ``GET /v1/search`` (query string): ``collections``,
  ``ids``, ``bbox``, ``intersects``, ``datetime`` (an instant or ``start/end`` with ``..`` for
  open ends), ``limit`` (default 10, 1..10000, else 400), ``query`` (Query extension: ``eq neq
  lt lte gt gte in startsWith endsWith contains``; an item without the property never matches,
  as in pgstac) and ``token``. Items come newest first (pgstac's default sort). A page that is
  not the last has a ``rel="next"`` link: for POST, ``method: POST`` and the request body plus
  ``token: "next:<offset>"``; for GET, the same query string with ``token``. ``max_items`` (if
  set) caps what one search lists: no next link past it, while ``numberMatched`` (left out when
  ``count_matched`` is false) still counts every match. Malformed requests
  answer 400 ``{"code": "RequestValidationError", "description": ...}``.
- Faults: ``fail("search", ...)`` (inherited) answers the next searches with an error.

Items are built by ``s2_stac_item`` in CDSE's shape: the id is the product name (optionally with
``.SAFE``); STAC 1.1 properties (``platform``, ``eo:cloud_cover``, ``grid:code``,
``product:type``, ``processing:version``, ``sat:relative_orbit``, ``sat:absolute_orbit``,
``published``, ``updated``...); per-file assets with ``s3://eodata/...`` hrefs and an
``alternate.https`` OData ``Nodes(...)`` href; and the ``Product`` asset (zip, ``file:size``,
``file:checksum`` multihash, ``auth:refs: ["oidc"]``) whose href is this server's
``/odata/v1/Products(<Id>)/$value``, which serves the zip behind the bearer token.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

from include.collectors.checksums import Checksum
from tests.helpers.cdse_server import CdseServer, blake3_hex
from tests.helpers.http_server import Reply, Request

STAC_PATH = "/v1"
STAC_EXTENSIONS = (
    "https://stac-extensions.github.io/eo/v2.0.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
    "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
    "https://stac-extensions.github.io/product/v0.1.0/schema.json",
    "https://stac-extensions.github.io/sat/v1.1.0/schema.json",
    "https://stac-extensions.github.io/file/v2.1.0/schema.json",
    "https://stac-extensions.github.io/storage/v2.0.0/schema.json",
    "https://stac-extensions.github.io/authentication/v1.1.0/schema.json",
    "https://stac-extensions.github.io/alternate-assets/v1.2.0/schema.json",
    "https://stac-extensions.github.io/timestamps/v1.1.0/schema.json",
)
CONFORMANCE = (
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
)
COLLECTIONS = {
    "sentinel-2-l1c": "Sentinel-2 Level-1C",
    "sentinel-2-l2a": "Sentinel-2 Level-2A",
}
_OPERATORS = ("eq", "neq", "lt", "lte", "gt", "gte", "in", "startsWith", "endsWith", "contains")


class StacRequestError(ValueError):
    """A search the server refuses with 400."""


def _json(document: Any, status: int = 200, content_type: str = "application/json") -> Reply:
    return Reply(status, json.dumps(document).encode(), {"Content-Type": content_type})


def _error(status: int, code: str, description: str) -> Reply:
    return _json({"code": code, "description": description}, status)


def _multihash(algorithm: str, content: bytes) -> str:
    if algorithm == "blake3":
        digest = blake3_hex(content)
    else:
        digest = hashlib.new(algorithm, content).hexdigest()
    return Checksum(algorithm, digest).to_multihash()


def s2_stac_item(
    name: str,
    content: bytes,
    *,
    footprint: Mapping[str, Any],
    product_id: str,
    download_origin: str,
    stac_url: str,
    cloud_pct: float | None = 10.0,
    checksum: str | None = "md5",
    safe_suffix: bool = False,
    product_key: str | None = "Product",
    product_href_in: str = "href",
    product_type: str = "application/zip",
) -> dict[str, Any]:
    """Return a CDSE-shaped STAC item for the Sentinel-2 product ``name`` (without ``.SAFE``).

    Args:
        name: the product name.
        content: the product zip (its size and checksum go on the ``Product`` asset).
        footprint: the GeoJSON geometry.
        product_id: the OData product ``Id`` in the hrefs.
        download_origin: where ``/odata/v1/Products(<Id>)/...`` is served (CDSE's
            ``https://download.dataspace.copernicus.eu``; a loopback server in tests).
        stac_url: the STAC API root, for the item's links.
        cloud_pct: ``eo:cloud_cover`` (None leaves it out).
        checksum: ``md5``, ``blake3`` or ``sha256`` for ``file:checksum`` (a multihash), ``wrong``
            for a wrong MD5, None for none.
        safe_suffix: give the item id with ``.SAFE``.
        product_key: the product asset's key (None leaves the product asset out).
        product_href_in: ``href`` (the ``$value`` URL as href) or ``alternate`` (an ``s3://``
            href with the ``$value`` URL under ``alternate.https``).
        product_type: the product asset's media type.
    """
    parts = name.split("_")
    mission, level, sensing, baseline, orbit, tile, generated = parts
    start = datetime.strptime(sensing, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    published = datetime.strptime(generated, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    stamp = start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    level_code = level.removeprefix("MSI")  # L1C / L2A
    collection = f"sentinel-2-{level_code.lower()}"
    safe = f"{name}.SAFE"
    s3_root = f"s3://eodata/Sentinel-2/MSI/{level_code}/{start:%Y/%m/%d}/{safe}"
    granule = f"{level_code}_{tile}_A{int(orbit[1:]):06d}_{sensing}"

    def file_asset(path: str, media: str, roles: list[str], size: int) -> dict[str, Any]:
        nodes = "/".join(f"Nodes({segment})" for segment in path.split("/"))
        return {
            "href": f"{s3_root}/{path}",
            "type": media,
            "roles": roles,
            "file:size": size,
            "auth:refs": ["s3"],
            "storage:refs": ["cdse-s3"],
            "alternate": {
                "https": {
                    "href": f"{download_origin}/odata/v1/Products({product_id})/"
                    f"Nodes({safe})/{nodes}/$value",
                    "auth:refs": ["oidc"],
                }
            },
        }

    band_dir = f"GRANULE/{granule}/IMG_DATA"
    if level_code == "L2A":
        band_dir += "/R10m"
    assets: dict[str, Any] = {
        "B04": file_asset(
            f"{band_dir}/{tile}_{sensing}_B04.jp2",
            "image/jp2",
            ["data", "reflectance"],
            120_000_000,
        ),
        "B08": file_asset(
            f"{band_dir}/{tile}_{sensing}_B08.jp2",
            "image/jp2",
            ["data", "reflectance"],
            130_000_000,
        ),
        "product_metadata": file_asset(
            f"MTD_MSI{level_code}.xml", "application/xml", ["metadata"], 55_000
        ),
        "safe_manifest": file_asset("manifest.safe", "application/xml", ["metadata"], 70_000),
        "thumbnail": {
            "href": f"{download_origin}/odata/v1/Assets({uuid.uuid5(uuid.NAMESPACE_URL, name)})"
            "/$value",
            "type": "image/jpeg",
            "roles": ["thumbnail", "overview"],
        },
    }
    if product_key is not None:
        value = f"{download_origin}/odata/v1/Products({product_id})/$value"
        product: dict[str, Any] = {
            "href": value,
            "type": product_type,
            "title": "Zipped product",
            "roles": ["data", "metadata", "archive"],
            "file:size": len(content),
            "auth:refs": ["oidc"],
        }
        if product_href_in == "alternate":
            product["href"] = s3_root
            product["alternate"] = {"https": {"href": value, "auth:refs": ["oidc"]}}
        if checksum == "wrong":
            product["file:checksum"] = Checksum("md5", "0" * 32).to_multihash()
        elif checksum is not None:
            product["file:checksum"] = _multihash(checksum, content)
        assets[product_key] = product
    item_id = safe if safe_suffix else name
    properties: dict[str, Any] = {
        "datetime": stamp,
        "start_datetime": stamp,
        "end_datetime": stamp,
        "created": (published + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "published": (published + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "updated": (published + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "platform": f"sentinel-2{mission[-1].lower()}",
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "grid:code": f"MGRS-{tile.removeprefix('T')}",
        "product:type": f"S2MSI{level_code[1:]}",
        "processing:level": f"L{level_code[1]}",
        "processing:version": f"{baseline[1:3]}.{baseline[3:]}",
        "sat:relative_orbit": int(orbit[1:]),
        "sat:absolute_orbit": 30_000 + int(orbit[1:]),
        "sat:orbit_state": "descending",
    }
    if cloud_pct is not None:
        properties["eo:cloud_cover"] = cloud_pct
    from shapely.geometry import shape

    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": list(STAC_EXTENSIONS),
        "id": item_id,
        "collection": collection,
        "geometry": dict(footprint),
        "bbox": list(shape(footprint).bounds),
        "properties": properties,
        "links": [
            {
                "rel": "self",
                "type": "application/geo+json",
                "href": f"{stac_url}/collections/{collection}/items/{item_id}",
            },
            {
                "rel": "collection",
                "type": "application/json",
                "href": f"{stac_url}/collections/{collection}",
            },
            {"rel": "root", "type": "application/json", "href": stac_url},
        ],
        "assets": assets,
    }


# --------------------------------------------------------------------------------------------
# Search


def _parse_instant(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _datetime_test(text: str) -> Any:
    try:
        if "/" not in text:
            instant = _parse_instant(text)
            return lambda when: when == instant
        first, _, last = text.partition("/")
        low = None if first in ("", "..") else _parse_instant(first)
        high = None if last in ("", "..") else _parse_instant(last)
    except ValueError as err:
        raise StacRequestError(f"invalid datetime {text!r}") from err
    return lambda when: (low is None or when >= low) and (high is None or when <= high)


def _matches(operator: str, value: Any, wanted: Any) -> bool:
    try:
        if operator == "eq":
            return bool(value == wanted)
        if operator == "neq":
            return bool(value != wanted)
        if operator == "lt":
            return bool(value < wanted)
        if operator == "lte":
            return bool(value <= wanted)
        if operator == "gt":
            return bool(value > wanted)
        if operator == "gte":
            return bool(value >= wanted)
        if operator == "in":
            return value in wanted
    except TypeError:
        return False
    if operator == "startsWith":
        return str(value).startswith(str(wanted))
    if operator == "endsWith":
        return str(value).endswith(str(wanted))
    return str(wanted) in str(value)  # contains


def _property_test(name: str, operators: Any) -> Any:
    if not isinstance(operators, Mapping) or not operators:
        raise StacRequestError(f"query.{name} must be an object of operators")
    unknown = set(operators) - set(_OPERATORS)
    if unknown:
        raise StacRequestError(f"query.{name}: unknown operators {sorted(unknown)}")

    def check(props: Mapping[str, Any]) -> bool:
        if name not in props:
            return False
        return all(_matches(op, props[name], wanted) for op, wanted in operators.items())

    return check


def _search_params(request: Request) -> dict[str, Any]:
    """Return the search parameters of a POST body or a GET query string, typed as in POST."""
    if request.method == "POST":
        try:
            body = request.json()
        except ValueError as err:
            raise StacRequestError("the body is not JSON") from err
        if not isinstance(body, dict):
            raise StacRequestError("the body must be a JSON object")
        return body
    raw = {key: values[0] for key, values in parse_qs(request.query).items()}
    params: dict[str, Any] = dict(raw)
    try:
        for key in ("collections", "ids"):
            if key in raw:
                params[key] = [part for part in raw[key].split(",") if part]
        if "bbox" in raw:
            params["bbox"] = [float(part) for part in raw["bbox"].split(",")]
        if "limit" in raw:
            params["limit"] = int(raw["limit"])
        for key in ("query", "intersects"):
            if key in raw:
                params[key] = json.loads(raw[key])
    except ValueError as err:
        raise StacRequestError(f"malformed query string: {err}") from err
    return params


class CdseStacServer(CdseServer):
    """CDSE's STAC API, OData downloads and identity service on one loopback port."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.items: dict[str, dict[str, Any]] = {}
        """Item id -> item, in the order added."""
        self.issued_tokens: list[str] = []
        """Every access and refresh token the identity service issued (to look for in logs)."""
        self.max_items: int | None = None
        """The most items one search lists (no next link past them), as a server whose
        listing stops at a window (an index's result window) does; None: no cap."""
        self.count_matched = True
        """Whether pages say ``numberMatched`` (a server without counts leaves it out)."""

    def __enter__(self) -> CdseStacServer:
        return self

    @property
    def stac_url(self) -> str:
        """The STAC API root, as ``catalogs.yaml``'s ``url`` (``.../v1``)."""
        return self.url + STAC_PATH

    # -- content ----------------------------------------------------------------------------

    def add_item(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """Serve ``item`` (a STAC item) in its collection."""
        with self._state:
            self.items[str(item["id"])] = dict(item)
        return dict(item)

    def add_s2_item(
        self,
        name: str,
        content: bytes,
        *,
        footprint: Mapping[str, Any],
        cloud_pct: float | None = 10.0,
        **item_options: Any,
    ) -> dict[str, Any]:
        """Serve the product zip ``content`` at ``$value`` and a CDSE STAC item for it.

        ``item_options`` go to ``s2_stac_item`` (``checksum``, ``safe_suffix``, ``product_key``,
        ``product_href_in``, ``product_type``).
        """
        name = name.removesuffix(".SAFE")
        entity = self.add_s2_product(
            f"{name}.SAFE", content, footprint=footprint, cloud_pct=cloud_pct
        )
        item = s2_stac_item(
            name,
            content,
            footprint=footprint,
            product_id=str(entity["Id"]),
            download_origin=self.url,
            stac_url=self.stac_url,
            cloud_pct=cloud_pct,
            **item_options,
        )
        return self.add_item(item)

    def product_id(self, name: str) -> str:
        """The OData ``Id`` the product ``name`` (with or without ``.SAFE``) is served under."""
        wanted = name.removesuffix(".SAFE") + ".SAFE"
        with self._state:
            for product_id, stored in self.products.items():
                if stored.entity.get("Name") == wanted:
                    return product_id
        raise KeyError(name)

    def search_requests(self) -> list[Request]:
        """The requests made to ``/v1/search``, in order."""
        return self.requests_to(f"{STAC_PATH}/search")

    # -- dispatch ---------------------------------------------------------------------------

    def _answer(self, request: Request) -> Reply:
        path = request.path.rstrip("/") or "/"
        if path == STAC_PATH or path.startswith(STAC_PATH + "/"):
            try:
                return self._stac(request, path)
            except StacRequestError as err:
                return _error(400, "RequestValidationError", str(err))
        return super()._answer(request)

    def _token(self, request: Request) -> Reply:
        reply = super()._token(request)
        if reply.status == 200:
            answer = json.loads(reply.body)
            with self._state:
                self.issued_tokens += [answer["access_token"], answer["refresh_token"]]
        return reply

    def _stac(self, request: Request, path: str) -> Reply:
        if path == f"{STAC_PATH}/search" and request.method in ("GET", "POST"):
            return self._fault("search") or self._search(request)
        if request.method != "GET":
            return _error(405, "MethodNotAllowed", f"{request.method} is not allowed on {path}")
        if path == STAC_PATH:
            return _json(self._landing())
        if path == f"{STAC_PATH}/conformance":
            return _json({"conformsTo": list(CONFORMANCE)})
        if path == f"{STAC_PATH}/collections":
            collections = [self._collection(c) for c in COLLECTIONS]
            return _json({"collections": collections, "links": []})
        parts = path[len(STAC_PATH) + 1 :].split("/")
        if parts[0] == "collections" and len(parts) in (2, 4):
            collection = parts[1]
            if collection not in COLLECTIONS:
                return _error(404, "NotFoundError", f"Collection {collection} does not exist.")
            if len(parts) == 2:
                return _json(self._collection(collection))
            if parts[2] == "items":
                with self._state:
                    item = self.items.get(parts[3])
                if item is None or item.get("collection") != collection:
                    return _error(
                        404,
                        "NotFoundError",
                        f"Item {parts[3]} in Collection {collection} does not exist.",
                    )
                return _json(item, content_type="application/geo+json")
        return _error(404, "NotFoundError", f"no such resource {path}")

    def _landing(self) -> dict[str, Any]:
        root = self.stac_url
        return {
            "type": "Catalog",
            "id": "cdse",
            "title": "Copernicus Data Space Ecosystem STAC catalogue (loopback)",
            "description": "STAC API of the Copernicus Data Space Ecosystem",
            "stac_version": "1.1.0",
            "conformsTo": list(CONFORMANCE),
            "links": [
                {"rel": "self", "type": "application/json", "href": root},
                {"rel": "root", "type": "application/json", "href": root},
                {"rel": "data", "type": "application/json", "href": f"{root}/collections"},
                {"rel": "conformance", "type": "application/json", "href": f"{root}/conformance"},
                {
                    "rel": "search",
                    "type": "application/geo+json",
                    "href": f"{root}/search",
                    "method": "GET",
                },
                {
                    "rel": "search",
                    "type": "application/geo+json",
                    "href": f"{root}/search",
                    "method": "POST",
                },
            ],
        }

    def _collection(self, collection: str) -> dict[str, Any]:
        root = self.stac_url
        return {
            "type": "Collection",
            "id": collection,
            "stac_version": "1.1.0",
            "title": COLLECTIONS[collection],
            "description": COLLECTIONS[collection],
            "license": "other",
            "extent": {
                "spatial": {"bbox": [[-180, -90, 180, 90]]},
                "temporal": {"interval": [["2015-06-27T10:25:31Z", None]]},
            },
            "links": [
                {
                    "rel": "self",
                    "type": "application/json",
                    "href": f"{root}/collections/{collection}",
                },
                {
                    "rel": "items",
                    "type": "application/geo+json",
                    "href": f"{root}/collections/{collection}/items",
                },
                {"rel": "root", "type": "application/json", "href": root},
            ],
        }

    def _search(self, request: Request) -> Reply:
        params = _search_params(request)
        limit = params.get("limit", 10)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10000:
            raise StacRequestError("limit must be an integer from 1 to 10000")
        token = params.get("token")
        offset = 0
        if token is not None:
            if not isinstance(token, str) or not token.startswith("next:"):
                raise StacRequestError(f"invalid token {token!r}")
            offset = int(token[len("next:") :])
        tests = self._tests(params)
        with self._state:
            items = list(self.items.values())
        matched = [item for item in items if all(test(item) for test in tests)]
        matched.sort(key=lambda item: (item["properties"]["datetime"], item["id"]), reverse=True)
        listable = matched[: self.max_items] if self.max_items is not None else matched
        page = listable[offset : offset + limit]
        links: list[dict[str, Any]] = [
            {"rel": "root", "type": "application/json", "href": self.stac_url},
        ]
        if offset + limit < len(listable):
            following = f"next:{offset + limit}"
            if request.method == "POST":
                links.append(
                    {
                        "rel": "next",
                        "type": "application/geo+json",
                        "method": "POST",
                        "href": f"{self.stac_url}/search",
                        "body": {**params, "token": following},
                    }
                )
            else:
                query = {k: v[0] for k, v in parse_qs(request.query).items()}
                query["token"] = following
                links.append(
                    {
                        "rel": "next",
                        "type": "application/geo+json",
                        "method": "GET",
                        "href": f"{self.stac_url}/search?{urlencode(query)}",
                    }
                )
        document: dict[str, Any] = {
            "type": "FeatureCollection",
            "features": page,
            "links": links,
            "numberReturned": len(page),
        }
        if self.count_matched:
            document["numberMatched"] = len(matched)
        return _json(document, content_type="application/geo+json")

    @staticmethod
    def _tests(params: Mapping[str, Any]) -> list[Any]:
        from shapely.geometry import box, shape

        tests: list[Any] = []
        collections = params.get("collections")
        if collections is not None:
            if not isinstance(collections, list):
                raise StacRequestError("collections must be a list")
            wanted_collections = set(collections)
            tests.append(lambda item: item.get("collection") in wanted_collections)
        ids = params.get("ids")
        if ids is not None:
            if not isinstance(ids, list):
                raise StacRequestError("ids must be a list")
            wanted_ids = set(ids)
            tests.append(lambda item: item["id"] in wanted_ids)
        if params.get("bbox") is not None and params.get("intersects") is not None:
            raise StacRequestError("give bbox or intersects, not both")
        try:
            area = None
            if params.get("bbox") is not None:
                area = box(*params["bbox"])
            elif params.get("intersects") is not None:
                area = shape(params["intersects"])
        except (TypeError, ValueError, AttributeError, KeyError) as err:
            raise StacRequestError(f"invalid area: {err}") from err
        if area is not None:
            tests.append(lambda item: area.intersects(shape(item["geometry"])))
        if params.get("datetime") is not None:
            when = _datetime_test(str(params["datetime"]))
            tests.append(lambda item: when(_parse_instant(item["properties"]["datetime"])))
        query = params.get("query")
        if query is not None:
            if not isinstance(query, Mapping):
                raise StacRequestError("query must be an object")
            for name, operators in query.items():
                check = _property_test(str(name), operators)
                tests.append(lambda item, check=check: check(item["properties"]))
        return tests


__all__ = ["STAC_PATH", "CdseStacServer", "StacRequestError", "s2_stac_item"]
