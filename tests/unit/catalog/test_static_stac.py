"""StaticStacBackend: layout, relative links, idempotent upserts, concurrency; backend registry."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pystac
import pytest

from include.catalog import registry
from include.catalog.base import grown_bbox
from include.catalog.static_stac import StaticStacBackend, collection_from_config
from include.common.config import load_collections
from include.common.errors import InvalidInputError

COLLECTION = "S2_L1C-1"


def make_item(
    item_id: str,
    *,
    lon: float = -45.9,
    lat: float = -12.7,
    when: datetime = datetime(2020, 1, 9, 13, 22, 31, tzinfo=UTC),
    collection: str = COLLECTION,
    cloud: float = 10.0,
) -> dict[str, Any]:
    polygon = {
        "type": "Polygon",
        "coordinates": [
            [[lon, lat], [lon + 0.1, lat], [lon + 0.1, lat + 0.1], [lon, lat + 0.1], [lon, lat]]
        ],
    }
    item = pystac.Item(
        id=item_id,
        geometry=polygon,
        bbox=[lon, lat, lon + 0.1, lat + 0.1],
        datetime=when,
        properties={
            "eo:cloud_cover": cloud,
            "processing:software": {"collection-builder": "0.1.0"},
        },
        collection=collection,
    )
    item.add_asset(
        "B04",
        pystac.Asset(href=f"/data/published/{item_id}_B04.tif", media_type=pystac.MediaType.COG),
    )
    item.add_link(pystac.Link("license", "https://example.org/license"))
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def links(data: dict[str, Any], rel: str) -> list[str]:
    return [link["href"] for link in data["links"] if link["rel"] == rel]


@pytest.fixture
def backend(tmp_path: Path) -> StaticStacBackend:
    return StaticStacBackend(tmp_path / "stac")


def test_static_upsert_new_item_writes_layout_with_relative_links(
    backend: StaticStacBackend,
) -> None:
    collection = collection_from_config(load_collections()[COLLECTION])
    backend.upsert(make_item("A"), collection)
    root = backend.root
    catalog = read(root / "catalog.json")
    stored_collection = read(root / COLLECTION / "collection.json")
    item = read(root / COLLECTION / "items" / "A.json")
    assert catalog["type"] == "Catalog" and links(catalog, "child") == [
        f"./{COLLECTION}/collection.json"
    ]
    assert links(catalog, "root") == links(catalog, "self") == ["./catalog.json"]
    assert stored_collection["type"] == "Collection"
    assert stored_collection["title"] == load_collections()[COLLECTION].title
    assert links(stored_collection, "item") == ["./items/A.json"]
    assert (
        links(stored_collection, "root")
        == links(stored_collection, "parent")
        == ["../catalog.json"]
    )
    assert links(item, "root") == ["../../catalog.json"]
    assert links(item, "parent") == links(item, "collection") == ["../collection.json"]
    assert links(item, "self") == ["./A.json"]
    assert links(item, "license") == ["https://example.org/license"]
    assert item["assets"]["B04"]["href"] == "/data/published/A_B04.tif"
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_static_upsert_same_item_twice_keeps_one_item_and_one_link(
    backend: StaticStacBackend,
) -> None:
    backend.upsert(make_item("A", cloud=10.0))
    backend.upsert(make_item("A", cloud=20.0))
    root = backend.root
    assert [p.name for p in (root / COLLECTION / "items").iterdir()] == ["A.json"]
    assert links(read(root / COLLECTION / "collection.json"), "item") == ["./items/A.json"]
    assert len(links(read(root / "catalog.json"), "child")) == 1
    stored = backend.get(COLLECTION, "A")
    assert stored is not None and stored["properties"]["eo:cloud_cover"] == 20.0
    assert len(backend.search(COLLECTION)) == 1


def test_static_upsert_items_extent_is_union_of_items(backend: StaticStacBackend) -> None:
    first = datetime(2020, 1, 9, tzinfo=UTC)
    backend.upsert(make_item("A", lon=-46.0, lat=-13.0, when=first))
    backend.upsert(make_item("B", lon=-45.5, lat=-12.5, when=first + timedelta(days=5)))
    extent = read(backend.root / COLLECTION / "collection.json")["extent"]
    assert extent["spatial"]["bbox"] == [[-46.0, -13.0, -45.4, -12.4]]
    assert extent["temporal"]["interval"] == [["2020-01-09T00:00:00Z", "2020-01-14T00:00:00Z"]]


def test_static_extent_with_an_item_across_the_antimeridian_keeps_west_greater_than_east(
    backend: StaticStacBackend,
) -> None:
    item = make_item("AM")
    item["geometry"] = {
        "type": "MultiPolygon",
        "coordinates": [
            [[[179.5, -16.0], [180.0, -16.0], [180.0, -15.0], [179.5, -15.0], [179.5, -16.0]]],
            [[[-180.0, -16.0], [-179.5, -16.0], [-179.5, -15.0], [-180.0, -15.0], [-180.0, -16.0]]],
        ],
    }
    item["bbox"] = [179.5, -16.0, -179.5, -15.0]
    backend.upsert(item)
    extent = read(backend.collection_path(COLLECTION))["extent"]["spatial"]["bbox"]
    assert extent == [[179.5, -16.0, -179.5, -15.0]]
    backend.upsert(make_item("E", lon=-179.0, lat=-14.0))
    extent = read(backend.collection_path(COLLECTION))["extent"]["spatial"]["bbox"]
    assert extent[0] == pytest.approx([179.5, -16.0, -178.9, -13.9])
    assert backend.get(COLLECTION, "AM") == read(backend.item_path(COLLECTION, "AM"))


@pytest.mark.parametrize(
    ("old", "new", "grown"),
    [
        ([-46, -13, -45, -12], [-40, -10, -39, -9], [-46, -13, -39, -9]),  # plain min/max
        ([170, 0, 171, 1], [-171, 0, -170, 1], [-171, 0, 171, 1]),  # neither crosses: as before
        ([179, 0, -179, 1], [170, -1, 175, 0], [170, -1, -179, 1]),  # grows westward
        ([179, 0, -179, 1], [-46, 0, -45, 1], [179, 0, -45, 1]),  # the shorter way round
        ([10, 0, -10, 1], [-20, 0, 20, 1], [-180, 0, 180, 1]),  # the whole globe
    ],
)
def test_grown_bbox_across_the_antimeridian_takes_the_shorter_arc(
    old: list[float], new: list[float], grown: list[float]
) -> None:
    assert grown_bbox(old, new) == pytest.approx(grown)


def test_collection_from_config_instruments_are_the_configured_ones() -> None:
    expected = {"S2_L1C-1": ["msi"], "LC8_SR-1": ["oli", "tirs"], "LT5_DN-1": ["tm"]}
    expected |= {"LE7_SR-1": ["etm+"], "L57_NBAR-1": ["tm", "etm+"]}
    collections = load_collections()
    for name, instruments in expected.items():
        summaries = collection_from_config(collections[name])["summaries"]
        assert summaries["instruments"] == instruments, name


def test_static_relative_links_resolve_with_pystac(backend: StaticStacBackend) -> None:
    backend.upsert(make_item("A"))
    backend.upsert(make_item("B", collection="S2_L2A-1"))
    catalog = pystac.Catalog.from_file(str(backend.root / "catalog.json"))
    collections = {c.id: c for c in catalog.get_collections()}
    assert set(collections) == {COLLECTION, "S2_L2A-1"}
    items = list(collections[COLLECTION].get_items())
    assert [item.id for item in items] == ["A"]
    assert items[0].get_root() is not None
    assert Path(items[0].get_self_href() or "") == backend.root / COLLECTION / "items" / "A.json"
    parent = items[0].get_parent()
    assert parent is not None and parent.id == COLLECTION


def test_static_get_and_search_unknown_return_none_and_empty(backend: StaticStacBackend) -> None:
    assert backend.get(COLLECTION, "nothing") is None
    assert backend.search(COLLECTION) == []
    assert not backend.exists(COLLECTION, "nothing")
    backend.upsert(make_item("B", when=datetime(2020, 2, 1, tzinfo=UTC)))
    backend.upsert(make_item("A", when=datetime(2020, 3, 1, tzinfo=UTC)))
    assert [item["id"] for item in backend.search(COLLECTION)] == ["B", "A"]  # oldest first
    assert backend.exists(COLLECTION, "A")


def test_static_concurrent_upserts_from_threads_keep_catalog_valid(
    backend: StaticStacBackend,
) -> None:
    errors: list[BaseException] = []

    def publish(worker: int) -> None:
        try:
            for n in range(6):
                collection = COLLECTION if n % 2 else "S2_L2A-1"
                backend.upsert(make_item(f"W{worker}-{n}", collection=collection))
                backend.upsert(make_item(f"W{worker}-{n}", collection=collection))
        except BaseException as err:  # reported to the main thread
            errors.append(err)

    threads = [threading.Thread(target=publish, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    catalog = read(backend.root / "catalog.json")
    assert sorted(links(catalog, "child")) == [
        "./S2_L1C-1/collection.json",
        "./S2_L2A-1/collection.json",
    ]
    for collection in (COLLECTION, "S2_L2A-1"):
        item_links = links(read(backend.root / collection / "collection.json"), "item")
        assert len(item_links) == len(set(item_links)) == 24
        assert len(backend.search(collection)) == 24


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"type": "Feature", "id": "A"}, "item.collection"),
        ({"type": "Collection", "id": "A"}, "item.type"),
        (make_item("../escape"), "item.id"),
        (make_item("A", collection="../x"), "item.collection"),
    ],
)
def test_static_upsert_bad_item_raises_invalid_input(
    backend: StaticStacBackend, item: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInputError) as err:
        backend.upsert(item)
    assert err.value.problems[0].field == field
    assert not (backend.root / "catalog.json").exists()


def test_static_upsert_collection_of_other_id_raises_invalid_input(
    backend: StaticStacBackend,
) -> None:
    other = collection_from_config(load_collections()["S2_L2A-1"])
    with pytest.raises(InvalidInputError, match="collection.id"):
        backend.upsert(make_item("A"), other)


def test_collection_from_config_any_collection_is_valid_pystac() -> None:
    for config in load_collections().values():
        data = collection_from_config(config)
        collection = pystac.Collection.from_dict(data)
        assert collection.id == config.name
        assert data["summaries"]["eo:bands"][0]["name"] == config.bands[0].name
        assert set(data["item_assets"]) == {band.name for band in config.bands}


# -- registry -----------------------------------------------------------------------------------


def test_backend_registry_static_any_case_returns_static_backend(tmp_path: Path) -> None:
    backend = registry.make_backend("STATIC", root=tmp_path)
    assert isinstance(backend, StaticStacBackend) and backend.root == tmp_path
    assert "static" in registry.registered_names()


def test_backend_registry_unknown_name_raises_listing_known_names() -> None:
    with pytest.raises(InvalidInputError, match="'pgstacc' is not a registered.*static"):
        registry.make_backend("pgstacc")


def test_backend_registry_missing_setting_raises_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="catalog_backend.static.*root"):
        registry.make_backend("static")


def test_default_backend_data_dir_is_static_catalog_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    backend = registry.default_backend()
    assert isinstance(backend, StaticStacBackend) and backend.root == tmp_path / "stac"
