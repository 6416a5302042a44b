"""Catalog drivers by name (STYLE 2.2): a ``Registry`` filled by ``@register``.

Built-in driver modules are imported by name at the bottom of this module, so importing the
registry is enough to know every built-in driver. ``make_driver`` turns a conf's ``catalog`` (a
name or alias from ``config/catalogs.yaml``) and ``catalog_args`` into a ready driver.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError

from include.collectors.base import CatalogDriver, Credentials
from include.collectors.http import is_loopback_host
from include.collectors.outbound import OutboundPolicy, catalog_policy, deployment_policy
from include.common.config import (
    CATALOG_SETTING_KEYS,
    CatalogConfig,
    load_catalogs,
    resolve_catalog_name,
)
from include.common.errors import ConfigError, FieldProblem, InvalidInputError
from include.common.registry import Registry, import_modules, registry_key

log = logging.getLogger(__name__)

DRIVERS: Registry[CatalogDriver] = Registry("catalog driver", field="driver", event="driver")
"""Every catalog driver by registry key."""

BUILTIN_MODULES: tuple[str, ...] = (
    "include.collectors.stac_api",
    "include.collectors.usgs_m2m",
    "include.collectors.cdse_odata",
    "include.collectors.cdse_stac",
)
"""Modules holding built-in drivers, imported by name when this module is imported."""

CATALOG_ARG_KEYS: tuple[str, ...] = (
    "url",
    "page_size",
    "timeout_s",
    "verify_tls",
    "max_connections",
)
"""Settings a conf's ``catalog_args`` may override."""

_TASK_LAYER_KEYS = ("conn_id",)
"""``catalog_args`` keys consumed by the task layer (it turns the Connection into credentials)."""

OPTION_ARG_KEYS: tuple[str, ...] = ("token_url",)
"""``catalog_args`` keys that override an entry of the catalog's ``options`` (only when the catalog
declares it). ``token_url`` must stay on the catalog's host or loopback: the token request carries
the Connection's password."""

CREDENTIAL_KEYS = frozenset(
    "username user password passwd pass token accesstoken refreshtoken apikey secret "
    "clientsecret authorization auth credentials key".split()
)
"""Option names (lowercase, letters only) that hold credentials: refused in a conf."""
_CREDENTIAL_PARTS = ("password", "passwd", "secret", "token", "apikey", "credential")


def is_credential_key(key: str) -> bool:
    """Return whether an option name holds a credential (``api_key``, ``Client-Secret``...).

    The one rule for every entry point: a conf's ``catalog_args`` and the driver options it
    overrides (known setting names such as ``token_url`` are checked before it). Credentials
    belong in an Airflow Connection.
    """
    normal = re.sub(r"[^a-z]", "", key.lower())
    return normal in CREDENTIAL_KEYS or any(part in normal for part in _CREDENTIAL_PARTS)


_Driver = TypeVar("_Driver", bound=type[CatalogDriver])


def register(name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[_Driver], _Driver]:
    """Class decorator: register a driver under ``name`` (and ``aliases``), case-insensitive.

    Sets the class's ``name`` attribute to the lowercase registry key.

    Raises:
        ValueError: when the name or an alias is already taken by another class.
    """
    add = DRIVERS.register(name, aliases=aliases)

    def decorate(cls: _Driver) -> _Driver:
        add(cls)
        cls.name = registry_key(name)
        return cls

    return decorate


def known_drivers() -> list[str]:
    """Return the registered driver keys, sorted."""
    return DRIVERS.names()


def driver_class(name: str) -> type[CatalogDriver]:
    """Return the driver class registered as ``name`` or one of its aliases (case-insensitive).

    Raises:
        InvalidInputError: naming the known drivers when ``name`` is unknown.
    """
    return DRIVERS.get(name)


def _catalog_args_overrides(catalog_args: Mapping[str, Any]) -> dict[str, Any]:
    problems: list[FieldProblem] = []
    overrides: dict[str, Any] = {}
    known = (*CATALOG_ARG_KEYS, *OPTION_ARG_KEYS, *_TASK_LAYER_KEYS)
    for key, value in catalog_args.items():
        if key not in known and is_credential_key(key):
            problems.append(
                FieldProblem(
                    f"catalog_args.{key}",
                    "credentials are not accepted in a conf",
                    "create an Airflow Connection holding them and give its id as "
                    "catalog_args.conn_id",
                )
            )
        elif key in CATALOG_ARG_KEYS or key in OPTION_ARG_KEYS:
            overrides[key] = value
        elif key not in _TASK_LAYER_KEYS:
            problems.append(
                FieldProblem(
                    f"catalog_args.{key}",
                    "unknown catalog argument",
                    "use one of: "
                    + ", ".join((*CATALOG_ARG_KEYS, *_TASK_LAYER_KEYS, *OPTION_ARG_KEYS)),
                )
            )
    if problems:
        raise InvalidInputError(problems)
    return overrides


def _apply_overrides(config: CatalogConfig, overrides: dict[str, Any]) -> CatalogConfig:
    try:
        return CatalogConfig.model_validate({**config.model_dump(), **overrides})
    except ValidationError as err:
        raise InvalidInputError(
            [
                FieldProblem(
                    "catalog_args." + ".".join(str(part) for part in error["loc"]),
                    error["msg"],
                    "give a value of the right type and range, as in config/catalogs.yaml",
                )
                for error in err.errors()
            ]
        ) from err


def endpoint_override_problem(
    field: str,
    value: object,
    *,
    home_url: str,
    policy: OutboundPolicy | None = None,
    receives_credentials: bool = True,
) -> FieldProblem | None:
    """Return why ``value`` cannot override an endpoint beside ``home_url``, or None.

    The URL's host must be allowed by the deployment (``policy``; default: what any configured
    catalog may reach, ``include.collectors.outbound``): a catalog's own and listed hosts, the
    ``[collection_builder] allowed_hosts``, loopback only with ``allow_loopback``; link-local,
    metadata and private addresses only when listed. An endpoint that receives credentials (a
    token endpoint) must moreover be on the host of ``home_url`` or on loopback, so a conf
    cannot send a Connection's password elsewhere.

    Args:
        field: the conf field (``catalog_args.token_url``), for the problem.
        value: the URL the conf gives.
        home_url: the catalog's url (configured or overridden).
        policy: the catalog's outbound policy, when the catalog is known.
        receives_credentials: whether the endpoint gets the Connection's credentials.

    Returns:
        The problem naming the field, the host and the setting to add, or None.
    """
    if not isinstance(value, str):
        return FieldProblem(field, "must be a URL string", "give an http(s) URL")
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname
    except ValueError:
        return FieldProblem(field, "is not a valid URL (not shown)", "give an http(s) URL")
    if parts.scheme not in ("http", "https") or not host or "@" in parts.netloc:
        return FieldProblem(
            field, "is not an http(s) URL with a host (and no user info)", "give an http(s) URL"
        )
    home = urlsplit(home_url).hostname
    if receives_credentials and host != home and not is_loopback_host(host):
        return FieldProblem(
            field,
            f"points to host {host!r}, neither the catalog's host ({home}) nor loopback, and "
            "would receive the Connection's credentials",
            "leave it out (the catalog's configured endpoint is used) or configure that "
            "endpoint in config/catalogs.yaml",
        )
    return outbound_problem(field, value, policy if policy is not None else _any_catalog_policy())


def _any_catalog_policy() -> OutboundPolicy:
    try:
        catalogs = load_catalogs()
    except ConfigError:
        catalogs = {}
    return deployment_policy(catalogs)


def outbound_problem(field: str, url: str, policy: OutboundPolicy) -> FieldProblem | None:
    """Return the problem when ``url``'s host is outside ``policy``, else None."""
    refused = policy.url_problem(url)
    if refused is None:
        return None
    host, reason = refused
    return FieldProblem(
        field,
        f"points to host {host!r}, which {reason}; the server reaches only hosts the "
        "deployment allows",
        f"leave it out (the catalog's configured endpoint is used) or {policy.fix(reason)}",
    )


def _apply_option_overrides(
    name: str,
    config: CatalogConfig,
    option_overrides: Mapping[str, Any],
    policy: OutboundPolicy,
) -> CatalogConfig:
    problems: list[FieldProblem] = []
    for key, value in option_overrides.items():
        field = f"catalog_args.{key}"
        if key not in config.options:
            problems.append(
                FieldProblem(
                    field,
                    f"catalog {name!r} has no {key} option",
                    "remove it (only catalogs whose options in config/catalogs.yaml declare it "
                    "accept it)",
                )
            )
            continue
        problem = endpoint_override_problem(field, value, home_url=config.url, policy=policy)
        if problem is not None:
            problems.append(problem)
    if problems:
        raise InvalidInputError(problems)
    return config.model_copy(update={"options": {**config.options, **option_overrides}})


def driver_options(name: str, config: CatalogConfig) -> dict[str, Any]:
    """Return the options a driver gets: the catalog's settings merged over its ``options``.

    The driver parses them once into its settings model (``include.collectors.settings``).
    """
    return {
        **config.options,
        "catalog": name,
        **config.model_dump(include=set(CATALOG_SETTING_KEYS)),
    }


def make_driver(
    catalog: str,
    *,
    catalog_args: Mapping[str, Any] | None = None,
    credentials: Credentials | None = None,
    catalogs: Mapping[str, CatalogConfig] | None = None,
) -> CatalogDriver:
    """Build the driver for a configured catalog (name or alias, case-insensitive).

    Args:
        catalog: the conf's ``catalog``; an alias (``SciHub``) logs a warning.
        catalog_args: the conf's overrides of ``url``, ``page_size``, ``timeout_s``,
            ``verify_tls``, ``max_connections`` and of declared ``options`` such as
            ``token_url`` (``conn_id`` is accepted and left to the task layer; raw credentials
            are refused).
        credentials: from the catalog's Airflow Connection, if any.
        catalogs: the configured catalogs (default: ``config/catalogs.yaml``).

    Returns:
        The driver, with ``url``, ``credentials`` and ``options`` (settings, ``datasets`` map,
        ``catalog`` name, the catalog's own ``options`` and ``outbound_hosts``: its HTTP client
        refuses any request or redirect elsewhere).

    Raises:
        InvalidInputError: unknown catalog (known ones listed), bad or credential-like
            ``catalog_args``, a ``url`` or ``token_url`` override to a host the deployment does
            not allow (``include.collectors.outbound``), a ``url`` override to another host
            (loopback excepted) while credentials are used, or a ``token_url`` off the
            catalog's host and loopback.
        ConfigError: the catalog names a driver that is not available.
    """
    configured = dict(catalogs) if catalogs is not None else load_catalogs()
    try:
        name, used_alias = resolve_catalog_name(catalog, configured)
    except KeyError as err:
        raise InvalidInputError(
            FieldProblem(
                "catalog",
                f"{catalog!r} is not a configured catalog",
                f"use one of: {', '.join(sorted(configured))} (see config/catalogs.yaml)",
            )
        ) from err
    config = configured[name]
    if used_alias:
        log.warning(
            "catalog.alias alias=%s catalog=%s note=%s; write %r in new confs",
            catalog,
            name,
            config.deprecated_alias_note or "-",
            name,
        )
    overrides = _catalog_args_overrides(catalog_args or {})
    option_overrides = {key: overrides.pop(key) for key in OPTION_ARG_KEYS if key in overrides}
    merged = _apply_overrides(config, overrides)
    policy = catalog_policy(name, config)
    if "url" in overrides:
        problem = outbound_problem("catalog_args.url", merged.url, policy)
        if problem is not None:
            raise InvalidInputError(problem)
    if "url" in overrides and credentials is not None:
        configured_host = urlsplit(config.url).hostname
        new_host = urlsplit(merged.url).hostname
        if new_host != configured_host and not is_loopback_host(new_host):
            raise InvalidInputError(
                FieldProblem(
                    "catalog_args.url",
                    f"points to another host than catalog {name!r} ({configured_host}) while "
                    "its credentials are used",
                    "configure that endpoint as its own catalog in config/catalogs.yaml",
                )
            )
    if option_overrides:
        merged = _apply_option_overrides(name, merged, option_overrides, policy)
    if merged.verify_tls is False and config.verify_tls is not False:
        log.warning("catalog.tls_verify_off catalog=%s: set by catalog_args", name)
    try:
        cls = driver_class(merged.driver)
    except InvalidInputError as err:
        raise ConfigError(
            "catalogs.yaml",
            f"catalogs.{name}.driver",
            f"{merged.driver!r} is not an available driver; use one of: "
            f"{', '.join(known_drivers())}",
        ) from err
    options = driver_options(name, merged)
    options["outbound_hosts"] = list(policy.entries)
    options["outbound_allow_loopback"] = policy.allow_loopback
    conn_id = (catalog_args or {}).get("conn_id")
    if isinstance(conn_id, str) and conn_id:
        options["conn_id"] = conn_id  # the Connection actually used, for messages
    return cls(url=merged.url, credentials=credentials, options=options)


import_modules(BUILTIN_MODULES)
