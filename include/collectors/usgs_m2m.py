"""USGS EarthExplorer through its Machine-to-Machine (M2M) JSON API (``api/json/stable``).

Protocol: every call is ``POST {url}/<endpoint>`` with a JSON body; answers are
``{"data": ..., "errorCode": null|"CODE", "errorMessage": ..., "requestId": ...}``.

- ``login-token`` ``{"username", "token"}`` (an EROS username and an M2M *application token*,
  from the Airflow Connection: login = username, password = token) answers the API key, sent
  as ``X-Auth-Token`` on every other call; ``logout`` ends the session on ``close``. An expired
  key (``AUTH_KEY_INVALID``) is renewed once by logging in again.
- ``scene-search`` ``{"datasetName", "sceneFilter": {"spatialFilter": mbr|geojson,
  "acquisitionFilter": {"start", "end"}, "cloudCoverFilter": {"min", "max"}, "metadataFilter"},
  "startingNumber", "maxResults"}``, paged until ``totalHits`` (``nextRecord`` is the next
  ``startingNumber``). M2M lists at most 50,000 scenes of one search (``max_results``) and
  searches at the date level, ignoring times: a search whose first page counts more
  ``totalHits`` than it can list (or than ``max_pages`` pages hold) is split between days, then
  by area (``include.collectors.split``), and merged. WRS-2 ``tiles`` become a metadata
  filter on the dataset's "WRS Path" and "WRS Row" fields, whose filter ids come from
  ``dataset-filters``. ``scenes`` (ids) are looked up one by one with ``scene-metadata``.
- ``download-options`` ``{"datasetName", "entityIds"}`` lists products per scene; the Landsat
  *Product Bundle* (a ``.tar`` of every band and the MTL) is the one downloaded.
- ``download-request`` ``{"downloads": [{"entityId", "productId"}], "label"}`` answers
  ``availableDownloads`` (ready URLs) or ``preparingDownloads`` (being staged);
  ``download-retrieve`` ``{"label"}`` lists ``available`` and ``requested`` downloads of that
  label. The label is derived from the scene's dataset and entity, so any worker finds a
  request made by another; only entries whose ``displayId`` is the scene's are taken.

Errors: HTTP 429 and the codes ``RATE_LIMIT`` / ``RATE_LIMIT_USER_DL`` are retried with the
``Retry-After`` wait or exponential backoff, then raise ``RateLimitedError``; 5xx, timeouts and
truncated answers are retried, then raise ``ProviderUnavailableError``; ``AUTH_INVALID`` /
``AUTH_UNAUTHROIZED`` (sic) raise ``ProviderError`` naming the Connection to fix. The token and
the API key are never logged.

Scenes: ``scene_id`` is the Landsat product id (``displayId``), validated by
``scene_ids.parse_scene_id``; the M2M ``entityId`` is kept in ``properties["entity_id"]``.
"""

from __future__ import annotations

import json
import logging
import math
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx

from include.collectors.base import (
    Availability,
    DownloadedFile,
    DownloadJob,
    Scene,
    SearchQuery,
    known_size,
)
from include.collectors.download import download_file, retry_delay_s, reuse_existing
from include.collectors.http import (
    error_for_status,
    error_for_transport,
    parse_retry_after,
    redact_url,
)
from include.collectors.registry import register
from include.collectors.scene_ids import SceneIdentity, parse_scene_id, parse_wrs2_pathrow
from include.collectors.settings import DriverSettings, UsgsM2MSettings
from include.collectors.split import SplitSearchDriver, WindowTooLargeError, by_time
from include.common.errors import (
    CollectionBuilderError,
    FieldProblem,
    IntegrityError,
    InvalidInputError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    SceneOfflineError,
    TransientError,
)
from include.common.storage import safe_component

log = logging.getLogger(__name__)

DEFAULT_URL = "https://m2m.cr.usgs.gov/api/api/json/stable"
LANDSAT_C2_DATASETS = (
    "landsat_ot_c2_l1",
    "landsat_ot_c2_l2",
    "landsat_etm_c2_l1",
    "landsat_etm_c2_l2",
    "landsat_tm_c2_l1",
    "landsat_tm_c2_l2",
)
"""The M2M Collection 2 Landsat datasets this project processes (Landsat 8-9, 7, 4-5; the
upstream's USGS driver took these and the Collection 1 names USGS retired at the end of 2022)."""
EARTHEXPLORER_SCENE_URL = (
    "https://earthexplorer.usgs.gov/scene/metadata/full/{dataset_id}/{entity_id}/"
)

AUTH_ERROR_CODES = frozenset({"AUTH_INVALID", "AUTH_UNAUTHROIZED", "AUTH_UNAUTHORIZED"})
"""Credentials refused (``AUTH_UNAUTHROIZED`` is spelled so by the API)."""
API_KEY_EXPIRED_CODE = "AUTH_KEY_INVALID"
RATE_LIMIT_CODES = frozenset({"RATE_LIMIT", "RATE_LIMIT_USER_DL"})
USER_DOWNLOAD_LIMIT_WAIT_S = 900.0
"""Wait after ``RATE_LIMIT_USER_DL`` (too many unattempted downloads) without a Retry-After."""
TRANSIENT_ERROR_CODES = frozenset({"SERVER_ERROR"})
DATASET_ERROR_CODES = frozenset({"DATASET_INVALID", "DATASET_ERROR"})
NOT_FOUND_CODE = "NOT_FOUND"

BUNDLE_KEYWORD = "bundle"
"""Download option names of the whole-scene archive: "Landsat Collection 2 Level-1 Product
Bundle", "... Level-2 Product Bundle"."""
LEGACY_ARCHIVE_KEYWORDS = ("level-1 geotiff data product", "level-2 data product")
"""Whole-scene archives of Collection 1 era datasets, used when no bundle is offered."""
NON_ARCHIVE_SYSTEMS = frozenset({"folder", "wms"})
"""Download systems of per-band folders and browse images, never a scene archive."""
READY_REQUESTED_STATUSES = frozenset({"available", "proxied"})
"""``download-retrieve`` statuses of a ``requested`` entry whose URL can be downloaded."""

_METADATA_TIME_FORMATS = ("%Y:%j:%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")


# --------------------------------------------------------------------------------------------
# Pure helpers


class _ApiKeyExpiredError(Exception):
    """The session's API key expired (``AUTH_KEY_INVALID``): log in again once."""


class _NotFoundError(ProviderError):
    """M2M answered ``NOT_FOUND`` (an unknown scene id in ``scene-metadata``)."""


@dataclass(frozen=True, slots=True)
class DownloadProduct:
    """The download option chosen for a scene (the product bundle)."""

    product_id: str
    name: str
    available: bool
    size_bytes: int | None
    checksum: str | None
    dataset_id: str | None


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().rstrip("Z")
    if "." in text:
        head, _, fraction = text.rpartition(".")
        text = f"{head}.{fraction[:6]}"
    for form in _METADATA_TIME_FORMATS:
        try:
            return datetime.strptime(text, form).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _metadata_value(record: Mapping[str, Any], *names: str) -> Any:
    """Return the first ``metadata[].value`` whose ``fieldName`` is one of ``names``."""
    wanted = {name.lower() for name in names}
    for field in record.get("metadata") or ():
        if isinstance(field, Mapping) and str(field.get("fieldName", "")).lower() in wanted:
            return field.get("value")
    return None


def _cloud(value: object) -> float | None:
    try:
        cloud = float(str(value))
    except (TypeError, ValueError):
        return None
    return cloud if 0 <= cloud <= 100 else None  # M2M writes -1 for unknown


def _quicklook(record: Mapping[str, Any]) -> str | None:
    browses = [b for b in record.get("browse") or () if isinstance(b, Mapping)]
    ranked = sorted(
        browses,
        key=lambda b: (
            0
            if any(
                word in str(b.get("browseName", "")).lower() for word in ("natural", "reflective")
            )
            else 1
        ),
    )
    for browse in ranked:
        for key in ("browsePath", "thumbnailPath"):
            href = browse.get(key)
            if isinstance(href, str) and href.lower().startswith(("http://", "https://")):
                return href
    return None


def _acquired(record: Mapping[str, Any], identity: SceneIdentity) -> datetime:
    for value in (
        _metadata_value(record, "Start Time", "Scene Center Time"),
        (record.get("temporalCoverage") or {}).get("startDate"),
    ):
        parsed = _parse_time(value)
        if parsed is not None and parsed.date() == identity.datetime.date():
            return parsed
    return identity.datetime


def record_to_scene(record: Mapping[str, Any], *, catalog: str, dataset: str) -> Scene:
    """Map one ``scene-search`` result (or ``scene-metadata`` answer) to a :class:`Scene`.

    Raises:
        InvalidInputError: when ``displayId`` is not a Landsat product id (``parse_scene_id``).
        ValueError: when the record has no ``entityId``.
    """
    display_id = str(record.get("displayId") or "")
    identity = parse_scene_id(display_id, field="displayId")
    entity_id = record.get("entityId")
    if not entity_id:
        raise ValueError(f"{display_id}: the record has no entityId")
    footprint = record.get("spatialCoverage") or record.get("spatialBounds")
    properties: dict[str, Any] = {
        "entity_id": str(entity_id),
        "display_id": display_id,
        "dataset_name": dataset,
        "product_type": identity.level,
        "collection_category": identity.collection_category,
    }
    if record.get("orderingId"):
        properties["ordering_id"] = str(record["orderingId"])
    return Scene(
        scene_id=identity.scene_id,
        catalog=catalog,
        dataset=dataset,
        datetime=_acquired(record, identity),
        cloud_pct=_cloud(record.get("cloudCover")),
        tile=identity.tile,
        footprint=dict(footprint) if isinstance(footprint, Mapping) else None,
        quicklook=_quicklook(record),
        online=True,
        platform=identity.platform,
        properties=properties,
    )


def _checksum(product: Mapping[str, Any]) -> str | None:
    for entry in product.get("checksum") or ():
        if isinstance(entry, Mapping) and str(entry.get("id", "")).lower() == "sha256sum":
            value = entry.get("value")
            if isinstance(value, str) and value:
                return f"sha256:{value}"
    return None


def choose_product(
    options: Sequence[Mapping[str, Any]], *, product_name: str | None = None
) -> DownloadProduct | None:
    """Return the scene archive among a scene's ``download-options``, or None.

    With ``product_name`` the option of that name (case-insensitive) is taken; otherwise the
    Product Bundle, else a Collection 1 era whole-scene archive. Available options win.
    """

    def rank(option: Mapping[str, Any]) -> int | None:
        name = str(option.get("productName") or "").lower()
        if product_name is not None:
            return 0 if name == product_name.lower() else None
        if str(option.get("downloadSystem") or "").lower() in NON_ARCHIVE_SYSTEMS:
            return None
        if BUNDLE_KEYWORD in name:
            return 0
        if any(keyword in name for keyword in LEGACY_ARCHIVE_KEYWORDS):
            return 1
        return None

    ranked = [
        (0 if option.get("available") is True else 1, kind, index, option)
        for index, option in enumerate(options)
        if isinstance(option, Mapping) and option.get("id") and (kind := rank(option)) is not None
    ]
    if not ranked:
        return None
    _, _, _, best = min(ranked, key=lambda entry: entry[:3])
    return DownloadProduct(
        product_id=str(best["id"]),
        name=str(best.get("productName") or ""),
        available=best.get("available") is True,
        size_bytes=known_size(best.get("filesize")),
        checksum=_checksum(best),
        dataset_id=str(best["datasetId"]) if best.get("datasetId") else None,
    )


def _dates(query: SearchQuery) -> dict[str, str] | None:
    if query.start is None and query.end is None:
        return None
    start = query.start.date().isoformat() if query.start else "1972-07-23"
    end = query.end.date().isoformat() if query.end else datetime.now(UTC).date().isoformat()
    return {"start": start, "end": end}


def _spatial_filter(query: SearchQuery) -> dict[str, Any] | None:
    if query.bbox is not None:
        west, south, east, north = query.bbox
        return {
            "filterType": "mbr",
            "lowerLeft": {"latitude": south, "longitude": west},
            "upperRight": {"latitude": north, "longitude": east},
        }
    if query.geometry is not None:
        return {"filterType": "geojson", "geoJson": dict(query.geometry)}
    return None


# --------------------------------------------------------------------------------------------
# The driver


@register("usgs")
class UsgsM2MDriver(SplitSearchDriver):
    """Search and download Landsat scenes through USGS M2M (see the module docstring).

    Options (from ``config/catalogs.yaml`` through ``make_driver``): ``catalog``, ``conn_id``
    (named in credential errors), ``datasets`` (conf name -> M2M dataset name), ``page_size``,
    ``timeout_s``, ``verify_tls``, ``max_connections``; ``max_attempts`` (per API call, default
    4), ``base_delay_s`` (first backoff, 1), ``max_delay_s`` (longest in-task wait, 60),
    ``prepare_wait_s`` (how long ``download`` polls a download being staged before raising
    ``SceneOfflineError``, 120), ``poll_interval_s`` (10), ``product_name`` (download option to
    take instead of the Product Bundle), ``label_prefix`` (download request labels,
    ``collection-builder``), ``max_pages`` (1000), ``max_results`` (the most scenes M2M lists
    for one search, 50,000), ``search_workers`` (windows of a split search at once, 2) and
    ``describe_downloads`` (look up size and availability of every found scene with
    ``download-options``, default true).
    """

    search_time_step: ClassVar[timedelta | None] = timedelta(days=1)
    """M2M searches acquisition dates, not times: a split cuts between days."""

    settings_model: ClassVar[type[DriverSettings] | None] = UsgsM2MSettings
    settings: UsgsM2MSettings
    default_url = DEFAULT_URL
    url_fix = f"use the M2M JSON API root, e.g. {DEFAULT_URL}"

    def configure(self) -> None:
        """Read the M2M settings: retries, download staging, labels, result limits."""
        settings = self.settings
        self.conn_id = settings.conn_id
        self._datasets = settings.datasets_by_lower_name()
        self.max_attempts = settings.max_attempts
        self.base_delay_s = settings.base_delay_s
        self.max_delay_s = settings.max_delay_s
        self.prepare_wait_s = settings.prepare_wait_s
        self.poll_interval_s = settings.poll_interval_s
        self.label_prefix = settings.label_prefix
        self.product_name = settings.product_name
        self.describe_downloads = settings.describe_downloads
        self.max_results = settings.max_results
        self.sleep: Callable[[float], None] = time.sleep
        self._lock = threading.RLock()
        self._api_key: str | None = None
        self._filter_ids: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    # -- HTTP and session ---------------------------------------------------------------------

    def close(self) -> None:
        """Log out (when logged in) and close the HTTP client; idempotent, never raises."""
        with self._lock:
            try:
                if self._api_key is not None and self._client is not None:
                    self._call_once("logout", None, api_key=self._api_key)
                    log.info("m2m.logout catalog=%s", self.catalog)
            except _ApiKeyExpiredError:
                log.info("m2m.logout catalog=%s (the API key had expired)", self.catalog)
            except CollectionBuilderError as err:
                log.warning("m2m.logout_failed catalog=%s error=%s", self.catalog, err)
            finally:
                self._api_key = None
                super().close()

    def _credentials_problem(self, what: str) -> ProviderError:
        return ProviderError(
            f"{self.catalog} login-token: {what}; set the Airflow Connection {self.conn_id!r} "
            "with login = your EROS username and password = an M2M application token "
            "(https://ers.cr.usgs.gov/password/appgenerate), and make sure the account has "
            "M2M access",
        )

    def _login(self) -> str:
        with self._lock:
            if self._api_key is not None:
                return self._api_key
            creds = self.credentials
            username = creds.username if creds is not None else None
            token = (creds.token or creds.password) if creds is not None else None
            if not username or not token:
                raise self._credentials_problem("no username and application token")
            data = self._call("login-token", {"username": username, "token": token}, auth=False)
            if not isinstance(data, str) or not data:
                raise ProviderError(
                    f"{self.catalog} login-token: the answer holds no API key; check that "
                    "catalog_args.url points to the M2M JSON API root"
                )
            self._api_key = data
            log.info("m2m.login catalog=%s username=%s", self.catalog, username)
            return data

    def _call(self, endpoint: str, payload: Mapping[str, Any] | None, *, auth: bool = True) -> Any:
        """Call one endpoint, retrying transient failures; return the answer's ``data``.

        Raises:
            RateLimitedError: still rate limited after ``max_attempts`` (or a long wait asked).
            ProviderUnavailableError: 5xx, timeouts or broken answers after ``max_attempts``.
            ProviderError: refused credentials, unknown endpoint, other API errors.
            InvalidInputError: an unknown dataset.
        """
        attempt = 0
        renewed = False
        while True:
            attempt += 1
            api_key = self._login() if auth else None
            try:
                return self._call_once(endpoint, payload, api_key=api_key)
            except _ApiKeyExpiredError as err:
                if renewed:
                    raise self._credentials_problem("the API key was refused twice") from err
                renewed = True
                attempt -= 1
                with self._lock:
                    self._api_key = None
                log.info("m2m.session_expired catalog=%s; logging in again", self.catalog)
            except TransientError as err:
                delay = retry_delay_s(
                    err, attempt, base_delay_s=self.base_delay_s, max_delay_s=self.max_delay_s
                )
                if attempt >= self.max_attempts or delay is None:
                    log.warning(
                        "m2m.failed catalog=%s endpoint=%s attempts=%d error=%s",
                        self.catalog,
                        endpoint,
                        attempt,
                        err,
                    )
                    raise
                log.warning(
                    "m2m.retry catalog=%s endpoint=%s attempt=%d/%d delay_s=%.2f error=%s",
                    self.catalog,
                    endpoint,
                    attempt,
                    self.max_attempts,
                    delay,
                    err,
                )
                self.sleep(delay)

    def _call_once(
        self, endpoint: str, payload: Mapping[str, Any] | None, *, api_key: str | None
    ) -> Any:
        url = f"{self.base_url}/{endpoint}"
        action = f"{self.catalog} {endpoint}"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key is not None:
            headers["X-Auth-Token"] = api_key
        body = json.dumps(dict(payload or {}))
        try:
            response = self.client.post(url, content=body, headers=headers)
        except httpx.RequestError as err:
            raise error_for_transport(err, url=url, action=action) from err
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if isinstance(answer, dict) and answer.get("errorCode"):
            raise self._api_error(answer, response, url=url, action=action)
        if response.status_code == 404:
            raise ProviderError(
                f"{action} {redact_url(url)}: HTTP 404; catalog_args.url must be the M2M JSON "
                f"API root, e.g. {DEFAULT_URL}",
                status_code=404,
                body=response.text[:2000],
            )
        if response.status_code >= 400:
            raise error_for_status(
                response.status_code,
                response.text,
                url=url,
                action=action,
                headers=response.headers,
            )
        if not isinstance(answer, dict) or "data" not in answer:
            raise ProviderUnavailableError(
                f"{action} {redact_url(url)}: the answer is not an M2M JSON document "
                f"(HTTP {response.status_code}, {len(response.content)} bytes, truncated or a "
                "maintenance page); it is retried later",
                status_code=response.status_code,
            )
        return answer["data"]

    def _api_error(
        self, answer: Mapping[str, Any], response: httpx.Response, *, url: str, action: str
    ) -> Exception:
        code = str(answer.get("errorCode"))
        message = " ".join(str(answer.get("errorMessage") or "").split())[:300]
        where = f"{action} {redact_url(url)}: {code}"
        detail = f" ({message})" if message else ""
        if code in RATE_LIMIT_CODES or response.status_code == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is None and code == "RATE_LIMIT_USER_DL":
                retry_after = USER_DOWNLOAD_LIMIT_WAIT_S
            fix = (
                "too many downloads are pending for this account; let them finish or clear "
                "them in EarthExplorer's download queue, it is retried later"
                if code == "RATE_LIMIT_USER_DL"
                else "it is retried later; lower the download_usgs pool or max_connections"
            )
            return RateLimitedError(f"{where}{detail}; {fix}", retry_after_s=retry_after)
        if code == API_KEY_EXPIRED_CODE:
            return _ApiKeyExpiredError(code)
        if code in AUTH_ERROR_CODES:
            return ProviderError(
                f"{where}{detail}; the credentials were refused: set the Airflow Connection "
                f"{self.conn_id!r} with login = your EROS username and password = an M2M "
                "application token, and check that the account has M2M access",
                status_code=response.status_code,
                body=response.text[:2000],
            )
        if code in TRANSIENT_ERROR_CODES or response.status_code >= 500:
            return ProviderUnavailableError(
                f"{where}{detail}; it is retried later", status_code=response.status_code
            )
        if code == NOT_FOUND_CODE:
            return _NotFoundError(
                f"{where}{detail}; check the id, or try another provider",
                status_code=response.status_code,
                body=response.text[:2000],
            )
        if code in DATASET_ERROR_CODES:
            return InvalidInputError(
                FieldProblem(
                    "dataset",
                    f"USGS M2M refused the dataset ({code}{detail})",
                    f"use one of: {', '.join(self.known_datasets())}",
                )
            )
        return ProviderError(
            f"{where}{detail}; check the request against the M2M API documentation or try "
            "another provider",
            status_code=response.status_code,
            body=response.text[:2000],
        )

    # -- search -------------------------------------------------------------------------------

    def known_datasets(self) -> list[str]:
        """Return the configured datasets and the Collection 2 Landsat datasets, sorted.

        M2M lists datasets only to a logged-in account, so this list is what a conf may name.
        """
        return sorted({*super().known_datasets(), *LANDSAT_C2_DATASETS})

    def accepts_dataset(self, name: str) -> bool:
        """Return False: a dataset must be one of ``known_datasets``."""
        return False

    def dataset_name(self, dataset: str) -> str:
        """Return the M2M dataset name for a conf dataset (mapped through ``datasets``).

        Raises:
            InvalidInputError: when ``dataset`` is empty.
        """
        name = dataset.strip()
        if not name:
            raise InvalidInputError(
                FieldProblem(
                    "dataset", "is empty", f"use one of: {', '.join(self.known_datasets())}"
                )
            )
        return self._datasets.get(name.lower(), name.lower())

    def _wrs_filters(self, dataset: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return the ``dataset-filters`` entries of the WRS Path and WRS Row fields."""
        if dataset in self._filter_ids:
            return self._filter_ids[dataset]
        fields = self._call("dataset-filters", {"datasetName": dataset}) or []
        found: dict[str, dict[str, Any]] = {}
        for field in fields:
            if not isinstance(field, Mapping) or not field.get("id"):
                continue
            label = str(field.get("fieldLabel") or "").strip().lower()
            sql = str(field.get("searchSql") or "").strip().upper()
            for kind in ("path", "row"):
                if label == f"wrs {kind}" or sql.startswith(f"WRS_{kind.upper()} "):
                    found.setdefault(kind, dict(field))
        if "path" not in found or "row" not in found:
            raise InvalidInputError(
                FieldProblem(
                    "tiles",
                    f"dataset {dataset!r} has no WRS Path/Row search fields",
                    "search it with a bbox or geom instead, or use a Landsat dataset such as "
                    + LANDSAT_C2_DATASETS[0],
                )
            )
        self._filter_ids[dataset] = (found["path"], found["row"])
        return self._filter_ids[dataset]

    @staticmethod
    def _field_filter(field: Mapping[str, Any], value: int) -> dict[str, Any]:
        config = field.get("fieldConfig")
        kind = str(config.get("type", "")).lower() if isinstance(config, Mapping) else ""
        if kind == "range":
            return {
                "filterType": "between",
                "filterId": field["id"],
                "firstValue": value,
                "secondValue": value,
            }
        return {
            "filterType": "value",
            "filterId": field["id"],
            "value": f"{value:03d}",
            "operand": "=",
        }

    def _tile_filter(self, dataset: str, tile: str) -> dict[str, Any]:
        path_field, row_field = self._wrs_filters(dataset)
        return {
            "filterType": "and",
            "childFilters": [
                self._field_filter(path_field, int(tile[:3])),
                self._field_filter(row_field, int(tile[3:])),
            ],
        }

    def _scene_filter(self, query: SearchQuery) -> dict[str, Any]:
        scene_filter: dict[str, Any] = {}
        spatial = _spatial_filter(query)
        if spatial is not None:
            scene_filter["spatialFilter"] = spatial
        dates = _dates(query)
        if dates is not None:
            scene_filter["acquisitionFilter"] = dates
        if query.cloud_pct < 100:
            # M2M's bounds are integers: round up, and ``_keep`` applies the exact limit.
            scene_filter["cloudCoverFilter"] = {
                "min": 0,
                "max": math.ceil(query.cloud_pct),
                "includeUnknown": False,
            }
        return scene_filter

    def _pages(
        self, dataset: str, scene_filter: Mapping[str, Any], *, whole: bool
    ) -> Iterator[list[Any]]:
        """Yield the records of every page of one ``scene-search``, paged by ``startingNumber``.

        M2M lists at most ``max_results`` (50,000) scenes of one search, and this driver reads
        at most ``max_pages`` pages. ``whole``: the search must list everything it matches, so
        a first page whose ``totalHits`` passes that fails at once.

        Raises:
            WindowTooLargeError: ``totalHits`` passes the limit (``whole``), the pages ran out,
                or the server stopped listing before an exact ``totalHits`` (at its cap).
            ProviderError: the answer is not a search result.
        """
        limit = min(self.max_results, self.page_size * self.max_pages)
        starting, listed, total = 1, 0, 0
        for page in range(1, self.max_pages + 1):
            data = self._call(
                "scene-search",
                {
                    "datasetName": dataset,
                    "sceneFilter": dict(scene_filter),
                    "startingNumber": starting,
                    "maxResults": self.page_size,
                    "metadataType": "full",
                },
            )
            if not isinstance(data, Mapping):
                raise ProviderError(
                    f"{self.catalog} scene-search: the answer's data is not an object; check "
                    "that catalog_args.url points to the M2M JSON API root"
                )
            total = int(data.get("totalHits") or 0)
            if page == 1 and whole and total > limit:
                raise WindowTooLargeError(limit, total)
            results = [r for r in data.get("results") or () if isinstance(r, Mapping)]
            listed += len(results)
            yield results
            returned = int(data.get("recordsReturned") or len(results))
            next_record = int(data.get("nextRecord") or 0)
            if not results or starting + returned > total or next_record <= starting:
                if listed < total and data.get("totalHitsAccuracy") != "approximate":
                    raise WindowTooLargeError(listed, total)  # the server stopped at its cap
                return
            starting = next_record
            log.debug("m2m.next_page catalog=%s page=%d starting=%d", self.catalog, page, starting)
        raise WindowTooLargeError(limit, total)

    def _scene_or_none(self, record: Mapping[str, Any], dataset: str) -> Scene | None:
        try:
            return record_to_scene(record, catalog=self.catalog, dataset=dataset)
        except (InvalidInputError, ValueError, TypeError) as err:
            log.warning("search.record_skipped catalog=%s reason=%s", self.catalog, err)
            return None

    @staticmethod
    def _keep(scene: Scene, query: SearchQuery, tiles: set[str]) -> bool:
        """Apply every filter again on the client (acquisition dates are day precision)."""
        if query.scene_ids:
            return True
        day = scene.datetime.date()
        if query.start is not None and day < query.start.date():
            return False
        if query.end is not None and day > query.end.date():
            return False
        if query.cloud_pct < 100 and scene.cloud_pct is not None:
            if scene.cloud_pct > query.cloud_pct:
                return False
        return not tiles or scene.tile in tiles

    def _tiles(self, query: SearchQuery) -> list[str]:
        tiles: list[str] = []
        problems: list[FieldProblem] = []
        for index, tile in enumerate(query.tiles):
            canonical = parse_wrs2_pathrow(tile)
            if canonical is None:
                problems.append(
                    FieldProblem(
                        f"tiles[{index}]",
                        f"{tile!r} is not a WRS-2 path/row (USGS Landsat scenes are found by "
                        "path/row, not MGRS tiles)",
                        "write WRS-2 path/row like '221069', or search with a bbox",
                    )
                )
            else:
                tiles.append(canonical)
        if problems:
            raise InvalidInputError(problems)
        return tiles

    def _by_ids(self, dataset: str, scene_ids: Sequence[str]) -> list[Scene]:
        scenes: list[Scene] = []
        for index, scene_id in enumerate(scene_ids):
            identity = parse_scene_id(scene_id, field=f"scenes[{index}]")
            if identity.family != "landsat":
                raise InvalidInputError(
                    FieldProblem(
                        f"scenes[{index}]",
                        f"{scene_id!r} is not a Landsat scene; USGS serves Landsat here",
                        "use a Sentinel-2 catalog (CDSE, EarthSearch) for Sentinel-2 ids",
                    )
                )
            id_type = "entityId" if identity.kind == "landsat-scene" else "displayId"
            try:
                record = self._call(
                    "scene-metadata",
                    {
                        "datasetName": dataset,
                        "entityId": identity.scene_id,
                        "idType": id_type,
                        "metadataType": "full",
                    },
                )
            except _NotFoundError:
                record = None
            scene = self._scene_or_none(record, dataset) if isinstance(record, Mapping) else None
            if scene is None:
                log.info("search.not_found catalog=%s scene=%s", self.catalog, scene_id)
                continue
            scenes.append(scene)
        return scenes

    def search_window(self, query: SearchQuery) -> list[Scene]:
        """Return the scenes of one window (``SplitSearchDriver``), described when configured.

        Raises:
            WindowTooLargeError: the window passes M2M's ``max_results`` or ``max_pages``.
            InvalidInputError: empty or unknown dataset, MGRS tiles.
            ProviderError: refused credentials or other API errors.
            ProviderUnavailableError, RateLimitedError: after the in-task retries.
        """
        dataset = self.dataset_name(query.dataset)
        tiles = self._tiles(query)
        base = self._scene_filter(query)
        filters = (
            [{**base, "metadataFilter": self._tile_filter(dataset, t)} for t in tiles]
            if tiles
            else [base]
        )
        found: dict[str, Scene] = {}
        for scene_filter in filters:
            for records in self._pages(dataset, scene_filter, whole=query.limit is None):
                for record in records:
                    mapped = self._scene_or_none(record, dataset)
                    if mapped is not None and self._keep(mapped, query, set(tiles)):
                        found.setdefault(mapped.scene_id, mapped)
                if query.limit is not None and len(found) >= query.limit:
                    break
        return self._described(dataset, by_time(list(found.values()))[: query.limit])

    def search_ids(self, query: SearchQuery) -> list[Scene]:
        """Return the scenes of a search by ids (``scene-metadata``).

        Raises:
            InvalidInputError: non-Landsat scene ids, and as ``search_window``.
            ProviderError, ProviderUnavailableError, RateLimitedError: as ``search_window``.
        """
        dataset = self.dataset_name(query.dataset)
        self._tiles(query)
        found = {scene.scene_id: scene for scene in self._by_ids(dataset, query.scene_ids)}
        return self._described(dataset, list(found.values()))

    def _described(self, dataset: str, scenes: list[Scene]) -> list[Scene]:
        return self._describe(dataset, scenes) if self.describe_downloads and scenes else scenes

    def _download_options(self, dataset: str, entity_ids: Sequence[str]) -> dict[str, list[Any]]:
        data = self._call(
            "download-options", {"datasetName": dataset, "entityIds": list(entity_ids)}
        )
        by_entity: dict[str, list[Any]] = {}
        for option in data or ():
            if isinstance(option, Mapping):
                entity = str(option.get("entityId") or "")
                by_entity.setdefault(entity, []).append(option)
        if len(entity_ids) == 1 and "" in by_entity:
            by_entity.setdefault(entity_ids[0], []).extend(by_entity.pop(""))
        return by_entity

    def _with_product(self, scene: Scene, product: DownloadProduct | None) -> Scene:
        properties = dict(scene.properties)
        if product is None:
            properties["download_problem"] = "no Product Bundle among the download options"
            return replace(scene, online=False, properties=properties)
        properties.update(
            product_id=product.product_id,
            product_name=product.name,
            product_checksum=product.checksum,
        )
        link = scene.link
        if product.dataset_id:
            link = EARTHEXPLORER_SCENE_URL.format(
                dataset_id=product.dataset_id, entity_id=properties["entity_id"]
            )
        return replace(
            scene,
            size_bytes=product.size_bytes,
            online=product.available,
            link=link,
            properties=properties,
        )

    def _describe(self, dataset: str, scenes: list[Scene]) -> list[Scene]:
        described: list[Scene] = []
        for first in range(0, len(scenes), self.page_size):
            chunk = scenes[first : first + self.page_size]
            options = self._download_options(
                dataset, [str(s.properties["entity_id"]) for s in chunk]
            )
            for scene in chunk:
                product = choose_product(
                    options.get(str(scene.properties["entity_id"]), []),
                    product_name=self.product_name,
                )
                described.append(self._with_product(scene, product))
        return described

    # -- availability, order, download --------------------------------------------------------

    def _entity(self, scene: Scene) -> str:
        entity = scene.properties.get("entity_id")
        if not entity:
            raise InvalidInputError(
                FieldProblem(
                    "scene.properties.entity_id",
                    f"{scene.scene_id} has no M2M entityId",
                    "give a scene found by a USGS search (the radcor search task does)",
                )
            )
        return str(entity)

    def _dataset_of(self, scene: Scene) -> str:
        """Return the M2M dataset of ``scene`` (the one it was found in)."""
        return str(scene.properties.get("dataset_name") or self.dataset_name(scene.dataset))

    def _product(self, scene: Scene) -> DownloadProduct:
        dataset = self._dataset_of(scene)
        entity = self._entity(scene)
        product = choose_product(
            self._download_options(dataset, [entity]).get(entity, []),
            product_name=self.product_name,
        )
        if product is None:
            raise ProviderError(
                f"{scene.scene_id}: USGS M2M offers no Product Bundle for it in dataset "
                f"{dataset!r} (set options.product_name to another download option, or try "
                "another provider)"
            )
        return product

    def _available_product(self, scene: Scene, *, fix: str) -> DownloadProduct:
        """Return the scene's download product when M2M lists it as available.

        Raises:
            SceneOfflineError: naming the product and ``fix`` when it is not available.
            ProviderError: no Product Bundle, a refused request or credentials.
        """
        product = self._product(scene)
        if not product.available:
            raise SceneOfflineError(
                scene.scene_id,
                self.catalog,
                f"{scene.scene_id}: USGS M2M lists its {product.name!r} as not available; {fix}",
            )
        return product

    def label(self, scene: Scene) -> str:
        """Return the download request label of ``scene`` (the same on every worker).

        It names the dataset too: a Level-1 and a Level-2 scene share their ``entityId``.
        """
        return f"{self.label_prefix}-{self._dataset_of(scene)}-{self._entity(scene)}"

    def _retrieve(self, scene: Scene) -> tuple[Mapping[str, Any] | None, bool]:
        """Return (the ready download of ``scene``, whether one is being prepared).

        Ready: an ``available`` entry with a URL, or a ``requested`` one whose status is
        Available or Proxied and that has a URL (USGS's download sample takes both).
        """
        entity = self._entity(scene)
        data = self._call("download-retrieve", {"label": self.label(scene)}) or {}
        if not isinstance(data, Mapping):
            return None, False

        def mine(entry: object) -> bool:
            if not isinstance(entry, Mapping):
                return False
            display = entry.get("displayId")
            if isinstance(display, str) and display:  # L1 and L2 share the entityId
                return display.upper() == scene.scene_id
            owner = entry.get("entityId")
            return owner is None or str(owner) == entity

        def ready_status(entry: Mapping[str, Any]) -> bool:
            status = str(entry.get("statusText") or "").strip().lower()
            return status in READY_REQUESTED_STATUSES and bool(entry.get("url"))

        available = [e for e in data.get("available") or () if mine(e) and e.get("url")]
        requested = [e for e in data.get("requested") or () if mine(e)]
        ready = available + [e for e in requested if ready_status(e)]
        preparing = any(not ready_status(e) for e in requested)
        return (ready[0] if ready else None), preparing

    def availability(self, scene: Scene) -> Availability:
        """Return ONLINE (ready or downloadable), ORDERED (being staged) or OFFLINE.

        Raises:
            ProviderError: no Product Bundle, refused credentials, other API errors.
            ProviderUnavailableError, RateLimitedError: after the in-task retries.
        """
        product = self._product(scene)
        if not product.available:
            return Availability.OFFLINE
        ready, preparing = self._retrieve(scene)
        if ready is None and preparing:
            return Availability.ORDERED
        return Availability.ONLINE

    def _request(self, scene: Scene, product: DownloadProduct) -> Mapping[str, Any] | None:
        """Send ``download-request``; return a ready download, or None while it is prepared."""
        data = self._call(
            "download-request",
            {
                "downloads": [{"entityId": self._entity(scene), "productId": product.product_id}],
                "label": self.label(scene),
            },
        )
        data = data if isinstance(data, Mapping) else {}
        for entry in data.get("availableDownloads") or ():
            if isinstance(entry, Mapping) and entry.get("url"):
                return entry
        failed = data.get("failed") or []
        invalid = data.get("numInvalidScenes")
        invalid = invalid if isinstance(invalid, int) and not isinstance(invalid, bool) else 0
        pending = data.get("preparingDownloads") or data.get("duplicateProducts")
        if (failed or invalid > 0) and not pending:
            reason = f"{failed!r}" if failed else f"numInvalidScenes={invalid}"
            raise ProviderError(
                f"{scene.scene_id}: USGS M2M refused the download request ({reason}); "
                "check the account's download access or try another provider"
            )
        log.info(
            "m2m.download_requested catalog=%s scene=%s preparing=%d duplicate=%d",
            self.catalog,
            scene.scene_id,
            len(data.get("preparingDownloads") or ()),
            len(data.get("duplicateProducts") or ()),
        )
        return None

    def order(self, scene: Scene) -> None:
        """Request the scene's Product Bundle (``download-request``); ordering twice is harmless.

        Raises:
            SceneOfflineError: the bundle is not available through M2M at all.
            ProviderError: no Product Bundle, a refused request or credentials.
            ProviderUnavailableError, RateLimitedError: after the in-task retries.
        """
        product = self._available_product(
            scene, fix="it cannot be ordered through M2M, try another provider"
        )
        self._request(scene, product)

    def _ready_download(self, scene: Scene, product: DownloadProduct) -> Mapping[str, Any]:
        ready = self._request(scene, product)
        deadline = time.monotonic() + self.prepare_wait_s
        polls = 0
        while ready is None:
            ready, preparing = self._retrieve(scene)
            polls += 1
            if ready is not None:
                break
            if time.monotonic() >= deadline:
                raise SceneOfflineError(
                    scene.scene_id,
                    self.catalog,
                    f"{scene.scene_id}: USGS is still preparing the download after {polls} "
                    f"polls ({self.prepare_wait_s:.0f} s, "
                    f"{'preparing' if preparing else 'not listed yet'}); it is retried when "
                    "online",
                )
            self.sleep(self.poll_interval_s)
        return ready

    def fetch(self, job: DownloadJob) -> DownloadedFile:
        """Download the scene's Product Bundle to ``dest/<scene_id>.tar`` and verify it.

        Raises:
            SceneOfflineError: the download is still being prepared after ``prepare_wait_s``,
                or the bundle is not available.
            IntegrityError: the file is not a readable tar archive (it is removed).
            ChecksumMismatchError: size or checksum differ from what M2M announced.
            ProviderError: no Product Bundle, refused request or credentials, 4xx on the file.
            ProviderUnavailableError, RateLimitedError: after the retries.
        """
        scene, dest, progress, force = job.scene, job.dest, job.progress, job.force
        target = Path(dest) / f"{safe_component(scene.scene_id, 'scene_id')}.tar"
        checksum = scene.properties.get("product_checksum")
        if not force:  # force: fetch again, the old file is replaced only once verified
            reused = reuse_existing(
                target,
                expected_size=scene.size_bytes,
                checksum=checksum if isinstance(checksum, str) else None,
            )
            if reused is not None and _is_tar(target):
                return reused
        product = self._available_product(scene, fix="try another provider")
        ready = self._ready_download(scene, product)
        size = product.size_bytes or known_size(ready.get("filesize"))
        result = download_file(
            self.client,
            str(ready["url"]),
            target,
            expected_size=size,
            checksum=product.checksum,
            progress=progress,
            force=force,
        )
        if not _is_tar(target):
            target.unlink(missing_ok=True)
            raise IntegrityError(
                f"{target}: the downloaded Product Bundle is not a readable tar archive; it "
                "was removed, download it again"
            )
        return result


def _is_tar(path: Path) -> bool:
    """Return whether ``path`` is a complete tar archive (every member header readable)."""
    try:
        with tarfile.open(path, "r:*") as archive:
            return any(True for _ in archive)
    except (tarfile.TarError, OSError, EOFError):
        return False


__all__ = ["DownloadProduct", "UsgsM2MDriver", "choose_product", "record_to_scene"]
