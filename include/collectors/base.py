"""The catalog driver contract: search, availability, order, download (STYLE 2.2).

Every catalog (a STAC API, CDSE OData, USGS M2M) is one ``CatalogDriver`` subclass registered by
name in ``registry.py``. Values crossing the interface are frozen dataclasses.
"""

from __future__ import annotations

import abc
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import httpx

from include.common.progress import ProgressFn

if TYPE_CHECKING:
    from include.collectors.settings import DriverSettings

MAX_DATASET_CHARS = 100
"""The longest ``dataset`` a conf may give."""
_DATASET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}")
SHOWN_NAMES = 12
"""How many names of a catalog's own list a message shows."""


def shortened(names: list[str], shown: int = SHOWN_NAMES) -> str:
    """Return ``names`` joined with commas, the first ``shown`` and how many more."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f", ... ({more} more)" if more > 0 else "")


@dataclass(frozen=True, slots=True)
class Credentials:
    """Plain credentials taken from an Airflow Connection by the task layer; never logged."""

    username: str | None = None
    password: str | None = None
    token: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=***, token=***)"


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A canonical search: exactly one of bbox, geometry, tiles or scene_ids selects the area.

    ``bbox`` is (w, s, e, n) in degrees; ``geometry`` a GeoJSON geometry dict in WGS84;
    datetimes are timezone-aware UTC. ``scene_ids`` ignores dates and cloud.
    """

    dataset: str
    bbox: tuple[float, float, float, float] | None = None
    geometry: dict[str, Any] | None = None
    tiles: tuple[str, ...] = ()
    scene_ids: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    cloud_pct: float = 100.0
    limit: int | None = None


def known_size(value: object) -> int | None:
    """Return a catalog's byte count when it is one (a positive integer), else None.

    Catalogs write 0 for "unknown" (CDSE's ``ContentLength`` of products it has not sized), and
    no scene file is empty, so 0 is never taken as the size to verify against.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value > 0 else None


@dataclass(frozen=True, slots=True)
class Asset:
    """One downloadable file of a scene (a band file or the whole archive)."""

    key: str
    href: str
    size_bytes: int | None = None
    checksum: str | None = None
    """Multihash hex (STAC ``file:checksum``) or ``<algo>:<hex>`` such as ``md5:...``."""
    media_type: str | None = None
    roles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Scene:
    """One scene found in a catalog; JSON-friendly through ``to_dict``/``from_dict``."""

    scene_id: str
    catalog: str
    dataset: str
    datetime: datetime
    cloud_pct: float | None
    tile: str | None
    footprint: dict[str, Any] | None
    """GeoJSON geometry in WGS84."""
    size_bytes: int | None = None
    link: str | None = None
    quicklook: str | None = None
    online: bool = True
    platform: str | None = None
    assets: tuple[Asset, ...] = ()
    properties: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (datetimes as ISO 8601 strings)."""
        return {
            "scene_id": self.scene_id,
            "catalog": self.catalog,
            "dataset": self.dataset,
            "datetime": self.datetime.isoformat(),
            "cloud_pct": self.cloud_pct,
            "tile": self.tile,
            "footprint": self.footprint,
            "size_bytes": self.size_bytes,
            "link": self.link,
            "quicklook": self.quicklook,
            "online": self.online,
            "platform": self.platform,
            "assets": [
                {
                    "key": a.key,
                    "href": a.href,
                    "size_bytes": a.size_bytes,
                    "checksum": a.checksum,
                    "media_type": a.media_type,
                    "roles": list(a.roles),
                }
                for a in self.assets
            ],
            "properties": self.properties,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scene:
        """Rebuild a scene from ``to_dict`` output."""
        return cls(
            scene_id=data["scene_id"],
            catalog=data["catalog"],
            dataset=data["dataset"],
            datetime=datetime.fromisoformat(data["datetime"]),
            cloud_pct=data.get("cloud_pct"),
            tile=data.get("tile"),
            footprint=data.get("footprint"),
            size_bytes=data.get("size_bytes"),
            link=data.get("link"),
            quicklook=data.get("quicklook"),
            online=data.get("online", True),
            platform=data.get("platform"),
            assets=tuple(
                Asset(
                    key=a["key"],
                    href=a["href"],
                    size_bytes=a.get("size_bytes"),
                    checksum=a.get("checksum"),
                    media_type=a.get("media_type"),
                    roles=tuple(a.get("roles", ())),
                )
                for a in data.get("assets", ())
            ),
            properties=dict(data.get("properties", {})),
        )


class Availability(StrEnum):
    """Whether a scene can be downloaded now."""

    ONLINE = "online"
    OFFLINE = "offline"
    ORDERED = "ordered"


@dataclass(frozen=True, slots=True)
class DownloadedFile:
    """A verified file (or folder of files) in its final place."""

    path: Path
    size_bytes: int
    checksum: str | None
    """``<algo>:<hex>`` of the file, or None for a folder of assets."""
    reused: bool = False
    files: tuple[Path, ...] = ()
    checksums: tuple[tuple[str, str], ...] = ()
    """For a folder of assets: ``(file name, "<algo>:<hex>")`` of each file, as verified."""


@dataclass(frozen=True, slots=True)
class DownloadJob:
    """One ``download`` call: the scene, its folder, the progress callback, ``force``."""

    scene: Scene
    dest: Path
    progress: ProgressFn | None = None
    force: bool = False


class CommonSettings(Protocol):
    """The settings every catalog driver has (``collectors.settings.DriverSettings``)."""

    catalog: str
    page_size: int
    max_pages: int
    search_workers: int
    max_connections: int
    timeout_s: float
    verify_tls: bool | str


class CatalogDriver(abc.ABC):
    """A remote catalog: search scenes, tell availability, order, download.

    Contract for every implementation:
    - ``search`` pages through all results and returns scenes sorted by datetime; a bad query
      raises ``InvalidInputError`` naming the field; 5xx and timeouts raise
      ``ProviderUnavailableError``, 429 raises ``RateLimitedError``; other 4xx raise
      ``ProviderError`` with status and body.
    - ``availability`` never downloads; ``order`` is idempotent (ordering twice is harmless).
    - ``download`` writes under ``dest`` (a scene folder) through a temporary name and renames
      into place atomically; a valid file already in place is reused unless ``force``, which
      downloads it again and replaces the old file only once the new one is verified (a failed
      forced download leaves the old file as it was); a checksum mismatch raises
      ``ChecksumMismatchError`` and leaves nothing at the final path; an offline scene raises
      ``SceneOfflineError``. It is safe to call again after a kill (resume or restart).
    """

    name: str = ""
    settings_model: ClassVar[type[DriverSettings] | None] = None
    """The settings the driver is built from (``include.collectors.settings``); None: none."""
    default_url: ClassVar[str | None] = None
    """The catalog's URL when neither ``catalogs.yaml`` nor the conf gives one."""
    url_kind: ClassVar[str] = "URL"
    """What ``url`` must be, for the message refusing it (``OData URL``)."""
    url_example: ClassVar[str] = "https://..."
    """A ``url`` the driver takes, for that message."""
    url_fix: ClassVar[str | None] = None
    """How to fix a ``url`` that is not HTTP(S) (default: set it, like ``url_example``)."""
    settings: DriverSettings
    base_url: str
    """``url`` (or ``default_url``) without a trailing slash."""

    def __init__(
        self,
        *,
        url: str | None = None,
        credentials: Credentials | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        """Build the driver: its settings parsed once, then the driver's own (``configure``).

        Raises:
            InvalidInputError: ``url`` is not an HTTP(S) URL.
            ConfigError: an option of the wrong type.
        """
        self.url = url
        self.credentials = credentials
        self.options = dict(options or {})
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()
        if self.settings_model is not None:
            self.base_url = self._checked_url(url or self.default_url)
            self.settings = self.settings_model.from_options(self.options, catalog=self.name)
            self.adopt_common_settings(self.settings)
        self.configure()

    def _checked_url(self, url: str | None) -> str:
        if not url or not url.lower().startswith(("http://", "https://")):
            from include.common.errors import FieldProblem, InvalidInputError

            raise InvalidInputError(
                FieldProblem(
                    "catalog_args.url",
                    f"{url!r} is not an HTTP(S) {self.url_kind}",
                    self.url_fix
                    or "set url in config/catalogs.yaml (or catalog_args.url), e.g. "
                    + self.url_example,
                )
            )
        return url.rstrip("/")

    def configure(self) -> None:
        """Read the driver's own settings from ``self.settings`` (default: none)."""
        return None

    def adopt_common_settings(self, settings: CommonSettings) -> None:
        """Expose the settings every driver shares as its attributes (``driver.page_size``...)."""
        self.catalog = settings.catalog
        self.page_size = settings.page_size
        self.max_pages = settings.max_pages
        self.search_workers = settings.search_workers
        self.max_connections = settings.max_connections
        self.timeout_s = settings.timeout_s
        self.verify_tls = settings.verify_tls

    @property
    def client(self) -> httpx.Client:
        """The driver's HTTP client for catalog requests, built on first use (never a token)."""
        with self._client_lock:
            if self._client is None:
                self._client = self.settings.http_client()
            return self._client

    def close(self) -> None:
        """Close the HTTP client, if one was built (idempotent)."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
            self._client = None

    def __enter__(self) -> CatalogDriver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @abc.abstractmethod
    def search(self, query: SearchQuery) -> list[Scene]:
        """Return every scene matching ``query``, oldest first."""

    def known_datasets(self) -> list[str]:
        """Return the conf ``dataset`` names this catalog is configured with, sorted."""
        datasets = self.options.get("datasets") or {}
        return sorted(str(name) for name in datasets)

    def accepts_dataset(self, name: str) -> bool:
        """Return whether the catalog may serve ``name`` beyond ``known_datasets`` (a driver rule).

        The default accepts a catalog's own collection id (letters, digits, ``._-/``).
        """
        return bool(_DATASET_ID.fullmatch(name))

    def offers_dataset(self, name: str) -> bool | None:
        """Ask the catalog whether it serves ``name``; None when it cannot tell (default).

        Only called for a name ``accepts_dataset`` accepts and no configured one.
        """
        return None

    def offered_datasets(self) -> list[str]:
        """Return the catalog's own dataset list when ``offers_dataset`` read one, else []."""
        return []

    def check_dataset(self, name: object) -> str:
        """Check a conf's ``dataset`` before any work and return it stripped.

        A configured name (or the collection it maps to: a search gets that) passes; another
        passes when the driver's rule accepts it and the catalog, asked through
        ``offers_dataset``, does not deny serving it.

        Raises:
            InvalidInputError: ``dataset`` is not a string of 1-100 printable characters, or
                the catalog offers no such dataset (the known names are in the message).
        """
        from include.common.errors import FieldProblem, InvalidInputError

        known = self.known_datasets()
        fix = f"use one of: {', '.join(known)}" if known else "give the catalog's collection id"
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError(FieldProblem("dataset", "must be a non-empty string", fix))
        text = name.strip()
        if len(text) > MAX_DATASET_CHARS or not text.isprintable():
            raise InvalidInputError(
                FieldProblem(
                    "dataset",
                    f"must be at most {MAX_DATASET_CHARS} printable characters "
                    "(no control characters)",
                    fix,
                )
            )
        targets = (self.options.get("datasets") or {}).values()
        if text.lower() in {str(name).lower() for name in (*known, *targets)}:
            return text
        if self.accepts_dataset(text) and self.offers_dataset(text) is not False:
            return text
        offered = self.offered_datasets()
        if offered:
            fix = "; ".join(
                [*([fix] if known else []), f"the catalog's collections: {shortened(offered)}"]
            )
        shown = text if len(text) <= 40 else text[:40] + "..."
        catalog = getattr(self, "catalog", None) or self.name
        raise InvalidInputError(
            FieldProblem("dataset", f"{shown!r} is not a dataset of catalog {catalog!r}", fix)
        )

    def iter_search(self, query: SearchQuery) -> Iterator[Scene]:
        """Yield every scene of ``query`` once, in no set order, holding little in memory.

        Drivers that split a search (``include.collectors.split``) yield one window at a time;
        the default yields ``search``'s list.

        Raises:
            InvalidInputError, ProviderError, TransientError: as ``search``.
        """
        yield from self.search(query)

    def availability(self, scene: Scene) -> Availability:
        """Return whether ``scene`` can be downloaded now (default: what search said)."""
        return Availability.ONLINE if scene.online else Availability.OFFLINE

    def order(self, scene: Scene) -> str | None:
        """Ask the provider to bring ``scene`` online; return its order id when it gives one.

        Idempotent: ordering a scene already ordered (or online) is harmless (default: nothing
        to do, no id).
        """
        return None

    def download(
        self,
        scene: Scene,
        dest: Path,
        *,
        progress: ProgressFn | None = None,
        force: bool = False,
    ) -> DownloadedFile:
        """Download ``scene`` into the folder ``dest`` and return the verified result.

        ``force`` (the radcor conf's) fetches the scene again even when a valid copy is in place.
        The driver's ``fetch`` does the work (see the class's contract).
        """
        return self.fetch(DownloadJob(scene, dest, progress=progress, force=force))

    @abc.abstractmethod
    def fetch(self, job: DownloadJob) -> DownloadedFile:
        """Download ``job.scene`` into ``job.dest`` and return the verified result."""
