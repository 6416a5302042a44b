"""Post processors (qa-post, fmask, s2cloudless) on real Landsat L2 and Sentinel-2 L1C rasters
and on demo L2A scenes (SCL at 20 m put on the 10 m-class grid)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio

from include.collectors.base import Scene
from include.common.config import load_collections
from include.common.errors import InvalidInputError
from include.demo.build import build_demo_catalog
from include.processors.base import ProcessorInputs, ProcessorResult
from include.processors.publish.cog import validate_cog
from include.processors.registry import make_processor
from tests.helpers.realdata import realdata

L2SP = "stactools-landsat/data-files/assets3/LC08_L2SP_008059_20191201_20200825_02_T1"
SINERGISE = (
    "eo-datasets/sinergise_s2_l1c/S2B_MSIL1C_20201011T000249_N0209_R030_T55HFA_20201011T011446"
)


def run(
    name: str, files: dict[str, Path], out: Path, collection: str, **args: object
) -> ProcessorResult:
    scene = Scene(
        scene_id="S", catalog="demo", dataset="x", datetime=datetime(2020, 1, 1, tzinfo=UTC),
        cloud_pct=None, tile="23LLF", footprint=None,
    )  # fmt: skip
    return make_processor(name).run(
        ProcessorInputs(
            scene=scene,
            collection=load_collections()[collection],
            files=files,
            output_dir=out,
            args=args,
        )
    )


def landsat_l2_files() -> dict[str, Path]:
    realdata(f"{L2SP}_MTL.txt")
    files = {f"B{n}": Path(f"{realdata_root()}/{L2SP}_SR_B{n}.TIF") for n in range(1, 8)}
    files["QA_PIXEL"] = Path(f"{realdata_root()}/{L2SP}_QA_PIXEL.TIF")
    return files


def realdata_root() -> Path:
    from tests.helpers.realdata import realdata_dir

    return realdata_dir()


def test_qa_post_landsat_recomputes_cloud_cover_from_qa_pixel_bits(tmp_path: Path) -> None:
    files = landsat_l2_files()
    result = run("qa-post", files, tmp_path, "LC8_SR-1")
    meta = result.metadata
    # by hand from QA_PIXEL: 180637 pixels without fill; cloud (bits 1-3) on 152174 of them
    assert meta["cloud_cover"] == 84.24
    assert meta["mask_kind"] == "qa_pixel" and meta["mask_band"] == "QA_PIXEL"
    assert meta["clear_pct"] == round(100 * 21334 / 180637, 2)
    mask = result.files["QA_PIXEL"]
    assert mask.parent == tmp_path
    cog = validate_cog(mask)
    assert cog.nodata == 1.0
    digest = hashlib.sha256(mask.read_bytes()).hexdigest()
    assert meta["checksums"]["QA_PIXEL"] == "1220" + digest
    assert meta["sizes"]["QA_PIXEL"] == mask.stat().st_size
    for band in ("B1", "B7"):
        assert result.files[band] == files[band]  # reflectance passes through untouched
    with rasterio.open(mask) as ds, rasterio.open(files["QA_PIXEL"]) as src:
        assert ds.transform == src.transform and ds.shape == src.shape
        assert (ds.read(1) == src.read(1)).all()  # same grid: values unchanged


def test_qa_post_sets_nodata_where_any_reflectance_band_is_nodata(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    build_demo_catalog(root, scenes=2, size_px=64, l2a=True)
    scene_dir = next((root / "files").glob("S2B_MSIL2A_20200110*"))  # the partial-swath scene
    files = {p.stem: p for p in scene_dir.glob("*.tif")}
    result = run("qa-post", files, tmp_path / "out", "S2_L2A-1")
    with rasterio.open(result.files["SCL"]) as out, rasterio.open(files["B04"]) as b04, \
            rasterio.open(files["SCL"]) as scl:  # fmt: skip
        mask, red, original = out.read(1), b04.read(1), scl.read(1)
        assert out.shape == b04.shape and out.transform == b04.transform  # 20 m -> fine grid
        assert scl.shape == (32, 32) and out.shape == (64, 64)
    assert ((red == 0) <= (mask == 0)).all()  # every reflectance nodata is mask nodata
    # nearest: each 20 m class fills its 2x2 block where the reflectance has data
    upsampled = np.kron(original, np.ones((2, 2), dtype=original.dtype))
    assert (mask[red != 0] == upsampled[red != 0]).all()
    expected = 100 * np.isin(mask, (8, 9, 10)).sum() / (mask != 0).sum()
    assert result.metadata["cloud_cover"] == round(expected, 2)


def test_qa_post_fully_cloudy_scene_is_flagged_and_stops(tmp_path: Path) -> None:
    files = landsat_l2_files()
    result = run("qa-post", files, tmp_path / "a", "LC8_SR-1", min_clear_pct=50)
    assert result.files == {}
    assert result.metadata["flags"] == ["fully_cloudy"]
    assert result.metadata["cloud_cover"] == 84.24
    kept = run(
        "qa-post", files, tmp_path / "b", "LC8_SR-1", min_clear_pct=50, keep_fully_cloudy=True
    )
    assert kept.metadata["flags"] == ["fully_cloudy"] and "QA_PIXEL" in kept.files


def test_qa_post_without_a_mask_or_reflectance_is_invalid(tmp_path: Path) -> None:
    files = landsat_l2_files()
    without_mask = {k: v for k, v in files.items() if k != "QA_PIXEL"}
    with pytest.raises(InvalidInputError, match="no quality mask"):
        run("qa-post", without_mask, tmp_path, "LC8_SR-1")
    with pytest.raises(InvalidInputError, match="no reflectance band"):
        run("qa-post", {"QA_PIXEL": files["QA_PIXEL"]}, tmp_path, "LC8_SR-1")


def test_fmask_needs_an_fmask_output(tmp_path: Path) -> None:
    files = landsat_l2_files()
    with pytest.raises(InvalidInputError, match="FMASK"):
        run("fmask", files, tmp_path, "LC8_SR_LASRC-1")


def test_fmask_uses_fmask_classes(tmp_path: Path) -> None:
    files = landsat_l2_files()
    with rasterio.open(files["QA_PIXEL"]) as qa:
        bits = qa.read(1)
        profile = qa.profile
    # an Fmask-coded mask from the same QA bits: 4 cloud, 2 shadow, 0 clear, 255 fill
    fmask = np.where((bits & 0b1110) != 0, 4, np.where((bits & 0b10000) != 0, 2, 0))
    fmask = np.where((bits & 1) != 0, 255, fmask).astype(np.uint8)
    profile.update(dtype="uint8", nodata=255)
    path = tmp_path / "FMASK.tif"
    with rasterio.open(path, "w", **profile) as out:
        out.write(fmask, 1)
    lasrc_like = {**{k: v for k, v in files.items() if k != "QA_PIXEL"}, "FMASK": path}
    result = run("fmask", lasrc_like, tmp_path / "out", "LC8_SR_LASRC-1")
    assert result.metadata["mask_kind"] == "fmask"
    assert result.metadata["cloud_cover"] == 84.24  # same pixels as the QA bits above
    assert "FMASK" in result.files


def test_s2cloudless_on_real_l1c_agrees_with_esa_cloud_cover(tmp_path: Path) -> None:
    folder = realdata(SINERGISE)
    files = {path.stem: path for path in folder.iterdir()}
    result = run("s2cloudless", files, tmp_path, "S2_TOA-1")
    meta = result.metadata
    # ESA's CLOUDY_PIXEL_PERCENTAGE in this granule's metadata.xml is 24.9912
    assert meta["cloud_cover"] == pytest.approx(24.99, abs=3.0)
    assert meta["mask_kind"] == "cloud_mask" and meta["model"].startswith("s2cloudless")
    with (
        rasterio.open(result.files["CLOUD_MASK"]) as mask,
        rasterio.open(result.files["CLOUD_PROB"]) as prob,
        rasterio.open(files["B02"]) as blue,
    ):
        assert mask.shape == blue.shape == prob.shape
        values = mask.read(1)
        assert set(np.unique(values)) <= {0, 1, 255}
        probability = prob.read(1)
        assert probability[values == 1].mean() > probability[values == 0].mean()
    again = run("s2cloudless", files, tmp_path / "again", "S2_TOA-1")
    assert again.metadata["cloud_cover"] == meta["cloud_cover"]  # deterministic


def test_s2cloudless_without_every_model_band_is_invalid(tmp_path: Path) -> None:
    folder = realdata(SINERGISE)
    files = {path.stem: path for path in folder.iterdir() if path.stem != "B10"}
    with pytest.raises(InvalidInputError, match="missing B10"):
        run("s2cloudless", files, tmp_path, "S2_TOA-1")
