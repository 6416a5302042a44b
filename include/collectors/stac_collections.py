"""Whether a STAC API serves a collection: its own answer, asked once per driver.

STAC API - Collections (OGC API Features) answers ``GET {url}/collections/{id}`` with the
collection or 404, and ``GET {url}/collections`` with ``{"collections": [...]}``. A 404 for
the id counts as "not served" only when the list answers too (a server with item search alone
answers 404 for every path under ``/collections``). Anything else (no answer within the
probe's timeout, a refused host, 5xx, not JSON) is "cannot tell": the search decides.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from urllib.parse import quote

import httpx

from include.collectors.http import redact_url
from include.common.errors import ProviderError

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 10.0
"""The longest one question about a collection may take (validation must not hang)."""


class CollectionDirectory:
    """A STAC API's collections as the API tells them, each answer cached.

    Args:
        catalog: the configured catalog name, for the log.
        base_url: the STAC API root (no trailing slash).
        client: the driver's HTTP client (its outbound allowlist applies).
        headers: the request headers for a URL (the driver's auth, on its own host only).
        timeout_s: the driver's request timeout; a question takes at most ``PROBE_TIMEOUT_S``.
    """

    def __init__(
        self,
        *,
        catalog: str,
        base_url: str,
        client: Callable[[], httpx.Client],
        headers: Callable[[str], Mapping[str, str]],
        timeout_s: float,
    ) -> None:
        self.catalog = catalog
        self.base_url = base_url
        self._client = client
        self._headers = headers
        self._timeout_s = min(timeout_s, PROBE_TIMEOUT_S)
        self._answers: dict[str, bool | None] = {}
        self._listed: list[str] | None = None
        self._lock = threading.Lock()

    @property
    def listed(self) -> list[str]:
        """The collection ids the API listed (sorted), or [] when it was not asked or failed."""
        return list(self._listed or ())

    def serves(self, collection: str) -> bool | None:
        """Return whether the API serves ``collection``; None when it cannot tell."""
        with self._lock:
            if collection not in self._answers:
                self._answers[collection] = self._ask(collection)
            return self._answers[collection]

    def _ask(self, collection: str) -> bool | None:
        response = self._get(f"{self.base_url}/collections/{quote(collection, safe='')}")
        if response is None:
            return None
        if response.status_code < 300:
            return True
        if response.status_code != 404:
            return None
        listed = self._list()
        if listed is None:
            return None
        self._listed = listed
        return collection in listed

    def _list(self) -> list[str] | None:
        response = self._get(f"{self.base_url}/collections")
        if response is None or response.status_code != 200:
            return None
        try:
            document = response.json()
        except ValueError:
            return None
        entries = document.get("collections") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            return None
        return sorted(
            str(entry["id"]) for entry in entries if isinstance(entry, dict) and entry.get("id")
        )

    def _get(self, url: str) -> httpx.Response | None:
        try:
            return self._client().get(
                url,
                headers={"Accept": "application/json", **self._headers(url)},
                timeout=self._timeout_s,
            )
        except (httpx.HTTPError, ProviderError) as err:
            # debug: the URL holds the conf's dataset, which a log line above debug never shows
            log.debug(
                "dataset.check_skipped catalog=%s url=%s: %s; the search checks it",
                self.catalog,
                redact_url(url),
                type(err).__name__,
            )
            return None


__all__: list[str] = ["PROBE_TIMEOUT_S", "CollectionDirectory"]
