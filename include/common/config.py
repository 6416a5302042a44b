"""Typed models of ``config/collections.yaml`` and ``config/catalogs.yaml`` and their loaders.

YAML holds settings only; these models validate it once (``extra="forbid"``) and a bad file raises
``ConfigError`` naming the file and the field.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from include.common.errors import ConfigError

COLLECTION_NAME_RE = re.compile(r"^[A-Za-z0-9_]+-[0-9]+$")
PROCESSING_TYPES = ("correction", "harmonization", "post")


def config_dir() -> Path:
    """Return ``$COLLECTION_BUILDER_CONFIG_DIR`` or the repository's ``config/`` folder."""
    env = os.environ.get("COLLECTION_BUILDER_CONFIG_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "config"


def data_dir() -> Path:
    """Return the data folder: ``$DATA_DIR`` or ``var/data`` in the repository."""
    env = os.environ.get("DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "var" / "data"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BandConfig(_Model):
    """One band of a collection: its canonical name, the asset keys providers use, its grid."""

    name: str
    common_name: str | None = None
    aliases: tuple[str, ...] = ()
    """Other asset keys that carry this band (``red`` on Earth Search, ``B04`` elsewhere)."""
    resolution_m: float
    center_wavelength_um: float | None = None
    nodata: float | None = 0
    data_type: str = "uint16"
    scale: float | None = None
    offset: float | None = None
    unit: str | None = None
    """Unit of ``DN * scale + offset`` when it is not a reflectance (``kelvin`` for ST bands)."""
    optional: bool = False
    """Products may lack it (an L2SR bundle has no ``ST_B10``): publish goes on without it."""


class QuicklookConfig(_Model):
    """Quicklook PNG settings: RGB bands, longest side, percentile stretch."""

    bands: tuple[str, str, str]
    size_px: int = Field(default=768, ge=64, le=4096)
    percentiles: tuple[float, float] = (2.0, 98.0)


class IndexConfig(_Model):
    """A spectral index: by name from the Awesome Spectral Indices catalog, or an expression.

    With no ``expression``, the index is taken from the catalog (the ``spyndex`` package) by
    ``name``, which defaults to the index's key; ``params`` overrides its constants (``L``,
    ``g``...). An ``expression`` is arithmetic over band names (parsed safely, never ``eval``).
    ``int16`` outputs store ``round(value / scale)``; ``float32`` stores the value.
    ``default: false`` declares an index that publish writes only when a run names it in its
    ``indices`` arg (each full-resolution index costs about as much as a band to write and store).
    """

    expression: str | None = None
    name: str | None = None
    params: dict[str, float] = Field(default_factory=dict)
    data_type: Literal["int16", "float32"] = "int16"
    scale: float = Field(default=0.0001, gt=0)
    default: bool = True

    @model_validator(mode="after")
    def _one_source(self) -> IndexConfig:
        if self.expression is not None and self.name is not None:
            raise ValueError("give either expression or name (a catalog index), not both")
        return self


class ProviderConfig(_Model):
    """One place a collection's scenes can be downloaded from, in priority order."""

    catalog: str
    dataset: str


class ProcessorConfig(_Model):
    """Which processor makes this collection for a task type, and its options."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class CollectionConfig(_Model):
    """A collection we build: what it is, its bands, how it is made and published."""

    name: str
    title: str
    description: str = ""
    platform_family: Literal["sentinel-2", "landsat"]
    level: str
    tile_system: Literal["mgrs", "wrs2"]
    instruments: tuple[str, ...] = ()
    """STAC ``instruments`` (``msi``; ``oli``, ``tirs``; ``etm+``; ``tm``): also the sensors whose
    products the collection accepts; empty means the platform family's usual ones."""
    license: str = "proprietary"
    bands: tuple[BandConfig, ...]
    quicklook: QuicklookConfig | None = None
    indices: dict[str, IndexConfig] = Field(default_factory=dict)
    providers: tuple[ProviderConfig, ...] = ()
    processors: dict[str, ProcessorConfig] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_version(cls, value: str) -> str:
        if not COLLECTION_NAME_RE.match(value):
            raise ValueError(f"{value!r} is not Name-Version such as 'S2_L2A-1'")
        return value

    @field_validator("processors")
    @classmethod
    def _processor_types(cls, value: dict[str, ProcessorConfig]) -> dict[str, ProcessorConfig]:
        unknown = sorted(set(value) - set(PROCESSING_TYPES))
        if unknown:
            raise ValueError(f"unknown task types {unknown}; use {list(PROCESSING_TYPES)}")
        return value

    def band(self, key: str) -> BandConfig | None:
        """Return the band whose name or alias is ``key`` (case-insensitive)."""
        wanted = key.lower()
        for band in self.bands:
            if band.name.lower() == wanted or wanted in (a.lower() for a in band.aliases):
                return band
        return None


class CatalogSettings(_Model):
    """The settings every catalog driver takes, with their defaults (the one place for them).

    ``CatalogConfig`` (an entry of ``config/catalogs.yaml``) is these plus where the catalog is
    and which driver speaks to it; a driver's own settings model
    (``include.collectors.settings``) is these plus the driver's options.
    """

    page_size: int = Field(default=100, ge=1, le=10000)
    timeout_s: float = Field(default=60.0, gt=0)
    verify_tls: bool | str = True
    """True, False, or a CA bundle path."""
    max_connections: int = Field(default=4, ge=1, le=64)
    conn_id: str | None = None
    datasets: dict[str, str] = Field(default_factory=dict)
    """Dataset names users write (``S2MSI1C``) mapped to the catalog's (``sentinel-2-l1c``)."""


CATALOG_SETTING_KEYS: tuple[str, ...] = tuple(CatalogSettings.model_fields)
"""The names of the settings every catalog driver takes."""


class CatalogConfig(CatalogSettings):
    """A configured catalog: which driver speaks to it and its settings."""

    driver: str
    url: str
    aliases: tuple[str, ...] = ()
    deprecated_alias_note: str = ""
    slot_group: str | None = None
    """Catalogs that share one account's connection limit (``cdse`` and ``cdse-stac``) name the
    same group and draw their download slots from it; default: the catalog's own name."""
    options: dict[str, Any] = Field(default_factory=dict)
    """The driver's own settings (``include.collectors.settings``), and the wait settings of
    ``include.radcor.wait_settings``."""
    allowed_hosts: tuple[str, ...] = ()
    """Hosts this catalog's requests and ``catalog_args`` URL overrides may reach besides its own
    ``url`` host and the hosts of URL ``options`` (``token_url``): names, IP addresses, networks
    (``10.0.0.0/8``) or ``*.example.org`` for subdomains (include/collectors/outbound.py)."""

    @field_validator("allowed_hosts")
    @classmethod
    def _lowercase_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(host.strip().lower() for host in value if host.strip())


class _CollectionsFile(_Model):
    collections: dict[str, CollectionConfig]


class _CatalogsFile(_Model):
    catalogs: dict[str, CatalogConfig]


def _load_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError as err:
        raise ConfigError(
            str(path), "-", "file not found; set COLLECTION_BUILDER_CONFIG_DIR"
        ) from err
    except yaml.YAMLError as err:
        raise ConfigError(str(path), "-", f"not valid YAML: {err}") from err


def _config_error(path: Path, err: ValidationError) -> ConfigError:
    first = err.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    return ConfigError(str(path), field, first["msg"])


def _without_anchor_keys(data: Any) -> Any:
    """Drop top-level ``x-*`` keys, which only hold YAML anchors (as in compose files)."""
    if isinstance(data, dict):
        return {key: value for key, value in data.items() if not str(key).startswith("x-")}
    return data


def parse_collections(data: Any, source: str = "collections.yaml") -> dict[str, CollectionConfig]:
    """Validate a collections document (``{"collections": {name: {...}}}``) keyed by name."""
    data = _without_anchor_keys(data)
    if isinstance(data, dict) and isinstance(data.get("collections"), dict):
        for name, body in data["collections"].items():
            if isinstance(body, dict):
                body.setdefault("name", name)
    try:
        parsed = _CollectionsFile.model_validate(data)
    except ValidationError as err:
        raise _config_error(Path(source), err) from err
    for key, collection in parsed.collections.items():
        if key != collection.name:
            raise ConfigError(source, f"collections.{key}.name", f"must equal its key {key!r}")
    return dict(parsed.collections)


def parse_catalogs(data: Any, source: str = "catalogs.yaml") -> dict[str, CatalogConfig]:
    """Validate a catalogs document keyed by lowercase catalog name."""
    data = _without_anchor_keys(data)
    try:
        parsed = _CatalogsFile.model_validate(data)
    except ValidationError as err:
        raise _config_error(Path(source), err) from err
    return {name.lower(): catalog for name, catalog in parsed.catalogs.items()}


@cache
def _collections_at(path: Path) -> dict[str, CollectionConfig]:
    return parse_collections(_load_yaml(path), str(path))


@cache
def _catalogs_at(path: Path) -> dict[str, CatalogConfig]:
    return parse_catalogs(_load_yaml(path), str(path))


def load_collections() -> dict[str, CollectionConfig]:
    """Return the configured collections keyed by ``Name-Version``."""
    return _collections_at(config_dir() / "collections.yaml")


def load_catalogs() -> dict[str, CatalogConfig]:
    """Return the configured catalogs keyed by lowercase name."""
    return _catalogs_at(config_dir() / "catalogs.yaml")


def resolve_catalog_name(name: str, catalogs: dict[str, CatalogConfig]) -> tuple[str, bool]:
    """Return ``(canonical name, used_alias)`` for a catalog name or alias, case-insensitive.

    Raises:
        KeyError: when neither a name nor an alias matches.
    """
    wanted = name.strip().lower()
    if wanted in catalogs:
        return wanted, False
    for canonical, catalog in catalogs.items():
        if wanted in (alias.lower() for alias in catalog.aliases):
            return canonical, True
    raise KeyError(name)


PUBLIC_BASE_URL_ENV = "COLLECTION_BUILDER_PUBLIC_BASE_URL"
"""The URL at which ``DATA_DIR/published`` is served; served catalogs (pgstac) link assets there."""


def public_base_url() -> str | None:
    """Return ``$COLLECTION_BUILDER_PUBLIC_BASE_URL`` without its trailing ``/``, or None if unset.

    Raises:
        ConfigError: when the value is not an ``http://`` or ``https://`` URL.
    """
    value = os.environ.get(PUBLIC_BASE_URL_ENV, "").strip().rstrip("/")
    if not value:
        return None
    if not re.match(r"^https?://[^/\s]+", value, re.IGNORECASE):
        raise ConfigError(
            "environment",
            PUBLIC_BASE_URL_ENV,
            f"{value!r} is not an http(s) URL; use the URL serving DATA_DIR/published, "
            "such as https://data.example.org/published",
        )
    return value


ALLOWED_HOSTS_ENV = (
    "AIRFLOW__COLLECTION_BUILDER__ALLOWED_HOSTS",
    "COLLECTION_BUILDER_ALLOWED_HOSTS",
)
"""Environment variables of the deployment-wide allowed hosts, first set wins (comma-separated);
else ``[collection_builder] allowed_hosts`` of ``airflow.cfg``."""
ALLOW_LOOPBACK_ENV = (
    "AIRFLOW__COLLECTION_BUILDER__ALLOW_LOOPBACK",
    "COLLECTION_BUILDER_ALLOW_LOOPBACK",
)
"""Environment variables of the loopback switch, first set wins; else
``[collection_builder] allow_loopback`` of ``airflow.cfg``; default off."""


@dataclass(frozen=True, slots=True)
class OutboundSettings:
    """The deployment's rules for where catalog requests may go (docs/catalogs.md).

    Attributes:
        allowed_hosts: hosts every catalog may reach (names, IPs, networks, ``*.suffix``).
        allow_loopback: whether ``catalog_args`` and requests may reach loopback hosts that are
            not listed (tests, the demo, local tunnels).
    """

    allowed_hosts: tuple[str, ...] = ()
    allow_loopback: bool = False


def _airflow_cfg_option(name: str) -> str | None:
    """Return ``[collection_builder] <name>`` of ``$AIRFLOW_CONFIG`` (or ``$AIRFLOW_HOME``'s)."""
    path_text = os.environ.get("AIRFLOW_CONFIG") or str(
        Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow") / "airflow.cfg"
    )
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(path_text, encoding="utf-8")
    except (OSError, configparser.Error):
        return None
    return parser.get("collection_builder", name, fallback=None)


def _setting(env_names: tuple[str, ...], option: str) -> str | None:
    for env in env_names:
        value = os.environ.get(env)
        if value is not None:
            return value
    return _airflow_cfg_option(option)


def outbound_settings() -> OutboundSettings:
    """Return the deployment-wide outbound settings, read now (environment, then airflow.cfg).

    Raises:
        ConfigError: when ``allow_loopback`` is not a boolean word.
    """
    hosts_text = _setting(ALLOWED_HOSTS_ENV, "allowed_hosts") or ""
    hosts = tuple(host.strip().lower() for host in hosts_text.split(",") if host.strip())
    loopback_text = (_setting(ALLOW_LOOPBACK_ENV, "allow_loopback") or "false").strip().lower()
    if loopback_text in ("1", "true", "yes", "on"):
        allow_loopback = True
    elif loopback_text in ("", "0", "false", "no", "off"):
        allow_loopback = False
    else:
        raise ConfigError(
            "environment",
            ALLOW_LOOPBACK_ENV[1],
            f"{loopback_text!r} is not a boolean; use true or false "
            "([collection_builder] allow_loopback)",
        )
    return OutboundSettings(allowed_hosts=hosts, allow_loopback=allow_loopback)
