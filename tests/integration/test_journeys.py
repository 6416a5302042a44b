"""Journeys on real packaging: provider packages in, published numbers checked (DESIGN 1.2).

Every test serves packages built by ``tests/helpers/packages.py`` from the real metadata in
``../shared/realdata`` (SAFE zips from a loopback CDSE, Product Bundles from a loopback USGS
M2M, per-asset files from a loopback Earth Search) and runs the ``radcor`` DAG (or a shipped
pipeline's DAG) with ``dag.test()``. Each then reads what was published and checks it against
values computed here, independently of ``include/``, from the package's DN and the real
MTD/MTL: the COG's DN with the item's ``raster:bands`` scale/offset give the reflectance
(temperature) within 1e-4, the bands are there, the grid is the package's, the footprint lies in
the MTD/MTL footprint, and datetime, platform and instruments are right.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import yaml

from include.radcor.activities import ActivityStore
from tests.helpers import packages as pk
from tests.helpers.cdse_server import CdseServer
from tests.helpers.m2m_server import M2MServer, scene_from_mtl
from tests.helpers.realdata import realdata

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-4
AREA_NONE = {"tiles": None, "geom": None, "w": None, "s": None, "e": None, "n": None}
"""dag.test keeps Params of earlier runs in this process: every area mode is set each time."""

GUIDE_L1C = pk.S2Relocation(
    "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429",
    epsg=32723,
    upper_left=(399960, 8700040),
    utm_zone="23S",
    absolute_orbit=23728,
)
"""The guide's scene (tile 23LLF, 2020-01-09): the real N0206 T31TDH metadata moved there."""
GUIDE_L2A = pk.S2Relocation(
    "S2A_MSIL2A_20200109T132231_N0213_R038_T23LLF_20200109T160012",
    epsg=32723,
    upper_left=(399960, 8700040),
    utm_zone="23S",
    absolute_orbit=23728,
)
"""Its Level-2A (a pre-04.00 baseline, as CDSE had for 2020): the real N0214 T22HBD moved."""
GUIDE_CENTER = (-45.85, -12.67)
"""The middle of the guide's bbox (w -45.9, s -12.74, e -45.8, n -12.6)."""
N0509_TILE = pk.S2Relocation(
    "S2B_MSIL1C_20230601T094549_N0509_R079_T34UDD_20230601T115221",
    epsg=32634,
    upper_left=(399960, 5900040),
    utm_zone="34N",
)
"""Tile 34UDD's grid (its footprint's corners) for the 05.09 product, whose MTD_TL is absent."""


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def cdse() -> Iterator[CdseServer]:
    server = CdseServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def m2m() -> Iterator[M2MServer]:
    folder = realdata("usgs-m2m-docs").parent
    realdata("kapadia-usgs")
    server = M2MServer(folder)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def local_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of ``config/`` the test may point at loopback servers (as a deployer would)."""
    folder = tmp_path / "config"
    shutil.copytree(REPO / "config", folder)
    monkeypatch.setenv("COLLECTION_BUILDER_CONFIG_DIR", str(folder))
    return folder


def _set_catalog(config: Path, name: str, **settings: Any) -> None:
    path = config / "catalogs.yaml"
    catalogs = yaml.safe_load(path.read_text())
    catalogs["catalogs"][name].update(settings)
    path.write_text(yaml.safe_dump(catalogs))


def _only_providers(config: Path, collection: str, catalogs: set[str]) -> None:
    """Keep only ``catalogs`` as providers of ``collection`` (no fallback to the internet)."""
    path = config / "collections.yaml"
    text = path.read_text()
    collections = yaml.safe_load(text)
    entry = collections["collections"][collection]
    entry["providers"] = [p for p in entry.get("providers", []) if p["catalog"] in catalogs]
    path.write_text(yaml.safe_dump(collections))


# --------------------------------------------------------------------------------------------
# Serving packages


def _serve_s2(server: CdseServer, package: pk.S2Package, cloud_pct: float = 5.0) -> None:
    server.add_s2_product(
        package.name + ".SAFE",
        package.zip_bytes,
        footprint=package.metadata.footprint,
        cloud_pct=cloud_pct,
    )


def _serve_landsat(
    server: M2MServer,
    package: pk.LandsatPackage,
    dataset: str,
    folder: Path,
) -> None:
    """Serve the bundle as ``dataset``'s scene of its MTL (entity id: its LANDSAT_SCENE_ID)."""
    scene = scene_from_mtl(package.write_mtl(folder), dataset)
    scene.archive = package.tar_bytes
    server.add_scene(scene)


def _cdse_conf(server: CdseServer, package: pk.S2Package, tasks: list[Any]) -> dict[str, Any]:
    from shapely.geometry import shape

    w, s, e, n = shape(package.metadata.footprint).bounds
    day = package.metadata.start_time
    return {
        **AREA_NONE,
        "w": w, "s": s, "e": e, "n": n,
        "catalog": "CDSE",
        "catalog_args": {"url": server.odata_url, "token_url": server.token_url},
        "dataset": "S2MSI1C" if package.level == "L1C" else "S2MSI2A",
        "start": f"{day:%Y-%m-%d}T00:00:00", "end": f"{day:%Y-%m-%d}T23:59:59",
        "cloud": 100, "action": "start", "force": False,
        "tasks": tasks,
    }  # fmt: skip


def _usgs_conf(
    server: M2MServer, package: pk.LandsatPackage, dataset: str, tasks: list[Any]
) -> dict[str, Any]:
    from shapely.geometry import shape

    w, s, e, n = shape(package.footprint).bounds
    day = package.acquired
    return {
        **AREA_NONE,
        "w": w, "s": s, "e": e, "n": n,
        "catalog": "USGS",
        "catalog_args": {"url": server.url},
        "dataset": dataset,
        "start": f"{day:%Y-%m-%d}T00:00:00", "end": f"{day:%Y-%m-%d}T23:59:59",
        "cloud": 100, "action": "start", "force": False,
        "tasks": tasks,
    }  # fmt: skip


def _chain(*steps: tuple[str, str]) -> list[dict[str, Any]]:
    """``("download", "S2_L1C-1"), ("publish", "S2_L1C-1")`` -> a nested task tree."""
    node: dict[str, Any] | None = None
    for task_type, collection in reversed(steps):
        current: dict[str, Any] = {"type": task_type, "collection": collection, "args": {}}
        if node is not None:
            current["tasks"] = [node]
        node = current
    assert node is not None
    return [node]


# --------------------------------------------------------------------------------------------
# Running and reading back


def _run(dag: Any, conf: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    run = dag.test(run_conf=conf, **kwargs) if conf is not None else dag.test(**kwargs)
    if str(run.state) != "success":
        states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
        errors = [
            f"{a.key.task_type} {a.key.collection}: {a.error}"
            for a in ActivityStore().for_run(run.run_id)
            if a.error
        ]
        pytest.fail(f"run {run.state}: {states}\nactivity errors: {errors}")
    return run


Journey = tuple[dict[str, Any], Path, Any]
"""What a journey published and how: (item, item path, DAG run)."""


def _journey(dag: Any, conf: dict[str, Any], data_dir: Path) -> Journey:
    """Run ``conf`` through the DAG; return the item its last task published, and the run."""
    run = _run(dag, conf)
    node = conf["tasks"][0]
    while node.get("tasks"):
        node = node["tasks"][0]
    item, path = _published(data_dir, node["collection"])
    return item, path, run


def _s2_journey(
    dag: Any, server: CdseServer, package: pk.S2Package, data_dir: Path, *steps: tuple[str, str]
) -> Journey:
    """Serve the SAFE on the loopback CDSE and run ``steps`` (``_chain``) on its day and area."""
    _serve_s2(server, package)
    return _journey(dag, _cdse_conf(server, package, _chain(*steps)), data_dir)


def _landsat_journey(
    dag: Any,
    server: M2MServer,
    package: pk.LandsatPackage,
    dataset: str,
    folders: tuple[Path, Path],
    *steps: tuple[str, str],
) -> Journey:
    """Serve the bundle as ``dataset``'s and run ``steps``; ``folders``: (MTL copy, DATA_DIR)."""
    _serve_landsat(server, package, dataset, folders[0])
    return _journey(dag, _usgs_conf(server, package, dataset, _chain(*steps)), folders[1])


def _published(data_dir: Path, collection: str) -> tuple[dict[str, Any], Path]:
    items = sorted((data_dir / "stac" / collection / "items").glob("*.json"))
    assert len(items) == 1, f"{collection}: items {[p.name for p in items]}"
    return json.loads(items[0].read_text()), items[0]


def _asset_file(item_path: Path, href: str) -> Path:
    if href.startswith("file://"):
        href = href.removeprefix("file://")
    path = Path(href)
    return path if path.is_absolute() else (item_path.parent / path).resolve()


def _band_asset(item: dict[str, Any], band: str) -> dict[str, Any]:
    assets = item["assets"]
    assert band in assets, f"band {band} not published (assets: {sorted(assets)})"
    return dict(assets[band])


def _physical(
    item: dict[str, Any], item_path: Path, band: str
) -> tuple[np.ndarray, np.ndarray, Any]:
    """(physical values, valid mask, dataset profile) of a published band, via raster:bands."""
    asset = _band_asset(item, band)
    (raster_band,) = asset["raster:bands"]
    scale = raster_band.get("scale", 1.0)
    offset = raster_band.get("offset", 0.0)
    with rasterio.open(_asset_file(item_path, asset["href"])) as cog:
        dn = cog.read(1).astype(np.float64)
        nodata = cog.nodata
        profile = {"crs": cog.crs, "transform": cog.transform, "shape": cog.shape}
        # the COG says the same as the item
        assert cog.scales[0] == pytest.approx(scale) and cog.offsets[0] == pytest.approx(offset)
    valid = np.ones(dn.shape, bool) if nodata is None else dn != nodata
    return dn * scale + offset, valid, profile


def _check_values(
    item: dict[str, Any],
    item_path: Path,
    band: str,
    expected: np.ndarray,
    expected_valid: np.ndarray,
    *,
    crs: str,
    transform: Any,
) -> None:
    values, valid, profile = _physical(item, item_path, band)
    assert str(profile["crs"]) == crs or profile["crs"].to_epsg() == int(crs.split(":")[1])
    assert profile["transform"].almost_equals(transform), (band, profile["transform"], transform)
    assert values.shape == expected.shape, band
    assert (valid == expected_valid).all(), f"{band}: nodata pixels differ"
    error = np.abs(values[valid] - expected[valid]).max()
    assert error <= TOLERANCE, f"{band}: published value off by {error}"


def _check_item(
    item: dict[str, Any],
    *,
    footprint: dict[str, Any],
    datetimes: tuple[datetime, ...],
    platform: str,
    instruments: list[str],
    pixel_m: float = 30.0,
) -> None:
    from shapely.geometry import shape

    published = shape(item["geometry"])
    assert published.is_valid and not published.is_empty
    # a footprint traced from the pixels may reach a pixel past the MTD/MTL corner polygon
    margin_deg = max(1e-3, 1.5 * pixel_m / 111_000)
    assert published.within(shape(footprint).buffer(margin_deg)), (item["geometry"], footprint)
    when = datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))
    assert any(abs(when - d) < timedelta(seconds=1) for d in datetimes), (when, datetimes)
    assert item["properties"]["platform"] == platform
    assert item["properties"]["instruments"] == instruments


def _check_s2_item(item: dict[str, Any], package: pk.S2Package) -> None:
    """``_check_item`` against a Sentinel-2 package's MTD (footprint, times, unit)."""
    _check_item(
        item,
        footprint=package.metadata.footprint,
        datetimes=(package.metadata.start_time, package.grid.sensing_time),
        platform=_s2_platform(package),
        instruments=["msi"],
    )


def _check_landsat_item(
    item: dict[str, Any],
    package: pk.LandsatPackage,
    platform: str = "landsat-8",
    instruments: list[str] | None = None,
    *,
    pixel_m: float | None = None,
) -> None:
    """``_check_item`` against a Landsat package's MTL (footprint, acquisition time)."""
    _check_item(
        item,
        footprint=package.footprint,
        datetimes=(package.acquired,),
        platform=platform,
        instruments=instruments or ["oli", "tirs"],
        pixel_m=pixel_m if pixel_m is not None else abs(package.transform.e),
    )


def _s2_platform(package: pk.S2Package) -> str:
    return package.metadata.spacecraft.lower()


def _check_s2(
    item: dict[str, Any],
    item_path: Path,
    package: pk.S2Package,
    bands: list[str],
    expected: dict[str, np.ndarray] | None = None,
) -> None:
    for band in bands:
        resolution = pk.S2_RESOLUTION_M[band]
        reflectance = (expected or {}).get(band, package.reflectance(band))
        _check_values(
            item, item_path, band, reflectance, package.valid(band),
            crs=package.crs, transform=package.transforms[resolution],
        )  # fmt: skip
    _check_s2_item(item, package)


# --------------------------------------------------------------------------------------------
# The radcor guide's two examples, literally


def test_guide_example_cdse_l1c_correction_l2a_publish(
    radcor_dag: Any, cdse: CdseServer, cdse_connection: None, data_dir: Path
) -> None:
    l1c = pk.s2_package(pk.S2_L1C_N0206_T31TDH, relocation=GUIDE_L1C, center_lonlat=GUIDE_CENTER)
    l2a = pk.s2_package(pk.S2_L2A_N0214_T22HBD, relocation=GUIDE_L2A, center_lonlat=GUIDE_CENTER)
    _serve_s2(cdse, l1c)
    _serve_s2(cdse, l2a)
    conf = {  # README "The radcor conf", pointed at the loopback CDSE
        **AREA_NONE,
        "w": -45.9, "s": -12.74, "e": -45.8, "n": -12.6,
        "catalog": "CDSE", "dataset": "S2MSI1C",
        "catalog_args": {"url": cdse.odata_url, "token_url": cdse.token_url},
        "start": "2020-01-09T00:00:00", "end": "2020-01-10T23:59:59",
        "cloud": 100, "action": "start", "force": False,
        "tasks": [
            {"type": "download", "collection": "S2_L1C-1", "args": {},
             "tasks": [
                 {"type": "correction", "collection": "S2_L2A-1", "args": {},
                  "tasks": [{"type": "publish", "collection": "S2_L2A-1", "args": {}}]}]}],
    }  # fmt: skip

    _run(radcor_dag, conf)

    item, path = _published(data_dir, "S2_L2A-1")
    _check_s2(item, path, l2a, S2_L2A_BANDS)
    assert "SCL" in item["assets"]
    assert item["properties"]["datetime"].startswith("2020-01-09")


def test_guide_example_usgs_l1_publish_lc8_dn(
    radcor_dag: Any, m2m: M2MServer, usgs_connection: None, data_dir: Path, tmp_path: Path
) -> None:
    package = pk.landsat_l1tp_oli()
    _serve_landsat(m2m, package, "landsat_ot_c2_l1", tmp_path)
    conf = _usgs_conf(
        m2m, package, "landsat_ot_c2_l1",
        [{"type": "download", "collection": "LC8_DN-1", "args": {},
          "tasks": [{"type": "publish", "collection": "LC8_DN-1", "args": {}}]}],
    )  # fmt: skip

    _run(radcor_dag, conf)

    item, path = _published(data_dir, "LC8_DN-1")
    for band in range(1, 8):
        key = f"B{band}"
        _check_values(
            item, path, key, package.toa_reflectance(band), package.valid(key),
            crs=package.crs, transform=package.transform,
        )  # fmt: skip
    assert "QA_PIXEL" in item["assets"]
    _check_landsat_item(item, package)


def test_landsat8_l1_toa_post_publish_gives_toa_reflectance(
    radcor_dag: Any, m2m: M2MServer, usgs_connection: None, data_dir: Path, tmp_path: Path
) -> None:
    """LC8_TOA-1: the USGS bundle -> toa (MTL gains, sun elevation) -> qa-post -> publish."""
    package = pk.landsat_l1tp_oli()

    item, path, _ = _landsat_journey(
        radcor_dag, m2m, package, "landsat_ot_c2_l1", (tmp_path, data_dir),
        ("download", "LC8_DN-1"), ("correction", "LC8_TOA-1"),
        ("post", "LC8_TOA-1"), ("publish", "LC8_TOA-1"),
    )  # fmt: skip

    for band in range(1, 8):
        key = f"B{band}"
        _check_values(
            item, path, key, package.toa_reflectance(band), package.valid(key),
            crs=package.crs, transform=package.transform,
        )  # fmt: skip
    assert "QA_PIXEL" in item["assets"]
    _check_landsat_item(item, package)


@pytest.mark.parametrize(
    ("builder", "dataset", "collection", "platform", "instruments"),
    [
        ("landsat_l1_tm", "landsat_tm_c2_l1", "LT5_DN-1", "landsat-5", ["tm"]),
        ("landsat_l1_etm", "landsat_etm_c2_l1", "LE7_DN-1", "landsat-7", ["etm+"]),
    ],
)
def test_landsat_tm_etm_l1_download_publish_carries_their_toa_gains(
    builder: str,
    dataset: str,
    collection: str,
    platform: str,
    instruments: list[str],
    radcor_dag: Any,
    m2m: M2MServer,
    usgs_connection: None,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    """TM/ETM+ Level-1 DN under their own numbers (B4 is near infrared here, red on OLI)."""
    package = getattr(pk, builder)()

    item, path, _ = _landsat_journey(
        radcor_dag, m2m, package, dataset, (tmp_path, data_dir),
        ("download", collection), ("publish", collection),
    )  # fmt: skip

    for band in (1, 2, 3, 4, 5, 7):
        key = f"B{band}"
        _check_values(
            item, path, key, package.toa_reflectance(band), package.valid(key),
            crs=package.crs, transform=package.transform,
        )  # fmt: skip
    assert item["assets"]["B4"]["eo:bands"][0]["common_name"] == "nir08"
    assert "B6" not in item["assets"] and "QA_PIXEL" in item["assets"]
    _check_landsat_item(item, package, platform, instruments)


# --------------------------------------------------------------------------------------------
# Sentinel-2 L1C: publish, toa, nbar


S2_L2A_BANDS = [b for b in pk.S2_BANDS if b != "B10"]
"""An L2A has no cirrus band."""
L2A_N0400 = pk.S2Relocation(
    "S2A_MSIL2A_20220115T132231_N0400_R038_T23LLF_20220115T160012",
    epsg=32723,
    upper_left=(399960, 8700040),
    utm_zone="23S",
    boa_offset=-1000,
)
"""A 04.00 L2A of tile 23LLF: the real N0214 MTD moved there, with PSD 14.9's BOA offsets."""
S2_DELIVERED = {
    ("S2_L1C-1", "02.06"): dict(source=pk.S2_L1C_N0206_T31TDH),
    ("S2_L1C-1", "03.01"): dict(source=pk.S2_L1C_N0301_T46RER),
    ("S2_L1C-1", "05.09"): dict(
        source=pk.S2_L1C_N0509_T34UDD, tile_source=pk.S2_L1C_N0301_T46RER,
        tile_relocation=N0509_TILE,
    ),
    ("S2_L2A-1", "02.14"): dict(source=pk.S2_L2A_N0214_T22HBD),
    ("S2_L2A-1", "04.00"): dict(
        source=pk.S2_L2A_N0214_T22HBD, relocation=L2A_N0400, center_lonlat=GUIDE_CENTER
    ),
}  # fmt: skip
"""(collection, processing baseline) -> the package as the provider delivers it."""


@pytest.mark.parametrize(("collection", "baseline"), sorted(S2_DELIVERED))
def test_s2_download_publish_keeps_dn_with_the_baseline_offset(
    collection: str,
    baseline: str,
    radcor_dag: Any,
    cdse: CdseServer,
    cdse_connection: None,
    data_dir: Path,
) -> None:
    """L1C and L2A SAFEs published as delivered: DN, and the MTD's scale/offset per band."""
    package = pk.s2_package(**S2_DELIVERED[collection, baseline])  # type: ignore[arg-type]
    assert package.metadata.baseline == baseline

    item, path, _ = _s2_journey(
        radcor_dag, cdse, package, data_dir, ("download", collection), ("publish", collection)
    )

    bands = list(pk.S2_BANDS) if package.level == "L1C" else S2_L2A_BANDS
    _check_s2(item, path, package, bands)
    for band in bands:
        raster = item["assets"][band]["raster:bands"][0]
        assert raster["scale"] == pytest.approx(1e-4), band
        if baseline >= "04.00":  # RADIO/BOA_ADD_OFFSET / QUANTIFICATION_VALUE of the MTD
            assert raster["offset"] == pytest.approx(-0.1), band
        else:
            assert raster.get("offset", 0.0) == 0.0, band
    if package.level == "L2A":
        scl, valid, _ = _physical(item, path, "SCL")
        expected = package.dn["SCL"]
        assert (valid == (expected != 0)).all() and (scl[valid] == expected[valid]).all()


def _n0509() -> pk.S2Package:
    return pk.s2_package(**S2_DELIVERED["S2_L1C-1", "05.09"])  # type: ignore[arg-type]


def test_s2_l1c_toa_publish_applies_the_radiometric_offset(
    radcor_dag: Any, cdse: CdseServer, cdse_connection: None, data_dir: Path
) -> None:
    package = _n0509()

    item, path, _ = _s2_journey(
        radcor_dag, cdse, package, data_dir,
        ("download", "S2_L1C-1"), ("correction", "S2_TOA-1"), ("publish", "S2_TOA-1"),
    )  # fmt: skip

    _check_s2(item, path, package, list(pk.S2_BANDS))


S2_NBAR_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")


def _check_nbar(
    item: dict[str, Any],
    path: Path,
    references: dict[str, tuple[np.ndarray, np.ndarray, Any]],
    epsg: int,
) -> None:
    """NBAR = c * reflectance (then the HLS bandpass for S2): c near 1, nodata kept, same grid.

    ``references``: band -> (reflectance from the package, its valid mask, its transform).
    """
    for band, (reflectance, expected_valid, transform) in references.items():
        nbar, valid, profile = _physical(item, path, band)
        assert profile["transform"].almost_equals(transform), band
        assert profile["crs"].to_epsg() == epsg, band
        assert (valid == expected_valid).all(), f"{band}: nodata not kept"
        bright = valid & (reflectance > 0.05)  # the bandpass offset dominates dark pixels
        assert bright.any(), band
        ratio = nbar[bright] / reflectance[bright]
        assert 0.8 < ratio.min() <= ratio.max() < 1.25, (band, ratio.min(), ratio.max())


def _check_indices(item: dict[str, Any], path: Path, nir: str, red: str, blue: str) -> None:
    """The run's default indices only (NDVI, EVI), equal to their formulas on the published bands.

    Both are recomputed here from the band COGs through the item's ``raster:bands`` (spyndex's
    EVI: G 2.5, C1 6, C2 7.5, L 1) and compared with the stored int16 x scale.
    """
    indices = {key for key, asset in item["assets"].items() if "processing:expression" in asset}
    assert indices == {"NDVI", "EVI"}, indices  # SAVI, NBR... are default: false
    (n, n_ok, _), (r, r_ok, _), (b, b_ok, _) = (_physical(item, path, x) for x in (nir, red, blue))
    ndvi_denominator, evi_denominator = n + r, n + 6 * r - 7.5 * b + 1
    with np.errstate(all="ignore"):
        expected = {
            "NDVI": ((n - r) / ndvi_denominator, n_ok & r_ok, np.abs(ndvi_denominator) >= 0.05),
            "EVI": (2.5 * (n - r) / evi_denominator, n_ok & r_ok & b_ok, evi_denominator >= 0.5),
        }
    for key, (formula, inputs_ok, conditioned) in expected.items():
        stored, valid, _ = _physical(item, path, key)
        assert item["assets"][key]["raster:bands"][0]["scale"] == pytest.approx(1e-4)
        assert (valid == (inputs_ok & np.isfinite(formula))).all(), f"{key}: nodata differs"
        # where the denominator nears 0 a float32 rounding of the inputs moves the index more
        # than its int16 step: compare the pixels the formula is well conditioned on
        checked = valid & conditioned
        error = np.abs(stored[checked] - np.clip(formula[checked], -3.2767, 3.2767)).max()
        assert checked.sum() > valid.sum() / 2, key
        assert error <= TOLERANCE, f"{key}: published value off by {error}"


def _s2_references(package: pk.S2Package) -> dict[str, tuple[np.ndarray, np.ndarray, Any]]:
    return {
        band: (
            package.reflectance(band),
            package.valid(band),
            package.transforms[pk.S2_RESOLUTION_M[band]],
        )
        for band in S2_NBAR_BANDS
    }


def test_s2_l1c_toa_nbar_publish_harmonizes_the_package(
    radcor_dag: Any, cdse: CdseServer, cdse_connection: None, data_dir: Path
) -> None:
    package = _n0509()

    item, path, _ = _s2_journey(
        radcor_dag, cdse, package, data_dir,
        ("download", "S2_L1C-1"), ("correction", "S2_TOA-1"),
        ("harmonization", "S2_NBAR-1"), ("publish", "S2_NBAR-1"),
    )  # fmt: skip

    _check_nbar(item, path, _s2_references(package), package.grid.epsg)
    _check_indices(item, path, nir="B08", red="B04", blue="B02")
    _check_s2_item(item, package)


def test_s2_l2a_download_nbar_publish_harmonizes_the_provider_package(
    radcor_dag: Any, cdse: CdseServer, cdse_connection: None, data_dir: Path
) -> None:
    package = pk.s2_package(pk.S2_L2A_N0214_T22HBD)

    item, path, _ = _s2_journey(
        radcor_dag, cdse, package, data_dir,
        ("download", "S2_L2A-1"), ("harmonization", "S2_NBAR-1"), ("publish", "S2_NBAR-1"),
    )  # fmt: skip

    _check_nbar(item, path, _s2_references(package), package.grid.epsg)
    _check_s2_item(item, package)


# --------------------------------------------------------------------------------------------
# Landsat Level-2


def _check_landsat_l2(
    item: dict[str, Any], path: Path, package: pk.LandsatPackage, bands: list[int], thermal: str
) -> None:
    for band in bands:
        key = f"SR_B{band}"
        _check_values(
            item, path, f"B{band}", package.sr_reflectance(band), package.valid(key),
            crs=package.crs, transform=package.transform,
        )  # fmt: skip
    _check_values(
        item, path, thermal, package.temperature_k(thermal), package.valid(thermal),
        crs=package.crs, transform=package.transform,
    )  # fmt: skip
    assert item["assets"][thermal]["raster:bands"][0].get("unit") == "kelvin"
    assert "QA_PIXEL" in item["assets"]


def test_landsat8_l2sp_download_publish_sr_and_st(
    radcor_dag: Any, m2m: M2MServer, usgs_connection: None, data_dir: Path, tmp_path: Path
) -> None:
    package = pk.landsat_l2sp_oli()

    item, path, _ = _landsat_journey(
        radcor_dag, m2m, package, "landsat_ot_c2_l2", (tmp_path, data_dir),
        ("download", "LC8_SR-1"), ("publish", "LC8_SR-1"),
    )  # fmt: skip

    _check_landsat_l2(item, path, package, [1, 2, 3, 4, 5, 6, 7], "ST_B10")
    _check_indices(item, path, nir="B5", red="B4", blue="B2")  # OLI numbering
    _check_landsat_item(item, package)


def test_landsat8_l2sp_download_nbar_publish_harmonizes_the_bundle(
    radcor_dag: Any, m2m: M2MServer, usgs_connection: None, data_dir: Path, tmp_path: Path
) -> None:
    package = pk.landsat_l2sp_oli()  # its real ANG.txt gives the angles

    item, path, _ = _landsat_journey(
        radcor_dag, m2m, package, "landsat_ot_c2_l2", (tmp_path, data_dir),
        ("download", "LC8_SR-1"), ("harmonization", "LC8_NBAR-1"), ("publish", "LC8_NBAR-1"),
    )  # fmt: skip

    references = {
        f"B{b}": (package.sr_reflectance(b), package.valid(f"SR_B{b}"), package.transform)
        for b in range(2, 8)
    }
    _check_nbar(item, path, references, int(package.crs.split(":")[1]))
    _check_landsat_item(item, package)


@pytest.mark.parametrize(
    ("build", "dataset", "collection", "platform", "instrument"),
    [
        (pk.landsat_l2sp_etm, "landsat_etm_c2_l2", "LE7_SR-1", "landsat-7", "etm+"),
        (pk.landsat_l2sp_tm, "landsat_tm_c2_l2", "LT5_SR-1", "landsat-5", "tm"),
    ],
)
def test_landsat_tm_etm_l2sp_download_publish_with_their_own_band_numbers(
    build: Any,
    dataset: str,
    collection: str,
    platform: str,
    instrument: str,
    radcor_dag: Any,
    m2m: M2MServer,
    usgs_connection: None,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    package = build()

    item, path, _ = _landsat_journey(
        radcor_dag, m2m, package, dataset, (tmp_path, data_dir),
        ("download", collection), ("publish", collection),
    )  # fmt: skip

    _check_landsat_l2(item, path, package, [1, 2, 3, 4, 5, 7], "ST_B6")
    assert "B6" not in item["assets"]  # B6 is thermal on TM/ETM+: never a reflectance band
    assert item["assets"]["B4"]["eo:bands"][0]["common_name"] == "nir08"  # not OLI's red
    _check_landsat_item(item, package, platform, [instrument], pixel_m=30.0)


# --------------------------------------------------------------------------------------------
# The shipped pipelines, one interval each


def _pipeline_dag(name: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "pipelines.py"))
    assert bag.import_errors == {}
    return bag.dags[f"pipeline_{name}"]


def _pipeline_conf(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "dags" / "pipelines" / f"{name}.yaml").read_text())


def test_pipeline_landsat_16days_221_one_interval(
    m2m: M2MServer,
    usgs_connection: None,
    local_config: Path,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    pipeline = _pipeline_conf("landsat_16days_221")
    assert pipeline["conf"]["tiles"][0] == "221069"
    package = pk.landsat_l2sp_oli_at(
        path=221, row=69, acquired="2024-01-05", center_lonlat=(-45.4, -12.9), zone=23
    )
    _serve_landsat(m2m, package, "landsat_ot_c2_l2", tmp_path)
    _set_catalog(local_config, "usgs", url=m2m.url)
    _only_providers(local_config, "LC8_SR-1", {"usgs"})
    dag = _pipeline_dag("landsat_16days_221")

    # a manual run at 01-18 collects the interval before it: [01-02, 01-18), the first one
    run = _run(dag, logical_date=datetime.fromisoformat("2024-01-18T00:00:00+00:00"))

    assert run.data_interval_start <= package.acquired < run.data_interval_end
    item, path = _published(data_dir, "LC8_SR-1")
    assert item["id"].startswith(package.product_id[:25]) or package.product_id in item["id"]
    _check_landsat_l2(item, path, package, [1, 2, 3, 4, 5, 6, 7], "ST_B10")
    _check_landsat_item(item, package, pixel_m=30.0)


EARTH_SEARCH_ORIGIN = "https://earth-search.aws.element84.com"
S2_C1_ASSETS = {
    "coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05",
    "rededge2": "B06", "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09",
    "swir16": "B11", "swir22": "B12", "scl": "SCL",
}  # fmt: skip
"""Earth Search ``sentinel-2-c1-l2a`` asset keys of the bands (one GeoTIFF each)."""


_OPERATORS = {
    "eq": lambda a, b: a == b, "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
}  # fmt: skip


def _matches(value: Any, condition: Any) -> bool:
    """STAC API query extension: ``{"eq": x}``, ``{"lte": x}``... (all must hold)."""
    if not isinstance(condition, dict):
        return bool(value == condition)
    if value is None:
        return False
    return all(_OPERATORS[op](value, wanted) for op, wanted in condition.items())


class EarthSearchPackages:
    """Earth Search v1 on a loopback server: landing page (recorded), search, asset files.

    Items are the recorded ``sentinel-2-c1-l2a`` item of ``test_cli`` turned into the item of a
    built L2A package: id, properties (datetime, MGRS tile, product URI, baseline), geometry and
    the band/metadata assets (GeoTIFF windows of the package, its MTD_MSIL2A.xml and MTD_TL.xml).
    """

    def __init__(self) -> None:
        from tests.helpers.http_server import Cassette, LocalHttpServer, replay

        path = realdata("pystac-client/test_cli/TestCLISearch.test_filter[inprocess].yaml")
        self.cassette = Cassette(path)
        self.template = self._template()
        self.server = LocalHttpServer()
        self.url = self.server.url
        self.items: list[dict[str, Any]] = []
        self.searches: list[dict[str, Any]] = []
        self.server.route(
            "/v1", replay(self.cassette.find("GET", "/v1"), origin=EARTH_SEARCH_ORIGIN,
                          server_url=self.url),
        )  # fmt: skip
        self.server.route("/v1/search", self._search)

    def _template(self) -> dict[str, Any]:
        for interaction in self.cassette.find("POST", "/v1/search"):
            for feature in (interaction.response_json() or {}).get("features", []):
                if feature.get("collection") == "sentinel-2-c1-l2a":
                    return dict(feature)
        pytest.skip("no recorded sentinel-2-c1-l2a item")

    def add(self, package: pk.S2Package) -> dict[str, Any]:
        import hashlib

        from tests.helpers.http_server import serve_bytes

        parts = package.name.split("_")
        tile = parts[5][1:]
        item_id = f"{parts[0]}_T{tile}_{parts[2]}_L2A"
        item = json.loads(json.dumps(self.template).replace(EARTH_SEARCH_ORIGIN, self.url))
        props = item["properties"]
        props.update({
            "datetime": package.metadata.start_time.isoformat().replace("+00:00", "Z"),
            "platform": package.metadata.spacecraft.lower(),
            "mgrs:utm_zone": int(tile[:2]), "mgrs:latitude_band": tile[2],
            "mgrs:grid_square": tile[3:],
            "s2:product_uri": package.name + ".SAFE",
            "s2:processing_baseline": package.metadata.baseline,
            "proj:code": package.crs, "eo:cloud_cover": 3.0,
        })  # fmt: skip
        props.pop("proj:epsg", None)
        item["id"] = item_id
        item["geometry"] = package.metadata.footprint
        from shapely.geometry import shape

        item["bbox"] = list(shape(package.metadata.footprint).bounds)
        files: dict[str, tuple[str, bytes]] = {}
        for key, band in S2_C1_ASSETS.items():
            resolution = 20 if band == "SCL" else pk.S2_RESOLUTION_M[band]
            data = pk.geotiff_bytes(package.dn[band], package.crs, package.transforms[resolution])
            files[key] = (f"{band}.tif", data)
        granule = package.metadata.image_files[0].split("/")[1]
        files["product_metadata"] = ("product_metadata.xml",
                                     package.files["MTD_MSIL2A.xml"])  # fmt: skip
        files["granule_metadata"] = ("granule_metadata.xml",
                                     package.files[f"GRANULE/{granule}/MTD_TL.xml"])  # fmt: skip
        assets: dict[str, Any] = {}
        for key, (name, data) in files.items():
            recorded = dict(item["assets"].get(key) or {"roles": ["metadata"]})
            href = self.server.route(f"/files/{item_id}/{name}", serve_bytes(data))
            recorded.update({
                "href": href, "file:size": len(data),
                "file:checksum": "1220" + hashlib.sha256(data).hexdigest(),
            })  # fmt: skip
            recorded.pop("alternate", None)
            assets[key] = recorded
        item["assets"] = assets
        item["links"] = [
            link for link in item.get("links", []) if link.get("rel") in ("root", "collection")
        ]
        self.items.append(item)
        return item

    def _search(self, request: Any) -> Any:
        from urllib.parse import parse_qs

        from tests.helpers.http_server import Reply

        if request.method == "POST":
            body = request.json() or {}
        else:
            body = {k: v[0] for k, v in parse_qs(request.query).items()}
            body["collections"] = body.get("collections", "").split(",")
            if "query" in body:
                body["query"] = json.loads(body["query"])
        self.searches.append(body)
        start, _, end = str(body.get("datetime", "../..")).partition("/")
        found = []
        for item in self.items:
            props = item["properties"]
            if item["collection"] not in (body.get("collections") or []):
                continue
            when = datetime.fromisoformat(props["datetime"].replace("Z", "+00:00"))
            if start not in ("", "..") and when < datetime.fromisoformat(
                start.replace("Z", "+00:00")
            ):
                continue
            if end not in ("", "..") and when > datetime.fromisoformat(end.replace("Z", "+00:00")):
                continue
            query = body.get("query") or {}
            if not all(_matches(props.get(k), v) for k, v in query.items()):
                continue
            found.append(item)
        page = {"type": "FeatureCollection", "features": found, "numberReturned": len(found),
                "links": [{"rel": "root", "href": self.url + "/v1"}]}  # fmt: skip
        return Reply(200, json.dumps(page).encode(), {"Content-Type": "application/geo+json"})

    def close(self) -> None:
        self.server.close()


def test_pipeline_sentinel2_daily_23l_one_interval(local_config: Path, data_dir: Path) -> None:
    pipeline = _pipeline_conf("sentinel2_daily_23l")
    assert "23LLF" in pipeline["conf"]["tiles"]
    # A Collection-1 (05.xx) L2A of 23LLF on 2024-01-05, as Earth Search's c1-l2a holds them:
    # the real N0214 metadata moved there, with the BOA offsets PSD 14.9 adds from 04.00.
    package = pk.s2_package(
        pk.S2_L2A_N0214_T22HBD,
        relocation=pk.S2Relocation(
            "S2A_MSIL2A_20240105T132231_N0510_R038_T23LLF_20240105T170527",
            epsg=32723,
            upper_left=(399960, 8700040),
            utm_zone="23S",
            boa_offset=-1000,
        ),  # fmt: skip
    )
    earth_search = EarthSearchPackages()
    try:
        earth_search.add(package)
        _set_catalog(local_config, "earthsearch", url=earth_search.url + "/v1")
        _only_providers(local_config, "S2_L2A-1", {"earthsearch"})
        dag = _pipeline_dag("sentinel2_daily_23l")

        # a manual run at 01-06 00:00 collects the day before it: [01-05, 01-06)
        run = _run(dag, logical_date=datetime.fromisoformat("2024-01-06T00:00:00+00:00"))
    finally:
        earth_search.close()

    assert run.data_interval_start <= package.metadata.start_time < run.data_interval_end
    item, path = _published(data_dir, "S2_L2A-1")
    _check_s2(item, path, package, S2_L2A_BANDS)
    b04 = item["assets"]["B04"]["raster:bands"][0]
    assert b04["offset"] == pytest.approx(-0.1)


def test_landsat8_l1_lasrc_fmask_publish_gives_the_program_s_reflectance(
    radcor_dag: Any,
    m2m: M2MServer,
    usgs_connection: None,
    data_dir: Path,
    tmp_path: Path,
    local_config: Path,
) -> None:
    """LC8_SR_LASRC-1: the USGS bundle -> the deployment's LaSRC + Fmask -> fmask -> publish.

    The program is ``tests/fixtures/correction/fake_lasrc.py`` on LaSRC's command line (set in
    the collection's options, as a deployer does): 0.9 x the MTL's TOA reflectance x 10000 and
    Fmask class 4 where QA_PIXEL says cloud.
    """
    path = local_config / "collections.yaml"
    collections = yaml.safe_load(path.read_text())
    options = collections["collections"]["LC8_SR_LASRC-1"]["processors"]["correction"]["options"]
    options["command"] = [
        sys.executable, str(REPO / "tests/fixtures/correction/fake_lasrc.py"),
        "--input", "{input}", "--output", "{output}", "--scene", "{scene_id}",
    ]  # fmt: skip
    path.write_text(yaml.safe_dump(collections))
    package = pk.landsat_l1tp_oli()

    item, item_path, _ = _landsat_journey(
        radcor_dag, m2m, package, "landsat_ot_c2_l1", (tmp_path, data_dir),
        ("download", "LC8_DN-1"), ("correction", "LC8_SR_LASRC-1"),
        ("post", "LC8_SR_LASRC-1"), ("publish", "LC8_SR_LASRC-1"),
    )  # fmt: skip

    for band in range(1, 8):
        key = f"B{band}"
        _check_values(
            item, item_path, key, 0.9 * package.toa_reflectance(band), package.valid(key),
            crs=package.crs, transform=package.transform,
        )  # fmt: skip
    assert "FMASK" in item["assets"]
    _check_landsat_item(item, package)


def test_s2_l1c_sen2cor_publish_gives_the_program_s_reflectance_with_its_boa_offset(
    radcor_dag: Any, cdse: CdseServer, cdse_connection: None, data_dir: Path, local_config: Path
) -> None:
    """S2_SR_SEN2COR-1 on a baseline 05.09 L1C: the deployment's Sen2Cor -> qa-post -> publish.

    The program is ``tests/fixtures/correction/fake_sen2cor.py`` on L2A_Process's command line:
    an L2A SAFE with BOA_ADD_OFFSET -1000 (the L1C has RADIO_ADD_OFFSETs). A reader applying
    the item's raster:bands to the COG gets (DN - 1000) / 10000 of the program's own files
    (sen2cor's step applies the product's offset, so the item needs none).
    """
    path = local_config / "collections.yaml"
    collections = yaml.safe_load(path.read_text())
    options = collections["collections"]["S2_SR_SEN2COR-1"]["processors"]["correction"]["options"]
    options["command"] = [
        sys.executable, str(REPO / "tests/fixtures/correction/fake_sen2cor.py"),
        "--output_dir", "{output}", "{input}",
    ]  # fmt: skip
    path.write_text(yaml.safe_dump(collections))
    package = pk.s2_package(**S2_DELIVERED["S2_L1C-1", "05.09"])  # type: ignore[arg-type]

    item, item_path, _ = _s2_journey(
        radcor_dag, cdse, package, data_dir,
        ("download", "S2_L1C-1"), ("correction", "S2_SR_SEN2COR-1"),
        ("post", "S2_SR_SEN2COR-1"), ("publish", "S2_SR_SEN2COR-1"),
    )  # fmt: skip

    for band in ("B02", "B04", "B8A", "B12"):
        (written,) = data_dir.glob(
            f"**/*_MSIL2A_*_N9999_*.SAFE/GRANULE/*/IMG_DATA/R60m/*_{band}_60m.tif"
        )
        with rasterio.open(written) as program:
            dn = program.read(1).astype(np.float64)
            grid = (program.crs, program.transform)
        values, valid, profile = _physical(item, item_path, band)
        assert (profile["crs"], profile["transform"]) == grid, band
        assert (valid == (dn != 0)).all(), f"{band}: nodata pixels differ"
        expected = (dn - 1000) / 10000
        assert np.abs(values[valid] - expected[valid]).max() <= TOLERANCE, band
