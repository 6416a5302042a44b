"""Landsat Collection 2 products of the sensors and levels realdata lacks, laid out as delivered.

Every product starts from a REAL USGS MTL in ``../shared/realdata`` and changes only what the
Collection 2 Level-1 / Level-2 DFCBs (LSDS-1822, LSDS-1618/1619, LSDS-1337/1328) say differs
for that sensor or level; :func:`tests.helpers.packages.landsat_package` then writes every raster
the MTL's ``PRODUCT_CONTENTS`` names. ``derivation`` says what was changed.

Layouts (:func:`write_layout`): the USGS Product Bundle (a flat, uncompressed ``.tar``), the
same gzipped (``.tar.gz``/``.tgz``), files under a sub-folder, a plain folder, lower-case file
names, USGS "secondary" per-band downloads (one file per band, keyed by its USGS name) and
per-asset STAC downloads keyed as Planetary Computer / Earth Search ``landsat-c2-l2`` name them
(the collectors write ``<asset key><href suffix>``: ``red.TIF``, ``mtl.txt``, ``ang.txt``).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from pathlib import Path

from tests.helpers.packages import (
    LANDSAT_L1TP_OLI,
    LANDSAT_L2SP_OLI,
    LANDSAT_L2SP_OLI_ID,
    LANDSAT_L2SP_TM_MTL,
    LandsatPackage,
    _xml_from_odl,
    derived_mtl_xml,
    landsat_l1_etm,
    landsat_package,
)
from tests.helpers.realdata import realdata

L1TP_OLI_ID = "LC08_L1TP_090084_20160121_20200907_02_T1"
L2SR_OLI = "stactools-landsat/data-files/oli-tirs/LC08_L2SR_084024_20160111_20201016_02_T1"
L1_C1_OLI = "eo-datasets/LC08_L1TP_090084_20160121_20170405_01_T1"

_TIRS_KEYS = [
    f"{prefix}_BAND_{band}"
    for band in (10, 11)
    for prefix in (
        "FILE_NAME", "RADIANCE_MULT", "RADIANCE_ADD", "K1_CONSTANT", "K2_CONSTANT",
        "RADIANCE_MAXIMUM", "RADIANCE_MINIMUM", "QUANTIZE_CAL_MAX", "QUANTIZE_CAL_MIN",
    )
]  # fmt: skip
_OLI_KEYS = [
    f"{prefix}_BAND_{band}"
    for band in range(1, 10)
    for prefix in (
        "FILE_NAME", "RADIANCE_MULT", "RADIANCE_ADD", "REFLECTANCE_MULT", "REFLECTANCE_ADD",
        "RADIANCE_MAXIMUM", "RADIANCE_MINIMUM", "REFLECTANCE_MAXIMUM", "REFLECTANCE_MINIMUM",
        "QUANTIZE_CAL_MAX", "QUANTIZE_CAL_MIN",
    )
]  # fmt: skip

PC_OLI_L2 = {
    "coastal": "SR_B1", "blue": "SR_B2", "green": "SR_B3", "red": "SR_B4", "nir08": "SR_B5",
    "swir16": "SR_B6", "swir22": "SR_B7", "lwir11": "ST_B10", "qa_pixel": "QA_PIXEL",
    "qa_radsat": "QA_RADSAT", "qa_aerosol": "SR_QA_AEROSOL", "qa": "ST_QA", "atran": "ST_ATRAN",
    "cdist": "ST_CDIST", "drad": "ST_DRAD", "urad": "ST_URAD", "trad": "ST_TRAD",
    "emis": "ST_EMIS", "emsd": "ST_EMSD",
}  # fmt: skip
"""Planetary Computer / Earth Search ``landsat-c2-l2`` asset key -> OLI file suffix."""
PC_TM_ETM_L2 = {
    "blue": "SR_B1", "green": "SR_B2", "red": "SR_B3", "nir08": "SR_B4", "swir16": "SR_B5",
    "swir22": "SR_B7", "lwir": "ST_B6", "qa_pixel": "QA_PIXEL", "qa_radsat": "QA_RADSAT",
    "atmos_opacity": "SR_ATMOS_OPACITY", "cloud_qa": "SR_CLOUD_QA", "qa": "ST_QA",
    "atran": "ST_ATRAN", "cdist": "ST_CDIST", "drad": "ST_DRAD", "urad": "ST_URAD",
    "trad": "ST_TRAD", "emis": "ST_EMIS", "emsd": "ST_EMSD",
}  # fmt: skip
"""The same for TM/ETM+ (``lwir`` is ST_B6; no aerosol QA, LEDAPS opacity and cloud QA)."""
PC_METADATA = {"mtl.txt": "MTL.txt", "mtl.xml": "MTL.xml", "mtl.json": "MTL.json", "ang": "ANG.txt"}
LAYOUTS = (
    "tar", "tar.gz", "tgz", "tar-subfolder", "folder", "subfolder", "lowercase", "per-band", "stac",
)  # fmt: skip


def _l1_oli_xml() -> str:
    folder = realdata(LANDSAT_L1TP_OLI)
    return _xml_from_odl((folder / f"{L1TP_OLI_ID}_MTL.txt").read_text(encoding="utf-8"))


def landsat9_l1tp() -> LandsatPackage:
    """LC09 L1TP: the real LC08 L1TP MTL as OLI-2/TIRS-2 label it (same groups, same bands)."""
    xml = derived_mtl_xml(
        _l1_oli_xml(),
        product_id=L1TP_OLI_ID.replace("LC08", "LC09"),
        values={"SPACECRAFT_ID": "LANDSAT_9"},
    )
    return landsat_package(mtl_xml=xml, derivation="LC08 L1TP MTL relabelled LANDSAT_9")


def landsat9_l2sr() -> LandsatPackage:
    """LC09 L2SR: the real LC08 L2SR MTL relabelled (no ST bands, no ST_* files)."""
    xml = realdata(f"{L2SR_OLI}_MTL.xml").read_text(encoding="utf-8")
    product_id = "LC09_L2SR_084024_20160111_20201016_02_T1"
    xml = derived_mtl_xml(xml, product_id=product_id, values={"SPACECRAFT_ID": "LANDSAT_9"})
    return landsat_package(mtl_xml=xml, derivation="LC08 L2SR MTL relabelled LANDSAT_9")


def landsat8_l2sr() -> LandsatPackage:
    """The real LC08 L2SR MTL with generated rasters (no ST bands, no ST_* files)."""
    xml = realdata(f"{L2SR_OLI}_MTL.xml").read_text(encoding="utf-8")
    return landsat_package(mtl_xml=xml, derivation="rasters generated")


def oli_only_l1tp() -> LandsatPackage:
    """LO08 L1TP: an OLI-only scene (TIRS off): SENSOR_ID OLI, no band 10/11 entries."""
    xml = derived_mtl_xml(
        _l1_oli_xml(),
        product_id=L1TP_OLI_ID.replace("LC08", "LO08"),
        values={"SENSOR_ID": "OLI"},
        drop=_TIRS_KEYS,
    )
    return landsat_package(mtl_xml=xml, derivation="LC08 L1TP MTL without TIRS entries")


def tirs_only_l1gt() -> LandsatPackage:
    """LT08 L1GT: a TIRS-only scene: SENSOR_ID TIRS, bands 10/11 only, CLOUD_COVER -1.

    USGS writes -1 when the cloud cover could not be assessed (no OLI bands).
    """
    product_id = L1TP_OLI_ID.replace("LC08", "LT08").replace("_L1TP_", "_L1GT_")
    xml = derived_mtl_xml(
        _l1_oli_xml().replace("_L1TP_", "_L1GT_"),
        product_id=product_id,
        values={
            "SENSOR_ID": "TIRS",
            "PROCESSING_LEVEL": "L1GT",
            "CLOUD_COVER": "-1.00",
            "CLOUD_COVER_LAND": "-1.00",
        },
        drop=_OLI_KEYS,
    )
    return landsat_package(mtl_xml=xml, derivation="LC08 L1TP MTL without OLI entries")


def landsat4_tm_l2sp() -> LandsatPackage:
    """LT04 L2SP: the real LT05 L2SP MTL relabelled LANDSAT_4 (TM groups are the same)."""
    xml = realdata(LANDSAT_L2SP_TM_MTL).read_text(encoding="utf-8")
    xml = derived_mtl_xml(
        xml.replace("LT05_L1GS_", "LT04_L1GS_"),
        product_id="LT04_L2SP_010067_19860424_20200918_02_T2",
        values={"SPACECRAFT_ID": "LANDSAT_4"},
    )
    return landsat_package(mtl_xml=xml, derivation="LT05 L2SP MTL relabelled LANDSAT_4")


ETM_HIGH_GAIN = {
    "RADIANCE_MULT_BAND_6_VCID_2": "3.7205E-02",
    "RADIANCE_ADD_BAND_6_VCID_2": "3.16280",
    "K1_CONSTANT_BAND_6_VCID_2": "666.09",
    "K2_CONSTANT_BAND_6_VCID_2": "1282.71",
    "RADIANCE_MULT_BAND_8": "9.7559E-01",
    "RADIANCE_ADD_BAND_8": "-5.67559",
    "REFLECTANCE_MULT_BAND_8": "2.2473E-03",
    "REFLECTANCE_ADD_BAND_8": "-0.013074",
}
"""ETM+ band 6 VCID 2 and pan gains: the Landsat 7 handbook's high-gain LMIN/LMAX (6: 3.2/12.65,
8: -4.7/243.1) over QCAL 1..255, K1/K2 of Landsat 7, pan ESUN 1368 at 1 AU."""


def etm_l1tp() -> LandsatPackage:
    """LE07 L1TP with every ETM+ file (LSDS-1822): B1-B5, B6_VCID_1, B6_VCID_2, B7, B8 (pan).

    ``landsat_l1_etm`` (derived from a TM MTL) lacks B6_VCID_2 and B8; they are added to
    ``PRODUCT_CONTENTS`` and the rescaling with :data:`ETM_HIGH_GAIN` (all rasters on one 30 m
    window; the real pan band is 15 m).
    """
    base = landsat_l1_etm()
    pid = base.product_id
    xml = base.files[f"{pid}_MTL.xml"].decode()
    vcid1 = f"<FILE_NAME_BAND_6_VCID_1>{pid}_B6_VCID_1.TIF</FILE_NAME_BAND_6_VCID_1>"
    band7 = f"<FILE_NAME_BAND_7>{pid}_B7.TIF</FILE_NAME_BAND_7>"
    assert vcid1 in xml and band7 in xml
    xml = xml.replace(
        vcid1, vcid1 + f"<FILE_NAME_BAND_6_VCID_2>{pid}_B6_VCID_2.TIF</FILE_NAME_BAND_6_VCID_2>"
    )
    xml = xml.replace(band7, band7 + f"<FILE_NAME_BAND_8>{pid}_B8.TIF</FILE_NAME_BAND_8>")
    gains = "".join(f"<{key}>{value}</{key}>" for key, value in ETM_HIGH_GAIN.items())
    xml = xml.replace("</LEVEL1_RADIOMETRIC_RESCALING>", gains + "</LEVEL1_RADIOMETRIC_RESCALING>")
    return landsat_package(mtl_xml=xml, derivation=base.derivation + "; B6_VCID_2 and B8 added")


def collection1_bundle(folder: Path) -> Path:
    """A Collection 1 L1TP folder: the real C1 MTL and the C2 scene's real bands under C1 names."""
    c1_id = Path(L1_C1_OLI).name
    target = folder / c1_id
    target.mkdir(parents=True)
    (target / f"{c1_id}_MTL.txt").write_bytes(realdata(f"{L1_C1_OLI}/{c1_id}_MTL.txt").read_bytes())
    for band in (*[f"B{n}" for n in range(1, 12)], "BQA"):
        source = "QA_PIXEL" if band == "BQA" else band
        data = realdata(f"{LANDSAT_L1TP_OLI}/{L1TP_OLI_ID}_{source}.TIF").read_bytes()
        (target / f"{c1_id}_{band}.TIF").write_bytes(data)
    return target


def real_l2sp_oli_files() -> dict[str, Path]:
    """The real LC08 L2SP files of realdata by name (MTL txt/xml/json, ANG, SR/ST/QA TIFs)."""
    folder = realdata(LANDSAT_L2SP_OLI)
    return {
        path.name: path
        for path in folder.glob(f"{LANDSAT_L2SP_OLI_ID}_*")
        if not path.name.endswith("_stac.json")
    }


# --------------------------------------------------------------------------------------------
# Layouts


def _tar_to(path: Path, files: Mapping[str, bytes], *, gzip: bool, prefix: str = "") -> Path:
    with tarfile.open(path, "w:gz" if gzip else "w") as archive:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def _stac_files(package: LandsatPackage, folder: Path) -> dict[str, Path]:
    keys = PC_OLI_L2 if package.product_id.startswith(("LC", "LO")) else PC_TM_ETM_L2
    found: dict[str, Path] = {}
    for key, suffix in {**keys, **PC_METADATA}.items():
        name = f"{package.product_id}_{suffix}" + ("" if "." in suffix else ".TIF")
        if name not in package.files:
            continue
        extension = Path(name).suffix
        file_name = key if key.lower().endswith(extension.lower()) else key + extension
        path = folder / file_name
        path.write_bytes(package.files[name])
        found[key] = path
    return found


def write_layout(package: LandsatPackage, folder: Path, layout: str) -> dict[str, Path]:
    """Write ``package`` as ``layout`` (one of :data:`LAYOUTS`) below ``folder``.

    Returns:
        What a step receives: ``{key: path}`` (one archive or folder for whole products).
    """
    folder.mkdir(parents=True, exist_ok=True)
    pid = package.product_id
    files = package.files
    if layout == "tar":
        return {"bundle": package.write_tar(folder)}
    if layout in ("tar.gz", "tgz"):
        return {"bundle": _tar_to(folder / f"{pid}.{layout}", files, gzip=True)}
    if layout == "tar-subfolder":
        return {"bundle": _tar_to(folder / f"{pid}.tar", files, gzip=False, prefix=f"{pid}/")}
    if layout in ("folder", "subfolder", "lowercase"):
        root = folder / pid
        target = root / pid if layout == "subfolder" else root
        target.mkdir(parents=True)
        for name, data in files.items():
            (target / (name.lower() if layout == "lowercase" else name)).write_bytes(data)
        return {"product": root}
    if layout == "per-band":
        out: dict[str, Path] = {}
        for name, data in files.items():
            path = folder / name
            path.write_bytes(data)
            out[name] = path
        return out
    if layout == "stac":
        return _stac_files(package, folder)
    raise ValueError(f"unknown layout {layout!r} (one of {LAYOUTS})")
