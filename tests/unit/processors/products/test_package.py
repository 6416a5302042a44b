"""The package resolver on provider-shaped packages built from real product metadata.

Landsat: a flat Collection 2 bundle tar of the real L2SP MTL and band files of stactools-landsat.
Sentinel-2: a SAFE laid out as its real MTD_MSIL1C.xml's IMAGE_FILE entries say, for baselines
02.06 (no offsets) and 05.09 (RADIO_ADD_OFFSET -1000), with small JP2 bands.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from include.collectors.base import Scene
from include.common.config import CollectionConfig, load_collections
from include.common.errors import InvalidInputError
from include.processors.base import ProcessorInputs, ProcessorResult
from include.processors.harmonization.processor import NbarProcessor
from include.processors.products.package import (
    instruments_of,
    open_package,
    require_sensor,
    resolve_bands,
    unpacked_folder,
)
from include.processors.products.sentinel2 import parse_product_metadata
from include.processors.publish.processor import PublishProcessor
from tests.helpers.realdata import realdata

L2SP = "LC08_L2SP_008059_20191201_20200825_02_T1"
N0509 = "s2-l1c-n0509/S2B_MSIL1C_20230601T094549_N0509_R079_T34UDD/MTD_MSIL1C.xml"
N0206 = "eodag/products/S2A_MSIL1C_20180101T105441_N0206_R051_T31TDH_20180101T124911/MTD_MSIL1C.xml"


@pytest.fixture(scope="module")
def collections() -> dict[str, CollectionConfig]:
    return load_collections()


def _landsat_tar(tmp_path: Path, drop: tuple[str, ...] = ()) -> Path:
    folder = realdata("stactools-landsat/data-files/assets3")
    tar_path = tmp_path / "archive" / f"{L2SP}.tar"
    tar_path.parent.mkdir(parents=True)
    with tarfile.open(tar_path, "w") as handle:
        for path in sorted(folder.glob(f"{L2SP}_*")):
            if path.suffix.lower() in (".tif", ".txt", ".xml") and not path.name.endswith(drop):
                handle.add(path, arcname=path.name)
    return tar_path


def _safe_zip(tmp_path: Path, mtd_relative: str) -> Path:
    mtd = realdata(mtd_relative)
    metadata = parse_product_metadata(mtd)
    safe = tmp_path / "build" / f"{metadata.product_uri}.SAFE"
    safe.mkdir(parents=True)
    shutil.copy(mtd, safe / mtd.name)
    profile = {
        "driver": "JP2OpenJPEG",
        "width": 16,
        "height": 16,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32634",
        "transform": from_origin(399960, 5800020, 10, 10),
        "QUALITY": 100,
        "REVERSIBLE": "YES",
    }
    data = np.arange(1000, 1256, dtype="uint16").reshape(16, 16)
    for image in metadata.image_files:
        target = safe / f"{image}.jp2"
        target.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(target, "w", **profile) as ds:
            ds.write(data, 1)
    zip_path = tmp_path / "archive" / f"{metadata.product_uri}.zip"
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w") as handle:
        for path in sorted(safe.rglob("*")):
            handle.write(path, path.relative_to(safe.parent).as_posix())
    return zip_path


def test_landsat_bundle_resolves_sr_st_and_qa_with_the_mtl_scaling(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    package = open_package({"archive": _landsat_tar(tmp_path)})
    resolved = resolve_bands(package, collections["LC8_SR-1"])
    by_name = {band_file.band.name: band_file for band_file in resolved.bands}
    assert list(by_name) == ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "ST_B10", "QA_PIXEL"]
    assert by_name["B4"].path.name == f"{L2SP}_SR_B4.TIF"
    assert (by_name["B4"].scale, by_name["B4"].offset, by_name["B4"].source) == (
        2.75e-05,
        -0.2,
        "MTL",
    )
    assert (by_name["ST_B10"].scale, by_name["ST_B10"].offset) == (0.00341802, 149.0)
    assert by_name["ST_B10"].band.unit == "kelvin"
    assert by_name["QA_PIXEL"].scale is None
    assert instruments_of(package) == ("oli", "tirs")
    assert package.metadata_files["mtl"].name.endswith(("_MTL.txt", "_MTL.xml", "_MTL.json"))


def test_an_archive_is_extracted_once_beside_itself_and_again_after_a_new_download(
    tmp_path: Path,
) -> None:
    tar_path = _landsat_tar(tmp_path)
    open_package({"archive": tar_path})
    marker = unpacked_folder(tar_path) / ".extracted"
    first = marker.stat().st_mtime_ns
    open_package({"archive": tar_path})
    assert marker.stat().st_mtime_ns == first
    tar_path.touch()  # a forced download replaced the file
    open_package({"archive": tar_path})
    assert marker.stat().st_mtime_ns != first


def test_a_bundle_without_a_needed_band_fails_naming_band_and_package(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    package = open_package({"archive": _landsat_tar(tmp_path, drop=("_SR_B5.TIF",))})
    with pytest.raises(InvalidInputError, match=rf"{L2SP}.tar has no B5 band for LC8_SR-1"):
        resolve_bands(package, collections["LC8_SR-1"])


def test_an_l2sr_bundle_without_surface_temperature_still_resolves(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    package = open_package({"archive": _landsat_tar(tmp_path, drop=("_ST_B10.TIF",))})
    resolved = resolve_bands(package, collections["LC8_SR-1"])
    assert "ST_B10" not in [band_file.band.name for band_file in resolved.bands]
    assert resolved.missing == []


def test_an_oli_product_is_refused_by_a_tm_collection_naming_the_one_to_use(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    package = open_package({"archive": _landsat_tar(tmp_path)})
    with pytest.raises(InvalidInputError, match=r"oli/tirs product; LT5_SR-1 holds tm.*LC8_SR-1"):
        require_sensor(package, collections["LT5_SR-1"], L2SP)


def test_a_tm_scene_id_is_refused_by_an_oli_collection(
    collections: dict[str, CollectionConfig],
) -> None:
    package = open_package({})
    scene = "LT05_L2SP_010067_19860424_20200918_02_T2"
    with pytest.raises(InvalidInputError, match=r"is a tm product; LC8_SR-1 .* use LT5_SR-1"):
        require_sensor(package, collections["LC8_SR-1"], scene)


def test_sentinel2_baseline_05_09_bands_carry_the_mtd_offset(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    package = open_package({"archive": _safe_zip(tmp_path, N0509)})
    resolved = resolve_bands(package, collections["S2_L1C-1"])
    assert len(resolved.bands) == 13
    for band_file in resolved.bands:
        assert band_file.scale == pytest.approx(1e-4)
        assert band_file.offset == pytest.approx(-0.1)
        assert band_file.source == "MTD"
    assert instruments_of(package) == ("msi",)


def test_sentinel2_baseline_02_06_bands_carry_no_offset(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    package = open_package({"archive": _safe_zip(tmp_path, N0206)})
    resolved = resolve_bands(package, collections["S2_L1C-1"])
    assert {band_file.offset for band_file in resolved.bands} == {None}
    assert all(band_file.scale == pytest.approx(1e-4) for band_file in resolved.bands)


def test_sentinel2_product_is_refused_by_a_landsat_collection(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    package = open_package({"archive": _safe_zip(tmp_path, N0509)})
    with pytest.raises(InvalidInputError, match=r"msi product; LC8_DN-1 holds oli/tirs"):
        require_sensor(package, collections["LC8_DN-1"], None)


def _scene(scene_id: str, dataset: str) -> Scene:
    return Scene(
        scene_id=scene_id,
        catalog="test",
        dataset=dataset,
        datetime=datetime(2020, 1, 1, tzinfo=UTC),
        cloud_pct=None,
        tile=None,
        footprint=None,
    )


def _reader_values(result: ProcessorResult, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (DN, DN * item scale + item offset) of a published band, as a reader does."""
    assert result.item is not None
    band = result.item["assets"][key]["raster:bands"][0]
    with rasterio.open(result.files[key]) as ds:
        dn = ds.read(1).astype("float64")
        assert ds.scales[0] == pytest.approx(band.get("scale", 1.0))
        assert ds.offsets[0] == pytest.approx(band.get("offset", 0.0))
    return dn, dn * band.get("scale", 1.0) + band.get("offset", 0.0)


def test_publish_of_a_landsat_bundle_gives_reflectance_and_kelvin_to_a_stac_reader(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    inputs = ProcessorInputs(
        scene=_scene(L2SP, "landsat_ot_c2_l2"),
        collection=collections["LC8_SR-1"],
        files={"archive": _landsat_tar(tmp_path)},
        output_dir=tmp_path / "published",
        args={"indices": False},
    )
    result = PublishProcessor().run(inputs)
    assert result.item is not None
    dn, value = _reader_values(result, "B4")
    valid = dn > 0
    assert np.allclose(value[valid], dn[valid] * 2.75e-05 - 0.2, atol=1e-4)
    dn, kelvin = _reader_values(result, "ST_B10")
    valid = dn > 0
    assert np.allclose(kelvin[valid], dn[valid] * 0.00341802 + 149.0, atol=1e-4)
    assert result.item["assets"]["ST_B10"]["raster:bands"][0].get("unit") in (None, "kelvin")
    assert result.metadata["package"] == f"{L2SP}.tar"


def test_publish_of_a_baseline_05_09_safe_gives_the_reflectance_the_mtd_defines(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    inputs = ProcessorInputs(
        scene=_scene("S2B_MSIL1C_20230601T094549_N0509_R079_T34UDD_20230601T115221", "S2MSI1C"),
        collection=collections["S2_L1C-1"],
        files={"archive": _safe_zip(tmp_path, N0509)},
        output_dir=tmp_path / "published",
        args={"indices": False, "quicklook": False},
    )
    result = PublishProcessor().run(inputs)
    assert result.item is not None
    dn, value = _reader_values(result, "B04")
    assert np.allclose(value, (dn - 1000) / 10000, atol=1e-6)
    assert result.item["properties"]["platform"] == "sentinel-2b"


def test_nbar_harmonizes_a_downloaded_l2sp_bundle_directly(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    inputs = ProcessorInputs(
        scene=_scene(L2SP, "landsat_ot_c2_l2"),
        collection=collections["LC8_NBAR-1"],
        files={"archive": _landsat_tar(tmp_path)},
        output_dir=tmp_path / "nbar",
    )
    result = NbarProcessor().run(inputs)
    assert {"B2", "B3", "B4", "B5", "B6", "B7"} <= set(result.files)
    assert "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS" in str(result.metadata["bands"]["B4"])
    with (
        rasterio.open(result.files["B4"]) as nbar,
        rasterio.open(unpacked_folder(inputs.files["archive"]) / f"{L2SP}_SR_B4.TIF") as sr,
    ):
        valid = (sr.read(1) > 0) & (nbar.read(1) != nbar.nodata)
        ratio = (nbar.read(1)[valid] * 1e-4) / (sr.read(1)[valid] * 2.75e-05 - 0.2)
    assert 0.8 < float(np.median(ratio)) < 1.2  # a c-factor, not another scaling


def test_nbar_refuses_an_oli_bundle_for_the_tm_etm_collection(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    inputs = ProcessorInputs(
        scene=_scene(L2SP, "landsat_ot_c2_l2"),
        collection=collections["L57_NBAR-1"],
        files={"archive": _landsat_tar(tmp_path)},
        output_dir=tmp_path / "nbar",
    )
    with pytest.raises(InvalidInputError, match="use LC8_NBAR-1"):
        NbarProcessor().run(inputs)
