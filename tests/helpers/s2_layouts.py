"""Sentinel-2 SAFE layouts as ESA delivers them, built from REAL product metadata.

Every package starts from an MTD file in ``../shared/realdata`` (read at test time, never
copied into the repository) and writes a small lossless JPEG 2000 at every path the MTD's own
``IMAGE_FILE`` entries list, so the folder layout is ESA's, not ours. Each raster holds one
constant DN, :func:`band_dn` of its band and resolution, so a test can tell which file a reader
picked by reading it.

Where a layout has no real sample here, the real MTD is changed the way the Products
Specification Document (PSD) describes, and the function says which change it makes:

- :func:`set_baseline`, :func:`add_offsets`: processing baseline and the 04.00+ offset lists
  (``Radiometric_Offset_List/RADIO_ADD_OFFSET`` for L1C, ``BOA_ADD_OFFSET_VALUES_LIST`` for L2A);
- :func:`sen2cor_24_mtd`: the PSD 14.2 tags Sen2Cor 2.4 wrote (``L2A_Product_Info``,
  ``L1C_L2A_Quantification_Values_List/L2A_BOA_QUANTIFICATION_VALUE``, ``IMAGE_FILE_2A``,
  band files ``L2A_T..._B04_10m``, masks ``QI_DATA/L2A_T..._CLD_20m``);
- :func:`oper_l1c_safe`: the pre-December-2016 "OPER" SAFE (``S2A_OPER_PRD_MSIL1C_PDMC_...SAFE``,
  ``S2A_OPER_MTD_SAFL1C_PDMC_...xml``, several ``GRANULE/S2A_OPER_MSI_L1C_TL_..._N02.04``
  folders with ``S2A_OPER_MTD_L1C_TL_...xml`` and ``..._B04.jp2``, ``IMAGE_ID`` entries).
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tests.helpers.realdata import realdata

BANDS = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
NATIVE_M = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
    "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20, "TCI": 10, "SCL": 20, "AOT": 10,
    "WVP": 10, "CLD": 20, "SNW": 20, "MSK_CLASSI": 60,
}  # fmt: skip
LAYERS = ("TCI", "SCL", "AOT", "WVP", "CLD", "SNW", "MSK_CLASSI")

# Real sources (relative to the realdata folder)
L1C_N0206 = "eodag/products/S2A_MSIL1C_20180101T105441_N0206_R051_T31TDH_20180101T124911"
L1C_N0206_TL = f"{L1C_N0206}/GRANULE/L1C_T31TDH_A013204_20180101T105435/MTD_TL.xml"
L1C_N0509_MTD = "s2-l1c-n0509/S2B_MSIL1C_20230601T094549_N0509_R079_T34UDD/MTD_MSIL1C.xml"
L2A_N0214 = (
    "stactools-sentinel2/esa_S2B_MSIL2A_20210122T133229_N0214_R081_T22HBD_20210122T155500.SAFE"
)
L2A_N0214_TL = f"{L2A_N0214}/GRANULE/L2A_T22HBD_A020270_20210122T133224/MTD_TL.xml"

_ENTRY = re.compile(r"<(IMAGE_FILE(?:_2A)?)>([^<]+)</\1>")
_RESOLUTION = re.compile(r"_(\d{2})m$")


def band_dn(name: str, resolution_m: int) -> int:
    """The constant DN written for ``name`` at ``resolution_m`` (distinct per file)."""
    order = (*BANDS, *LAYERS)
    return 1000 + 10 * order.index(name) + resolution_m // 10


def layer_of(stem: str) -> str | None:
    """The band or layer a file stem of ESA's naming holds (``..._B04_10m`` -> ``B04``)."""
    upper = stem.upper()
    if "MSK_CLASSI" in upper:
        return "MSK_CLASSI"
    if "MSK_CLDPRB" in upper:
        return "CLD"
    if "MSK_SNWPRB" in upper:
        return "SNW"
    for name in (*BANDS, *LAYERS):
        if re.search(rf"_{name}(?:_\d{{2}}M)?$", upper):
            return name
    return None


def write_raster(path: Path, value: int, resolution_m: int, *, bands: int = 1) -> None:
    """Write a lossless JP2 (or GeoTIFF for ``.tif``) of ``value`` on a 360 m square of 31TDH."""
    import rasterio
    from rasterio.transform import from_origin

    size = 360 // resolution_m
    array = np.full((bands, size, size), value, dtype=np.uint16 if value > 255 else np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, object] = (
        {"driver": "JP2OpenJPEG", "QUALITY": 100, "REVERSIBLE": "YES", "YCC": "NO"}
        if path.suffix == ".jp2"
        else {"driver": "GTiff"}
    )
    with rasterio.open(
        path, "w", width=size, height=size, count=bands, dtype=array.dtype.name,
        crs="EPSG:32631", transform=from_origin(399960, 4800000, resolution_m, resolution_m),
        **options,
    ) as dst:  # fmt: skip
        dst.write(array)


def read_dn(path: Path) -> int:
    """The DN at the first pixel of ``path``."""
    import rasterio

    with rasterio.open(path) as ds:
        return int(ds.read(1, window=((0, 1), (0, 1)))[0, 0])


def real_text(relative: str) -> str:
    """The text of a real sample (the test is skipped when realdata is absent)."""
    return realdata(relative).read_text(encoding="utf-8")


def realdata_path(relative: str) -> Path:
    """A real sample's path (the test is skipped when realdata is absent)."""
    return realdata(relative)


def set_baseline(text: str, baseline: str) -> str:
    """Set ``PROCESSING_BASELINE`` (only that element; the ids keep theirs)."""
    return re.sub(
        r"<PROCESSING_BASELINE>[^<]*</PROCESSING_BASELINE>",
        f"<PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>",
        text,
        count=1,
    )


def add_offsets(text: str, values: float | dict[int, float]) -> str:
    """Add the 04.00+ offset list where PSD 14.9 puts it, one entry per ``band_id`` 0..12.

    L1C: ``Radiometric_Offset_List`` after ``QUANTIFICATION_VALUE``; L2A:
    ``BOA_ADD_OFFSET_VALUES_LIST`` after ``QUANTIFICATION_VALUES_LIST``.
    """
    per_band = values if isinstance(values, dict) else dict.fromkeys(range(13), values)
    if "</QUANTIFICATION_VALUES_LIST>" in text:
        tag, group = "BOA_ADD_OFFSET", "BOA_ADD_OFFSET_VALUES_LIST"
        anchor = "</QUANTIFICATION_VALUES_LIST>"
    else:
        tag, group, anchor = (
            "RADIO_ADD_OFFSET",
            "Radiometric_Offset_List",
            "</QUANTIFICATION_VALUE>",
        )
    entries = "".join(
        f'\n        <{tag} band_id="{band_id}">{value:g}</{tag}>'
        for band_id, value in sorted(per_band.items())
    )
    block = f"\n      <{group}>{entries}\n      </{group}>"
    assert anchor in text, f"no {anchor} in the MTD"
    return text.replace(anchor, anchor + block, 1)


def sen2cor_24_mtd(text: str, *, boa_quantification: int = 10000) -> str:
    """Turn a PSD 14.5 MTD_MSIL2A.xml into the PSD 14.2 tags Sen2Cor 2.4 wrote.

    ``L2A_Product_Info``/``L2A_Product_Organisation``/``L2A_Product_Image_Characteristics``,
    ``PRODUCT_URI_2A``, ``IMAGE_FILE_2A`` entries named ``L2A_T..._B04_10m``, and
    ``L1C_L2A_Quantification_Values_List`` holding the L1C's TOA value (10000) before
    ``L2A_BOA_QUANTIFICATION_VALUE`` (``boa_quantification``).
    """
    for name in ("Product_Info", "Product_Organisation", "Product_Image_Characteristics"):
        text = text.replace(f"<{name}>", f"<L2A_{name}>").replace(f"</{name}>", f"</L2A_{name}>")
    text = re.sub(
        r"<PRODUCT_URI>([^<]*)</PRODUCT_URI>", r"<PRODUCT_URI_2A>\1</PRODUCT_URI_2A>", text
    )
    text = re.sub(
        r"<IMAGE_FILE>(GRANULE/[^/]+/IMG_DATA/R\d{2}m/)(T\d{2}[A-Z]{3}_[^<]+)</IMAGE_FILE>",
        r"<IMAGE_FILE_2A>\1L2A_\2</IMAGE_FILE_2A>",
        text,
    )
    quantification = re.compile(
        r"<QUANTIFICATION_VALUES_LIST>.*?</QUANTIFICATION_VALUES_LIST>", re.S
    )
    assert quantification.search(text), "no QUANTIFICATION_VALUES_LIST in the MTD"
    return quantification.sub(
        "<L1C_L2A_Quantification_Values_List>"
        '\n        <L1C_TOA_QUANTIFICATION_VALUE unit="none">10000</L1C_TOA_QUANTIFICATION_VALUE>'
        f'\n        <L2A_BOA_QUANTIFICATION_VALUE unit="none">{boa_quantification}'
        "</L2A_BOA_QUANTIFICATION_VALUE>"
        '\n        <L2A_AOT_QUANTIFICATION_VALUE unit="none">1000.0</L2A_AOT_QUANTIFICATION_VALUE>'
        '\n        <L2A_WVP_QUANTIFICATION_VALUE unit="cm">1000.0</L2A_WVP_QUANTIFICATION_VALUE>'
        "\n      </L1C_L2A_Quantification_Values_List>",
        text,
        count=1,
    )


def image_entries(text: str) -> list[str]:
    """The MTD's band file entries (paths inside the SAFE, no extension)."""
    return [match.group(2).strip() for match in _ENTRY.finditer(text)]


def _write_entry(safe: Path, entry: str, suffix: str = ".jp2") -> None:
    stem = entry.rsplit("/", 1)[-1]
    name = layer_of(stem)
    assert name is not None, f"no band in {entry}"
    found = _RESOLUTION.search(stem)
    resolution = int(found.group(1)) if found else NATIVE_M[name]
    write_raster(safe / f"{entry}{suffix}", band_dn(name, resolution), resolution,
                 bands=3 if name == "TCI" else 1)  # fmt: skip


def compact_safe(
    parent: Path,
    mtd_text: str,
    *,
    level: str,
    tile_mtd: Path,
    qi: tuple[str, ...] = (),
    name: str | None = None,
) -> Path:
    """Write a compact SAFE (December 2016 on) whose files are the MTD's ``IMAGE_FILE`` entries.

    Args:
        parent: folder the ``<PRODUCT_URI>.SAFE`` folder is written in.
        mtd_text: the (real, maybe adapted) MTD_MSIL1C.xml / MTD_MSIL2A.xml text.
        level: ``L1C`` or ``L2A`` (names the MTD file).
        tile_mtd: a real MTD_TL.xml copied into the granule.
        qi: file names written into the granule's ``QI_DATA`` (``MSK_CLDPRB_20m.jp2``,
            ``MSK_CLOUDS_B00.gml``...).
        name: the SAFE folder name (default: the MTD's ``PRODUCT_URI``).
    """
    uri = re.search(r"<PRODUCT_URI(?:_2A)?>([^<]+)</PRODUCT_URI(?:_2A)?>", mtd_text)
    safe = parent / (name or (uri.group(1) if uri else f"S2_MSI{level}.SAFE"))
    safe.mkdir(parents=True)
    (safe / f"MTD_MSI{level}.xml").write_text(mtd_text, encoding="utf-8")
    entries = image_entries(mtd_text)
    for entry in entries:
        _write_entry(safe, entry)
    granule = safe / "/".join(entries[0].split("/")[:2])
    shutil.copyfile(tile_mtd, granule / "MTD_TL.xml")
    for qi_name in qi:
        path = granule / "QI_DATA" / qi_name
        if path.suffix == ".gml":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text('<eop:Mask xmlns:eop="http://www.opengis.net/eop/2.0"/>')
            continue
        layer = layer_of(path.stem)
        assert layer is not None, qi_name
        found = _RESOLUTION.search(path.stem)
        resolution = int(found.group(1)) if found else NATIVE_M[layer]
        write_raster(path, band_dn(layer, resolution), resolution,
                     bands=3 if layer == "MSK_CLASSI" else 1)  # fmt: skip
    return safe


def oper_l1c_safe(parent: Path, tiles: tuple[str, ...], *, baseline: str = "02.04") -> Path:
    """Write an OPER-format L1C SAFE (before December 2016) with one granule per tile.

    From the real N0206 product of 31TDH: its MTD becomes ``S2A_OPER_MTD_SAFL1C_PDMC_...xml``
    (``PRODUCT_URI`` and ``PROCESSING_BASELINE`` of the OPER product, ``Granules`` entries with
    ``IMAGE_ID``), its MTD_TL becomes each granule's ``S2A_OPER_MTD_L1C_TL_...xml`` (``TILE_ID``
    of that tile). Band ``b`` of tile number ``k`` holds ``band_dn(b, native) + 100 * k``.
    """
    stamp = "20161201T124911"
    product = f"S2A_OPER_PRD_MSIL1C_PDMC_{stamp}_R051_V20161201T105441_20161201T105441"
    safe = parent / f"{product}.SAFE"
    text = set_baseline(real_text(f"{L1C_N0206}/MTD_MSIL1C.xml"), baseline)
    text = re.sub(
        r"<PRODUCT_URI>[^<]*</PRODUCT_URI>", f"<PRODUCT_URI>{product}.SAFE</PRODUCT_URI>", text
    )
    granules = []
    for tile in tiles:
        granule_id = f"S2A_OPER_MSI_L1C_TL_SGS__{stamp}_A007500_T{tile}_N{baseline}"
        ids = "".join(f"\n        <IMAGE_ID>{granule_id[:-7]}_{band}</IMAGE_ID>" for band in BANDS)
        granules.append(
            f'\n      <Granules granuleIdentifier="{granule_id}" imageFormat="JPEG2000">'
            f"{ids}\n      </Granules>"
        )
    text = re.sub(
        r"<Granule_List>.*</Granule_List>",
        lambda _: "<Granule_List>" + "".join(granules) + "\n    </Granule_List>",
        text,
        flags=re.S,
    )
    text = text.replace("psd-14.sentinel2", "psd-13.sentinel2")
    safe.mkdir(parents=True)
    (
        safe / f"S2A_OPER_MTD_SAFL1C_PDMC_{stamp}_R051_V20161201T105441_20161201T105441.xml"
    ).write_text(text, encoding="utf-8")
    tile_text = real_text(L1C_N0206_TL)
    for number, tile in enumerate(tiles):
        granule_id = f"S2A_OPER_MSI_L1C_TL_SGS__{stamp}_A007500_T{tile}_N{baseline}"
        folder = safe / "GRANULE" / granule_id
        for band in BANDS:
            write_raster(folder / "IMG_DATA" / f"{granule_id[:-7]}_{band}.jp2",
                         band_dn(band, NATIVE_M[band]) + 100 * number, NATIVE_M[band])  # fmt: skip
        mtd_name = f"S2A_OPER_MTD_L1C_TL_SGS__{stamp}_A007500_T{tile}.xml"
        (folder / mtd_name).write_text(
            re.sub(r"(<TILE_ID[^>]*>)[^<]*(</TILE_ID>)", rf"\g<1>{granule_id}\g<2>", tile_text),
            encoding="utf-8",
        )
        qi = folder / "QI_DATA"
        qi.mkdir()
        (qi / f"S2A_OPER_MSK_CLOUDS_SGS__{stamp}_A007500_T{tile}_B00_MSIL1C.gml").write_text(
            '<eop:Mask xmlns:eop="http://www.opengis.net/eop/2.0"/>'
        )
    return safe


def zip_safe(safe: Path, archive: Path, *, top: str | None = "SAFE") -> Path:
    """Zip ``safe``: ``top="SAFE"`` keeps the ``<name>.SAFE/`` folder (CDSE), None drops it."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        for path in sorted(safe.rglob("*")):
            if path.is_file():
                inside = path.relative_to(safe.parent if top else safe).as_posix()
                handle.write(path, inside)
    return archive


def recorded_item(cassette: str, collection: str) -> dict[str, Any]:
    """The first item of ``collection`` in a recorded pystac-client cassette in realdata."""
    recorded = yaml.safe_load(realdata(cassette).read_text(encoding="utf-8"))
    for interaction in recorded["interactions"]:
        try:
            page = json.loads(interaction["response"]["body"]["string"])
        except (json.JSONDecodeError, TypeError):
            continue
        for feature in page.get("features", []):
            if feature["collection"] == collection:
                return dict(feature)
    raise AssertionError(f"no {collection} item in {cassette}")
