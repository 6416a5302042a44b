"""``open_package`` + ``resolve_bands`` with what the catalog said about the scene (SceneHints).

Two facts a download does not carry itself:

- Earth Search v1 ``sentinel-2-l2a`` items with ``earthsearch:boa_offset_applied: true``: the
  REAL recorded item (../shared/realdata, pystac-client cassette) goes through the STAC driver's
  ``item_to_scene``, its assets are written as the downloader names them (its ``s3://``
  ``product_metadata`` is not downloadable), and the bands read as ``DN / 10000``, no offset;
- an old-format (before December 2016) SAFE of two granules, built from the real N0206 MTDs by
  ``tests/helpers/s2_layouts.oper_l1c_safe``: the scene's MGRS tile picks the granule.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from include.collectors.download import asset_filename
from include.collectors.stac_api import item_to_scene, select_assets
from include.common.config import load_collections
from include.common.errors import InvalidInputError
from include.processors.products.package import (
    SceneHints,
    band_inputs,
    open_package,
    resolve_bands,
)
from include.processors.products.sentinel2 import Sentinel2Product, canonical_band
from tests.helpers import s2_layouts as lay

EARTH_SEARCH = "pystac-client/test_cli/TestCLISearch.test_filter[inprocess].yaml"


def _download(item: dict[str, Any], folder: Path) -> dict[str, Path]:
    """One file per asset the downloader takes, named as it names them (keys: file stems)."""
    assets, _ = select_assets(item["assets"])
    tile = lay.real_text(lay.L2A_N0214_TL).replace("_N02.14<", "_N05.11<")
    files: dict[str, Path] = {}
    for asset in assets:
        path = folder / asset_filename(asset)
        if asset.key == "granule_metadata":
            path.write_text(tile, encoding="utf-8")
        elif path.suffix == ".tif":
            band = canonical_band(asset.key)
            assert band is not None, asset.key
            lay.write_raster(path, lay.band_dn(band, lay.NATIVE_M[band]), lay.NATIVE_M[band])
        else:
            path.write_text("{}", encoding="utf-8")
        files[path.stem] = path
    return files


def test_earth_search_v1_flag_travels_in_the_scene_and_reads_the_cogs_without_offset(
    tmp_path: Path,
) -> None:
    item = lay.recorded_item(EARTH_SEARCH, "sentinel-2-l2a")
    scene = item_to_scene(item, catalog="earthsearch", dataset="sentinel-2-l2a")
    assert scene.properties["boa_offset_applied"] is True
    assert scene.properties["processing_baseline"] == "05.11"
    hints = SceneHints.of(scene)
    assert hints == SceneHints(tile=scene.tile, baseline="05.11", offset_applied=True)
    files = _download(item, tmp_path)
    assert "product_metadata" not in files  # s3:// only

    package = open_package(files, hints=hints)
    assert isinstance(package.product, Sentinel2Product)
    assert "offset applied by the provider" in package.product.metadata.source
    resolved = resolve_bands(package, load_collections()["S2_L2A-1"])
    by_name = {bf.band.name: bf for bf in resolved.bands}
    assert by_name["B04"].path == files["red"] and by_name["B8A"].path == files["nir08"]
    for name in ("B02", "B04", "B8A", "B11"):
        assert by_name[name].scale == pytest.approx(1e-4), name
        assert not by_name[name].offset, name  # no offset again: none, or 0
        assert by_name[name].source == "MTD"

    with pytest.raises(InvalidInputError, match="baseline 05.11 carries per-band offsets"):
        open_package(files)  # without the catalog's flag the offset is unknown: refused


def test_earth_search_v1_raster_bands_still_declare_the_offset_the_flag_says_is_applied() -> None:
    """Why the flag, not the asset's ``raster:bands``, decides (Element84/earth-search#9)."""
    item = lay.recorded_item(EARTH_SEARCH, "sentinel-2-l2a")
    assert item["properties"]["earthsearch:boa_offset_applied"] is True
    cog = item["assets"]["red"]
    assert cog["href"].startswith("https://") and cog["href"].endswith(".tif")
    # the COG's declared offset is the JP2's: applied to shifted values it would count twice
    assert cog["raster:bands"][0]["offset"] == pytest.approx(-0.1)
    assert item["assets"]["red-jp2"]["raster:bands"] == cog["raster:bands"]


def test_scene_hints_read_tiles_baselines_and_string_flags() -> None:
    item = lay.recorded_item(EARTH_SEARCH, "sentinel-2-l2a")
    scene = item_to_scene(item, catalog="earthsearch", dataset="sentinel-2-l2a")
    assert SceneHints.of(replace(scene, tile="T31tdh")).tile == "31TDH"
    assert SceneHints.of(replace(scene, tile="221069")).tile is None  # WRS-2, no granule
    as_text = replace(scene, properties={"boa_offset_applied": "true"})
    assert SceneHints.of(as_text).offset_applied is True
    assert SceneHints.of(replace(scene, properties={})) == SceneHints(tile=scene.tile)


@pytest.fixture
def oper_zip(tmp_path: Path) -> Path:
    safe = lay.oper_l1c_safe(tmp_path / "build", ("31TDH", "31TDJ"))
    return lay.zip_safe(safe, tmp_path / "S2A_OPER_PRD_MSIL1C.zip")


def test_old_format_safe_reads_the_granule_of_the_scene_tile(oper_zip: Path) -> None:
    collection = load_collections()["S2_L1C-1"]
    for number, tile in enumerate(("31TDH", "31TDJ")):
        package = open_package({"archive": oper_zip}, hints=SceneHints(tile=tile))
        assert isinstance(package.product, Sentinel2Product)
        resolved = resolve_bands(package, collection)
        by_name = {bf.band.name: bf for bf in resolved.bands}
        assert f"_T{tile}_" in str(by_name["B04"].path)
        assert lay.read_dn(by_name["B04"].path) == lay.band_dn("B04", 10) + 100 * number
        assert by_name["B04"].scale == pytest.approx(1e-4) and not by_name["B04"].offset
        assert package.metadata_files["tile_metadata"].parent == by_name["B04"].path.parents[1]


def test_old_format_safe_without_or_with_a_foreign_tile_is_refused_naming_its_tiles(
    oper_zip: Path,
) -> None:
    with pytest.raises(InvalidInputError, match=r"2 granules \(31TDH, 31TDJ\)"):
        open_package({"archive": oper_zip})
    with pytest.raises(InvalidInputError, match="no granule of tile 23LLF"):
        open_package({"archive": oper_zip}, hints=SceneHints(tile="23LLF"))


def test_band_inputs_of_harmonization_and_post_take_the_scene_granule(oper_zip: Path) -> None:
    # what nbar, qa-post and s2cloudless call on a download handed to them directly
    collection = load_collections()["S2_L1C-1"]
    files = band_inputs({"archive": oper_zip}, collection, "S2A", hints=SceneHints(tile="31TDJ"))
    assert (
        "_T31TDJ_" in str(files["B04"])
        and lay.read_dn(files["B04"]) == lay.band_dn("B04", 10) + 100
    )
    assert files["B04"].parents[1] == next(p.parent for k, p in files.items() if "MTD_L1C_TL" in k)
    with pytest.raises(InvalidInputError, match=r"2 granules \(31TDH, 31TDJ\)"):
        band_inputs({"archive": oper_zip}, collection, "S2A")
