"""Fixtures shared by unit tests of several rooms (collectors, radcor).

``demo_url`` serves a one-scene demo STAC API for the test module. ``cdse``, ``catalogs`` and
``factory`` are the offline-scene setting of ``tests/helpers/offline.py``: a loopback CDSE whose
orders take two polls, the demo STAC API as the fallback provider, drivers with the test
account. A test module that needs another setting defines its own fixture of the same name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from include.collectors.base import CatalogDriver
from include.collectors.tokens import clear_token_cache
from include.common.config import CatalogConfig
from tests.helpers.cdse_server import CdseServer
from tests.helpers.offline import catalogs_for, factory_for


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from include.demo.build import build_demo_catalog
    from include.demo.server import serve

    root = tmp_path_factory.mktemp("demo")
    build_demo_catalog(root, scenes=1, size_px=32)
    with serve(root, port=0) as server:
        yield server.url


@pytest.fixture
def cdse() -> Iterator[CdseServer]:
    clear_token_cache()
    server = CdseServer(order_polls=2)
    try:
        yield server
    finally:
        server.close()
        clear_token_cache()


@pytest.fixture
def catalogs(cdse: CdseServer, demo_url: str) -> dict[str, CatalogConfig]:
    return catalogs_for(cdse, demo_url)


@pytest.fixture
def factory(catalogs: dict[str, CatalogConfig]) -> Callable[[str], CatalogDriver]:
    return factory_for(catalogs)
