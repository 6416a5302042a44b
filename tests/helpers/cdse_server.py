"""A loopback server that speaks CDSE: OData catalogue, identity (Keycloak) tokens, orders, zipper.

Use it in any test that needs a Copernicus Data Space Ecosystem to talk to::

    server = CdseServer()                      # starts on 127.0.0.1:<ephemeral> (or use `with`)
    server.add_s2_product(name, zip_bytes, footprint=..., cloud_pct=12.5)
    server.load_recorded_pages(realdata / "cdsetool/query/mock/sentinel_1")  # real S1 products
    driver = CdseODataDriver(url=server.odata_url, credentials=Credentials("alice", "s3cret"),
                             options={"token_url": server.token_url})
    ...
    server.close()

Endpoints (paths as CDSE has them):

- ``GET  /odata/v1/Products``: ``$filter`` (the subset CDSE documents and our driver uses:
  ``eq ne gt ge lt le and or not ( )``, ``Collection/Name``, ``Name``, ``Id``, ``Online``,
  ``ContentDate/Start|End``, ``ContentLength``, ``startswith/endswith/contains(Name,'..')``,
  ``Attributes/OData.CSC.<Type>Attribute/any(att:att/Name eq '..' and att/OData.CSC.<Type>
  Attribute/Value <op> <literal>)``, ``OData.CSC.Intersects(area=geography'SRID=4326;<WKT>')``),
  ``$top`` (default 20, above 1000 -> 400), ``$skip`` (above ``max_skip``, 10000 as at CDSE,
  -> 422, and no ``@odata.nextLink`` whose ``$skip`` would exceed it), ``$orderby``
  (``ContentDate/Start asc|desc``, ``Name``), ``$expand`` (``Attributes``, ``Assets``; comma
  lists), ``$count=true``; ``@odata.nextLink`` is an absolute URL back to this server with the
  same query and the next ``$skip``. A filter it cannot parse answers 400 ``{"detail": ...}``.
- ``GET  /odata/v1/Products(<Id>)``: the entity (404 if unknown). After an order, the
  ``order_polls``-th read of an offline product finds it online.
- ``GET  /odata/v1/Products(<Id>)/$value``: bearer token required (401 otherwise); ``redirect``
  decides the answer: ``"same-host"`` (default) 307 to ``/zipper/odata/v1/Products(<Id>)/$value``
  here, ``"other-host"`` 307 to the same path on ``http://localhost:<port>`` (another origin),
  None serves the bytes at once. The zipper path serves the zip with ``Range`` (206/416), and
  requires the token unless ``zipper_requires_auth`` is False (a public CDN). Offline -> 422.
- ``POST /odata/v1/Products(<Id>)/OData.CSC.Order``: bearer token required; an offline product
  gets an order (201, ``Status: queued``); ordering again answers 200 with the same order; an
  online product answers 200 ``Status: completed``.
- ``POST /auth/realms/CDSE/protocol/openid-connect/token``: form ``grant_type=password`` (checks
  ``username``/``password``/``client_id``; 401 ``invalid_grant`` otherwise) or
  ``grant_type=refresh_token`` (400 ``invalid_grant`` when unknown or expired). Tokens live
  ``access_ttl_s`` / ``refresh_ttl_s`` seconds by ``clock``.

Knobs: constructor arguments ``username``, ``password``, ``client_id``, ``access_ttl_s``,
``refresh_ttl_s``, ``order_polls``, ``redirect``, ``zipper_requires_auth``, ``clock`` (seconds;
pass a mutable fake clock to expire tokens); ``fail(kind, status, body, headers, times)`` queues
error answers for ``kind`` in ``search``, ``product``, ``value``, ``zipper``, ``token``, ``order``;
``truncate(after_bytes, times)`` cuts the next zipper answers mid-body; ``expire_tokens()``;
``set_online(id, bool)``. Observations: ``requests`` / ``requests_to(path)`` (inherited),
``grants`` (grant types asked, in order), ``orders`` (product ids ordered), ``value_path(id)`` and
``zipper_path(id)``.

Builders: ``s2_product_entity`` makes a product entity shaped like CDSE's (typed attributes,
``Footprint`` WKT and ``GeoFootprint``, MD5 and BLAKE3 ``Checksum``); ``safe_zip`` zips real SAFE
files under ``<name>.SAFE/``; ``mtd_footprint`` reads a product's footprint from its real
``MTD_MSIL*.xml``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlencode

from tests.helpers.http_server import LocalHttpServer, Reply, Request, serve_bytes

ODATA_PATH = "/odata/v1"
TOKEN_PATH = "/auth/realms/CDSE/protocol/openid-connect/token"  # noqa: S105 - a path
ZIPPER_PREFIX = "/zipper"
RECORDED_ORIGIN = "https://catalogue.dataspace.copernicus.eu/odata/v1"
FAULT_KINDS = ("search", "product", "value", "zipper", "token", "order")

_PRODUCT_PATH = re.compile(r"^/odata/v1/Products\(([^)/]+)\)(/\$value|/OData\.CSC\.Order)?$")
_ZIPPER_PATH = re.compile(r"^/zipper/odata/v1/Products\(([^)/]+)\)/\$value$")


class ODataError(ValueError):
    """A request the server refuses with ``status`` (400 unless told)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------------------------
# Entities


def _json_reply(
    document: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Reply:
    return Reply(
        status,
        json.dumps(document).encode(),
        {"Content-Type": "application/json", **dict(headers or {})},
    )


def _detail(status: int, message: str) -> Reply:
    return _json_reply({"detail": message}, status)


def _attribute(kind: str, name: str, value: Any) -> dict[str, Any]:
    value_type = {
        "StringAttribute": "String",
        "DoubleAttribute": "Double",
        "IntegerAttribute": "Integer",
        "DateTimeOffsetAttribute": "DateTimeOffset",
        "BooleanAttribute": "Boolean",
    }[kind]
    return {
        "@odata.type": f"#OData.CSC.{kind}",
        "Name": name,
        "Value": value,
        "ValueType": value_type,
    }


def blake3_hex(data: bytes) -> str:
    """BLAKE3-256 of ``data`` (the ``blake3`` package is a runtime dependency)."""
    import blake3

    return str(blake3.blake3(data).hexdigest())


def _wkt(geometry: Mapping[str, Any]) -> str:
    from shapely.geometry import shape

    return shape(geometry).wkt


def s2_product_entity(
    name: str,
    content: bytes,
    *,
    footprint: Mapping[str, Any],
    cloud_pct: float | None = 10.0,
    online: bool = True,
    product_id: str | None = None,
    checksums: Iterable[str] = ("MD5", "BLAKE3"),
    wrong_checksums: Iterable[str] = (),
    publication: datetime | None = None,
) -> dict[str, Any]:
    """Return a CDSE-shaped product entity for a Sentinel-2 product ``name`` (with ``.SAFE``).

    ``checksums`` lists the algorithms given; those in ``wrong_checksums`` get a wrong value.
    """
    stem = name.removesuffix(".SAFE")
    parts = stem.split("_")
    mission, level, sensing, baseline, orbit, tile = (
        parts[0],
        parts[1],
        parts[2],
        parts[3],
        parts[4],
        parts[5],
    )
    start = datetime.strptime(sensing, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    stamp = start.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
    end_stamp = (start + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
    values = {"MD5": hashlib.md5(content).hexdigest(), "BLAKE3": blake3_hex(content)}  # noqa: S324
    wrong = set(wrong_checksums)
    checksum_list = [
        {
            "Value": ("0" * len(values[algo])) if algo in wrong else values[algo],
            "Algorithm": algo,
            "ChecksumDate": stamp,
        }
        for algo in checksums
    ]
    product_type = "S2MSI1C" if level == "MSIL1C" else "S2MSI2A"
    attributes = [
        _attribute("StringAttribute", "origin", "ESA"),
        _attribute("StringAttribute", "productType", product_type),
        _attribute("StringAttribute", "tileId", tile.removeprefix("T")),
        _attribute("StringAttribute", "platformShortName", "SENTINEL-2"),
        _attribute("StringAttribute", "platformSerialIdentifier", mission[-1]),
        _attribute("StringAttribute", "instrumentShortName", "MSI"),
        _attribute("StringAttribute", "processingLevel", "S2MSI" + level[-2:]),
        _attribute("StringAttribute", "processingBaseline", f"{baseline[1:3]}.{baseline[3:]}"),
        _attribute("IntegerAttribute", "relativeOrbitNumber", int(orbit[1:])),
        _attribute("DateTimeOffsetAttribute", "beginningDateTime", stamp),
        _attribute("DateTimeOffsetAttribute", "endingDateTime", end_stamp),
    ]
    if cloud_pct is not None:
        attributes.append(_attribute("DoubleAttribute", "cloudCover", cloud_pct))
    published = (publication or start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    identifier = product_id or str(uuid.uuid5(uuid.NAMESPACE_URL, name))
    return {
        "@odata.mediaContentType": "application/octet-stream",
        "Id": identifier,
        "Name": name,
        "ContentType": "application/octet-stream",
        "ContentLength": len(content),
        "OriginDate": published,
        "PublicationDate": published,
        "ModificationDate": published,
        "Online": online,
        "EvictionDate": "9999-12-31T23:59:59.999999Z",
        "S3Path": f"/eodata/Sentinel-2/MSI/{level[3:]}/{start:%Y/%m/%d}/{name}",
        "Checksum": checksum_list,
        "ContentDate": {"Start": stamp, "End": end_stamp},
        "Footprint": f"geography'SRID=4326;{_wkt(footprint)}'",
        "GeoFootprint": dict(footprint),
        "Attributes": attributes,
    }


def safe_zip(name: str, files: Mapping[str, Path | bytes]) -> bytes:
    """Zip ``files`` (member path inside the SAFE -> real file or bytes) under ``<name>.SAFE/``."""
    folder = name if name.endswith(".SAFE") else name + ".SAFE"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, source in sorted(files.items()):
            data = source if isinstance(source, bytes) else Path(source).read_bytes()
            info = zipfile.ZipInfo(f"{folder}/{member}", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def mtd_footprint(mtd: Path) -> dict[str, Any]:
    """Return the GeoJSON polygon of ``Product_Footprint``'s ``EXT_POS_LIST`` (lat lon pairs)."""
    text = Path(mtd).read_text(encoding="utf-8")
    match = re.search(r"<EXT_POS_LIST>([^<]+)</EXT_POS_LIST>", text)
    if match is None:
        raise ValueError(f"{mtd} has no EXT_POS_LIST")
    numbers = [float(v) for v in match.group(1).split()]
    ring = [[numbers[i + 1], numbers[i]] for i in range(0, len(numbers) - 1, 2)]
    if ring[0] != ring[-1]:
        ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


# --------------------------------------------------------------------------------------------
# $filter: a small recursive-descent parser for the OData subset CDSE documents


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<geo>geography'(?:[^']|'')*')
    | (?P<str>'(?:[^']|'')*')
    | (?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z)
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<punct>[(),:=])
    | (?P<name>[A-Za-z_][A-Za-z0-9_./-]*)
    )""",
    re.VERBOSE,
)
_OPERATORS = {"eq", "ne", "gt", "ge", "lt", "le"}

Predicate = Callable[[dict[str, Any]], bool]
Operand = Callable[[dict[str, Any]], Any]


def _parse_time(value: str) -> datetime:
    text = value.strip().replace("Z", "+00:00")
    text = re.sub(r"\.(\d+)", lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    return datetime.fromisoformat(text).astimezone(UTC)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ODataError(f"cannot parse $filter near {text[position : position + 30]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        position = match.end()
    return out


def _compare(op: str, left: Any, right: Any) -> bool:
    if isinstance(left, datetime) and isinstance(right, str):
        right = _parse_time(right)
    if isinstance(right, datetime) and isinstance(left, str):
        left = _parse_time(left)
    if left is None or right is None:
        return op == "eq" and left is right or op == "ne" and left is not right
    try:
        return {
            "eq": left == right,
            "ne": left != right,
            "gt": left > right,
            "ge": left >= right,
            "lt": left < right,
            "le": left <= right,
        }[op]
    except TypeError as err:
        raise ODataError(f"cannot compare {left!r} with {right!r}") from err


class _Parser:
    def __init__(self, text: str) -> None:
        self.items = _tokens(text)
        self.index = 0

    def peek(self) -> tuple[str, str] | None:
        return self.items[self.index] if self.index < len(self.items) else None

    def take(self, kind: str | None = None, value: str | None = None) -> tuple[str, str]:
        item = self.peek()
        if item is None or (kind and item[0] != kind) or (value and item[1] != value):
            raise ODataError(f"$filter: expected {value or kind}, got {item}")
        self.index += 1
        return item

    def is_word(self, word: str) -> bool:
        item = self.peek()
        return item is not None and item[0] == "name" and item[1] == word

    def parse(self) -> Predicate:
        predicate = self.parse_or(frozenset())
        if self.peek() is not None:
            raise ODataError(f"$filter: unexpected {self.peek()}")
        return predicate

    def parse_or(self, variables: frozenset[str]) -> Predicate:
        parts = [self.parse_and(variables)]
        while self.is_word("or"):
            self.take()
            parts.append(self.parse_and(variables))
        return parts[0] if len(parts) == 1 else (lambda ctx: any(p(ctx) for p in parts))

    def parse_and(self, variables: frozenset[str]) -> Predicate:
        parts = [self.parse_not(variables)]
        while self.is_word("and"):
            self.take()
            parts.append(self.parse_not(variables))
        return parts[0] if len(parts) == 1 else (lambda ctx: all(p(ctx) for p in parts))

    def parse_not(self, variables: frozenset[str]) -> Predicate:
        if self.is_word("not"):
            self.take()
            inner = self.parse_not(variables)
            return lambda ctx: not inner(ctx)
        return self.parse_primary(variables)

    def parse_primary(self, variables: frozenset[str]) -> Predicate:
        item = self.peek()
        if item == ("punct", "("):
            self.take()
            inner = self.parse_or(variables)
            self.take("punct", ")")
            return inner
        name = self.take("name")[1]
        if self.peek() == ("punct", "("):
            return self.parse_call(name, variables)
        left = self.path(name, variables)
        operator = self.take("name")[1]
        if operator not in _OPERATORS:
            raise ODataError(f"$filter: unknown operator {operator!r}")
        right = self.operand(variables)
        return lambda ctx: _compare(operator, left(ctx), right(ctx))

    def parse_call(self, name: str, variables: frozenset[str]) -> Predicate:
        self.take("punct", "(")
        if name == "OData.CSC.Intersects":
            self.take("name", "area")
            self.take("punct", "=")
            literal = self.take("geo")[1]
            self.take("punct", ")")
            return _intersects(literal)
        if name in ("startswith", "endswith", "contains"):
            first = self.operand(variables)
            self.take("punct", ",")
            second = self.operand(variables)
            self.take("punct", ")")
            method = {
                "startswith": str.startswith,
                "endswith": str.endswith,
                "contains": str.__contains__,
            }[name]
            return lambda ctx: method(str(first(ctx)), str(second(ctx)))
        match = re.fullmatch(r"Attributes/OData\.CSC\.(\w+Attribute)/any", name)
        if match is None:
            raise ODataError(f"$filter: unknown function {name!r}")
        kind = match.group(1)
        variable = self.take("name")[1]
        self.take("punct", ":")
        inner = self.parse_or(variables | {variable})
        self.take("punct", ")")

        def any_attribute(ctx: dict[str, Any]) -> bool:
            for attribute in ctx["attributes"]:
                if attribute.get("@odata.type") != f"#OData.CSC.{kind}":
                    continue
                if inner({**ctx, "vars": {**ctx.get("vars", {}), variable: attribute}}):
                    return True
            return False

        return any_attribute

    def operand(self, variables: frozenset[str]) -> Operand:
        kind, value = self.take()
        if kind == "str":
            text = value[1:-1].replace("''", "'")
            return lambda ctx: text
        if kind == "dt":
            moment = _parse_time(value)
            return lambda ctx: moment
        if kind == "num":
            number = float(value)
            return lambda ctx: number
        if kind == "name" and value in ("true", "false", "null"):
            constant = {"true": True, "false": False, "null": None}[value]
            return lambda ctx: constant
        if kind == "name":
            return self.path(value, variables)
        raise ODataError(f"$filter: unexpected {value!r}")

    @staticmethod
    def path(name: str, variables: frozenset[str]) -> Operand:
        head, _, rest = name.partition("/")
        if head in variables:
            if rest == "Name":
                return lambda ctx: ctx["vars"][head].get("Name")
            if re.fullmatch(r"OData\.CSC\.\w+Attribute/Value", rest):
                return lambda ctx: ctx["vars"][head].get("Value")
            raise ODataError(f"$filter: unknown attribute path {name!r}")
        if name == "Collection/Name":
            return lambda ctx: ctx["collection"]
        if name in ("ContentDate/Start", "ContentDate/End"):
            key = name.split("/")[1]
            return lambda ctx: _parse_time(ctx["product"]["ContentDate"][key])
        if name in (
            "Name",
            "Id",
            "Online",
            "ContentLength",
            "PublicationDate",
            "OriginDate",
            "ModificationDate",
        ):
            return lambda ctx: ctx["product"].get(name)
        raise ODataError(f"$filter: unknown property {name!r}")


_SHAPES: dict[int, tuple[Mapping[str, Any], Any]] = {}
"""Footprint shapes by footprint dict (kept with it, so an id is never reused): a search over
tens of thousands of products builds each shape once."""


def _intersects(literal: str) -> Predicate:
    import shapely.wkt
    from shapely.geometry import shape

    text = literal[len("geography'") : -1].replace("''", "'")
    srid, _, wkt = text.partition(";")
    if srid.upper() != "SRID=4326":
        raise ODataError("only SRID=4326 areas are supported")
    try:
        area = shapely.wkt.loads(wkt)
    except Exception as err:  # noqa: BLE001 - any WKT error is a 400
        raise ODataError(f"invalid WKT in area: {err}") from err

    def check(ctx: dict[str, Any]) -> bool:
        product = ctx["product"]
        footprint = product.get("GeoFootprint")
        if isinstance(footprint, dict):
            cached = _SHAPES.get(id(footprint))
            if cached is None or cached[0] is not footprint:
                cached = _SHAPES[id(footprint)] = (footprint, shape(footprint))
            return bool(area.intersects(cached[1]))
        raw = product.get("Footprint")
        if isinstance(raw, str) and ";" in raw:
            return bool(area.intersects(shapely.wkt.loads(raw.split(";", 1)[1].rstrip("'"))))
        return False

    return check


def parse_filter(text: str) -> Predicate:
    """Compile a ``$filter`` into a predicate over ``{"product", "attributes", "collection"}``.

    Raises:
        ODataError: for syntax this server (and CDSE's documented subset) does not know.
    """
    return _Parser(text).parse()


# --------------------------------------------------------------------------------------------
# The server


@dataclass
class StoredProduct:
    """One product: its entity (without Attributes/Assets), those, its collection and bytes."""

    entity: dict[str, Any]
    attributes: list[dict[str, Any]]
    assets: list[dict[str, Any]]
    collection: str
    content: bytes | None
    polls_until_online: int | None = None


@dataclass
class _Order:
    id: str
    product_id: str
    submitted: str
    status: str = "queued"


@dataclass
class _Faults:
    queued: dict[str, list[Reply]] = field(default_factory=lambda: {k: [] for k in FAULT_KINDS})
    truncations: list[int] = field(default_factory=list)


def _collection_of(name: str) -> str:
    prefix = name[:2].upper()
    return {"S1": "SENTINEL-1", "S2": "SENTINEL-2", "S3": "SENTINEL-3", "S5": "SENTINEL-5P"}.get(
        prefix, "UNKNOWN"
    )


class CdseServer(LocalHttpServer):
    """A CDSE look-alike on 127.0.0.1 (see the module docstring for endpoints and knobs)."""

    def __init__(
        self,
        *,
        username: str = "alice",
        password: str = "s3cret",  # noqa: S107 - a test account
        client_id: str = "cdse-public",
        access_ttl_s: float = 600.0,
        refresh_ttl_s: float = 3600.0,
        order_polls: int = 2,
        redirect: str | None = "same-host",
        zipper_requires_auth: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.username = username
        self.password = password
        self.client_id = client_id
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s
        self.order_polls = order_polls
        self.max_skip = 10000
        """CDSE's largest ``$skip``; a test lowers it to reach the limit with a few products."""
        self.on_search: Callable[[Request], None] | None = None
        """Called with each search request before it is answered (a test looks at its side)."""
        self.redirect = redirect
        self.zipper_requires_auth = zipper_requires_auth
        self.clock = clock
        self.products: dict[str, StoredProduct] = {}
        self.cache_matches_from = 5000
        """With this many products or more, the matches of the last query are kept for its
        next pages (a 25,000-product search stays fast); fewer are filtered on every page."""
        self._matches: dict[tuple[str, str, int], list[StoredProduct]] = {}
        self.grants: list[str] = []
        self.orders: list[str] = []
        self._orders: dict[str, _Order] = {}
        self._access: dict[str, float] = {}
        self._refresh: dict[str, float] = {}
        self._faults = _Faults()
        self._state = threading.Lock()
        port = self.url.rsplit(":", 1)[1]
        self.other_origin = f"http://localhost:{port}"

    def __enter__(self) -> CdseServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- URLs -----------------------------------------------------------------------------

    @property
    def odata_url(self) -> str:
        """The catalogue root, as ``catalogs.yaml``'s ``url`` (``.../odata/v1``)."""
        return self.url + ODATA_PATH

    @property
    def token_url(self) -> str:
        """The identity service's token endpoint."""
        return self.url + TOKEN_PATH

    @staticmethod
    def value_path(product_id: str) -> str:
        """The catalogue ``$value`` path of a product."""
        return f"{ODATA_PATH}/Products({product_id})/$value"

    @staticmethod
    def zipper_path(product_id: str) -> str:
        """The zipper path ``$value`` redirects to."""
        return f"{ZIPPER_PREFIX}{ODATA_PATH}/Products({product_id})/$value"

    # -- content ----------------------------------------------------------------------------

    def add_product(
        self,
        entity: Mapping[str, Any],
        *,
        content: bytes | None = None,
        collection: str | None = None,
        assets: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Serve ``entity`` (a CDSE product; its ``Attributes`` are served when expanded)."""
        body = {k: v for k, v in entity.items() if k not in ("Attributes", "Assets")}
        stored = StoredProduct(
            entity=body,
            attributes=list(entity.get("Attributes") or []),
            assets=list(assets if assets is not None else entity.get("Assets") or []),
            collection=collection or _collection_of(str(entity.get("Name", ""))),
            content=content,
        )
        with self._state:
            self.products[str(body["Id"])] = stored
        return dict(entity)

    def add_s2_product(self, name: str, content: bytes, **kwargs: Any) -> dict[str, Any]:
        """Build (``s2_product_entity``) and serve a Sentinel-2 product with its zip bytes."""
        quicklook = kwargs.pop("quicklook", False)
        entity = s2_product_entity(name, content, **kwargs)
        assets = None
        if quicklook:
            asset_id = str(uuid.uuid5(uuid.NAMESPACE_URL, name + "/ql"))
            assets = [
                {
                    "Type": "QUICKLOOK",
                    "Id": asset_id,
                    "DownloadLink": f"{self.odata_url}/Assets({asset_id})/$value",
                    "S3Path": f"/eodata/ql/{name}-ql.jpg",
                }
            ]
        return self.add_product(entity, content=content, collection="SENTINEL-2", assets=assets)

    def load_recorded_pages(self, folder: Path, pattern: str = "odata_page_*.json") -> list[str]:
        """Serve every product of the recorded OData pages in ``folder``; return their Ids."""
        ids: list[str] = []
        for page in sorted(Path(folder).glob(pattern)):
            for entity in json.loads(page.read_text(encoding="utf-8"))["value"]:
                self.add_product(entity)
                ids.append(str(entity["Id"]))
        return ids

    def set_online(self, product_id: str, online: bool) -> None:
        """Move a product in or out of the long-term archive."""
        with self._state:
            self.products[product_id].entity["Online"] = online

    # -- faults -----------------------------------------------------------------------------

    def fail(
        self,
        kind: str,
        status: int,
        body: str | bytes | Mapping[str, Any] = b"",
        headers: Mapping[str, str] | None = None,
        *,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests of ``kind`` with ``status`` (and body, headers)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}")
        if isinstance(body, Mapping):
            raw = json.dumps(body).encode()
        else:
            raw = body.encode() if isinstance(body, str) else body
        with self._state:
            for _ in range(times):
                self._faults.queued[kind].append(Reply(status, raw, dict(headers or {})))

    def truncate(self, after_bytes: int, *, times: int = 1) -> None:
        """Cut the next ``times`` zip answers after ``after_bytes`` body bytes."""
        with self._state:
            self._faults.truncations.extend([after_bytes] * times)

    def expire_tokens(self) -> None:
        """Make every issued access token invalid (refresh tokens keep working)."""
        with self._state:
            self._access.clear()

    def _fault(self, kind: str) -> Reply | None:
        with self._state:
            queued = self._faults.queued[kind]
            return queued.pop(0) if queued else None

    # -- dispatch ---------------------------------------------------------------------------

    def record(self, request: Request) -> Callable[[Request], Reply] | None:
        """Route every request here (exact routes added with ``route`` still win)."""
        return super().record(request) or self._dispatch

    def _dispatch(self, request: Request) -> Reply:
        try:
            return self._answer(request)
        except ODataError as err:
            return _detail(err.status, str(err))

    def _answer(self, request: Request) -> Reply:
        path = request.path
        if path == TOKEN_PATH and request.method == "POST":
            return self._fault("token") or self._token(request)
        if path == f"{ODATA_PATH}/Products" and request.method == "GET":
            if self.on_search is not None:
                self.on_search(request)
            return self._fault("search") or self._search(request)
        zipper = _ZIPPER_PATH.match(path)
        if zipper and request.method in ("GET", "HEAD"):
            return self._fault("zipper") or self._zipper(request, zipper.group(1))
        match = _PRODUCT_PATH.match(path)
        if match is None:
            return _detail(404, f"no such resource {path}")
        product_id, suffix = match.group(1), match.group(2)
        if suffix is None and request.method == "GET":
            return self._fault("product") or self._product(product_id)
        if suffix == "/$value" and request.method in ("GET", "HEAD"):
            return self._fault("value") or self._value(request, product_id)
        if suffix == "/OData.CSC.Order" and request.method == "POST":
            return self._fault("order") or self._order(request, product_id)
        return _detail(405, f"{request.method} is not allowed on {path}")

    # -- identity ---------------------------------------------------------------------------

    def _token(self, request: Request) -> Reply:
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8")).items()}
        grant = form.get("grant_type", "")
        with self._state:
            self.grants.append(grant)
        if form.get("client_id") != self.client_id:
            return _json_reply(
                {
                    "error": "invalid_client",
                    "error_description": "Invalid client or Invalid client credentials",
                },
                401,
            )
        now = self.clock()
        if grant == "password":
            if form.get("username") != self.username or form.get("password") != self.password:
                return _json_reply(
                    {"error": "invalid_grant", "error_description": "Invalid user credentials"}, 401
                )
        elif grant == "refresh_token":
            with self._state:
                expiry = self._refresh.pop(form.get("refresh_token", ""), None)
            if expiry is None or expiry <= now:
                return _json_reply(
                    {"error": "invalid_grant", "error_description": "Token is not active"}, 400
                )
        else:
            return _json_reply({"error": "unsupported_grant_type"}, 400)
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        with self._state:
            self._access[access] = now + self.access_ttl_s
            self._refresh[refresh] = now + self.refresh_ttl_s
        return _json_reply(
            {
                "access_token": access,
                "expires_in": self.access_ttl_s,
                "refresh_expires_in": self.refresh_ttl_s,
                "refresh_token": refresh,
                "token_type": "Bearer",
                "not-before-policy": 0,
                "session_state": str(uuid.uuid4()),
                "scope": "AUDIENCE_PUBLIC openid email profile user-context",
            }
        )

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return False
        with self._state:
            expiry = self._access.get(header[len("Bearer ") :])
        return expiry is not None and expiry > self.clock()

    # -- catalogue --------------------------------------------------------------------------

    def _view(self, stored: StoredProduct, expand: set[str]) -> dict[str, Any]:
        view = dict(stored.entity)
        if "Attributes" in expand:
            view["Attributes"] = stored.attributes
        if "Assets" in expand:
            view["Assets"] = stored.assets
        return view

    def _search(self, request: Request) -> Reply:
        params = {k: v[0] for k, v in parse_qs(request.query, keep_blank_values=True).items()}
        predicate = parse_filter(params["$filter"]) if params.get("$filter") else None
        top = int(params.get("$top", "20"))
        skip = int(params.get("$skip", "0"))
        if not 0 <= top <= 1000:
            raise ODataError("$top must be between 0 and 1000")
        if not 0 <= skip <= self.max_skip:
            raise ODataError(f"$skip must be between 0 and {self.max_skip}", status=422)
        expand = {part.strip() for part in params.get("$expand", "").split(",") if part.strip()}
        if expand - {"Attributes", "Assets"}:
            raise ODataError(f"cannot $expand {sorted(expand - {'Attributes', 'Assets'})}")
        with self._state:
            stored = list(self.products.values())
        cache_key = (params.get("$filter", ""), params.get("$orderby", ""), len(stored))
        cached = self._matches.get(cache_key)
        if cached is not None:
            return self._page(params, cached, skip, top, expand)
        matches = [
            s
            for s in stored
            if predicate is None
            or predicate(
                {"product": s.entity, "attributes": s.attributes, "collection": s.collection}
            )
        ]
        order = params.get("$orderby", "")
        if order:
            key, _, direction = order.partition(" ")
            if key == "ContentDate/Start":
                matches.sort(
                    key=lambda s: _parse_time(s.entity["ContentDate"]["Start"]),
                    reverse=direction.strip() == "desc",
                )
            elif key == "Name":
                matches.sort(key=lambda s: s.entity["Name"], reverse=direction.strip() == "desc")
            else:
                raise ODataError(f"cannot $orderby {key!r}")
        if len(stored) >= self.cache_matches_from:
            if len(self._matches) >= 8:  # the pages of a few queries at once ask them again
                self._matches.pop(next(iter(self._matches)))
            self._matches[cache_key] = matches
        return self._page(params, matches, skip, top, expand)

    def _page(
        self,
        params: dict[str, str],
        matches: list[StoredProduct],
        skip: int,
        top: int,
        expand: set[str],
    ) -> Reply:
        page = matches[skip : skip + top]
        context = "$metadata#Products" + ("(Attributes())" if "Attributes" in expand else "")
        document: dict[str, Any] = {"@odata.context": context}
        if params.get("$count") == "true":
            document["@odata.count"] = len(matches)
        document["value"] = [self._view(s, expand) for s in page]
        if skip + top < len(matches) and top > 0 and skip + top <= self.max_skip:
            following = dict(params)
            following["$skip"] = str(skip + top)
            document["@odata.nextLink"] = f"{self.odata_url}/Products?" + urlencode(
                following, quote_via=quote_plus
            )
        return _json_reply(document)

    def _stored(self, product_id: str) -> StoredProduct | None:
        with self._state:
            return self.products.get(product_id)

    def _product(self, product_id: str) -> Reply:
        stored = self._stored(product_id)
        if stored is None:
            return _detail(404, f"Product {product_id} not found")
        with self._state:
            if stored.polls_until_online is not None:
                stored.polls_until_online -= 1
                if stored.polls_until_online <= 0:
                    stored.entity["Online"] = True
                    stored.polls_until_online = None
                    for order in self._orders.values():
                        if order.product_id == product_id:
                            order.status = "completed"
            view = dict(stored.entity)
        return _json_reply(view)

    def _value(self, request: Request, product_id: str) -> Reply:
        if not self._authorized(request):
            return _detail(401, "Expired signature or invalid token")
        stored = self._stored(product_id)
        if stored is None:
            return _detail(404, f"Product {product_id} not found")
        if stored.entity.get("Online") is False:
            return _detail(422, f"Product {product_id} is not online; order it first")
        if self.redirect == "same-host":
            return Reply(307, b"", {"Location": self.url + self.zipper_path(product_id)})
        if self.redirect == "other-host":
            return Reply(307, b"", {"Location": self.other_origin + self.zipper_path(product_id)})
        return self._bytes(request, stored)

    def _zipper(self, request: Request, product_id: str) -> Reply:
        if self.zipper_requires_auth and not self._authorized(request):
            return _detail(401, "Expired signature or invalid token")
        stored = self._stored(product_id)
        if stored is None or stored.content is None:
            return _detail(404, f"Product {product_id} not found")
        return self._bytes(request, stored)

    def _bytes(self, request: Request, stored: StoredProduct) -> Reply:
        if stored.content is None:
            return _detail(404, "no content for this product")
        with self._state:
            cut = self._faults.truncations.pop(0) if self._faults.truncations else None
        reply = serve_bytes(stored.content, content_type="application/zip")(request)
        if cut is not None:
            reply.drop_after = cut
        return reply

    def _order(self, request: Request, product_id: str) -> Reply:
        if not self._authorized(request):
            return _detail(401, "Expired signature or invalid token")
        stored = self._stored(product_id)
        if stored is None:
            return _detail(404, f"Product {product_id} not found")
        with self._state:
            self.orders.append(product_id)
            existing = next((o for o in self._orders.values() if o.product_id == product_id), None)
            online = stored.entity.get("Online") is not False
            if existing is None:
                existing = _Order(
                    id=str(uuid.uuid4()),
                    product_id=product_id,
                    submitted=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    status="completed" if online else "queued",
                )
                self._orders[existing.id] = existing
                created = True
                if not online:
                    stored.polls_until_online = self.order_polls
            else:
                created = False
            document = {
                "@odata.context": "$metadata#Order/$entity",
                "Id": existing.id,
                "Status": existing.status,
                "StatusMessage": f"request is {existing.status}",
                "SubmissionDate": existing.submitted,
            }
        return _json_reply(document, 201 if created and not online else 200)


__all__ = [
    "FAULT_KINDS",
    "ODATA_PATH",
    "RECORDED_ORIGIN",
    "TOKEN_PATH",
    "CdseServer",
    "ODataError",
    "blake3_hex",
    "mtd_footprint",
    "parse_filter",
    "s2_product_entity",
    "safe_zip",
]
