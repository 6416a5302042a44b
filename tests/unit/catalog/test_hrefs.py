"""Portable catalogs: relative asset hrefs in the static catalog, public URLs for served ones.

A scene is published the way the publish step does it (files under ``DATA_DIR/published``, item
upserted into the backend); the catalog must still resolve after ``DATA_DIR`` moves, serve over
HTTP as is, and no stored item may hold the publishing machine's ``DATA_DIR`` path.
"""

from __future__ import annotations

import functools
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pystac
import pytest

from include.catalog import registry
from include.catalog.hrefs import public_asset_hrefs, published_root, relative_asset_hrefs
from include.catalog.pgstac import PgstacBackend
from include.catalog.static_stac import StaticStacBackend, collection_from_config
from include.collectors.base import Scene
from include.common.config import PUBLIC_BASE_URL_ENV, load_collections, public_base_url
from include.common.errors import ConfigError
from include.common.storage import catalog_root, published_dir
from include.demo.build import build_demo_catalog
from include.processors.base import ProcessorInputs
from include.processors.publish import PublishProcessor
from tests.unit.catalog.test_static_stac import make_item

COLLECTION = "S2_L2A-1"
BASE_URL = "https://data.example.org/published"


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """Return a demo scene's catalog item and the folder its files are in."""
    root = tmp_path_factory.mktemp("demo")
    return build_demo_catalog(root, scenes=1, size_px=128)[0], root


def publish_scene(demo: tuple[dict[str, Any], Path]) -> dict[str, Any]:
    """Publish the demo scene under ``DATA_DIR/published`` as the publish step does."""
    item, root = demo
    scene = Scene(
        scene_id=item["id"],
        catalog="demo",
        dataset="S2MSI2A",
        datetime=datetime.fromisoformat(item["properties"]["datetime"]),
        cloud_pct=item["properties"]["eo:cloud_cover"],
        tile="23LLF",
        footprint=None,
    )
    result = PublishProcessor().run(
        ProcessorInputs(
            scene=scene,
            collection=load_collections()[COLLECTION],
            files={k: root / a["href"].lstrip("/") for k, a in item["assets"].items()},
            output_dir=published_dir(COLLECTION, scene.tile, scene.datetime, scene.scene_id),
            args={"indices": ["NDVI"]},
        )
    )
    assert result.item is not None
    return result.item


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(path))
    monkeypatch.delenv(PUBLIC_BASE_URL_ENV, raising=False)
    return path


@pytest.fixture
def static_catalog(
    data_dir: Path, demo_files: tuple[dict[str, Any], Path]
) -> tuple[StaticStacBackend, dict[str, Any]]:
    """Return the default static backend with one published scene, and the processor's item."""
    item = publish_scene(demo_files)
    backend = registry.default_backend()
    assert isinstance(backend, StaticStacBackend)
    backend.upsert(item, collection_from_config(load_collections()[COLLECTION]))
    return backend, item


def assert_every_href_resolves(catalog: pystac.Catalog) -> int:
    """Assert every item and asset of a local catalog resolves to a file; return the asset count."""
    assets = 0
    items = list(catalog.get_items(recursive=True))
    assert items, "the catalog lists no item"
    for item in items:
        assert item.get_self_href() and Path(item.get_self_href() or "").is_file()
        for key, asset in item.assets.items():
            href = asset.get_absolute_href()
            assert href and Path(href).is_file(), (item.id, key, asset.href)
            assets += 1
    return assets


def test_static_item_asset_hrefs_are_relative_to_the_item_file(
    static_catalog: tuple[StaticStacBackend, dict[str, Any]],
) -> None:
    backend, item = static_catalog
    stored = backend.get(COLLECTION, item["id"])
    assert stored is not None and set(stored["assets"]) == set(item["assets"])
    for key, asset in stored["assets"].items():
        assert not asset["href"].startswith("/"), key
        assert asset["href"].startswith("../../../published/" + COLLECTION + "/23LLF/")
        resolved = (backend.item_path(COLLECTION, item["id"]).parent / asset["href"]).resolve()
        assert resolved == Path(item["assets"][key]["href"]).resolve()


def test_static_catalog_moved_to_another_folder_resolves_every_item_and_asset_href(
    static_catalog: tuple[StaticStacBackend, dict[str, Any]], data_dir: Path, tmp_path: Path
) -> None:
    moved = tmp_path / "elsewhere" / "copy-of-data"
    moved.parent.mkdir()
    shutil.move(data_dir, moved)
    assert not data_dir.exists()
    catalog = pystac.Catalog.from_file(str(moved / "stac" / "catalog.json"))
    assert assert_every_href_resolves(catalog) == len(static_catalog[1]["assets"])
    collection = catalog.get_child(COLLECTION)
    assert collection is not None and collection.get_self_href() == str(
        moved / "stac" / COLLECTION / "collection.json"
    )


def test_static_catalog_item_json_holds_no_data_dir_path(
    static_catalog: tuple[StaticStacBackend, dict[str, Any]], data_dir: Path
) -> None:
    texts = [path.read_text() for path in catalog_root().rglob("*.json")]
    assert len(texts) == 3  # catalog, collection, item
    for text in texts:
        assert str(data_dir) not in text and str(data_dir.resolve()) not in text


@pytest.fixture
def served(data_dir: Path) -> Iterator[str]:
    """Serve ``DATA_DIR`` as is over HTTP on a loopback port; yield its URL."""
    handler = functools.partial(QuietFiles, directory=str(data_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class QuietFiles(SimpleHTTPRequestHandler):
    """Serve files without logging each request to stderr."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Do not log."""


def test_static_catalog_served_over_http_as_is_resolves_asset_urls(
    static_catalog: tuple[StaticStacBackend, dict[str, Any]], served: str
) -> None:
    catalog = pystac.Catalog.from_file(f"{served}/stac/catalog.json")
    items = list(catalog.get_items(recursive=True))
    assert [item.id for item in items] == [static_catalog[1]["id"]]
    for key, asset in items[0].assets.items():
        url = asset.get_absolute_href() or ""
        assert url.startswith(f"{served}/published/{COLLECTION}/"), key
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback http
            assert len(answer.read()) == asset.extra_fields["file:size"]


def test_static_keeps_urls_and_paths_outside_published(data_dir: Path, tmp_path: Path) -> None:
    item = make_item("U1")
    item["assets"]["remote"] = {"href": "https://example.org/U1_B04.tif"}
    item["assets"]["demo"] = {"href": "/files/U1/B04.tif"}
    item["assets"]["relative"] = {"href": "./U1_B08.tif"}
    backend = StaticStacBackend(tmp_path / "stac")
    backend.upsert(item)
    stored = backend.get("S2_L1C-1", "U1")
    assert stored is not None
    assert {key: asset["href"] for key, asset in stored["assets"].items()} == {
        "B04": "/data/published/U1_B04.tif",
        "remote": "https://example.org/U1_B04.tif",
        "demo": "/files/U1/B04.tif",
        "relative": "./U1_B08.tif",
    }


def test_relative_asset_hrefs_file_url_under_published_becomes_relative(
    data_dir: Path,
) -> None:
    root = published_root()
    item = {"assets": {"B04": {"href": (root / "C-1" / "x" / "B04.tif").as_uri()}}}
    result = relative_asset_hrefs(item, data_dir / "stac" / "C-1" / "items" / "x.json", root)
    assert result["assets"]["B04"]["href"] == "../../../published/C-1/x/B04.tif"
    assert item["assets"]["B04"]["href"].startswith("file://")  # the input is not changed


def test_public_asset_hrefs_with_base_url_are_base_slash_relative_path(data_dir: Path) -> None:
    root = published_root()
    item = {
        "assets": {
            "B04": {"href": str(root / "S2_L2A-1" / "23LLF" / "2020" / "01" / "S 1" / "B04.tif")},
            "remote": {"href": "https://example.org/B04.tif"},
        }
    }
    with_url = public_asset_hrefs(item, BASE_URL, root)
    assert with_url["assets"]["B04"]["href"] == f"{BASE_URL}/S2_L2A-1/23LLF/2020/01/S%201/B04.tif"
    assert with_url["assets"]["remote"]["href"] == "https://example.org/B04.tif"
    bare = public_asset_hrefs(item, None, root)
    assert bare["assets"]["B04"]["href"] == "S2_L2A-1/23LLF/2020/01/S%201/B04.tif"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("  ", None),
        (BASE_URL + "/", BASE_URL),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ],
)
def test_public_base_url_setting_unset_or_url_without_trailing_slash(
    value: str, expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PUBLIC_BASE_URL_ENV, value)
    assert public_base_url() == expected


@pytest.mark.parametrize("value", ["data.example.org/published", "ftp://example.org/p", "/srv"])
def test_public_base_url_setting_not_http_raises_config_error_naming_it(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PUBLIC_BASE_URL_ENV, value)
    with pytest.raises(ConfigError, match=PUBLIC_BASE_URL_ENV):
        public_base_url()


def test_default_pgstac_backend_takes_the_public_base_url_setting(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(registry.BACKEND_ENV, "pgstac")
    monkeypatch.setenv(PUBLIC_BASE_URL_ENV, BASE_URL + "/")
    backend = registry.default_backend()
    assert isinstance(backend, PgstacBackend)
    assert backend.base_url == BASE_URL and backend.published == published_root()
