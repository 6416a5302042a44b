"""PublishProcessor on built demo scenes and on a real Sentinel-2 JP2 band; processor registry."""

from __future__ import annotations

import hashlib
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
import rasterio.shutil
from affine import Affine
from pystac.extensions.eo import EOExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterExtension
from rasterio.errors import NotGeoreferencedWarning
from shapely.geometry import box, shape

from include.collectors.base import Scene
from include.common.config import CollectionConfig, load_collections
from include.common.errors import InvalidInputError, ProcessingError
from include.demo.build import build_demo_catalog
from include.processors import registry
from include.processors.base import Processor, ProcessorInputs, ProcessorResult
from include.processors.publish import PublishOptions, PublishProcessor
from include.processors.publish.cog import (
    CogOptions,
    Compression,
    _source_vrt,
    validate_cog,
    write_cog,
)
from include.processors.publish.quicklook import encode_png
from tests.helpers.realdata import realdata_dir

REPO = Path(__file__).resolve().parents[3]
REAL_B01 = (
    "eodag/products/S2A_MSIL1C_20180101T105441_N0206_R051_T31TDH_20180101T124911/GRANULE/"
    "L1C_T31TDH_A013204_20180101T105435/IMG_DATA/T31TDH_20180101T105441_B01.jp2"
)
PARTIAL_SWATH = 1  # index of the demo scene with a nodata triangle on its western edge


@pytest.fixture(scope="module")
def l1c() -> CollectionConfig:
    return load_collections()["S2_L1C-1"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """Two demo scenes at 1024 px (20 m): large enough for COG overviews (> 512 px)."""
    root = tmp_path_factory.mktemp("demo")
    return root, build_demo_catalog(root, scenes=2, size_px=1024)


def scene_of(item: dict[str, Any], *, footprint: dict[str, Any] | None = None) -> Scene:
    return Scene(
        scene_id=item["id"],
        catalog="demo",
        dataset="S2MSI1C",
        datetime=datetime.fromisoformat(item["properties"]["datetime"]),
        cloud_pct=item["properties"]["eo:cloud_cover"],
        tile="23LLF",
        footprint=footprint,
    )


def band_files(root: Path, item: dict[str, Any]) -> dict[str, Path]:
    return {key: root / asset["href"].lstrip("/") for key, asset in item["assets"].items()}


def run_publish(
    root: Path,
    item: dict[str, Any],
    out: Path,
    collection: CollectionConfig,
    args: dict[str, Any] | None = None,
) -> ProcessorResult:
    bbox_polygon = box(*item["bbox"]).__geo_interface__
    inputs = ProcessorInputs(
        scene=scene_of(item, footprint=bbox_polygon),
        collection=collection,
        files=band_files(root, item),
        output_dir=out,
        args=args or {},
        source_collection="S2_L1C-1",
    )
    return PublishProcessor().run(inputs)


@pytest.fixture(scope="module")
def published(
    demo: tuple[Path, list[dict[str, Any]]],
    l1c: CollectionConfig,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[ProcessorResult, Path]:
    root, items = demo
    out = tmp_path_factory.mktemp("published")
    return run_publish(root, items[PARTIAL_SWATH], out, l1c), out


def read_png(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            assert ds.driver == "PNG"
            return ds.read()


def sha256_multihash(path: Path) -> str:
    return "1220" + hashlib.sha256(path.read_bytes()).hexdigest()


# -- COGs ---------------------------------------------------------------------------------------


def test_publish_demo_scene_writes_valid_cogs(
    published: tuple[ProcessorResult, Path], demo: tuple[Path, list[dict[str, Any]]]
) -> None:
    result, out = published
    root, items = demo
    sources = band_files(root, items[PARTIAL_SWATH])
    assert sorted(k for k in result.files if k.startswith("B")) == [
        "B02",
        "B03",
        "B04",
        "B08",
        "B11",
    ]
    for band in ("B02", "B03", "B04", "B08", "B11"):
        path = result.files[band]
        assert path == out / f"{items[PARTIAL_SWATH]['id']}_{band}.tif"
        with rasterio.open(path) as cog, rasterio.open(sources[band]) as src:
            assert cog.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert (cog.block_shapes[0]) == (512, 512)
            assert cog.compression is not None and cog.compression.value == "DEFLATE"
            assert cog.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2"
            assert cog.nodata == 0
            if cog.width > 512:
                assert cog.profile["tiled"] and cog.overviews(1) == [2]
            np.testing.assert_array_equal(cog.read(1), src.read(1))
        validate_cog(path)


def test_publish_cog_overviews_exclude_nodata(published: tuple[ProcessorResult, Path]) -> None:
    result, _ = published
    with rasterio.open(result.files["B04"], overview_level=0) as overview:
        data = overview.read(1)
    # the nodata triangle (west edge, top rows) stays exactly 0; no valid pixel averages to 0
    assert data[0, 0] == 0 and data[-1, -1] > 0
    assert not np.any((data > 0) & (data < 100))


def test_validate_cog_striped_geotiff_raises_processing_error(tmp_path: Path) -> None:
    path = tmp_path / "striped.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=600,
        height=600,
        count=1,
        dtype="uint16",
        crs="EPSG:32723",
        transform=rasterio.Affine(10, 0, 399960, 0, -10, 8700040),
    ) as dst:
        dst.write(np.ones((1, 600, 600), dtype=np.uint16))
    with pytest.raises(ProcessingError, match="not a valid COG.*LAYOUT=COG.*not tiled"):
        validate_cog(path)


# -- quicklook ----------------------------------------------------------------------------------


def test_publish_partial_swath_quicklook_is_transparent_on_nodata(
    published: tuple[ProcessorResult, Path],
) -> None:
    result, _ = published
    quicklook = read_png(result.files["quicklook"])
    assert quicklook.shape == (4, 768, 768)
    alpha = quicklook[3]
    assert alpha[0, 0] == 0 and alpha[-1, -1] == 255  # north-west corner is outside the swath
    assert set(np.unique(alpha)) == {0, 255}
    assert np.all(quicklook[:3, alpha == 0] == 0)
    assert 0.05 < (alpha == 0).mean() < 0.25  # the triangle covers about 13 % of the scene
    valid_rgb = quicklook[:3, alpha == 255]
    assert valid_rgb.min() == 0 and valid_rgb.max() == 255  # the 2-98 % stretch saturates
    thumbnail = read_png(result.files["thumbnail"])
    assert thumbnail.shape == (4, 256, 256)
    assert thumbnail[3, 0, 0] == 0 and thumbnail[3, -1, -1] == 255


def test_encode_png_any_rgba_decodes_identically(tmp_path: Path) -> None:
    rgba = np.random.default_rng(3).integers(0, 256, (37, 53, 4), dtype=np.uint8)
    path = tmp_path / "x.png"
    path.write_bytes(encode_png(rgba))
    np.testing.assert_array_equal(read_png(path), rgba.transpose(2, 0, 1))


# -- STAC item ----------------------------------------------------------------------------------


def test_publish_partial_swath_geometry_is_the_valid_outline(
    published: tuple[ProcessorResult, Path],
) -> None:
    result, _ = published
    item = result.item
    assert item is not None
    geometry = shape(item["geometry"])
    bbox = box(*item["bbox"])
    assert geometry.is_valid and geometry.geom_type == "Polygon"
    assert geometry.area < 0.95 * bbox.area  # not the scene's bbox footprint
    assert len(item["geometry"]["coordinates"][0]) - 1 > 4
    assert result.metadata["footprint_source"] == "data"
    # the outline lies in the demo's 23LLF subset and contains the DESIGN example bbox's centre
    assert bbox.bounds == pytest.approx((-45.9216, -12.7511, -45.7324, -12.5655), abs=1e-3)
    assert geometry.contains(box(-45.86, -12.70, -45.84, -12.68))


def test_publish_item_checksums_and_sizes_match_files(
    published: tuple[ProcessorResult, Path],
) -> None:
    result, _ = published
    assert result.item is not None
    item = pystac.Item.from_dict(result.item)
    assert set(item.assets) == {"B02", "B03", "B04", "B08", "B11", "quicklook", "thumbnail"}
    for key, asset in item.assets.items():
        path = Path(asset.href)
        assert path.is_absolute() and path == result.files[key]
        file_ext = FileExtension.ext(asset)
        assert file_ext.checksum == sha256_multihash(path)
        assert file_ext.size == path.stat().st_size


def test_publish_item_has_stac_extension_fields(published: tuple[ProcessorResult, Path]) -> None:
    result, _ = published
    assert result.item is not None
    item = pystac.Item.from_dict(result.item)
    assert item.id == "S2B_MSIL1C_20200110T131239_N0208_R138_T23LLF_20200110T150351"
    assert item.collection_id == "S2_L1C-1"
    assert item.datetime == datetime(2020, 1, 10, 13, 12, 39, tzinfo=UTC)
    assert item.common_metadata.platform == "sentinel-2b"
    assert item.common_metadata.constellation == "sentinel-2"
    assert item.common_metadata.instruments == ["msi"]
    assert EOExtension.ext(item).cloud_cover == pytest.approx(9.08, abs=0.5)
    proj = ProjectionExtension.ext(item)
    assert proj.epsg == 32723
    assert proj.shape == [1024, 1024]
    assert proj.transform == [20.0, 0.0, 399960.0, 0.0, -20.0, 8610760.0]
    b11 = item.assets["B11"]
    assert ProjectionExtension.ext(b11).shape == [512, 512]
    raster = RasterExtension.ext(b11).bands
    assert raster is not None and raster[0].nodata == 0 and raster[0].spatial_resolution == 40.0
    assert raster[0].data_type is not None and raster[0].data_type.value == "uint16"
    bands = EOExtension.ext(item.assets["B04"]).bands
    assert bands is not None and (bands[0].name, bands[0].common_name) == ("B04", "red")
    assert item.assets["B04"].roles == ["data"]
    assert item.assets["B04"].media_type == pystac.MediaType.COG
    assert item.assets["quicklook"].roles == ["overview"]
    assert item.assets["thumbnail"].roles == ["thumbnail"]
    props = item.properties
    assert props["processing:software"] == {"collection-builder": "0.1.0", "publish": "0.1.0"}
    assert raster[0].scale == 0.0001  # the collection's band scale, recorded in the COG
    assert ProjectionExtension.ext(item).bbox == [399960.0, 8590280.0, 420440.0, 8610760.0]
    assert props["processing:level"] == "L1C"
    assert item.id in props["processing:lineage"] and "catalog demo" in props["processing:lineage"]
    assert props["mgrs:utm_zone"] == 23 and props["grid:code"] == "MGRS-23LLF"
    assert "https://stac-extensions.github.io/processing/v1.2.0/schema.json" in item.stac_extensions


def test_publish_rerun_same_item_and_no_temporary_files(
    published: tuple[ProcessorResult, Path],
    demo: tuple[Path, list[dict[str, Any]]],
    l1c: CollectionConfig,
) -> None:
    result, out = published
    root, items = demo
    before = {path.name for path in out.iterdir()}
    again = run_publish(root, items[PARTIAL_SWATH], out, l1c)
    assert again.item == result.item
    assert {path.name for path in out.iterdir()} == before
    assert not [name for name in before if name.startswith(".") or name.endswith(".tmp")]


def test_publish_provider_keys_map_to_bands_and_other_files_are_ignored(
    demo: tuple[Path, list[dict[str, Any]]], l1c: CollectionConfig, tmp_path: Path
) -> None:
    root, items = demo
    files = band_files(root, items[0])
    provider_files = {
        "red": files["B04"],
        "green": files["B03"],
        "blue": files["B02"],
        "granule_metadata": files["thumbnail"],
    }
    inputs = ProcessorInputs(
        scene=scene_of(items[0]),
        collection=l1c,
        files=provider_files,
        output_dir=tmp_path,
        args={"compress": "zstd", "num_threads": 2, "quicklook": True},
    )
    result = PublishProcessor().run(inputs)
    assert sorted(result.files) == ["B02", "B03", "B04", "quicklook", "thumbnail"]
    assert result.metadata["ignored_keys"] == ["granule_metadata"]
    with rasterio.open(result.files["B04"]) as cog:
        assert cog.compression is not None and cog.compression.value == "ZSTD"
    # a scene with no nodata: the outline is the full square (4 corners)
    assert result.item is not None
    assert len(result.item["geometry"]["coordinates"][0]) == 5


def test_publish_no_band_file_raises_invalid_input(
    demo: tuple[Path, list[dict[str, Any]]], l1c: CollectionConfig, tmp_path: Path
) -> None:
    root, items = demo
    inputs = ProcessorInputs(
        scene=scene_of(items[0]),
        collection=l1c,
        files={"metadata": band_files(root, items[0])["thumbnail"]},
        output_dir=tmp_path,
    )
    with pytest.raises(InvalidInputError, match="files: no file is a band of S2_L1C-1.*B04"):
        PublishProcessor().run(inputs)


def test_publish_missing_file_raises_invalid_input(
    demo: tuple[Path, list[dict[str, Any]]], l1c: CollectionConfig, tmp_path: Path
) -> None:
    _, items = demo
    inputs = ProcessorInputs(
        scene=scene_of(items[0]),
        collection=l1c,
        files={"B04": tmp_path / "gone.tif"},
        output_dir=tmp_path,
    )
    with pytest.raises(InvalidInputError, match=r"files\[gone.tif\].*run the previous step"):
        PublishProcessor().run(inputs)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"colour": "red"}, "args.colour"),
        ({"compress": "lzw"}, "args.compress"),
        ({"compress": "deflate", "level": 30}, "args.level"),
        ({"num_threads": "many"}, "args.num_threads"),
        ({"quicklook": "yes"}, "args.quicklook"),
        ({"footprint_band": "B12"}, "args.footprint_band"),
    ],
)
def test_publish_bad_args_raise_invalid_input_naming_field(
    args: dict[str, Any],
    field: str,
    demo: tuple[Path, list[dict[str, Any]]],
    l1c: CollectionConfig,
    tmp_path: Path,
) -> None:
    root, items = demo
    inputs = ProcessorInputs(
        scene=scene_of(items[0]),
        collection=l1c,
        files=band_files(root, items[0]),
        output_dir=tmp_path,
        args=args,
    )
    with pytest.raises(InvalidInputError) as err:
        PublishProcessor().run(inputs)
    assert err.value.problems[0].field == field
    assert list(tmp_path.iterdir()) == []


def test_cog_options_num_threads_env_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTION_BUILDER_NUM_THREADS", "3")
    assert CogOptions.default_num_threads() == "3"
    assert CogOptions(num_threads="3").creation_options("uint16")["NUM_THREADS"] == "3"
    monkeypatch.delenv("COLLECTION_BUILDER_NUM_THREADS")
    assert CogOptions.default_num_threads() == "ALL_CPUS"
    assert CogOptions().creation_options("float32")["PREDICTOR"] == "3"


@pytest.mark.parametrize("compress", ["deflate", "zstd"])
def test_write_cog_speed_settings_leave_the_file_byte_identical(
    tmp_path: Path, compress: Compression
) -> None:
    # 700 px in 128 px tiles: three overview levels, built in GDAL's temporary file
    rng = np.random.default_rng(3)
    data = rng.integers(0, 4000, (700, 700), dtype=np.uint16)
    data[:100] = 0  # nodata rows: overviews exclude them
    src = tmp_path / "src.tif"
    profile = {"driver": "GTiff", "width": 700, "height": 700, "count": 1, "dtype": "uint16"}
    with rasterio.open(
        src, "w", **profile, crs="EPSG:32723", transform=Affine(10, 0, 300000, 0, -10, 8600000)
    ) as ds:
        ds.write(data, 1)
    options = CogOptions(compress=compress, blocksize=128)
    ours = write_cog(src, tmp_path / "ours.tif", nodata=0, options=options, scale=0.0001)
    assert len(ours.overviews) == 3
    # the same copy with GDAL's own settings
    plain = tmp_path / "plain.tif"
    vrt = _source_vrt(src, band_index=1, nodata=0, scale=0.0001, offset=None)
    with rasterio.open(vrt) as source:
        rasterio.shutil.copy(source, plain, driver="COG", **options.creation_options("uint16"))
    assert ours.path.read_bytes() == plain.read_bytes()


def test_publish_options_class_band_uses_nearest_overviews() -> None:
    l2a = load_collections()["S2_L2A-1"]
    options = PublishOptions.from_args({"overview_resampling": "average"})
    scl, red = l2a.band("SCL"), l2a.band("red")
    assert scl is not None and red is not None
    assert options.for_band(scl).overview_resampling == "nearest"
    assert options.for_band(red).overview_resampling == "average"


# -- real data ----------------------------------------------------------------------------------


def test_publish_real_sentinel2_jp2_band_writes_valid_cog(
    l1c: CollectionConfig, tmp_path: Path
) -> None:
    jp2 = realdata_dir() / REAL_B01
    if not jp2.is_file():
        pytest.skip(
            f"real Sentinel-2 band not found at {jp2}; set REALDATA_DIR to ../shared/realdata"
        )
    scene = Scene(
        scene_id="S2A_MSIL1C_20180101T105441_N0206_R051_T31TDH_20180101T124911",
        catalog="cdse",
        dataset="S2MSI1C",
        datetime=datetime(2018, 1, 1, 10, 54, 41, tzinfo=UTC),
        cloud_pct=43.0,
        tile="31TDH",
        footprint=None,
    )
    inputs = ProcessorInputs(scene=scene, collection=l1c, files={"B01": jp2}, output_dir=tmp_path)
    result = PublishProcessor().run(inputs)
    assert sorted(result.files) == ["B01"]  # no quicklook: B04/B03/B02 are absent
    cog_path = result.files["B01"]
    info = validate_cog(cog_path)
    assert (info.width, info.height, info.epsg, info.nodata) == (1830, 1830, 32631, 0)
    assert info.overviews and info.compression == "deflate"
    with rasterio.open(cog_path) as cog, rasterio.open(jp2) as src:
        assert cog.transform == src.transform
        np.testing.assert_array_equal(cog.read(1), src.read(1))
    assert result.item is not None
    item = pystac.Item.from_dict(result.item)
    assert item.properties["grid:code"] == "MGRS-31TDH"
    assert item.common_metadata.platform == "sentinel-2a"
    assert FileExtension.ext(item.assets["B01"]).checksum == sha256_multihash(cog_path)
    # about 40 % of this real tile is outside the swath: the outline is smaller than its bbox
    outline = shape(item.geometry)
    assert outline.area < 0.9 * box(*item.bbox).area
    west, south, east, north = item.bbox
    assert 1.5 < west < east < 3.2 and 42.2 < south < north < 43.4  # T31TDH, southern France


# -- registry -----------------------------------------------------------------------------------


def test_processor_registry_any_case_returns_publish() -> None:
    assert "publish" in registry.registered_names()
    assert registry.processor_class("PUBLISH") is PublishProcessor
    processor = registry.make_processor(" Publish ")
    assert isinstance(processor, PublishProcessor)
    assert (processor.name, processor.version, processor.task_type) == (
        "publish",
        "0.1.0",
        "publish",
    )


def test_processor_registry_unknown_name_raises_listing_known_names() -> None:
    with pytest.raises(InvalidInputError, match="'sen3cor' is not a registered processor.*publish"):
        registry.make_processor("sen3cor")


def test_processor_registry_alias_and_duplicate_name(caplog: pytest.LogCaptureFixture) -> None:
    @registry.register("test-dummy", aliases=("Dummy-Alias",))
    class DummyProcessor(Processor):
        name = "test-dummy"

        def run(self, inputs: ProcessorInputs) -> ProcessorResult:
            return ProcessorResult(files={})

    try:
        assert registry.processor_class("dummy-alias") is DummyProcessor
        assert "processor.alias" in caplog.text
        with pytest.raises(ValueError, match="already registered"):

            @registry.register("publish")
            class OtherProcessor(DummyProcessor):
                pass

    finally:
        registry._PROCESSORS.pop("test-dummy", None)
        registry._ALIASES.pop("dummy-alias", None)
