"""One Landsat product in every layout it arrives in resolves to the same bands and radiometry.

Bundles as USGS delivers them (uncompressed tar), gzipped, with a sub-folder, extracted to a
folder, lower-case names, USGS per-band ("secondary") downloads and per-asset STAC downloads
keyed as Planetary Computer / Earth Search ``landsat-c2-l2`` name them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from include.common.config import CollectionConfig, load_collections
from include.processors.products import LandsatProduct
from include.processors.products.package import open_package, require_sensor, resolve_bands
from tests.helpers.landsat_layouts import LAYOUTS, write_layout
from tests.helpers.packages import LandsatPackage, landsat_l2sp_etm, landsat_l2sp_oli


@pytest.fixture(scope="module")
def oli() -> LandsatPackage:
    return landsat_l2sp_oli()


@pytest.fixture(scope="module")
def etm() -> LandsatPackage:
    return landsat_l2sp_etm()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _expected(package: LandsatPackage, collection: CollectionConfig) -> dict[str, str]:
    """Band name -> sha256 of the bundle member the DFCB names for it."""
    out: dict[str, str] = {}
    for band in collection.bands:
        suffix = band.name if band.name.startswith(("ST_", "QA_")) else f"SR_{band.name}"
        data = package.files.get(f"{package.product_id}_{suffix}.TIF")
        if data is not None:
            out[band.name] = hashlib.sha256(data).hexdigest()
    return out


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("which", "collection_name"), [("oli", "LC8_SR-1"), ("etm", "LE7_SR-1")])
def test_every_layout_resolves_the_same_bands(
    layout: str,
    which: str,
    collection_name: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    package: LandsatPackage = request.getfixturevalue(which)
    collection = load_collections()[collection_name]
    files = write_layout(package, tmp_path, layout)
    opened = open_package(files)
    require_sensor(opened, collection, package.product_id)
    resolved = resolve_bands(opened, collection)
    got = {bf.band.name: _digest(bf.path) for bf in resolved.bands}
    assert got == _expected(package, collection)
    assert resolved.missing == []
    sources = {bf.band.name: (bf.source, bf.scale, bf.offset) for bf in resolved.bands}
    thermal = "ST_B10" if which == "oli" else "ST_B6"
    assert sources["B3"] == ("MTL", 2.75e-05, -0.2)
    assert sources[thermal] == ("MTL", 0.00341802, 149.0)
    assert opened.metadata_files["mtl"].exists()
    assert "ang" in opened.metadata_files, f"{layout}: the ANG.txt was not found"


def test_stac_keys_find_ang_and_prefer_the_json_mtl(oli: LandsatPackage, tmp_path: Path) -> None:
    files = write_layout(oli, tmp_path, "stac")
    assert {"ang", "mtl.txt", "mtl.xml", "mtl.json", "lwir11", "qa_aerosol"} <= set(files)
    product = LandsatProduct.from_files(files)
    assert product.ang_path == files["ang"] and product.ang_path.name == "ang.txt"
    assert product.mtl_path == files["mtl.json"] and product.metadata.mtl_format == "json"
    assert product.band_path("ST_B10") == files["lwir11"]
    assert product.qa_pixel == files["qa_pixel"]
    # QA layers are no bands
    assert files["qa_aerosol"] not in product.bands.values()
    assert files["qa"] not in product.bands.values()


def test_etm_stac_keys_take_tm_numbers(etm: LandsatPackage, tmp_path: Path) -> None:
    files = write_layout(etm, tmp_path, "stac")
    product = LandsatProduct.from_files(files)
    assert product.band_path("B3") == files["red"]  # TM/ETM+ band 3 is red
    assert product.band_path("4") == files["nir08"]
    assert product.bands["6"] == files["lwir"]
    assert files["cloud_qa"] not in product.bands.values()
    assert files["atmos_opacity"] not in product.bands.values()
