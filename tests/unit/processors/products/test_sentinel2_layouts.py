"""SAFE layouts as ESA delivers them: L2A resolutions, QI_DATA masks, OPER format, zips.

Packages are written by tests/helpers/s2_layouts.py at the paths the REAL MTDs list (each file
a distinct constant DN, so which file was taken is read back from the raster itself).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from include.common.config import CollectionConfig
from include.common.errors import InvalidInputError
from include.processors.products import Sentinel2Product
from include.processors.products.package import open_package, resolve_bands
from tests.helpers import s2_layouts as lay

L2A_QI = ("MSK_CLDPRB_20m.jp2", "MSK_CLDPRB_60m.jp2", "MSK_SNWPRB_20m.jp2", "MSK_SNWPRB_60m.jp2",
          "MSK_CLASSI_B00.jp2", "MSK_DETFOO_B04.jp2", "MSK_QUALIT_B04.jp2")  # fmt: skip


def _l2a_safe(tmp_path: Path, *, baseline: str = "05.10", sen2cor_24: bool = False) -> Path:
    text = lay.set_baseline(lay.real_text(f"{lay.L2A_N0214}/MTD_MSIL2A.xml"), baseline)
    if float(baseline) >= 4.0:
        text = lay.add_offsets(text, -1000)
    qi: tuple[str, ...] = L2A_QI
    if sen2cor_24:
        text = lay.sen2cor_24_mtd(text)
        stem = "L2A_T22HBD_20210122T133229"
        qi = (f"{stem}_CLD_20m.jp2", f"{stem}_CLD_60m.jp2", f"{stem}_SNW_20m.jp2")
    tile_mtd = lay.realdata_path(lay.L2A_N0214_TL)
    return lay.compact_safe(tmp_path, text, level="L2A", tile_mtd=tile_mtd, qi=qi)


def _l1c_tile() -> Path:
    return lay.realdata_path(lay.L1C_N0206_TL)


def _collection(*bands: tuple[str, float]) -> CollectionConfig:
    return CollectionConfig.model_validate(
        {
            "name": "S2_LAYOUT-1",
            "title": "layout test",
            "platform_family": "sentinel-2",
            "level": "L2A",
            "tile_system": "mgrs",
            "instruments": ["msi"],
            "bands": [{"name": name, "resolution_m": res} for name, res in bands],
        }
    )


@pytest.mark.parametrize("sen2cor_24", [False, True])
def test_l2a_takes_each_band_at_its_native_resolution(tmp_path: Path, sen2cor_24: bool) -> None:
    product = Sentinel2Product.open(_l2a_safe(tmp_path, sen2cor_24=sen2cor_24))
    assert product.level == "L2A"
    assert set(product.bands["B04"]) == {10.0, 20.0, 60.0}
    assert set(product.bands["B08"]) == {10.0}  # ESA's L2A has B08 at 10 m only
    assert set(product.bands["B01"]) == {60.0}
    for band, native in (("B02", 10), ("B04", 10), ("B08", 10), ("B05", 20), ("B8A", 20),
                         ("B11", 20), ("B01", 60), ("B09", 60), ("SCL", 20), ("AOT", 10),
                         ("WVP", 10), ("TCI", 10)):  # fmt: skip
        path = product.band_path(band)
        assert f"_{band}_{native}m" in path.stem and f"/R{native}m/" in path.as_posix()
        assert lay.read_dn(path) == lay.band_dn(band, native)
    assert lay.read_dn(product.band_path("B04", 20)) == lay.band_dn("B04", 20)
    assert lay.read_dn(product.band_path("SCL", 60)) == lay.band_dn("SCL", 60)
    assert not product.has_band("B10")  # L2A has no cirrus band


def test_l2a_qi_data_probability_masks_are_cld_and_snw(tmp_path: Path) -> None:
    product = Sentinel2Product.open(_l2a_safe(tmp_path))
    assert set(product.bands["CLD"]) == {20.0, 60.0}
    assert set(product.bands["SNW"]) == {20.0, 60.0}
    assert product.band_path("CLD").name == "MSK_CLDPRB_20m.jp2"
    assert lay.read_dn(product.band_path("SNW", 60)) == lay.band_dn("SNW", 60)
    # per-band detector/quality masks are not the band
    assert lay.read_dn(product.band_path("B04")) == lay.band_dn("B04", 10)
    assert all("MSK_" not in p.name for b in lay.BANDS for p in product.bands.get(b, {}).values())


def test_sen2cor_24_qi_masks_are_read(tmp_path: Path) -> None:
    product = Sentinel2Product.open(_l2a_safe(tmp_path, baseline="02.05", sen2cor_24=True))
    assert product.band_path("CLD").name == "L2A_T22HBD_20210122T133229_CLD_20m.jp2"
    assert set(product.bands["SNW"]) == {20.0}
    assert product.band_path("B8A").name == "L2A_T22HBD_20210122T133229_B8A_20m.jp2"


def test_l2a_resolver_gives_mtd_radiometry_to_bands_and_none_to_layers(tmp_path: Path) -> None:
    safe = _l2a_safe(tmp_path)
    package = open_package({"safe": safe})
    collection = _collection(("B04", 10), ("B8A", 20), ("SCL", 20), ("CLD", 20))
    resolved = {bf.band.name: bf for bf in resolve_bands(package, collection).bands}
    assert (resolved["B04"].scale, resolved["B04"].offset) == (
        pytest.approx(1e-4),
        pytest.approx(-0.1),
    )
    assert resolved["B04"].source == "MTD" and "R10m" in resolved["B04"].path.as_posix()
    assert lay.read_dn(resolved["B8A"].path) == lay.band_dn("B8A", 20)
    assert resolved["SCL"].source == "config" and resolved["SCL"].offset is None
    assert resolved["CLD"].path.name == "MSK_CLDPRB_20m.jp2"


def test_l1c_0400_classi_mask_and_tci_are_layers_not_bands(tmp_path: Path) -> None:
    text = lay.add_offsets(
        lay.set_baseline(lay.real_text(f"{lay.L1C_N0206}/MTD_MSIL1C.xml"), "04.00"), -1000
    )
    qi = ("MSK_CLASSI_B00.jp2", "MSK_DETFOO_B04.jp2", "MSK_QUALIT_B04.jp2")
    safe = lay.compact_safe(tmp_path, text, level="L1C", tile_mtd=_l1c_tile(), qi=qi)
    product = Sentinel2Product.open(safe)
    assert product.band_path("MSK_CLASSI").name == "MSK_CLASSI_B00.jp2"
    assert lay.read_dn(product.band_path("B04")) == lay.band_dn("B04", 10)
    assert product.band_path("TCI").stem.endswith("_TCI")
    package = open_package({"safe": safe})
    resolved = resolve_bands(package, _collection(("B04", 10), ("TCI", 10)))
    by_name = {bf.band.name: bf for bf in resolved.bands}
    assert by_name["B04"].offset == pytest.approx(-0.1)
    assert by_name["TCI"].source == "config"  # no reflectance radiometry for the RGB preview


def test_l1c_before_0400_has_gml_cloud_mask_only(tmp_path: Path) -> None:
    text = lay.real_text(f"{lay.L1C_N0206}/MTD_MSIL1C.xml")
    qi = ("MSK_CLOUDS_B00.gml", "MSK_DETFOO_B04.gml")
    safe = lay.compact_safe(tmp_path, text, level="L1C", tile_mtd=_l1c_tile(), qi=qi)
    product = Sentinel2Product.open(safe)
    assert not product.has_band("MSK_CLASSI")  # the GML vector mask is no raster layer
    assert sorted(product.bands) == sorted([*lay.BANDS, "TCI"])


def test_oper_format_single_granule_is_read(tmp_path: Path) -> None:
    safe = lay.oper_l1c_safe(tmp_path, ("31TDH",))
    product = Sentinel2Product.open(safe)
    assert product.metadata.processing_baseline == "02.04"
    assert product.band_path("B04").name.endswith("_T31TDH_B04.jp2")
    assert lay.read_dn(product.band_path("B04")) == lay.band_dn("B04", 10)
    assert product.tile_metadata is not None
    assert (
        product.tile_metadata.tile_id is not None
        and "_T31TDH_N02.04" in product.tile_metadata.tile_id
    )
    assert product.tile_metadata.epsg == 32631


def test_oper_format_picks_the_scene_tile_granule(tmp_path: Path) -> None:
    safe = lay.oper_l1c_safe(tmp_path, ("31TCH", "31TDH", "31TDJ"))
    product = Sentinel2Product.open(safe, tile="T31TDJ")
    assert lay.read_dn(product.band_path("B8A")) == lay.band_dn("B8A", 20) + 200
    assert product.tile_metadata_path is not None and product.tile_metadata_path.name.endswith(
        "_T31TDJ.xml"
    )
    assert all("_T31TDJ_" in p.name for files in product.bands.values() for p in files.values())


def test_oper_format_several_granules_without_tile_says_what_to_do(tmp_path: Path) -> None:
    safe = lay.oper_l1c_safe(tmp_path, ("31TCH", "31TDH"))
    with pytest.raises(
        InvalidInputError, match=r"OPER-format SAFE .* of 2 granules \(31TCH, 31TDH\)"
    ) as err:
        Sentinel2Product.open(safe)
    assert "tile=" in str(err.value) and "single-tile product" in str(err.value)
    with pytest.raises(InvalidInputError, match="has no granule of tile 32UQU"):
        Sentinel2Product.open(safe, tile="32UQU")


def test_oper_format_zip_opens_as_a_package(tmp_path: Path) -> None:
    safe = lay.oper_l1c_safe(tmp_path / "src", ("31TDH",))
    archive = lay.zip_safe(safe, tmp_path / f"{safe.stem}.zip")
    package = open_package({"archive": archive})
    assert isinstance(package.product, Sentinel2Product)
    assert package.metadata_files["product_metadata"].name.startswith("S2A_OPER_MTD_SAFL1C_")
    resolved = resolve_bands(package, _collection(("B04", 10)))
    assert lay.read_dn(resolved.bands[0].path) == lay.band_dn("B04", 10)


@pytest.mark.parametrize("layout", ["cdse", "no_safe_folder", "safe_zip"])
def test_zip_layouts_open(tmp_path: Path, layout: str) -> None:
    text = lay.add_offsets(
        lay.set_baseline(lay.real_text(f"{lay.L1C_N0206}/MTD_MSIL1C.xml"), "05.00"), -1000
    )
    safe = lay.compact_safe(tmp_path / "src", text, level="L1C", tile_mtd=_l1c_tile())
    name = safe.name.removesuffix(".SAFE")
    archive = {
        "cdse": lambda: lay.zip_safe(safe, tmp_path / f"{name}.zip"),
        "no_safe_folder": lambda: lay.zip_safe(safe, tmp_path / f"{name}.zip", top=None),
        "safe_zip": lambda: lay.zip_safe(safe, tmp_path / f"{name}.SAFE.zip"),
    }[layout]()
    product = Sentinel2Product.open(archive, work_dir=tmp_path / "work")
    assert product.metadata.offsets["B04"] == -1000.0
    assert lay.read_dn(product.band_path("B04")) == lay.band_dn("B04", 10)
    package = open_package({"archive": archive})
    resolved = resolve_bands(package, _collection(("B04", 10), ("B11", 20)))
    assert [bf.source for bf in resolved.bands] == ["MTD", "MTD"]
    assert lay.read_dn(resolved.bands[1].path) == lay.band_dn("B11", 20)
