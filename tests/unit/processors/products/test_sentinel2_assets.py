"""Per-asset STAC downloads of Sentinel-2 L2A, keyed and named as our downloaders name them.

The asset keys are those of REAL items recorded from Earth Search v1 (``sentinel-2-c1-l2a``,
``sentinel-2-l2a``) and the Planetary Computer (``sentinel-2-l2a``) in ../shared/realdata; the
files are named by ``include.collectors`` (``select_assets`` + ``asset_filename``), so a key the
downloader skips (Earth Search's ``s3://`` JP2s and metadata) is missing here too. The band files
are small rasters of known DN; the metadata files are real MTDs adapted to baseline 05.11
(tests/helpers/s2_layouts.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from include.collectors.download import asset_filename
from include.collectors.stac_api import select_assets
from include.common.config import load_collections
from include.common.errors import InvalidInputError
from include.processors.products import Sentinel2Product
from include.processors.products.package import open_package, resolve_bands
from include.processors.products.sentinel2 import canonical_band
from tests.helpers import s2_layouts as lay

EARTH_SEARCH = "pystac-client/test_cli/TestCLISearch.test_filter[inprocess].yaml"
PLANETARY = "pystac-client/test_item_search/TestItemSearch.test_datetime_results.yaml"


def _download(item: dict[str, Any], folder: Path, *, baseline: str = "05.11") -> dict[str, Path]:
    """Write what the downloader would: one file per selected asset, named as it names them."""
    assets, _ = select_assets(item["assets"])
    mtd = lay.add_offsets(
        lay.set_baseline(lay.real_text(f"{lay.L2A_N0214}/MTD_MSIL2A.xml"), baseline), -1000
    )
    tile = lay.real_text(lay.L2A_N0214_TL).replace("_N02.14<", f"_N{baseline}<")
    files: dict[str, Path] = {}
    for asset in assets:
        path = folder / asset_filename(asset)
        key = asset.key.lower()
        if key in ("product_metadata", "product-metadata"):
            path.write_text(mtd, encoding="utf-8")
        elif key in ("granule_metadata", "granule-metadata"):
            path.write_text(tile, encoding="utf-8")
        elif path.suffix == ".tif":
            band = canonical_band(asset.key)
            assert band is not None, f"asset {asset.key} of {item['id']} maps to no band"
            resolution = lay.NATIVE_M[band]
            lay.write_raster(path, lay.band_dn(band, resolution), resolution)
        else:
            path.write_text("<not-read-by-the-resolver/>", encoding="utf-8")
        files[path.stem] = path  # as provider-l2 keys a download: by file stem
    return files


def test_earth_search_c1_l2a_keys_map_and_take_the_mtd_offsets(tmp_path: Path) -> None:
    item = lay.recorded_item(EARTH_SEARCH, "sentinel-2-c1-l2a")
    files = _download(item, tmp_path)
    product = Sentinel2Product.from_files(files)
    assert product.metadata_path == files["product_metadata"]
    assert product.tile_metadata_path == files["granule_metadata"]
    assert product.metadata.offsets["B04"] == -1000.0
    assert product.band_path("B04") == files["red"] and product.band_path("B8A") == files["nir08"]
    assert product.band_path("SCL") == files["scl"]
    assert product.band_path("CLD") == files["cloud"] and product.band_path("SNW") == files["snow"]
    assert {b for b in product.bands if b.startswith("B")} == set(lay.BANDS) - {"B10"}
    resolved = resolve_bands(open_package(files), load_collections()["S2_L2A-1"])
    by_name = {bf.band.name: bf for bf in resolved.bands}
    assert by_name["B04"].path == files["red"]
    assert (by_name["B04"].scale, by_name["B04"].offset) == (
        pytest.approx(1e-4),
        pytest.approx(-0.1),
    )
    assert by_name["SCL"].path == files["scl"] and by_name["SCL"].source == "config"


def test_earth_search_v1_l2a_with_boa_offset_applied_is_not_shifted_twice(tmp_path: Path) -> None:
    item = lay.recorded_item(EARTH_SEARCH, "sentinel-2-l2a")
    assert item["properties"]["earthsearch:boa_offset_applied"] is True
    files = _download(item, tmp_path)
    # its product_metadata and *-jp2 originals are s3:// only: the downloader skips them
    assert "product_metadata" not in files and not any(k.endswith("-jp2") for k in files)
    product = Sentinel2Product.from_files(files, offset_applied=True)
    assert product.metadata.processing_baseline == "05.11"  # from granule_metadata's TILE_ID
    assert product.metadata.offsets == {}
    assert product.metadata.reflectance_scale_offset("B04") == (pytest.approx(1e-4), 0.0)
    assert "offset applied by the provider" in product.metadata.source
    with pytest.raises(InvalidInputError, match="baseline 05.11 carries per-band offsets"):
        Sentinel2Product.from_files(files)  # without the flag the offset is unknown: refused


def test_offset_applied_drops_the_mtd_offsets_and_prefers_the_cog(tmp_path: Path) -> None:
    item = lay.recorded_item(EARTH_SEARCH, "sentinel-2-c1-l2a")
    files = _download(item, tmp_path)
    original = tmp_path / "red-jp2.jp2"
    lay.write_raster(original, 1, 10)
    files["red-jp2"] = original
    files = dict(sorted(files.items()))  # "red-jp2" before "red"
    product = Sentinel2Product.from_files(files, offset_applied=True)
    assert product.metadata.quantification_value == 10000.0 and product.metadata.offsets == {}
    assert product.band_path("B04") == files["red"]


def test_planetary_computer_hyphenated_metadata_keys_are_read(tmp_path: Path) -> None:
    item = lay.recorded_item(PLANETARY, "sentinel-2-l2a")
    files = _download(item, tmp_path)
    assert {"product-metadata", "granule-metadata", "datastrip-metadata"} <= set(files)
    product = Sentinel2Product.from_files(files)
    assert product.metadata_path == files["product-metadata"]
    assert product.tile_metadata_path == files["granule-metadata"]
    assert product.metadata.source == "product metadata"
    assert product.metadata.offsets["B11"] == -1000.0  # PC serves the offset unapplied
    assert product.band_path("B04") == files["B04"] and product.band_path("SCL") == files["SCL"]
    package = open_package(files)
    assert isinstance(package.product, Sentinel2Product)
    resolved = resolve_bands(package, load_collections()["S2_L2A-1"])
    assert {bf.band.name: bf.offset for bf in resolved.bands}["B8A"] == pytest.approx(-0.1)


def test_planetary_computer_item_ids_carry_no_baseline_but_the_property_does() -> None:
    item = lay.recorded_item(PLANETARY, "sentinel-2-l2a")
    assert re.search(r"_N\d{4}_", item["id"]) is None  # PC ids drop the N-number
    assert item["properties"]["s2:processing_baseline"] == "02.12"
