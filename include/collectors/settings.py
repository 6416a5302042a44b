"""Typed settings of every catalog driver, with their defaults in one place (STYLE 2.2, 2.4).

A driver is built from one settings model: the settings every catalog takes
(``include.common.config.CatalogSettings``: ``page_size``, ``timeout_s``, ``verify_tls``,
``max_connections``, ``conn_id``, ``datasets``) plus the driver's own options from
``config/catalogs.yaml``. ``make_driver`` hands a driver its catalog's settings merged over its
``options`` (the mapping ``driver_options`` returns); the driver parses that mapping once with
``<Model>.from_options`` and reads typed attributes from then on. Keys a driver does not know (the
wait settings ``include.radcor.wait_settings`` reads, such as ``wait_mode``) are ignored here.

An empty value (None, ``""``, an empty list or map) means "the default", as it always did.
A value of the wrong type raises ``ConfigError`` naming ``catalogs.<name>.options.<key>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Self

import httpx
from pydantic import ConfigDict, Field, ValidationError, field_validator

from include.collectors.http import build_http_client
from include.collectors.outbound import OutboundPolicy
from include.common.config import CatalogSettings
from include.common.errors import ConfigError

# -- defaults that are not plain field defaults below --------------------------------------

_CDSE_IDENTITY = "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect"
CDSE_TOKEN_URL = _CDSE_IDENTITY + "/token"
"""CDSE's OpenID Connect token endpoint (Keycloak realm CDSE), for its OData and STAC modes."""
CDSE_CLIENT_ID = "cdse-public"
CDSE_CONN_ID = "cdse_default"
CDSE_AUTH_HOSTS: tuple[str, ...] = ("dataspace.copernicus.eu",)
"""Host suffixes that may receive a CDSE token (besides the catalog's and the token endpoint's)."""

STAC_MAX_PAGES = 1000
AZURE_BLOB_HOST_SUFFIX = ".blob.core.windows.net"
DEFAULT_SAS_REFRESH_MARGIN_S = 300.0
"""A cached SAS token is renewed when it expires within this many seconds."""
MGRS_QUERY_STYLES = ("s2", "mgrs", "grid")

CDSE_MAX_PAGES = 100
"""CDSE refuses ``$skip`` above 10,000: 100 pages of 100 reach it."""
CDSE_MAX_SKIP = 10_000
"""CDSE's largest ``$skip``; it leaves out ``@odata.nextLink`` rather than link past it."""
CDSE_MAX_TOP = 1000
"""CDSE's largest ``$top``."""

USGS_CONN_ID = "usgs_default"
M2M_MAX_RESULTS = 50_000
"""The most scenes USGS M2M lists for one ``scene-search`` (its reference: "a 50,000 scene
limit for the number of results that are returned")."""


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str | list | tuple | dict) and not value)


class DriverSettings(CatalogSettings):
    """The settings of any driver: those of every catalog plus the catalog's name."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    catalog: str
    """The configured catalog name (messages, logs); default: the driver's registry key."""
    max_pages: int = Field(default=STAC_MAX_PAGES, ge=1)
    """Safety cap on result pages of one query; a search past it is split (``split.py``)."""
    search_workers: int = Field(default=2, ge=1, le=8)
    """Queries of one split search run at once."""
    outbound_hosts: tuple[str, ...] | None = None
    """The hosts the driver's requests may reach (``include.collectors.outbound``), set by
    ``make_driver``; None (a driver built by hand, in tests): no check."""
    outbound_allow_loopback: bool = False
    """Whether unlisted loopback hosts may be reached (``[collection_builder] allow_loopback``)."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, catalog: str) -> Self:
        """Parse a driver's options mapping (empty values take the default).

        Args:
            options: what ``make_driver`` (or a test) gives the driver.
            catalog: the catalog name when ``options`` names none (the driver's key).

        Returns:
            The typed settings.

        Raises:
            ConfigError: naming ``catalogs.<catalog>.options.<key>`` of a value of the wrong type.
        """
        given = {str(key): value for key, value in options.items() if not _is_empty(value)}
        given.setdefault("catalog", catalog)
        try:
            return cls.model_validate(given)
        except ValidationError as err:
            first = err.errors()[0]
            key = ".".join(str(part) for part in first["loc"])
            where = key if key in CatalogSettings.model_fields else f"options.{key}"
            cause = first.get("ctx", {}).get("error")
            message = str(cause) if isinstance(cause, ValueError) else first["msg"]
            raise ConfigError(
                "catalogs.yaml", f"catalogs.{given['catalog']}.{where}", message
            ) from err

    def datasets_by_lower_name(self) -> dict[str, str]:
        """Return ``datasets`` keyed by lowercase conf name (lookups are case-insensitive)."""
        return {name.lower(): value for name, value in self.datasets.items()}

    def http_client(self) -> httpx.Client:
        """Return a new HTTP client with these settings' timeout, TLS and pool size.

        Raises:
            InvalidInputError: when ``verify_tls`` names a CA bundle that cannot be loaded.
        """
        return build_http_client(
            timeout_s=self.timeout_s,
            verify_tls=self.verify_tls,
            max_connections=self.max_connections,
            outbound=self.outbound_policy(),
        )

    def outbound_policy(self) -> OutboundPolicy | None:
        """Return the policy of ``outbound_hosts``, or None when none was set."""
        if self.outbound_hosts is None:
            return None
        return OutboundPolicy.from_entries(
            self.catalog, self.outbound_hosts, allow_loopback=self.outbound_allow_loopback
        )


class StacApiSettings(DriverSettings):
    """A STAC API (``stac``).

    ``mgrs_query_style``: ``s2`` for ``s2:mgrs_tile``, ``mgrs`` for Earth Search's ``mgrs:*``
    triple, ``grid`` for ``grid:code`` alone (CDSE's STAC 1.1 items); unset: try both ``s2`` and
    ``mgrs`` and keep the one that works. ``sign_assets``: Planetary Computer SAS signing of blob
    hrefs, tokens from ``sas_url`` (default ``/api/sas/v1`` beside the catalog's url) for hosts
    ending in ``sas_host_suffixes``, renewed ``sas_refresh_margin_s`` before they expire.
    """

    dataset_platforms: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """Conf dataset -> the platforms its items must have (one STAC collection, several)."""
    mgrs_query_style: Literal["s2", "mgrs", "grid"] | None = None
    sign_assets: bool = False
    sas_url: str | None = None
    sas_host_suffixes: tuple[str, ...] = (AZURE_BLOB_HOST_SUFFIX,)
    sas_refresh_margin_s: float = DEFAULT_SAS_REFRESH_MARGIN_S
    max_items: int | None = Field(default=None, ge=1)
    """The most items the server lists for one search (it gives no next link past them);
    None: no cap known besides ``max_pages``. A search matching more is split."""

    @field_validator("mgrs_query_style", mode="before")
    @classmethod
    def _known_style(cls, value: object) -> object:
        if value is not None and value not in MGRS_QUERY_STYLES:
            raise ValueError(f"{value!r} is not one of {', '.join(MGRS_QUERY_STYLES)}")
        return value


class CdseAuthSettings(DriverSettings):
    """The CDSE account: where its token comes from and which hosts may receive it.

    ``max_attempts`` and ``retry_base_delay_s`` are the in-task download retries.
    """

    conn_id: str = CDSE_CONN_ID
    token_url: str = CDSE_TOKEN_URL
    client_id: str = CDSE_CLIENT_ID
    auth_hosts: tuple[str, ...] = CDSE_AUTH_HOSTS
    max_attempts: int = 3
    retry_base_delay_s: float = 0.5

    @field_validator("auth_hosts")
    @classmethod
    def _host_suffixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(host.lower().lstrip(".") for host in value)


class CdseODataSettings(CdseAuthSettings):
    """CDSE's OData API (``cdse``): ``page_size`` is ``$top`` (at most 1000).

    ``max_skip`` is CDSE's ``$skip`` limit; ``expand_assets`` also ``$expand``s Assets: the
    Quicklook, a preview entry's ``icon``, comes only with it (set false for smaller answers).
    """

    max_pages: int = Field(default=CDSE_MAX_PAGES, ge=1)
    max_skip: int = CDSE_MAX_SKIP
    expand_assets: bool = True

    @field_validator("page_size", mode="before")
    @classmethod
    def _top(cls, value: object) -> object:
        return max(1, min(int(value), CDSE_MAX_TOP)) if isinstance(value, int | float) else value


class CdseStacSettings(CdseAuthSettings, StacApiSettings):
    """CDSE's STAC API (``cdse_stac``): a STAC API searched by ``grid:code``, the CDSE account."""

    conn_id: str = CDSE_CONN_ID
    """Restated: pydantic takes a field from the last base declaring it, here StacApiSettings."""
    mgrs_query_style: Literal["s2", "mgrs", "grid"] | None = "grid"


class UsgsM2MSettings(DriverSettings):
    """USGS M2M (``usgs``), see ``include.collectors.usgs_m2m``.

    ``max_attempts`` per API call, backoff from ``base_delay_s`` up to ``max_delay_s``;
    ``download`` polls a download being staged every ``poll_interval_s`` for ``prepare_wait_s``
    before raising ``SceneOfflineError``; ``product_name`` picks a download option instead of the
    Product Bundle; ``label_prefix`` starts download request labels; ``describe_downloads``
    looks up size and availability of every found scene with ``download-options``.
    """

    conn_id: str = USGS_CONN_ID
    max_attempts: int = 4
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    prepare_wait_s: float = 120.0
    poll_interval_s: float = 10.0
    label_prefix: str = "collection-builder"
    product_name: str | None = None
    describe_downloads: bool = True
    max_results: int = Field(default=M2M_MAX_RESULTS, ge=1)
    """The most scenes M2M lists for one search; a search matching more is split."""

    @field_validator("max_attempts")
    @classmethod
    def _at_least_once(cls, value: int) -> int:
        return max(1, value)

    @field_validator("poll_interval_s")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        return max(0.0, value)


__all__ = [
    "CdseAuthSettings",
    "CdseODataSettings",
    "CdseStacSettings",
    "DriverSettings",
    "StacApiSettings",
    "UsgsM2MSettings",
]
