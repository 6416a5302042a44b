"""Landsat Collection 2 sensors and levels realdata lacks, built from real MTLs per the DFCBs.

L1TP/L1GT/L1GS, L2SP/L2SR; Landsat 9 (LC09), OLI-only (LO08), TIRS-only (LT08), TM (LT04,
LT05), ETM+ (LE07: B6_VCID_1/2, B8); Collection 1 refused; antimeridian and polar corners.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from include.common.config import CollectionConfig, load_collections
from include.common.errors import InvalidInputError
from include.processors.products import LandsatProduct, landsat_metadata, parse_mtl
from include.processors.products.package import (
    BandFile,
    instruments_of,
    open_package,
    require_sensor,
    resolve_bands,
)
from include.processors.publish.metadata import landsat_facts
from tests.helpers import landsat_layouts as layouts
from tests.helpers.packages import (
    LANDSAT_L1TP_OLI,
    LANDSAT_L2SP_OLI_ID,
    LandsatPackage,
    landsat_l1_tm,
    landsat_l2sp_etm,
)
from tests.helpers.realdata import realdata


@pytest.fixture(scope="module")
def collections() -> dict[str, CollectionConfig]:
    return load_collections()


def _open(package: LandsatPackage, tmp_path: Path) -> LandsatProduct:
    return LandsatProduct.open(package.write_tar(tmp_path), work_dir=tmp_path / "work")


def _resolved(
    package: LandsatPackage, tmp_path: Path, collection: CollectionConfig
) -> dict[str, BandFile]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    opened = open_package({"bundle": package.write_tar(tmp_path)})
    require_sensor(opened, collection, package.product_id)
    return {bf.band.name: bf for bf in resolve_bands(opened, collection).bands}


def test_landsat9_l1tp_reads_as_oli_tirs_with_toa_gains(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    package = layouts.landsat9_l1tp()
    product = _open(package, tmp_path)
    meta = product.metadata
    assert (meta.spacecraft, meta.sensor, meta.platform) == ("LANDSAT_9", "OLI_TIRS", "landsat-9")
    assert sorted(product.bands, key=int) == [str(n) for n in range(1, 12)]
    assert set(product.angles) == {"SZA", "SAA", "VZA", "VAA"}
    bands = _resolved(package, tmp_path / "r", collections["LC8_DN-1"])
    assert bands["B4"].source == "MTL"
    assert bands["B4"].path.name == "LC09_L1TP_090084_20160121_20200907_02_T1_B4.TIF"


@pytest.mark.parametrize("builder", [layouts.landsat8_l2sr, layouts.landsat9_l2sr])
def test_l2sr_has_no_surface_temperature_and_fills_an_sr_collection(
    builder: object, tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    package = builder()  # type: ignore[operator]
    assert not any("_ST_" in name for name in package.members)
    product = _open(package, tmp_path)
    assert product.metadata.processing_level == "L2SR" and product.metadata.st_mult == {}
    assert sorted(product.bands) == ["1", "2", "3", "4", "5", "6", "7"]
    bands = _resolved(package, tmp_path / "r", collections["LC8_SR-1"])
    assert "ST_B10" not in bands  # optional in LC8_SR-1
    assert (bands["B5"].scale, bands["B5"].offset, bands["B5"].source) == (2.75e-05, -0.2, "MTL")


def test_oli_only_scene_has_no_thermal_bands(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    package = layouts.oli_only_l1tp()
    opened = open_package({"bundle": package.write_tar(tmp_path)})
    assert instruments_of(opened) == ("oli",)
    product = opened.product
    assert isinstance(product, LandsatProduct)
    assert sorted(product.bands, key=int) == [str(n) for n in range(1, 10)]
    assert product.metadata.radiance_mult.keys() == {str(n) for n in range(1, 10)}
    require_sensor(opened, collections["LC8_DN-1"], package.product_id)
    assert len(resolve_bands(opened, collections["LC8_DN-1"]).bands) == 8


def test_tirs_only_scene_reads_and_is_refused_by_a_reflectance_collection(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    package = layouts.tirs_only_l1gt()
    opened = open_package({"bundle": package.write_tar(tmp_path)})
    product = opened.product
    assert isinstance(product, LandsatProduct)
    assert instruments_of(opened) == ("tirs",)
    assert sorted(product.bands) == ["10", "11"]
    assert product.metadata.toa_mult == {} and set(product.metadata.radiance_mult) == {"10", "11"}
    assert product.metadata.cloud_cover_pct is None  # USGS -1: not assessed
    with pytest.raises(InvalidInputError, match=r"TIRS-only.*no reflective bands"):
        require_sensor(opened, collections["LC8_DN-1"], package.product_id)


def test_tirs_only_stac_keys_map_to_the_thermal_bands(tmp_path: Path) -> None:
    package = layouts.tirs_only_l1gt()
    pid = package.product_id
    files = {"lwir11": tmp_path / "lwir11.TIF", "lwir12": tmp_path / "lwir12.TIF"}
    files["lwir11"].write_bytes(package.files[f"{pid}_B10.TIF"])
    files["lwir12"].write_bytes(package.files[f"{pid}_B11.TIF"])
    mtl = tmp_path / "mtl.txt"
    mtl.write_bytes(package.files[f"{pid}_MTL.txt"])
    product = LandsatProduct.from_files({**files, "mtl.txt": mtl})
    assert product.bands == {"10": files["lwir11"], "11": files["lwir12"]}


def test_landsat4_tm_l2sp_takes_st_b6_and_tm_numbers(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    package = layouts.landsat4_tm_l2sp()
    product = _open(package, tmp_path)
    assert (product.metadata.spacecraft, product.metadata.sensor) == ("LANDSAT_4", "TM")
    assert sorted(product.metadata.sr_mult) == ["1", "2", "3", "4", "5", "7"]
    assert product.metadata.st_mult == {"ST_B6": 0.00341802}
    bands = _resolved(package, tmp_path / "r", collections["LT5_SR-1"])
    assert bands["ST_B6"].path.name.endswith("_ST_B6.TIF")
    assert (bands["ST_B6"].scale, bands["ST_B6"].offset) == (0.00341802, 149.0)
    assert bands["B4"].path.name.endswith("_SR_B4.TIF")  # TM band 4 is near infrared
    with pytest.raises(InvalidInputError, match="tm product"):
        require_sensor(
            open_package({"b": package.write_tar(tmp_path)}), collections["LC8_SR-1"], None
        )


def test_tm_and_etm_level2_quality_files_are_named_per_sensor(tmp_path: Path) -> None:
    package = landsat_l2sp_etm()
    suffixes = {name.removeprefix(package.product_id + "_") for name in package.members}
    assert {"SR_ATMOS_OPACITY.TIF", "SR_CLOUD_QA.TIF", "ST_B6.TIF", "QA_RADSAT.TIF"} <= suffixes
    assert "SR_QA_AEROSOL.TIF" not in suffixes
    product = _open(package, tmp_path)
    assert product.qa_pixel is not None and product.qa_pixel.name.endswith("_QA_PIXEL.TIF")
    # the LEDAPS QA layers are neither bands nor the pixel QA
    assert not any("CLOUD_QA" in p.name or "OPACITY" in p.name for p in product.bands.values())


def test_etm_level1_has_two_thermal_gains_and_pan(tmp_path: Path) -> None:
    package = layouts.etm_l1tp()
    product = _open(package, tmp_path)
    assert sorted(product.bands) == ["1", "2", "3", "4", "5", "6_VCID_1", "6_VCID_2", "7", "8"]
    assert product.band_path("B6_VCID_2").name.endswith("_B6_VCID_2.TIF")
    assert product.band_path("pan").name.endswith("_B8.TIF")
    meta = product.metadata
    assert meta.radiance_mult["6_VCID_2"] == 3.7205e-02 and meta.toa_mult["8"] == 2.2473e-03
    assert "6_VCID_1" not in meta.toa_mult  # thermal: radiance only
    with pytest.raises(InvalidInputError, match="6_VCID_1"):
        product.band_path("B6")  # ambiguous: the error lists the VCID files


def test_tm_level1gs_bundle_reads_toa_and_angles(
    tmp_path: Path, collections: dict[str, CollectionConfig]
) -> None:
    package = landsat_l1_tm()
    product = _open(package, tmp_path)
    assert product.metadata.processing_level == "L1GS"
    assert set(product.angles) == {"SZA", "SAA", "VZA", "VAA"} and product.ang_path is not None
    bands = _resolved(package, tmp_path / "r", collections["LT5_DN-1"])
    assert bands["B3"].source == "MTL" and bands["B3"].scale is not None


def test_collection1_product_is_refused_naming_the_fix(tmp_path: Path) -> None:
    folder = layouts.collection1_bundle(tmp_path)
    with pytest.raises(InvalidInputError, match=r"Collection 1.*BQA.*Collection 2"):
        LandsatProduct.open(folder)
    with pytest.raises(InvalidInputError, match="Collection 1"):
        open_package({"product": folder})
    # the metadata itself stays readable (catalog records, MTL inspection)
    meta = landsat_metadata(parse_mtl(next(folder.glob("*_MTL.txt"))))
    assert meta.collection == 1 and meta.qa_pixel_file is not None


def test_mtl_with_byte_order_mark_and_crlf_reads(tmp_path: Path) -> None:
    real = layouts.real_l2sp_oli_files()
    for suffix in ("txt", "json"):
        data = real[f"{LANDSAT_L2SP_OLI_ID}_MTL.{suffix}"].read_text(encoding="utf-8")
        path = tmp_path / f"{LANDSAT_L2SP_OLI_ID}_MTL.{suffix}"
        path.write_bytes(b"\xef\xbb\xbf" + data.replace("\n", "\r\n").encode())
        meta = landsat_metadata(parse_mtl(path))
        assert meta.processing_level == "L2SP" and meta.sr_mult["4"] == 2.75e-05


def test_mtl_missing_optional_fields_reads_as_none(tmp_path: Path) -> None:
    real = layouts.real_l2sp_oli_files()[f"{LANDSAT_L2SP_OLI_ID}_MTL.json"]
    document = json.loads(real.read_text(encoding="utf-8"))
    attributes = document["LANDSAT_METADATA_FILE"]["IMAGE_ATTRIBUTES"]
    for key in ("CLOUD_COVER", "EARTH_SUN_DISTANCE", "SCENE_CENTER_TIME"):
        del attributes[key]
    del document["LANDSAT_METADATA_FILE"]["LEVEL2_SURFACE_TEMPERATURE_PARAMETERS"]
    path = tmp_path / real.name
    path.write_text(json.dumps(document))
    meta = landsat_metadata(parse_mtl(path))
    assert meta.cloud_cover_pct is None and meta.earth_sun_distance_au is None
    assert meta.acquired is not None and meta.acquired.hour == 0  # date without a time
    assert meta.st_mult == {} and meta.sr_mult["1"] == 2.75e-05


def _with_corners(text: str, corners: dict[str, tuple[float, float]], extra: str = "") -> str:
    lines = []
    for line in text.splitlines():
        key = line.strip().split(" = ")[0]
        for corner, (lat, lon) in corners.items():
            if key == f"CORNER_{corner}_LAT_PRODUCT":
                line = f"    {key} = {lat:.5f}"
            elif key == f"CORNER_{corner}_LON_PRODUCT":
                line = f"    {key} = {lon:.5f}"
        lines.append(line)
        if extra and line.strip() == "GROUP = PROJECTION_ATTRIBUTES":
            lines.append(extra)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("corners", "projection"),
    [
        # a Fiji scene across the antimeridian (path 74, row 72)
        (
            {
                "UL": (-15.7, 178.9),
                "UR": (-16.0, -179.4),
                "LL": (-17.4, 178.6),
                "LR": (-17.7, -179.7),
            },
            "",
        ),  # fmt: skip
        # an Antarctic scene on the polar stereographic grid, around the pole
        (
            {
                "UL": (-86.5, 150.0),
                "UR": (-86.7, -120.0),
                "LL": (-86.9, 60.0),
                "LR": (-86.8, -30.0),
            },
            '    MAP_PROJECTION = "PS"',
        ),  # fmt: skip
    ],
)
def test_antimeridian_and_polar_corners_do_not_crash(
    tmp_path: Path, corners: dict[str, tuple[float, float]], projection: str
) -> None:
    real = layouts.real_l2sp_oli_files()[f"{LANDSAT_L2SP_OLI_ID}_MTL.txt"]
    text = _with_corners(real.read_text(encoding="utf-8"), corners)
    if projection:
        text = text.replace('    MAP_PROJECTION = "UTM"', projection)
        text = "\n".join(line for line in text.splitlines() if "UTM_ZONE" not in line) + "\n"
    path = tmp_path / real.name
    path.write_text(text)
    meta = landsat_metadata(parse_mtl(path))
    assert meta.pathrow == "008059"
    facts = landsat_facts(path)
    assert facts.footprint is not None
    if not projection:
        assert facts.footprint["type"] == "MultiPolygon"  # split at 180 degrees
    else:
        assert facts.epsg is None  # not a UTM grid


def test_mss_stac_keys_follow_the_mtl_band_numbers(tmp_path: Path) -> None:
    """Landsat 4-5 MSS numbers green, red, nir08, nir09 as bands 1-4 (Landsat 1-3: 4-7)."""
    mtl = realdata(
        "stactools-landsat/data-files/mss/LM05_L1GS_001001_19850524_20210918_02_T2_MTL.xml"
    )
    band_tif = realdata(f"{LANDSAT_L1TP_OLI}/{layouts.L1TP_OLI_ID}_B4.TIF")  # any real raster
    files: dict[str, Path] = {"mtl.xml": mtl}
    for key in ("green", "red", "nir08", "nir09"):
        files[key] = tmp_path / f"{key}.TIF"
        files[key].write_bytes(band_tif.read_bytes())
    product = LandsatProduct.from_files(files)
    assert product.metadata.sensor == "MSS"
    assert product.bands == {
        "1": files["green"], "2": files["red"], "3": files["nir08"], "4": files["nir09"],
    }  # fmt: skip
    assert product.band_path("red") == files["red"]
