"""Fixtures for collector tests: a loopback HTTP server, an HTTP client, the real recordings."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.http_server import Cassette, LocalHttpServer
from tests.helpers.realdata import realdata_dir

REPO = Path(__file__).resolve().parents[3]


def _is_loopback(host: Any) -> bool:
    if host in ("localhost", None):
        return True
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Block every network access but loopback (STYLE 2.7: unit tests never leave the machine)."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(host.decode() if isinstance(host, bytes) else host):
            raise socket.gaierror(f"network blocked in unit tests: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            raise ConnectionRefusedError(f"network blocked in unit tests: {address[0]}")
        real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def http_server() -> Iterator[LocalHttpServer]:
    server = LocalHttpServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0, follow_redirects=True) as http_client:
        yield http_client


@pytest.fixture
def sleeps() -> list[float]:
    """Recorded in-task retry waits; pass ``sleeps.append`` as ``sleep``."""
    return []


@pytest.fixture
def realdata() -> Path:
    folder = realdata_dir()
    if not (folder / "pystac-client").is_dir():
        pytest.skip(
            f"recorded real responses not found at {folder}; set REALDATA_DIR to the shared "
            "realdata folder (../shared/realdata beside the repository)"
        )
    return folder


@cache
def _load_cassette(path: Path) -> Cassette:
    return Cassette(path)


@pytest.fixture
def cassette(realdata: Path) -> Any:
    """``cassette("test_item_search/x.yaml")``: a parsed VCR cassette (parsed once per session)."""

    def load(relative: str) -> Cassette:
        path = realdata / "pystac-client" / relative
        if not path.is_file():
            pytest.skip(f"cassette {relative} not found under {realdata / 'pystac-client'}")
        return _load_cassette(path)

    return load
