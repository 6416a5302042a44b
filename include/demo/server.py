"""A small STAC API over a static catalog folder, for demos and offline tests (stdlib only).

Serves the catalog written by ``StaticStacBackend`` (e.g. by ``include.demo.build``) and its files:

- ``GET /`` landing page (conformance: core, collections, features, item-search, query),
  ``/conformance``, ``/collections``, ``/collections/{id}``, ``/collections/{id}/items``,
  ``/collections/{id}/items/{item}``;
- ``GET``/``POST /search``: ``collections``, ``ids``, ``bbox``, ``intersects``, ``datetime``
  (instant or interval, ``..`` or empty for an open end), ``query`` (``eq``, ``neq``, ``lt``,
  ``lte``, ``gt``, ``gte``, ``in`` on any property), ``limit`` and paging through a ``next``
  link carrying a ``token`` (in the query string for GET, in the body for POST);
- ``GET``/``HEAD /files/...``: the scene files, with single-range ``Range`` support (206 with
  ``Content-Range``; 416 for an unsatisfiable or malformed range) and ``Content-Length``.

Asset hrefs stored as ``/files/...`` (or absolute paths inside ``root/files``) are answered as
absolute URLs of this server. Errors are JSON ``{"code", "description"}``. The server binds
127.0.0.1 only and logs one line per request.

CLI: ``python -m include.demo.server --root DIR [--port 8089] [--build]``.
"""

from __future__ import annotations

import argparse
import copy
import email.utils
import json
import logging
import re
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import shapely
from pystac.utils import str_to_datetime
from shapely.geometry import box, shape

from include.catalog.static_stac import STRUCTURAL_RELS, StaticStacBackend
from include.common.errors import CollectionBuilderError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEFAULT_PORT = 8089
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
FILES_PREFIX = "/files/"
GEOJSON = "application/geo+json"
JSON_TYPE = "application/json"
CONFORMS_TO = (
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
)
_MEDIA_TYPES = {
    ".tif": "image/tiff; application=geotiff; profile=cloud-optimized",
    ".tiff": "image/tiff; application=geotiff",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".json": JSON_TYPE,
    ".xml": "application/xml",
    ".zip": "application/zip",
}
_CHUNK_BYTES = 256 * 1024
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_QUERY_OPS = ("eq", "neq", "lt", "lte", "gt", "gte", "in")


class ApiError(CollectionBuilderError):
    """An HTTP error answered as ``{"code", "description"}``."""

    def __init__(
        self, status: HTTPStatus, description: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.status = status
        self.description = description
        self.headers = dict(headers or {})
        super().__init__(f"{status.value} {status.phrase}: {description}")

    def body(self) -> dict[str, str]:
        """Return the JSON error body."""
        return {"code": self.status.phrase.replace(" ", ""), "description": self.description}


def _bad_request(description: str) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, description)


@dataclass(frozen=True, slots=True)
class SearchParams:
    """A parsed item search."""

    collections: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None
    geometry: shapely.Geometry | None = None
    start: datetime | None = None
    end: datetime | None = None
    query: Mapping[str, Mapping[str, Any]] | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def _as_list(value: Any, field: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(part for part in value.split(",") if part)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise _bad_request(f"{field}: expected a list of strings, got {value!r}")


def _parse_bbox(value: Any) -> shapely.Geometry:
    parts = value.split(",") if isinstance(value, str) else value
    try:
        numbers = [float(v) for v in parts]
    except (TypeError, ValueError) as err:
        raise _bad_request(f"bbox: {value!r} is not a list of numbers") from err
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or numbers[0] > numbers[2] or numbers[1] > numbers[3]:
        raise _bad_request(f"bbox: {value!r} must be west,south,east,north with west<=east")
    return box(*numbers)


def _parse_datetime(value: Any) -> tuple[datetime | None, datetime | None]:
    if not isinstance(value, str) or not value:
        raise _bad_request(f"datetime: {value!r} is not an RFC 3339 instant or interval")
    parts = value.split("/")
    if len(parts) > 2:
        raise _bad_request(f"datetime: {value!r} has more than two parts")
    try:
        bounds = [None if part in ("", "..") else str_to_datetime(part) for part in parts]
    except ValueError as err:
        raise _bad_request(f"datetime: {value!r} is not RFC 3339 ({err})") from err
    if len(bounds) == 1:
        if bounds[0] is None:
            raise _bad_request("datetime: an instant cannot be open")
        return bounds[0], bounds[0]
    start, end = bounds
    if start is not None and end is not None and start > end:
        raise _bad_request(f"datetime: start is after end in {value!r}")
    return start, end


def _parse_query(value: Any) -> dict[str, dict[str, Any]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise _bad_request(f"query: not JSON ({err})") from err
    if not isinstance(value, dict):
        raise _bad_request("query: expected an object {property: {op: value}}")
    for prop, ops in value.items():
        if not isinstance(ops, dict) or not ops:
            raise _bad_request(f"query.{prop}: expected an object of operators")
        unknown = sorted(set(ops) - set(_QUERY_OPS))
        if unknown:
            raise _bad_request(f"query.{prop}: unknown operators {unknown}; use {_QUERY_OPS}")
        if "in" in ops and not isinstance(ops["in"], list):
            raise _bad_request(f"query.{prop}.in: expected a list")
    return cast(dict[str, dict[str, Any]], value)


def _parse_int(value: Any, field: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError) as err:
        raise _bad_request(f"{field}: {value!r} is not an integer") from err
    if not low <= number <= high:
        raise _bad_request(f"{field}: {number} is outside {low}..{high}")
    return number


def parse_search(params: Mapping[str, Any]) -> SearchParams:
    """Parse search parameters (GET query values as strings, or a POST JSON body).

    Raises:
        ApiError: 400 naming the bad parameter.
    """
    known = {
        "collections",
        "ids",
        "bbox",
        "intersects",
        "datetime",
        "query",
        "limit",
        "token",
    }
    unknown = sorted(set(params) - known)
    if unknown:
        raise _bad_request(f"unknown parameters {unknown}; use {sorted(known)}")
    geometry = None
    if params.get("bbox") is not None and params.get("intersects") is not None:
        raise _bad_request("bbox and intersects cannot be used together")
    if params.get("bbox") is not None:
        geometry = _parse_bbox(params["bbox"])
    if params.get("intersects") is not None:
        raw = params["intersects"]
        try:
            geometry = shape(json.loads(raw) if isinstance(raw, str) else raw)
        except (
            ValueError,
            TypeError,
            AttributeError,
            KeyError,
            shapely.errors.ShapelyError,
        ) as err:
            raise _bad_request(f"intersects: not a GeoJSON geometry ({err})") from err
    start = end = None
    if params.get("datetime") is not None:
        start, end = _parse_datetime(params["datetime"])
    token = params.get("token")
    return SearchParams(
        collections=_as_list(params.get("collections"), "collections"),
        ids=_as_list(params.get("ids"), "ids"),
        geometry=geometry,
        start=start,
        end=end,
        query=_parse_query(params["query"]) if params.get("query") is not None else None,
        limit=_parse_int(params.get("limit", DEFAULT_LIMIT), "limit", 1, MAX_LIMIT),
        offset=_parse_int(token, "token", 0, 10**9) if token is not None else 0,
    )


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if actual is None:
        return op == "neq"
    try:
        if op == "eq":
            return bool(actual == expected)
        if op == "neq":
            return bool(actual != expected)
        if op == "in":
            return actual in expected
        if op == "lt":
            return bool(actual < expected)
        if op == "lte":
            return bool(actual <= expected)
        if op == "gt":
            return bool(actual > expected)
        return bool(actual >= expected)
    except TypeError as err:
        raise _bad_request(f"query: cannot compare {actual!r} {op} {expected!r}") from err


def item_matches(item: Mapping[str, Any], search: SearchParams) -> bool:
    """Return whether an item passes every filter of ``search`` (not paging).

    Raises:
        ApiError: 400 when a query compares values of incompatible types.
    """
    if search.collections is not None and item.get("collection") not in search.collections:
        return False
    if search.ids is not None and item.get("id") not in search.ids:
        return False
    if search.geometry is not None:
        if item.get("geometry") is None or not shape(item["geometry"]).intersects(search.geometry):
            return False
    props = item.get("properties", {})
    if search.start is not None or search.end is not None:
        item_start = str_to_datetime(props.get("start_datetime") or props["datetime"])
        item_end = str_to_datetime(props.get("end_datetime") or props["datetime"])
        if search.start is not None and item_end < search.start:
            return False
        if search.end is not None and item_start > search.end:
            return False
    for prop, ops in (search.query or {}).items():
        value = props.get(prop, item.get(prop))
        if not all(_compare(value, op, expected) for op, expected in ops.items()):
            return False
    return True


class _Store:
    """The catalog's collections and items, cached per collection until its file changes."""

    def __init__(self, root: Path) -> None:
        self.backend = StaticStacBackend(root)
        self._lock = threading.Lock()
        self._items: dict[str, tuple[tuple[int, int], list[dict[str, Any]]]] = {}

    def collection_ids(self) -> list[str]:
        return self.backend.collection_ids()

    def collection(self, collection_id: str) -> dict[str, Any] | None:
        if collection_id not in self.collection_ids():
            return None
        return self.backend.get_collection(collection_id)

    def items(self, collection_id: str) -> list[dict[str, Any]]:
        try:
            stat = self.backend.collection_path(collection_id).stat()
        except FileNotFoundError:
            return []
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._items.get(collection_id)
            if cached is None or cached[0] != stamp:
                cached = (stamp, self.backend.search(collection_id))
                self._items[collection_id] = cached
            return cached[1]


class DemoStacServer(ThreadingHTTPServer):
    """The demo STAC API server bound to 127.0.0.1; ``start()`` serves in a daemon thread.

    ``serve_forever`` runs one request loop at a time: a second call (e.g. a caller that also
    starts its own thread after ``serve()``) just waits until ``shutdown()``.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, root: Path, port: int = DEFAULT_PORT) -> None:
        """Bind to ``127.0.0.1:port`` (0 picks a free port) and serve the catalog in ``root``.

        Args:
            root: a static catalog folder (``catalog.json``) with its files under ``files/``.
            port: the TCP port, 0 for any free one.
        """
        super().__init__((HOST, port), DemoStacHandler)
        self.root = Path(root).resolve()
        self.files_root = self.root / "files"
        self.store = _Store(self.root)
        self._thread: threading.Thread | None = None
        self._loop_lock = threading.Lock()
        self._looping = False
        self._loop_done = threading.Event()

    @property
    def port(self) -> int:
        """Return the bound TCP port."""
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        """Return the base URL, e.g. ``http://127.0.0.1:8089``."""
        return f"http://{HOST}:{self.port}"

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Handle requests until ``shutdown()``; when a loop already runs, wait for its end."""
        with self._loop_lock:
            already_looping = self._looping
            if not already_looping:
                self._looping = True
                self._loop_done.clear()
        if already_looping:
            self._loop_done.wait()
            return
        try:
            super().serve_forever(poll_interval)
        finally:
            with self._loop_lock:
                self._looping = False
            self._loop_done.set()

    def start(self) -> DemoStacServer:
        """Serve in a daemon thread and return ``self``."""
        self._thread = threading.Thread(
            target=self.serve_forever, name="demo-stac-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.server_close()

    def __enter__(self) -> DemoStacServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a failed request on one line instead of printing a traceback to stderr."""
        log.warning("demo.server.error client=%s", client_address[0], exc_info=True)


def serve(root: Path, port: int = DEFAULT_PORT) -> DemoStacServer:
    """Start the demo STAC API for the catalog in ``root`` on ``127.0.0.1:port``.

    Args:
        root: a static catalog folder made by ``StaticStacBackend`` / ``build_demo_catalog``.
        port: the TCP port, 0 for any free one.

    Returns:
        The running server; call ``stop()`` (or use it as a context manager) to end it.

    Raises:
        OSError: when the port cannot be bound.
    """
    server = DemoStacServer(root, port).start()
    log.info("demo.server.start url=%s root=%s", server.url, server.root)
    return server


class DemoStacHandler(BaseHTTPRequestHandler):
    """Answers the demo STAC API and its files; tests may subclass it (``RequestHandlerClass``)."""

    server: DemoStacServer
    protocol_version = "HTTP/1.1"
    server_version = "CollectionBuilderDemoSTAC/0.1"
    timeout = 30

    # plumbing ----------------------------------------------------------------------------
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silence the default access line; ``_dispatch`` logs one line per request."""

    def log_message(self, format: str, *args: Any) -> None:
        """Send the server's own messages (bad requests, timeouts) to debug logging."""
        log.debug("demo.server.message %s", format % args)

    def do_GET(self) -> None:
        """Answer a GET request."""
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        """Answer a HEAD request."""
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        """Answer a POST request."""
        self._dispatch("POST")

    def do_PUT(self) -> None:
        """Answer a PUT request."""
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        """Answer a DELETE request."""
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        started = time.monotonic()
        self._status = 0
        self._sent = 0
        try:
            self._route(method)
        except ApiError as err:
            # an error may leave an unread request body behind: close the connection after it
            self.close_connection = True
            headers = {**err.headers, "Connection": "close"}
            self._send_json(err.body(), err.status, JSON_TYPE, headers, head=method == "HEAD")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # the request boundary: answer 500 and keep serving
            log.exception("demo.server.failure method=%s path=%s", method, self.path)
            self.close_connection = True
            if not self._status:  # nothing sent yet, else the response is cut short
                self._send_json(
                    {"code": "InternalServerError", "description": "see the server log"},
                    HTTPStatus.INTERNAL_SERVER_ERROR,
                    JSON_TYPE,
                    {"Connection": "close"},
                    head=method == "HEAD",
                )
        log.info(
            "demo.request method=%s path=%s status=%s bytes=%d elapsed_ms=%.1f",
            method,
            self.path,
            self._status,
            self._sent,
            (time.monotonic() - started) * 1000,
        )

    def _send_head(
        self, status: HTTPStatus, content_type: str, length: int, headers: Mapping[str, str]
    ) -> None:
        self._status = status.value
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Access-Control-Allow-Origin", "*")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_json(
        self,
        body: Any,
        status: HTTPStatus = HTTPStatus.OK,
        content_type: str = JSON_TYPE,
        headers: Mapping[str, str] | None = None,
        *,
        head: bool = False,
    ) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self._send_head(status, content_type, len(data), headers or {})
        if not head:
            self.wfile.write(data)
            self._sent = len(data)

    # routing -----------------------------------------------------------------------------
    def _route(self, method: str) -> None:
        split = urlsplit(self.path)
        if split.path.startswith(FILES_PREFIX):
            if method not in ("GET", "HEAD"):
                raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on files")
            self._serve_file(split.path[len(FILES_PREFIX) :], head=method == "HEAD")
            return
        segments = [unquote(part) for part in split.path.strip("/").split("/") if part]
        query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        if segments == ["search"]:
            if method == "POST":
                self._search(self._json_body(), from_get=False)
                return
            if method in ("GET", "HEAD"):
                self._search(query, from_get=True)
                return
            raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on /search")
        if method not in ("GET", "HEAD"):
            raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed here")
        head = method == "HEAD"
        if not segments:
            self._send_json(self._landing(), head=head)
        elif segments == ["conformance"]:
            self._send_json({"conformsTo": list(CONFORMS_TO)}, head=head)
        elif segments == ["collections"]:
            self._send_json(self._collections(), head=head)
        elif len(segments) == 2 and segments[0] == "collections":
            self._send_json(self._collection(segments[1]), head=head)
        elif len(segments) == 3 and segments[0] == "collections" and segments[2] == "items":
            self._collection(segments[1])  # 404 when unknown
            params = dict(query)
            params["collections"] = segments[1]
            self._search(params, from_get=True, items_of=segments[1])
        elif len(segments) == 4 and segments[0] == "collections" and segments[2] == "items":
            self._send_json(self._item(segments[1], segments[3]), content_type=GEOJSON, head=head)
        else:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no resource at {split.path}")

    def _json_body(self) -> dict[str, Any]:
        length = _parse_int(
            self.headers.get("Content-Length", "0") or "0", "Content-Length", 0, 10**7
        )
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as err:
            raise _bad_request(f"the body is not JSON ({err})") from err
        if not isinstance(body, dict):
            raise _bad_request("the body must be a JSON object")
        return body

    # STAC documents ----------------------------------------------------------------------
    @property
    def _base(self) -> str:
        return self.server.url

    def _link(
        self, rel: str, path: str, media_type: str = JSON_TYPE, **extra: Any
    ) -> dict[str, Any]:
        return {"rel": rel, "href": f"{self._base}{path}", "type": media_type, **extra}

    def _landing(self) -> dict[str, Any]:
        links = [
            self._link("self", "/"),
            self._link("root", "/"),
            self._link("conformance", "/conformance"),
            self._link("data", "/collections"),
            self._link("search", "/search", GEOJSON, method="GET"),
            self._link("search", "/search", GEOJSON, method="POST"),
        ]
        links += [
            self._link("child", f"/collections/{quote(cid)}")
            for cid in self.server.store.collection_ids()
        ]
        return {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "collection-builder-demo",
            "title": "Collection Builder demo STAC API",
            "description": f"Static catalog at {self.server.root.name} served as a STAC API",
            "conformsTo": list(CONFORMS_TO),
            "links": links,
        }

    def _api_collection(self, stored: dict[str, Any]) -> dict[str, Any]:
        cid = stored["id"]
        out = copy.deepcopy(stored)
        out["links"] = [
            self._link("self", f"/collections/{quote(cid)}"),
            self._link("root", "/"),
            self._link("parent", "/"),
            self._link("items", f"/collections/{quote(cid)}/items", GEOJSON),
            *(
                link
                for link in stored.get("links", [])
                if link.get("rel") not in STRUCTURAL_RELS and _is_url(link.get("href", ""))
            ),
        ]
        return out

    def _collections(self) -> dict[str, Any]:
        store = self.server.store
        collections = [
            self._api_collection(stored)
            for cid in store.collection_ids()
            if (stored := store.collection(cid)) is not None
        ]
        return {
            "collections": collections,
            "links": [self._link("self", "/collections"), self._link("root", "/")],
        }

    def _collection(self, collection_id: str) -> dict[str, Any]:
        stored = self.server.store.collection(collection_id)
        if stored is None:
            raise ApiError(HTTPStatus.NOT_FOUND, f"collection {collection_id!r} does not exist")
        return self._api_collection(stored)

    def _asset_href(self, href: str) -> str:
        if href.startswith(FILES_PREFIX):
            return f"{self._base}{href}"
        if href.startswith("/"):
            path = Path(href)
            if path.is_relative_to(self.server.files_root):
                relative = path.relative_to(self.server.files_root).as_posix()
                return f"{self._base}{FILES_PREFIX}{quote(relative)}"
        return href

    def _api_item(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(dict(stored))
        cid, iid = quote(str(stored["collection"])), quote(str(stored["id"]))
        out["links"] = [
            self._link("self", f"/collections/{cid}/items/{iid}", GEOJSON),
            self._link("parent", f"/collections/{cid}"),
            self._link("collection", f"/collections/{cid}"),
            self._link("root", "/"),
            *(
                link
                for link in stored.get("links", [])
                if link.get("rel") not in STRUCTURAL_RELS and _is_url(link.get("href", ""))
            ),
        ]
        for asset in out.get("assets", {}).values():
            asset["href"] = self._asset_href(str(asset.get("href", "")))
        return out

    def _item(self, collection_id: str, item_id: str) -> dict[str, Any]:
        self._collection(collection_id)
        for item in self.server.store.items(collection_id):
            if item["id"] == item_id:
                return self._api_item(item)
        raise ApiError(HTTPStatus.NOT_FOUND, f"item {item_id!r} is not in {collection_id!r}")

    def _search(
        self, params: Mapping[str, Any], *, from_get: bool, items_of: str | None = None
    ) -> None:
        search = parse_search(params)
        store = self.server.store
        wanted = search.collections or tuple(store.collection_ids())
        matched = [
            item
            for cid in wanted
            if cid in store.collection_ids()
            for item in store.items(cid)
            if item_matches(item, search)
        ]
        page = matched[search.offset : search.offset + search.limit]
        path = f"/collections/{quote(items_of)}/items" if items_of else "/search"
        links = [self._link("root", "/")]
        next_offset = search.offset + len(page)
        if next_offset < len(matched):
            token = str(next_offset)
            if from_get:
                query = {k: v for k, v in params.items() if k != "collections" or not items_of}
                query["token"] = token
                encoded = urlencode(
                    {k: v if isinstance(v, str) else json.dumps(v) for k, v in query.items()}
                )
                links.append(self._link("next", f"{path}?{encoded}", GEOJSON, method="GET"))
            else:
                body = dict(params)
                body["token"] = token
                links.append(
                    self._link("next", path, GEOJSON, method="POST", body=body, merge=False)
                )
        self._send_json(
            {
                "type": "FeatureCollection",
                "features": [self._api_item(item) for item in page],
                "links": links,
                "numberMatched": len(matched),
                "numberReturned": len(page),
                "context": {"limit": search.limit, "matched": len(matched), "returned": len(page)},
            },
            content_type=GEOJSON,
            head=self.command == "HEAD",
        )

    # files -------------------------------------------------------------------------------
    def _serve_file(self, raw_relative: str, *, head: bool) -> None:
        relative = unquote(raw_relative)
        parts = relative.split("/")
        files_root = self.server.files_root.resolve()
        target = (files_root / relative).resolve()
        if (
            "\x00" in relative
            or "\\" in relative
            or any(part in ("..", ".") for part in parts)
            or relative.startswith("/")
            or not target.is_relative_to(files_root)
        ):
            raise ApiError(HTTPStatus.FORBIDDEN, "the path leaves the files folder")
        if not target.is_file():
            raise ApiError(HTTPStatus.NOT_FOUND, f"no file at {FILES_PREFIX}{relative}")
        stat = target.stat()
        size = stat.st_size
        headers = {
            "Accept-Ranges": "bytes",
            "Last-Modified": email.utils.formatdate(stat.st_mtime, usegmt=True),
            "ETag": f'"{stat.st_mtime_ns:x}-{size:x}"',
        }
        content_type = _MEDIA_TYPES.get(target.suffix.lower(), "application/octet-stream")
        byte_range = _parse_range(self.headers.get("Range"), size)
        if byte_range is None:
            start, end, status = 0, size - 1, HTTPStatus.OK
        else:
            start, end = byte_range
            status = HTTPStatus.PARTIAL_CONTENT
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = max(0, end - start + 1)
        self._send_head(status, content_type, length, headers)
        if head or length == 0:
            return
        with target.open("rb") as handle:
            handle.seek(start)
            remaining = length
            while remaining > 0:
                chunk = handle.read(min(_CHUNK_BYTES, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)
                self._sent += len(chunk)


def _is_url(href: str) -> bool:
    return href.startswith(("http://", "https://"))


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return the (first, last) byte of a single ``Range``, or None to send the whole file.

    A header with another unit or several ranges is ignored (whole file, as RFC 9110 allows).

    Raises:
        ApiError: 416 with ``Content-Range: bytes */size`` when the range is malformed or
            cannot be satisfied.
    """
    if not header:
        return None
    header = header.strip()
    if not header.startswith("bytes=") or "," in header:
        return None
    unsatisfiable = ApiError(
        HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
        f"range {header!r} cannot be served from a {size}-byte file",
        {"Content-Range": f"bytes */{size}"},
    )
    match = _RANGE_RE.match(header.replace(" ", ""))
    if match is None or (not match.group(1) and not match.group(2)):
        raise unsatisfiable
    first, last = match.group(1), match.group(2)
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise unsatisfiable
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise unsatisfiable
    return start, min(end, size - 1)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo STAC API until interrupted (SIGINT/SIGTERM).

    Returns:
        The exit status: 0 after a clean stop, 2 when the catalog is missing.
    """
    parser = argparse.ArgumentParser(
        prog="python -m include.demo.server", description="Serve a static STAC catalog as an API"
    )
    parser.add_argument("--root", type=Path, required=True, help="catalog folder")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0 = any)")
    parser.add_argument("--build", action="store_true", help="build the demo catalog if missing")
    parser.add_argument("--scenes", type=int, default=4, help="scenes to build (with --build)")
    parser.add_argument("--size-px", type=int, default=256, help="pixels per side (with --build)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (with --build)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    root: Path = args.root
    if not (root / "catalog.json").is_file():
        if not args.build:
            log.error("demo.server.no_catalog root=%s fix=run with --build", root)
            return 2
        from include.demo.build import build_demo_catalog

        build_demo_catalog(root, scenes=args.scenes, size_px=args.size_px, seed=args.seed)
    stop = threading.Event()

    def _request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    server = serve(root, args.port)
    try:
        stop.wait()
    finally:
        server.stop()
        log.info("demo.server.stop url=%s", server.url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
