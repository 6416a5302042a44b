"""``toa`` on real Level-1 bands (Landsat 8 C2 L1TP, Sentinel-2 L1C) and demo scenes.

Pixel values below were read from the real files and converted by hand from their metadata.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio

from include.collectors.base import Scene
from include.common.config import BandConfig, CollectionConfig, load_collections
from include.common.errors import InvalidInputError
from include.demo.build import build_demo_catalog
from include.processors.base import ProcessorInputs
from include.processors.correction.common import Encoding
from include.processors.registry import make_processor
from tests.helpers.realdata import realdata

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "sentinel2"
L1TP = "eo-datasets/LC08_L1TP_090084_20160121_20200907_02_T1"
SINERGISE = (
    "eo-datasets/sinergise_s2_l1c/S2B_MSIL1C_20201011T000249_N0209_R030_T55HFA_20201011T011446"
)
L2SP_MTL = "stactools-landsat/data-files/assets3/LC08_L2SP_008059_20191201_20200825_02_T1_MTL.txt"


def scene(scene_id: str, tile: str, **properties: object) -> Scene:
    return Scene(
        scene_id=scene_id,
        catalog="demo",
        dataset="x",
        datetime=datetime(2020, 1, 1, tzinfo=UTC),
        cloud_pct=None,
        tile=tile,
        footprint=None,
        properties=dict(properties),
    )


def run_toa(
    files: dict[str, Path], out: Path, collection: str, sid: str, tile: str, **args: object
):  # noqa: ANN201 - ProcessorResult
    return make_processor("toa").run(
        ProcessorInputs(
            scene=scene(sid, tile),
            collection=load_collections()[collection],
            files=files,
            output_dir=out,
            args=args,
        )
    )


def test_toa_landsat_l1tp_converts_with_mult_add_and_sun_elevation(tmp_path: Path) -> None:
    folder = realdata(L1TP)
    files = {path.stem: path for path in folder.iterdir()}
    result = run_toa(files, tmp_path, "LC8_TOA-1", folder.name, "090084")
    assert sorted(result.metadata["bands"]) == [
        "B1",
        "B2",
        "B3",
        "B4",
        "B5",
        "B6",
        "B7",
        "QA_PIXEL",
    ]
    # the product's metadata goes on with the bands (harmonization reads angles from it)
    assert set(result.files) - set(result.metadata["bands"]) == {
        "LC08_L1TP_090084_20160121_20200907_02_T1_MTL"
    }
    with rasterio.open(result.files["B4"]) as ds:
        values = ds.read(1)
        assert ds.dtypes[0] == "int16" and ds.nodata == -9999
        assert ds.scales == (0.0001,) and ds.offsets == (0.0,)
        assert ds.tags(1)["scale"] == "0.0001"
        assert ds.crs.to_epsg() == 32655
    # DN 23478 at (30, 30): (23478 * 2e-5 - 0.1) / sin(55.486483 deg) = 0.44850 -> 4485
    assert values[30, 30] == 4485
    with rasterio.open(folder / f"{folder.name}_B4.TIF") as src:
        dn = src.read(1)
    assert ((dn == 0) == (values == -9999)).all()  # the 1200 fill pixels stay nodata
    assert int((values == -9999).sum()) == 1200
    with (
        rasterio.open(result.files["QA_PIXEL"]) as qa,
        rasterio.open(folder / f"{folder.name}_QA_PIXEL.TIF") as original,
    ):
        assert (qa.read(1) == original.read(1)).all()
    assert result.metadata["sun_elevation_deg"] == 55.486483
    assert result.metadata["valid_pct"] == 66.67
    assert result.metadata["radiometry"]["B4"]["reflectance_mult"] == 2e-05
    assert "flags" not in result.metadata


def test_toa_sentinel2_n0209_divides_by_quantification(tmp_path: Path) -> None:
    folder = realdata(SINERGISE)
    files = {path.stem: path for path in folder.iterdir()}
    result = run_toa(files, tmp_path, "S2_TOA-1", folder.name, "55HFA")
    assert len([k for k in result.files if k.startswith("B")]) == 13
    with rasterio.open(result.files["B04"]) as ds:
        values = ds.read(1)
    # DN 832 at (50, 50), baseline 02.09: 832 / 10000 = 0.0832 -> 832
    assert values[50, 50] == 832
    assert int((values == -9999).sum()) == 2  # the two DN-0 pixels of this band
    assert result.metadata["radiometry_source"] == "specification default"


def test_toa_sentinel2_0511_applies_radio_add_offset_and_collection_encoding(
    tmp_path: Path,
) -> None:
    band = realdata(f"{SINERGISE}/B04.jp2")
    files = {"product_metadata": FIXTURES / "MTD_MSIL1C_N0511.xml", "B04": band}
    sid = "S2A_MSIL1C_20251128T111431_N0511_R137_T30UXE_20251128T121631"
    toa = run_toa(files, tmp_path / "int16", "S2_TOA-1", sid, "30UXE")
    with rasterio.open(toa.files["B04"]) as ds:
        # (832 - 1000) / 10000 = -0.0168: int16 keeps the negative reflectance
        assert ds.read(1)[50, 50] == -168
    assert toa.metadata["radio_add_offsets"]["B04"] == -1000.0
    l1c = run_toa(files, tmp_path / "uint16", "S2_L1C-1", sid, "30UXE")
    with rasterio.open(l1c.files["B04"]) as ds:
        # S2_L1C-1 stores uint16 with nodata 0: negative reflectance is clipped to 1 (0.0001)
        assert ds.dtypes[0] == "uint16" and ds.nodata == 0
        assert ds.read(1)[50, 50] == 1


def test_toa_demo_n0500_scene_removes_the_offset_and_writes_cloud_mask(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    items = build_demo_catalog(root, scenes=4, size_px=64, product_metadata=True)
    item = items[3]  # the N0500 reprocessed scene, DN = reflectance * 10000 + 1000
    files = {
        key: root / asset["href"].lstrip("/")
        for key, asset in item["assets"].items()
        if key != "thumbnail"
    }
    result = run_toa(files, tmp_path / "out", "S2_TOA-1", item["id"], "23LLF")
    assert sorted(result.metadata["bands"]) == ["B02", "B03", "B04", "B08", "B11", "CLOUD_MASK"]
    assert set(result.files) - set(result.metadata["bands"]) == {"MTD_MSIL1C"}
    with rasterio.open(files["B04"]) as src, rasterio.open(result.files["B04"]) as out:
        dn, toa = src.read(1), out.read(1)
    valid = dn != 0
    assert (toa[valid] == dn[valid].astype(np.int32) - 1000).all()
    with rasterio.open(result.files["CLOUD_MASK"]) as mask:
        assert set(np.unique(mask.read(1))) <= {0, 1}


def test_toa_sun_below_limit_ends_with_a_flag_and_no_files(tmp_path: Path) -> None:
    folder = realdata(L1TP)
    files = {path.stem: path for path in folder.iterdir()}
    result = run_toa(files, tmp_path, "LC8_TOA-1", folder.name, "090084", min_sun_elevation_deg=60)
    assert result.files == {}
    assert result.metadata["flags"] == ["sun_too_low"]
    assert result.metadata["sun_elevation_deg"] == 55.486483
    assert not list(tmp_path.glob("*.tif"))


def test_toa_refuses_a_level2_product(tmp_path: Path) -> None:
    mtl = realdata(L2SP_MTL)
    files = {path.stem: path for path in mtl.parent.glob("LC08_L2SP_008059_*")}
    with pytest.raises(InvalidInputError, match="toa needs a Level-1 product, got L2SP"):
        run_toa(files, tmp_path, "LC8_TOA-1", mtl.name[:40], "008059")


def test_toa_unknown_option_is_named(tmp_path: Path) -> None:
    folder = realdata(L1TP)
    files = {path.stem: path for path in folder.iterdir()}
    with pytest.raises(InvalidInputError, match="args.min_sun_elevation"):
        run_toa(files, tmp_path, "LC8_TOA-1", folder.name, "090084", min_sun_elevation=3)


def test_toa_without_metadata_or_bands_is_invalid(tmp_path: Path) -> None:
    note = tmp_path / "notes.txt"
    note.write_text("x")
    with pytest.raises(InvalidInputError, match="neither a Sentinel-2 nor a Landsat"):
        run_toa({"notes": note}, tmp_path / "o", "S2_TOA-1", "x", "23LLF")


def test_encoding_nudges_values_equal_to_nodata_and_clips() -> None:
    reflectance = np.array([[0.0, -0.5, 7.0, 0.1234]])
    valid = np.array([[True, True, True, False]])
    uint16 = Encoding.for_band(BandConfig(name="B04", resolution_m=10, scale=0.0001))
    assert uint16.encode(reflectance, valid).tolist() == [[1, 1, 65535, 0]]
    int16 = Encoding.for_band(
        BandConfig(name="B04", resolution_m=10, data_type="int16", nodata=-9999, scale=0.0001)
    )
    assert int16.encode(reflectance, valid).tolist() == [[0, -5000, 32767, -9999]]
    landsat = Encoding.for_band(
        BandConfig(name="B4", resolution_m=30, scale=0.0000275, offset=-0.2)
    )
    # the USGS Level-2 encoding: (0.07236 + 0.2) / 2.75e-5 = 9904
    assert landsat.encode(np.array([[0.07236]]), np.array([[True]])).tolist() == [[9904]]


def test_encoding_refuses_a_byte_band() -> None:
    band = BandConfig(name="X", resolution_m=10, data_type="uint8")
    with pytest.raises(InvalidInputError, match="cannot hold reflectance"):
        Encoding.for_band(band)
    assert isinstance(CollectionConfig, type)
