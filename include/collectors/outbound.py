"""Where a catalog's requests may go: the deployment's allowlist (docs/catalogs.md).

A catalog may reach its own ``url`` host, the hosts of its URL ``options`` (``token_url``), its
``allowed_hosts`` in ``config/catalogs.yaml`` and the deployment-wide ``[collection_builder]
allowed_hosts``; loopback only when ``[collection_builder] allow_loopback`` is on (tests, the
demo) or when listed. ``make_driver`` checks ``catalog_args`` URL overrides with it, and the HTTP
client of every driver it builds checks each request and redirect hop (``build_http_client``), so
no conf can make the api-server or a worker reach another place.

An entry is a host name or IP address (listed explicitly: trusted as is), a network
(``10.0.0.0/8``) or ``*.example.org`` (any subdomain). A name matched only by ``*.`` is resolved,
and refused when an address is loopback (without the switch), link-local (169.254.0.0/16 with the
cloud metadata address 169.254.169.254, fe80::/10), private (RFC 1918, fc00::/7), unspecified,
multicast or reserved, unless that address is listed. A name that does not resolve is let through:
the request fails on its own.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from include.common.config import CatalogConfig, OutboundSettings, outbound_settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})

ALLOWED_HOSTS_FIX = (
    "add the host to allowed_hosts of the catalog in config/catalogs.yaml, or to the "
    "deployment's [collection_builder] allowed_hosts (env COLLECTION_BUILDER_ALLOWED_HOSTS or "
    "AIRFLOW__COLLECTION_BUILDER__ALLOWED_HOSTS, comma-separated)"
)
LOOPBACK_FIX = (
    "set [collection_builder] allow_loopback = true (env COLLECTION_BUILDER_ALLOW_LOOPBACK=true) "
    "on a test or demo deployment, or list the host in allowed_hosts"
)


def normalise_host(host: str) -> str:
    """Return ``host`` lowercase, without IPv6 brackets or a trailing dot."""
    return host.strip().lower().strip("[]").rstrip(".")


def _ip(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_kind(address: IPAddress) -> str | None:
    """Return why ``address`` is not public (``loopback``, ``link-local``...), or None."""
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        metadata = str(address) == "169.254.169.254"
        return "link-local (cloud metadata)" if metadata else "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    return None


def resolve_host(host: str) -> list[IPAddress]:
    """Return the addresses ``host`` resolves to (empty when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    addresses: list[IPAddress] = []
    for info in infos:
        address = _ip(str(info[4][0]).split("%", 1)[0])
        if address is not None and address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """The hosts one catalog's requests may reach.

    Attributes:
        catalog: the catalog name (messages).
        hosts: names and IP addresses listed explicitly (lowercase).
        networks: listed networks.
        suffixes: ``*.example.org`` entries as ``example.org``: any subdomain, resolved.
        allow_loopback: whether unlisted loopback hosts are allowed.
    """

    catalog: str
    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    suffixes: tuple[str, ...] = ()
    allow_loopback: bool = False
    entries: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_entries(
        cls, catalog: str, entries: Iterable[str], *, allow_loopback: bool
    ) -> OutboundPolicy:
        """Build a policy from allowlist entries (names, IPs, networks, ``*.suffix``)."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        suffixes: list[str] = []
        kept: list[str] = []
        for raw in entries:
            entry = normalise_host(raw)
            if not entry or entry in kept:
                continue
            kept.append(entry)
            if entry.startswith(("*.", ".")):
                suffixes.append(entry.lstrip("*").lstrip("."))
            elif "/" in entry:
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    hosts.add(entry)
            else:
                address = _ip(entry)
                hosts.add(str(address) if address is not None else entry)
        return cls(
            catalog=catalog,
            hosts=frozenset(hosts),
            networks=tuple(networks),
            suffixes=tuple(suffixes),
            allow_loopback=allow_loopback,
            entries=tuple(kept),
        )

    def _is_listed_address(self, address: IPAddress) -> bool:
        return str(address) in self.hosts or any(address in net for net in self.networks)

    def host_problem(self, host: str | None) -> str | None:
        """Return why ``host`` may not be reached (``is not in the allowed hosts``...), or None."""
        if not host:
            return "has no host"
        name = normalise_host(host)
        if name in self.hosts:
            return None
        address = _ip(name)
        if address is not None:
            if self._is_listed_address(address):
                return None
            kind = address_kind(address)
            if kind == "loopback" and self.allow_loopback:
                return None
            if kind == "loopback":
                return "is loopback and allow_loopback is off"
            what = f"is a {kind} address" if kind else "is an IP address"
            return f"{what} not in the allowed hosts of catalog {self.catalog!r}"
        if name in LOOPBACK_NAMES:
            return None if self.allow_loopback else "is loopback and allow_loopback is off"
        if not any(name == suffix or name.endswith("." + suffix) for suffix in self.suffixes):
            return f"is not in the allowed hosts of catalog {self.catalog!r}"
        for resolved in resolve_host(name):
            if self._is_listed_address(resolved):
                continue
            kind = address_kind(resolved)
            if kind == "loopback" and self.allow_loopback:
                continue
            if kind is not None:
                return f"resolves to {resolved}, a {kind} address that is not listed"
        return None

    def url_problem(self, url: str) -> tuple[str, str] | None:
        """Return ``(host, reason)`` when ``url``'s host may not be reached, else None."""
        try:
            host = urlsplit(url.strip()).hostname or ""
        except ValueError:
            return ("?", "is not a valid URL")
        reason = self.host_problem(host)
        return None if reason is None else (host, reason)

    def fix(self, reason: str) -> str:
        """Return the setting to change for a refusal ``reason``."""
        return LOOPBACK_FIX if "loopback" in reason else ALLOWED_HOSTS_FIX


def _url_option_hosts(options: Mapping[str, Any]) -> list[str]:
    hosts: list[str] = []
    for key, value in options.items():
        if key.endswith("_url") and isinstance(value, str):
            try:
                host = urlsplit(value).hostname
            except ValueError:
                continue
            if host:
                hosts.append(host)
    return hosts


def catalog_allowed_entries(config: CatalogConfig) -> list[str]:
    """Return a configured catalog's own entries: its url host, URL options' hosts, its list."""
    entries = [urlsplit(config.url).hostname or ""]
    entries += _url_option_hosts(config.options)
    entries += list(config.allowed_hosts)
    return [entry for entry in entries if entry]


def catalog_policy(
    name: str, config: CatalogConfig, settings: OutboundSettings | None = None
) -> OutboundPolicy:
    """Return the outbound policy of configured catalog ``name`` (the deployment's settings)."""
    settings = settings if settings is not None else outbound_settings()
    return OutboundPolicy.from_entries(
        name,
        [*catalog_allowed_entries(config), *settings.allowed_hosts],
        allow_loopback=settings.allow_loopback,
    )


def deployment_policy(
    catalogs: Mapping[str, CatalogConfig], settings: OutboundSettings | None = None
) -> OutboundPolicy:
    """Return a policy allowing what any configured catalog may reach (catalog not known)."""
    settings = settings if settings is not None else outbound_settings()
    entries = [entry for config in catalogs.values() for entry in catalog_allowed_entries(config)]
    return OutboundPolicy.from_entries(
        "any configured",
        [*entries, *settings.allowed_hosts],
        allow_loopback=settings.allow_loopback,
    )


__all__ = [
    "ALLOWED_HOSTS_FIX",
    "LOOPBACK_FIX",
    "OutboundPolicy",
    "address_kind",
    "catalog_allowed_entries",
    "catalog_policy",
    "deployment_policy",
    "normalise_host",
    "resolve_host",
]
