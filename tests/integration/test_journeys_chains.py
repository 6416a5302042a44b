"""Journeys the collections' input chains offer, beyond ``test_journeys.py``: same packaging.

Each runs the ``radcor`` DAG on provider packages built by ``tests/helpers/packages.py`` and
served by the loopback CDSE / USGS M2M, then checks the published numbers against values
computed here from the package's DN, the real MTD/MTL and (NBAR) the angles its ANG.txt gives:

- ``L57_NBAR-1`` from TM and ETM+ Level-2 bundles, or a Level-1 one through provider-l2
  (harmonization reads the Level-2 bundle's ANG.txt);
- the ``post`` steps (``qa-post``) of ``S2_L2A-1``, ``S2_TOA-1`` and of the Landsat SR
  collections made by ``provider-l2`` from a Level-1 download;
- a forced re-download of a USGS bundle: unpacked again, published from the new archive.

``S2_SR_SEN2COR-1`` and ``LC8_SR_LASRC-1`` need the external programs (docs/processors.md).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from include.radcor.activities import Activity, ActivityStore
from tests.helpers import packages as pk
from tests.helpers.cdse_server import CdseServer
from tests.helpers.m2m_server import M2MServer
from tests.integration import test_journeys as journeys
from tests.integration.test_journeys import (
    GUIDE_CENTER,
    GUIDE_L1C,
    GUIDE_L2A,
    S2_L2A_BANDS,
    TOLERANCE,
    Journey,
    _chain,
    _check_landsat_item,
    _check_s2,
    _check_values,
    _journey,
    _landsat_journey,
    _physical,
    _s2_journey,
    _serve_landsat,
    _serve_s2,
    _usgs_conf,
)

cdse = journeys.cdse
m2m = journeys.m2m


def _activities(run: Any, task_type: str) -> list[Activity]:
    return [a for a in ActivityStore().for_run(run.run_id) if a.key.task_type == task_type]


# --------------------------------------------------------------------------------------------
# NBAR, computed here from the literature (not from include/)

ROY_2016 = {  # Roy et al. 2016 (RSE 176:255-271) Table 1: f_iso, f_geo, f_vol
    "blue": (0.0774, 0.0079, 0.0372),
    "green": (0.1306, 0.0178, 0.0580),
    "red": (0.1690, 0.0227, 0.0574),
    "nir": (0.3093, 0.0330, 0.1535),
    "swir1": (0.3430, 0.0453, 0.1154),
    "swir2": (0.2658, 0.0387, 0.0639),
}
TM_ETM_ROLES = {1: "blue", 2: "green", 3: "red", 4: "nir", 5: "swir1", 7: "swir2"}
"""TM/ETM+ band numbers (B4 is near infrared here, red on OLI)."""
HLS_TARGET_SUN_ZENITH = (31.0076, -0.1272, 0.01187, 2.40e-5, -9.48e-7, -1.95e-9, 6.15e-11)
"""HLS v2.0 ATBD: target sun zenith as a polynomial of latitude, lowest power first."""


def _brdf(weights: tuple[float, float, float], sun: Any, view: Any, relative: Any) -> Any:
    """RossThick-LiSparseReciprocal (Lucht et al. 2000; MODIS b/r = 1, h/b = 2), degrees in."""
    f_iso, f_geo, f_vol = weights
    ts, tv, phi = np.radians(sun), np.radians(view), np.radians(relative)
    cos_phase = np.cos(ts) * np.cos(tv) + np.sin(ts) * np.sin(tv) * np.cos(phi)
    phase = np.arccos(np.clip(cos_phase, -1, 1))
    k_vol = ((np.pi / 2 - phase) * cos_phase + np.sin(phase)) / (np.cos(ts) + np.cos(tv))
    k_vol = k_vol - np.pi / 4
    sec_sum = 1 / np.cos(ts) + 1 / np.cos(tv)
    distance2 = np.tan(ts) ** 2 + np.tan(tv) ** 2 - 2 * np.tan(ts) * np.tan(tv) * np.cos(phi)
    cross = (np.tan(ts) * np.tan(tv) * np.sin(phi)) ** 2
    cos_t = np.clip(2.0 * np.sqrt(np.maximum(distance2, 0) + cross) / sec_sum, -1, 1)
    t = np.arccos(cos_t)
    overlap = (t - np.sin(t) * cos_t) * sec_sum / np.pi
    k_geo = overlap - sec_sum + 0.5 * (1 + cos_phase) / (np.cos(ts) * np.cos(tv))
    return f_iso + f_vol * k_vol + f_geo * k_geo


def _centre_latitude(package: pk.LandsatPackage, key: str) -> float:
    from pyproj import Transformer

    rows, cols = package.dn[key].shape
    x, y = package.transform * (cols / 2, rows / 2)
    _, latitude = Transformer.from_crs(package.crs, 4326, always_xy=True).transform(x, y)
    return float(latitude)


def _landsat_nbar(package: pk.LandsatPackage, band: int) -> np.ndarray:
    """c * SR: c = BRDF(target sun, nadir) / BRDF(the ANG.txt's sun and view at each pixel)."""
    angles = package.angles
    assert angles is not None, "the bundle has no built ANG.txt"
    key = f"SR_B{band}"
    latitude = _centre_latitude(package, key)
    target = sum(c * latitude**power for power, c in enumerate(HLS_TARGET_SUN_ZENITH))
    view_zenith, view_azimuth = angles.view(package.pixel_centres(key)[0])
    weights = ROY_2016[TM_ETM_ROLES[band]]
    observed = _brdf(weights, angles.sun_zenith, view_zenith, view_azimuth - angles.sun_azimuth)
    c = _brdf(weights, target, 0.0, 0.0) / observed
    return np.asarray(c * package.sr_reflectance(band))


def _landsat_l1_of(level2: pk.LandsatPackage) -> pk.LandsatPackage:
    """The Level-1 bundle a Level-2 bundle was made from (its MTL's Level-1 record)."""
    xml = pk.level1_mtl_from_level2(level2.files[f"{level2.product_id}_MTL.xml"].decode())
    return pk.landsat_package(mtl_xml=xml, derivation=f"Level-1 of {level2.product_id}")


def _from_level1(
    dag: Any,
    m2m: M2MServer,
    level2: pk.LandsatPackage,
    datasets: tuple[str, str],
    folders: tuple[Path, Path],
    *steps: tuple[str, str],
) -> Journey:
    """Serve ``level2`` for provider-l2 to find, and run ``steps`` on its Level-1 bundle."""
    _serve_landsat(m2m, level2, datasets[1], folders[0])  # same entity id as the Level-1
    return _landsat_journey(dag, m2m, _landsat_l1_of(level2), datasets[0], folders, *steps)


L57_BUNDLES = {
    "tm": (pk.landsat_l2sp_tm, ("landsat_tm_c2_l1", "landsat_tm_c2_l2"),
           ("LT5_DN-1", "LT5_SR-1"), "landsat-5"),
    "etm+": (pk.landsat_l2sp_etm, ("landsat_etm_c2_l1", "landsat_etm_c2_l2"),
             ("LE7_DN-1", "LE7_SR-1"), "landsat-7"),
}  # fmt: skip
"""Instrument -> (L2SP builder, (Level-1, Level-2) datasets, (DN, SR) collections, platform)."""


def _run_l57_nbar(
    instrument: str, downloaded: str, dag: Any, m2m: M2MServer, folders: tuple[Path, Path]
) -> tuple[pk.LandsatPackage, dict[str, Any], Path, Any]:
    """Make L57_NBAR-1 from a Level-2 download, or a Level-1 one through provider-l2.

    Returns (the L2SP bundle, item, item path, run).
    """
    build, datasets, (dn, sr), _ = L57_BUNDLES[instrument]
    level2 = build(shift_px=(0, 2000))  # 60 km east of nadir: views about 5 degrees off
    nbar = (("harmonization", "L57_NBAR-1"), ("publish", "L57_NBAR-1"))
    if downloaded == "level-2":
        journey = _landsat_journey(dag, m2m, level2, datasets[1], folders, ("download", sr), *nbar)
    else:
        journey = _from_level1(
            dag, m2m, level2, datasets, folders, ("download", dn), ("correction", sr), *nbar
        )
    return (level2, *journey)


@pytest.mark.parametrize(
    ("instrument", "downloaded"), [("tm", "level-2"), ("etm+", "level-2"), ("tm", "level-1")]
)
def test_landsat_tm_etm_nbar_publish_l57_nbar(
    instrument: str,
    downloaded: str,
    radcor_dag: Any,
    m2m: M2MServer,
    usgs_connection: None,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    """L57_NBAR-1 with the angles of the L2SP bundle's ANG.txt (per scan direction)."""
    package, item, path, run = _run_l57_nbar(
        instrument, downloaded, radcor_dag, m2m, (tmp_path, data_dir)
    )

    for band in TM_ETM_ROLES:
        key = f"SR_B{band}"
        _check_values(
            item, path, f"B{band}", _landsat_nbar(package, band), package.valid(key),
            crs=package.crs, transform=package.transform,
        )  # fmt: skip
    assert item["assets"]["B4"]["eo:bands"][0]["common_name"] == "nir08"
    assert "QA_PIXEL" in item["assets"] and "B6" not in item["assets"]
    platform = L57_BUNDLES[instrument][3]
    _check_landsat_item(item, package, platform, item["properties"]["instruments"], pixel_m=30.0)
    assert item["properties"]["instruments"] == [instrument]
    (harmonized,) = _activities(run, "harmonization")
    metadata = harmonized.outputs["metadata"]
    assert metadata["angles_source"].startswith(f"{package.product_id}_ANG.txt")
    assert "per scan direction" in metadata["angles_source"]


# --------------------------------------------------------------------------------------------
# Post steps (qa-post): the mask on the finest reflectance grid, nodata-consistent, cloud cover


def _upsampled(array: np.ndarray, factor: int) -> np.ndarray:
    return np.repeat(np.repeat(array, factor, axis=-2), factor, axis=-1)


def _s2_all_valid_10m(package: pk.S2Package, bands: list[str]) -> np.ndarray:
    """Where every reflectance band has data, on the 10 m grid."""
    valid = np.ones(package.dn["B02"].shape, dtype=bool)
    for band in bands:
        valid &= _upsampled(package.valid(band), pk.S2_RESOLUTION_M[band] // 10)
    return valid


def _check_mask(
    item: dict[str, Any], path: Path, key: str, expected: np.ndarray, valid: np.ndarray
) -> None:
    """The published mask: ``expected`` where ``valid``, nodata elsewhere; the cloud cover."""
    published, published_valid, _ = _physical(item, path, key)
    assert published.shape == expected.shape, key
    assert (published_valid == valid).all(), f"{key}: nodata is not where a band has none"
    assert (published[valid] == expected[valid]).all(), f"{key}: values differ"


def _cloud_pct(cloud: np.ndarray, valid: np.ndarray) -> float:
    return 100.0 * float((cloud & valid).sum()) / float(valid.sum())


@pytest.mark.parametrize("downloaded", ["S2_L1C-1", "S2_L2A-1"])
def test_s2_l2a_post_publish_puts_scl_on_the_10m_grid(
    downloaded: str, radcor_dag: Any, cdse: CdseServer, cdse_connection: None, data_dir: Path
) -> None:
    """qa-post on provider-l2's output (from an L1C download) or on the L2A SAFE as downloaded."""
    l2a = pk.s2_package(pk.S2_L2A_N0214_T22HBD, relocation=GUIDE_L2A, center_lonlat=GUIDE_CENTER)
    steps = [("post", "S2_L2A-1"), ("publish", "S2_L2A-1")]
    if downloaded == "S2_L1C-1":
        _serve_s2(cdse, l2a)  # provider-l2 finds it
        package = pk.s2_package(
            pk.S2_L1C_N0206_T31TDH, relocation=GUIDE_L1C, center_lonlat=GUIDE_CENTER
        )
        steps.insert(0, ("correction", "S2_L2A-1"))
    else:
        package = l2a

    item, path, _ = _s2_journey(
        radcor_dag, cdse, package, data_dir, ("download", downloaded), *steps
    )

    _check_s2(item, path, l2a, S2_L2A_BANDS)
    valid = _s2_all_valid_10m(l2a, S2_L2A_BANDS) & (_upsampled(l2a.dn["SCL"], 2) != 0)
    scl = _upsampled(l2a.dn["SCL"], 2)
    _check_mask(item, path, "SCL", scl, valid)
    cloud = np.isin(scl, (8, 9, 10))  # ESA's cloud classes: medium, high probability, cirrus
    assert item["properties"]["eo:cloud_cover"] == pytest.approx(_cloud_pct(cloud, valid), abs=0.01)


def test_s2_l1c_toa_post_publish_carries_the_msk_classi_cloud_mask(
    radcor_dag: Any, cdse: CdseServer, cdse_connection: None, data_dir: Path
) -> None:
    package = journeys._n0509()

    item, path, _ = _s2_journey(
        radcor_dag, cdse, package, data_dir,
        ("download", "S2_L1C-1"), ("correction", "S2_TOA-1"),
        ("post", "S2_TOA-1"), ("publish", "S2_TOA-1"),
    )  # fmt: skip

    _check_s2(item, path, package, list(pk.S2_BANDS))
    opaque, cirrus, _snow = _upsampled(package.dn["MSK_CLASSI"], 6).astype(bool)
    valid = _s2_all_valid_10m(package, list(pk.S2_BANDS))
    cloud = opaque | cirrus  # PSD 14.9 MSK_CLASSI: opaque clouds, cirrus (snow is no cloud)
    _check_mask(item, path, "CLOUD_MASK", cloud.astype(np.float64), valid)
    assert item["properties"]["eo:cloud_cover"] == pytest.approx(_cloud_pct(cloud, valid), abs=0.01)


# (L2SP bundle builder, (Level-1, Level-2) USGS datasets, (DN, SR) collections, thermal band,
# platform, instruments)
OLI_SR = (pk.landsat_l2sp_oli, ("landsat_ot_c2_l1", "landsat_ot_c2_l2"), ("LC8_DN-1", "LC8_SR-1"),
          "ST_B10", "landsat-8", ["oli", "tirs"])  # fmt: skip
TM_SR = (pk.landsat_l2sp_tm, ("landsat_tm_c2_l1", "landsat_tm_c2_l2"), ("LT5_DN-1", "LT5_SR-1"),
         "ST_B6", "landsat-5", ["tm"])  # fmt: skip
ETM_SR = (pk.landsat_l2sp_etm, ("landsat_etm_c2_l1", "landsat_etm_c2_l2"),
          ("LE7_DN-1", "LE7_SR-1"), "ST_B6", "landsat-7", ["etm+"])  # fmt: skip


@pytest.mark.parametrize(
    ("downloaded", "build", "datasets", "collections", "thermal", "platform", "instruments"),
    [("level-1", *OLI_SR), ("level-1", *TM_SR), ("level-1", *ETM_SR), ("level-2", *OLI_SR)],
    ids=["oli-level-1", "tm-level-1", "etm+-level-1", "oli-level-2"],
)
def test_landsat_sr_post_publish_gives_the_provider_sr(
    downloaded: str,
    build: Any,
    datasets: tuple[str, str],
    collections: tuple[str, str],
    thermal: str,
    platform: str,
    instruments: list[str],
    radcor_dag: Any,
    m2m: M2MServer,
    usgs_connection: None,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    """qa-post on provider-l2's output (from a Level-1 download) or on the Level-2 bundle."""
    level2 = build()
    dn, sr = collections
    if downloaded == "level-1":
        item, path, _ = _from_level1(
            radcor_dag, m2m, level2, datasets, (tmp_path, data_dir),
            ("download", dn), ("correction", sr), ("post", sr), ("publish", sr),
        )  # fmt: skip
    else:
        item, path, _ = _landsat_journey(
            radcor_dag, m2m, level2, datasets[1], (tmp_path, data_dir),
            ("download", sr), ("post", sr), ("publish", sr),
        )  # fmt: skip

    bands = [1, 2, 3, 4, 5, 6, 7] if thermal == "ST_B10" else [1, 2, 3, 4, 5, 7]
    for band in bands:
        _check_values(
            item, path, f"B{band}", level2.sr_reflectance(band), level2.valid(f"SR_B{band}"),
            crs=level2.crs, transform=level2.transform,
        )  # fmt: skip
    _check_values(
        item, path, thermal, level2.temperature_k(thermal), level2.valid(thermal),
        crs=level2.crs, transform=level2.transform,
    )  # fmt: skip
    valid = (level2.dn["QA_PIXEL"] & 1) == 0  # C2 QA_PIXEL bit 0: fill
    for key in (*(f"SR_B{band}" for band in bands), thermal):  # every band with a wavelength
        valid &= level2.valid(key)
    _check_mask(item, path, "QA_PIXEL", level2.dn["QA_PIXEL"].astype(np.float64), valid)
    cloud = (level2.dn["QA_PIXEL"] & 0b1110) != 0  # C2 QA_PIXEL: dilated cloud, cirrus, cloud
    assert item["properties"]["eo:cloud_cover"] == pytest.approx(_cloud_pct(cloud, valid), abs=0.01)
    _check_landsat_item(item, level2, platform, instruments, pixel_m=30.0)


# --------------------------------------------------------------------------------------------
# force: a USGS bundle downloaded again is unpacked again and published from


def _reprocessed(package: pk.LandsatPackage, band: int, add: int) -> pk.LandsatPackage:
    """The same bundle (same names and size) with band ``band``'s valid DN raised by ``add``."""
    key = f"SR_B{band}"
    member = f"{package.product_id}_{key}.TIF"
    raised = np.where(package.valid(key), package.dn[key] + add, 0).astype(np.uint16)
    again = pk.landsat_package(
        mtl_xml=package.files[f"{package.product_id}_MTL.xml"].decode(),
        extra_files={member: pk.geotiff_bytes(raised, package.crs, package.transform, nodata=0)},
        derivation=f"{package.derivation}; {key} DN + {add}",
    )
    return replace(again, dn={**again.dn, key: raised})


def test_usgs_bundle_forced_download_is_unpacked_again_and_published(
    radcor_dag: Any, m2m: M2MServer, usgs_connection: None, data_dir: Path, tmp_path: Path
) -> None:
    first = pk.landsat_l2sp_tm()
    steps = (("download", "LT5_SR-1"), ("publish", "LT5_SR-1"))
    item, path, _ = _landsat_journey(
        radcor_dag, m2m, first, "landsat_tm_c2_l2", (tmp_path, data_dir), *steps
    )
    _check_values(
        item, path, "B3", first.sr_reflectance(3), first.valid("SR_B3"),
        crs=first.crs, transform=first.transform,
    )  # fmt: skip
    (unpacked,) = (data_dir / "archive").rglob(f"{first.product_id}.tar.d")
    member = f"{first.product_id}_SR_B3.TIF"
    assert (unpacked / member).read_bytes() == first.files[member]

    second = _reprocessed(first, 3, add=400)  # USGS reprocessed it: same name, other DN
    m2m.scenes[:] = [s for s in m2m.scenes if s.display_id != first.product_id]
    _serve_landsat(m2m, second, "landsat_tm_c2_l2", tmp_path)
    conf = _usgs_conf(m2m, second, "landsat_tm_c2_l2", _chain(*steps))
    item, path, run = _journey(radcor_dag, {**conf, "force": True}, data_dir)

    (download,) = _activities(run, "download")
    assert str(download.status) == "success"
    assert (download.message or "").startswith("force: downloaded again")
    assert (unpacked / member).read_bytes() == second.files[member]  # unpacked again
    _check_values(
        item, path, "B3", second.sr_reflectance(3), second.valid("SR_B3"),
        crs=second.crs, transform=second.transform,
    )  # fmt: skip
    assert 400 * float(first.mtl["REFLECTANCE_MULT_BAND_3"]) > 10 * TOLERANCE  # tells them apart
