"""A loopback USGS M2M JSON API (``api/json/stable``) for tests, fed with real recordings.

It speaks the protocol the driver uses: ``login-token``, ``logout``, ``dataset-filters``,
``scene-search`` (mbr/geojson spatial filter, acquisition dates, cloud cover, WRS path/row
metadata filter, ``startingNumber``/``maxResults`` paging; like M2M it lists no more than
``max_results`` scenes of one search, 50,000, while ``totalHits`` counts them all, and compares
acquisition dates only), ``scene-metadata``,
``download-options``, ``download-request``, ``download-retrieve`` (a download is *preparing* for
``prepare_polls`` retrieves, then *available*) and the file itself (with Range support).

Every answer is shaped from a real document: the envelopes and records of
``kapadia-usgs/*.json`` (recorded M2M answers) and ``usgs-m2m-docs/*`` (the M2M reference's
samples). Scenes are made from real Landsat MTL files (eo-datasets, stactools-landsat); their
Product Bundle is a tar the server builds from the MTL and band files found beside it.

Faults: ``server.fault("scene-search", http_error(500))`` answers the next call of that endpoint
with the given reply (``times`` for more), before the normal answer resumes.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
import tarfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tests.helpers.http_server import LocalHttpServer, Reply, Request, serve_bytes

API_PATH = "/api/api/json/stable"
MAX_RESULTS = 50_000
"""M2M's reference: "a 50,000 scene limit for the number of results that are returned"."""
SERVED_DATASETS = (
    "landsat_ot_c2_l1",
    "landsat_ot_c2_l2",
    "landsat_etm_c2_l1",
    "landsat_etm_c2_l2",
    "landsat_tm_c2_l1",
    "landsat_tm_c2_l2",
    "landsat_mss_c2_l1",
)
"""Datasets answered without scenes (M2M serves many more: MSS here stands for them)."""
INVALID_DATASET_MESSAGE = "An invalid dataset has been provided"
"""M2M's ``errorMessage`` beside ``errorCode: DATASET_INVALID`` for a name it does not know."""
USERNAME = "eros-user"
APP_TOKEN = "m2m-application-token-0123456789"  # noqa: S105 - a test token


# --------------------------------------------------------------------------------------------
# Real documents


def _load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _docs_download_options(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The docs' download-options sample (it elides entries with ``...``) and its checksum list."""
    text = path.read_text(encoding="utf-8")
    body = text.split("Response:", 1)[1].split("If available checksum", 1)[0]
    body = "\n".join(line for line in body.splitlines() if line.strip() != "...")
    body = re.sub(r",(\s*[\]}])", r"\1", body)
    checksum = "{" + text.split("Sample Format:", 1)[1].strip() + "}"
    checksum = re.sub(r",(\s*[\]}])", r"\1", checksum)
    return json.loads(body), json.loads(checksum)["checksum"]


def parse_mtl(text: str) -> dict[str, str]:
    """First value of every ``KEY = value`` of an ODL MTL file (quotes removed)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(" = ")
        if sep and key not in values and key not in ("GROUP", "END_GROUP"):
            values[key] = value.strip().strip('"')
    return values


@dataclass
class M2MScene:
    """One scene the server knows, made from a real MTL."""

    dataset: str
    display_id: str
    entity_id: str
    acquired: datetime
    cloud_pct: float
    path: int
    row: int
    corners: list[tuple[float, float]]
    """(lon, lat) of UL, UR, LR, LL."""
    published: str
    archive: bytes = b""
    prepare_polls: int = 0
    """download-retrieve calls that still answer *preparing* after a download-request."""
    available: bool = True

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        lons = [c[0] for c in self.corners]
        lats = [c[1] for c in self.corners]
        return min(lons), min(lats), max(lons), max(lats)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.archive).hexdigest()


def build_bundle(files: Iterable[Path]) -> bytes:
    """A Landsat Product Bundle: an uncompressed tar of the given files, flat."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(files):
            archive.add(path, arcname=path.name)
    return buffer.getvalue()


def scene_from_mtl(mtl_path: Path, dataset: str, *, bundle_files: Iterable[Path] = ()) -> M2MScene:
    """A scene from a real MTL.txt; its bundle holds the MTL and ``bundle_files``."""
    mtl = parse_mtl(mtl_path.read_text(encoding="utf-8"))
    when = datetime.fromisoformat(
        f"{mtl['DATE_ACQUIRED']}T{mtl['SCENE_CENTER_TIME'].rstrip('Z')[:15]}"
    ).replace(tzinfo=UTC)
    corners = [
        (float(mtl[f"CORNER_{c}_LON_PRODUCT"]), float(mtl[f"CORNER_{c}_LAT_PRODUCT"]))
        for c in ("UL", "UR", "LR", "LL")
    ]
    return M2MScene(
        dataset=dataset,
        display_id=mtl["LANDSAT_PRODUCT_ID"],
        entity_id=mtl["LANDSAT_SCENE_ID"],
        acquired=when,
        cloud_pct=float(mtl["CLOUD_COVER"]),
        path=int(mtl["WRS_PATH"]),
        row=int(mtl["WRS_ROW"]),
        corners=corners,
        published=mtl["DATE_PRODUCT_GENERATED"].replace("T", " ").rstrip("Z"),
        archive=build_bundle([mtl_path, *bundle_files]),
    )


def real_scenes(realdata: Path) -> list[M2MScene]:
    """Scenes of the real MTLs: two Collection 2 Level-1 and two Level-2 Landsat 8 scenes."""
    l1 = realdata / "eo-datasets" / "LC08_L1TP_090084_20160121_20200907_02_T1"
    l1_bands = [p for p in l1.glob("*.TIF")]
    l1gt = realdata / "eo-datasets" / "LC08_L1GT_089074_20220506_20220512_02_T2"
    l2sp = realdata / "stactools-landsat" / "data-files" / "assets3"
    l2sr = realdata / "stactools-landsat" / "data-files" / "oli-tirs"
    return [
        scene_from_mtl(l1 / f"{l1.name}_MTL.txt", "landsat_ot_c2_l1", bundle_files=l1_bands),
        scene_from_mtl(
            l1gt / f"{l1gt.name}_MTL.txt",
            "landsat_ot_c2_l1",
            bundle_files=[l1gt / f"{l1gt.name}_ANG.txt"],
        ),
        scene_from_mtl(
            l2sp / "LC08_L2SP_008059_20191201_20200825_02_T1_MTL.txt",
            "landsat_ot_c2_l2",
            bundle_files=[l2sp / "LC08_L2SP_008059_20191201_20200825_02_T1_MTL.xml"],
        ),
        scene_from_mtl(
            l2sr / "LC08_L2SR_084024_20160111_20201016_02_T1_MTL.txt",
            "landsat_ot_c2_l2",
            bundle_files=[l2sr / "LC08_L2SR_084024_20160111_20201016_02_T1_MTL.xml"],
        ),
    ]


# --------------------------------------------------------------------------------------------
# Replies


def m2m_reply(
    data: Any,
    *,
    error_code: str | None = None,
    message: str = "",
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Reply:
    """An M2M envelope (``requestId``, ``version``, ``data``, ``errorCode``, ``errorMessage``)."""
    body = {
        "requestId": 225951215,
        "version": "stable",
        "sessionId": 48213211,
        "data": data,
        "errorCode": error_code,
        "errorMessage": message or None,
    }
    return Reply(
        status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}
    )


def m2m_error(
    code: str, message: str, *, status: int = 200, headers: dict[str, str] | None = None
) -> Callable[[Request], Reply]:
    """Answer an M2M error code (with HTTP ``status``)."""
    return lambda request: m2m_reply(
        None, error_code=code, message=message, status=status, headers=headers
    )


def http_error(
    status: int,
    body: bytes = b"<html>Service Unavailable</html>",
    headers: dict[str, str] | None = None,
) -> Callable[[Request], Reply]:
    """Answer a bare HTTP error (no M2M envelope), as a proxy in front of M2M would."""
    return lambda request: Reply(status, body, {"Content-Type": "text/html", **(headers or {})})


def truncated(document: Any, keep_bytes: int = 40) -> Callable[[Request], Reply]:
    """Announce the whole JSON document but cut the connection after ``keep_bytes``."""
    raw = json.dumps(document).encode()
    return lambda request: Reply(
        200, raw, {"Content-Type": "application/json"}, drop_after=keep_bytes
    )


# --------------------------------------------------------------------------------------------
# The server


@dataclass
class _Download:
    scene: M2MScene
    label: str
    download_id: int
    polls_left: int


@dataclass
class M2MServer:
    """The fake M2M API on a loopback port; ``url`` is what ``catalog_args.url`` takes."""

    realdata: Path
    scenes: list[M2MScene] = field(default_factory=list)
    http: LocalHttpServer = field(default_factory=LocalHttpServer)
    max_results: int = MAX_RESULTS
    """The most scenes one scene-search lists (``totalHits`` still counts every match)."""

    def __post_init__(self) -> None:
        kapadia = self.realdata / "kapadia-usgs"
        docs = self.realdata / "usgs-m2m-docs"
        self.search_template = _load_json(kapadia / "scene-search.json")
        self.metadata_template = _load_json(
            docs / "scene-metadata_landsat_ot_c2_l2_sample-response.json"
        )
        self.filters_document = _load_json(kapadia / "dataset-fields.json")
        self.login_document = _load_json(docs / "login-token_sample-response.json")
        self.request_template = _load_json(docs / "download-request_sample-response.json")
        self.retrieve_template = _load_json(docs / "download-retrieve_sample-response.json")
        self.options_document, self.checksum_sample = _docs_download_options(
            docs / "download-options_landsat_ot_c2_l1_sample-response.txt"
        )
        self.users = {USERNAME: APP_TOKEN}
        self.api_keys: set[str] = set()
        self.logins = 0
        self.logouts = 0
        self.faults: dict[str, list[Callable[[Request], Reply]]] = {}
        self.downloads: dict[tuple[str, str, str], _Download] = {}
        self.bundle_checksums = True
        self._lock = threading.Lock()
        self._next_download = 1738054
        self.url = self.http.url + API_PATH
        for endpoint in (
            "login-token",
            "logout",
            "dataset-filters",
            "scene-search",
            "scene-metadata",
            "download-options",
            "download-request",
            "download-retrieve",
        ):
            self.http.route(f"{API_PATH}/{endpoint}", self._endpoint(endpoint))
        self.file_routes: dict[tuple[str, str], str] = {}
        for scene in self.scenes:
            self.add_scene(scene)

    # -- set-up ---------------------------------------------------------------------------------

    def add_scene(self, scene: M2MScene) -> None:
        """Serve ``scene``; a Level-1 and a Level-2 scene share their entity id, as at USGS."""
        if scene not in self.scenes:
            self.scenes.append(scene)
        path = f"/download/{_product_token(scene)}"
        self.http.route(path, serve_bytes(scene.archive, content_type="application/x-tar"))
        self.file_routes[(scene.dataset, scene.entity_id)] = self.http.url + path

    def file_url(self, scene: M2MScene) -> str:
        """The URL the bundle of ``scene`` (its dataset's product of the entity) is served at."""
        return self.file_routes[(scene.dataset, scene.entity_id)]

    def fault(self, endpoint: str, handler: Callable[[Request], Reply], *, times: int = 1) -> None:
        with self._lock:
            self.faults.setdefault(endpoint, []).extend([handler] * times)

    def expire_sessions(self) -> None:
        with self._lock:
            self.api_keys.clear()

    def calls(self, endpoint: str) -> list[Request]:
        return self.http.requests_to(f"{API_PATH}/{endpoint}")

    def close(self) -> None:
        self.http.close()

    # -- dispatch -------------------------------------------------------------------------------

    def _endpoint(self, endpoint: str) -> Callable[[Request], Reply]:
        def handle(request: Request) -> Reply:
            with self._lock:
                queued = self.faults.get(endpoint)
                fault = queued.pop(0) if queued else None
            if fault is not None:
                return fault(request)
            if request.method != "POST":
                return Reply(405, b"", {})
            try:
                payload = request.json() or {}
            except ValueError:
                return m2m_reply(None, error_code="INPUT_FORMAT", message="Invalid JSON")
            if endpoint != "login-token":
                key = request.headers.get("x-auth-token", "")
                if key not in self.api_keys:
                    return m2m_reply(
                        None, error_code="AUTH_KEY_INVALID", message="Invalid API Key", status=401
                    )
            return getattr(self, "_" + endpoint.replace("-", "_"))(payload, request)

        return handle

    # -- endpoints ------------------------------------------------------------------------------

    def _login_token(self, payload: dict[str, Any], request: Request) -> Reply:
        username, token = payload.get("username"), payload.get("token")
        if self.users.get(str(username)) != token or not token:
            return m2m_reply(
                None,
                error_code="AUTH_INVALID",
                message="User credential verification failed",
                status=401,
            )
        with self._lock:
            self.logins += 1
            key = str(self.login_document["data"]) + ("" if self.logins == 1 else str(self.logins))
            self.api_keys.add(key)
        return m2m_reply(key)

    def _logout(self, payload: dict[str, Any], request: Request) -> Reply:
        with self._lock:
            self.api_keys.discard(request.headers.get("x-auth-token", ""))
            self.logouts += 1
        return m2m_reply(None)

    def _dataset_filters(self, payload: dict[str, Any], request: Request) -> Reply:
        if not self._known_dataset(payload.get("datasetName")):
            return m2m_reply(None, error_code="DATASET_INVALID", message=INVALID_DATASET_MESSAGE)
        return m2m_reply(copy.deepcopy(self.filters_document["data"]))

    def _filter_id(self, label: str) -> str:
        return next(f["id"] for f in self.filters_document["data"] if f["fieldLabel"] == label)

    def _known_dataset(self, name: Any) -> bool:
        return any(scene.dataset == name for scene in self.scenes) or name in SERVED_DATASETS

    def _matches(self, scene: M2MScene, scene_filter: dict[str, Any]) -> bool | str:
        spatial = scene_filter.get("spatialFilter")
        if spatial:
            if spatial.get("filterType") == "mbr":
                ll, ur = spatial["lowerLeft"], spatial["upperRight"]
                area = (ll["longitude"], ll["latitude"], ur["longitude"], ur["latitude"])
            elif spatial.get("filterType") == "geojson":
                coords = _flatten(spatial["geoJson"]["coordinates"])
                area = (
                    min(c[0] for c in coords),
                    min(c[1] for c in coords),
                    max(c[0] for c in coords),
                    max(c[1] for c in coords),
                )
            else:
                return "spatialFilter.filterType must be mbr or geojson"
            w, s, e, n = scene.bbox
            if area[0] > e or area[2] < w or area[1] > n or area[3] < s:
                return False
        acquisition = scene_filter.get("acquisitionFilter")
        if acquisition:
            day = scene.acquired.date()
            if day < date.fromisoformat(acquisition["start"][:10]):
                return False
            if day > date.fromisoformat(acquisition["end"][:10]):
                return False
        cloud = scene_filter.get("cloudCoverFilter")
        if cloud and not cloud.get("min", 0) <= scene.cloud_pct <= cloud.get("max", 100):
            return False
        metadata = scene_filter.get("metadataFilter")
        if metadata:
            return self._metadata_matches(scene, metadata)
        return True

    def _metadata_matches(self, scene: M2MScene, node: dict[str, Any]) -> bool | str:
        kind = node.get("filterType")
        if kind in ("and", "or"):
            results = [self._metadata_matches(scene, child) for child in node["childFilters"]]
            errors = [r for r in results if isinstance(r, str)]
            if errors:
                return errors[0]
            return all(results) if kind == "and" else any(results)
        values = {self._filter_id("WRS Path"): scene.path, self._filter_id("WRS Row"): scene.row}
        if node.get("filterId") not in values:
            return f"unknown filterId {node.get('filterId')!r}"
        actual = values[node["filterId"]]
        if kind == "between":
            return int(node["firstValue"]) <= actual <= int(node["secondValue"])
        if kind == "value":
            return int(node["value"]) == actual
        return f"unknown filterType {kind!r}"

    def record(self, scene: M2MScene, *, full: bool) -> dict[str, Any]:
        """A scene-search result for ``scene``, shaped as the recorded kapadia answer."""
        record = copy.deepcopy(self.search_template["data"]["results"][0])
        old_display, old_entity = record["displayId"], record["entityId"]
        for browse in record["browse"]:
            for key in ("browsePath", "overlayPath", "thumbnailPath"):
                browse[key] = (
                    browse[key]
                    .replace(old_display, scene.display_id)
                    .replace(old_entity.lower(), scene.entity_id.lower())
                    .replace(
                        "2016/233/083", f"{scene.acquired:%Y}/{scene.path:03d}/{scene.row:03d}"
                    )
                )
        (ul, ur, lr, ll) = scene.corners
        w, s, e, n = scene.bbox
        record.update(
            cloudCover=f"{scene.cloud_pct:.2f}",
            entityId=scene.entity_id,
            displayId=scene.display_id,
            orderingId=scene.entity_id,
            spatialBounds={
                "type": "Polygon",
                "coordinates": [[[w, s], [w, n], [e, n], [e, s], [w, s]]],
            },
            spatialCoverage={
                "type": "Polygon",
                "coordinates": [[list(ll), list(lr), list(ur), list(ul), list(ll)]],
            },
            temporalCoverage={
                "endDate": f"{scene.acquired:%Y-%m-%d} 00:00:00",
                "startDate": f"{scene.acquired:%Y-%m-%d} 00:00:00",
            },
            publishDate=scene.published,
            metadata=self._metadata(scene) if full else [],
        )
        return record

    def _metadata(self, scene: M2MScene) -> list[dict[str, Any]]:
        level = scene.display_id[5:7]  # L1 or L2
        fields = [
            {**entry, "value": scene.display_id}
            for entry in copy.deepcopy(self.metadata_template["data"]["metadata"])
            if entry["fieldName"].endswith(level)
        ]
        start = f"{scene.acquired:%Y:%j:%H:%M:%S}.{scene.acquired.microsecond:06d}0"
        fields += [
            {
                "id": self._filter_id("WRS Path"),
                "fieldName": "WRS Path",
                "dictionaryLink": "",
                "value": f" {scene.path:03d}",
            },
            {
                "id": self._filter_id("WRS Row"),
                "fieldName": "WRS Row",
                "dictionaryLink": "",
                "value": f" {scene.row:03d}",
            },
            {
                "id": "5e83d14f30ea90a9",
                "fieldName": "Start Time",
                "dictionaryLink": "",
                "value": start,
            },
        ]
        return fields

    def _scene_search(self, payload: dict[str, Any], request: Request) -> Reply:
        dataset = payload.get("datasetName")
        if not self._known_dataset(dataset):
            return m2m_reply(None, error_code="DATASET_INVALID", message=INVALID_DATASET_MESSAGE)
        scene_filter = payload.get("sceneFilter") or {}
        matched: list[M2MScene] = []
        for scene in sorted(self.scenes, key=lambda s: s.acquired, reverse=True):
            if scene.dataset != dataset:
                continue
            verdict = self._matches(scene, scene_filter)
            if isinstance(verdict, str):
                return m2m_reply(None, error_code="INPUT_PARAMETER_INVALID", message=verdict)
            if verdict:
                matched.append(scene)
        starting = int(payload.get("startingNumber") or 1)
        size = min(int(payload.get("maxResults") or 100), self.max_results)
        listable = matched[: self.max_results]  # M2M lists no scene past its result limit
        page = listable[starting - 1 : starting - 1 + size]
        full = payload.get("metadataType") == "full"
        data = copy.deepcopy(self.search_template["data"])
        data.update(
            results=[self.record(scene, full=full) for scene in page],
            recordsReturned=len(page),
            totalHits=len(matched),
            # M2M counts a search without a sceneFilter from a daily cache
            totalHitsAccuracy="exact" if scene_filter else "approximate",
            startingNumber=starting,
            nextRecord=min(starting + len(page), len(matched)),
        )
        return m2m_reply(data)

    def _scene_metadata(self, payload: dict[str, Any], request: Request) -> Reply:
        wanted = payload.get("entityId")
        key = "entity_id" if payload.get("idType", "entityId") == "entityId" else "display_id"
        for scene in self.scenes:
            if scene.dataset == payload.get("datasetName") and getattr(scene, key) == wanted:
                data = self.record(scene, full=payload.get("metadataType") == "full")
                data.pop("selected", None)
                return m2m_reply(data)
        return m2m_reply(None, error_code="NOT_FOUND", message=f"Scene {wanted} not found")

    def bundle_option(self, scene: M2MScene) -> dict[str, Any]:
        """The Product Bundle download option of ``scene`` (shaped as the docs' sample option)."""
        option = copy.deepcopy(self.options_document["data"][0])
        option.pop("secondaryDownloads", None)
        level = "Level-2" if scene.display_id[5:7] == "L2" else "Level-1"
        option.update(
            id=_product_token(scene),
            downloadName=None,
            displayId=scene.display_id,
            entityId=scene.entity_id,
            available=scene.available,
            filesize=len(scene.archive),
            productName=f"Landsat Collection 2 {level} Product Bundle",
            productCode="D688",
            downloadSystem="dds",
            secondaryDownloads=[],
        )
        if self.bundle_checksums:
            checksum = copy.deepcopy(self.checksum_sample)
            for entry in checksum:
                if entry["id"] == "sha256sum":
                    entry["value"] = scene.sha256
            option["checksum"] = checksum
        return option

    def _download_options(self, payload: dict[str, Any], request: Request) -> Reply:
        ids = payload.get("entityIds") or []
        ids = [ids] if isinstance(ids, str) else ids
        options = []
        for scene in self.scenes:
            if scene.entity_id in ids and scene.dataset == payload.get("datasetName"):
                folder = copy.deepcopy(self.options_document["data"][0])
                folder.update(displayId=scene.display_id, entityId=scene.entity_id)
                options += [folder, self.bundle_option(scene)]
        return m2m_reply(options)

    def _download_request(self, payload: dict[str, Any], request: Request) -> Reply:
        label = str(payload.get("label") or "")
        data = copy.deepcopy(self.request_template["data"])
        data.update(
            availableDownloads=[],
            preparingDownloads=[],
            failed=[],
            newRecords={},
            duplicateProducts=[],
        )
        for wanted in payload.get("downloads") or []:
            scene = next(
                (
                    s
                    for s in self.scenes
                    if s.entity_id == wanted.get("entityId")
                    and _product_token(s) == wanted.get("productId")
                ),
                None,
            )
            if scene is None:
                data["failed"].append(wanted)
                continue
            with self._lock:
                key = (label, scene.dataset, scene.entity_id)
                download = self.downloads.get(key)
                if download is None:
                    self._next_download += 1
                    download = _Download(scene, label, self._next_download, scene.prepare_polls)
                    self.downloads[key] = download
                    data["newRecords"][str(download.download_id)] = str(download.download_id)
                else:
                    data["duplicateProducts"].append(str(download.download_id))
            entry = {
                "downloadId": download.download_id,
                "eulaCode": None,
                "entityId": scene.entity_id,
            }
            if download.polls_left <= 0:
                data["availableDownloads"].append({**entry, "url": self.file_url(scene)})
            else:
                data["preparingDownloads"].append(
                    {**entry, "url": self.http.url + f"/download-staging/{download.download_id}"}
                )
        return m2m_reply(data)

    def _download_retrieve(self, payload: dict[str, Any], request: Request) -> Reply:
        label = payload.get("label")
        template = self.retrieve_template["data"]["available"][0]
        data = copy.deepcopy(self.retrieve_template["data"])
        data.update(available=[], requested=[])
        with self._lock:
            mine = [d for (lab, *_), d in self.downloads.items() if lab == label or label is None]
            for download in mine:
                scene = download.scene
                entry = copy.deepcopy(template)
                entry.update(
                    url=self.file_url(scene),
                    label=download.label,
                    entityId=scene.entity_id,
                    displayId=scene.display_id,
                    filesize=len(scene.archive),
                    downloadId=download.download_id,
                    productName=self.bundle_option(scene)["productName"],
                    collectionName="Landsat 8-9 OLI/TIRS C2",
                )
                if download.polls_left > 0:
                    download.polls_left -= 1
                    entry.update(url=None, statusCode="P", statusText="Preparing")
                    data["requested"].append(entry)
                else:
                    data["available"].append(entry)
        data["queueSize"] = len(data["requested"])
        return m2m_reply(data)


def _product_token(scene: M2MScene) -> str:
    """The id of a scene's Product Bundle option: one per dataset's product of an entity."""
    key = f"{scene.dataset}/{scene.entity_id}".encode()
    return hashlib.sha1(key).hexdigest()[:16]  # noqa: S324 - an id, not a secret


def _flatten(coords: Any) -> list[tuple[float, float]]:
    if isinstance(coords, list | tuple) and coords and isinstance(coords[0], int | float):
        return [(float(coords[0]), float(coords[1]))]
    out: list[tuple[float, float]] = []
    for part in coords:
        out += _flatten(part)
    return out
