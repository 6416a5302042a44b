"""Minimal, specification-shaped Sentinel-2 product metadata for the demo scenes.

Writes ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` with the elements the Sentinel-2 Products
Specification Document (PSD 14.x) puts where readers look for them: ``Product_Info``
(times, URI, level, type, baseline, generation time, ``Datatake`` with spacecraft and orbit,
``Granule_List`` of ``IMAGE_FILE``), ``Product_Image_Characteristics`` (``Special_Values``,
``QUANTIFICATION_VALUE`` or ``QUANTIFICATION_VALUES_LIST/BOA_QUANTIFICATION_VALUE``, from
baseline 04.00 on ``Radiometric_Offset_List/RADIO_ADD_OFFSET`` or
``BOA_ADD_OFFSET_VALUES_LIST/BOA_ADD_OFFSET`` for band_id 0..12, ``Reflectance_Conversion``) and
``Quality_Indicators_Info/Cloud_Coverage_Assessment``. Values are the demo scene's; it is not a
real ESA file and says so in a comment.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - only builds XML, never parses it
from datetime import datetime
from pathlib import Path

BAND_IDS = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B10",
    "B11",
    "B12",
)
SOLAR_IRRADIANCE = (
    1884.69, 1959.66, 1823.24, 1512.06, 1424.64, 1287.61, 1162.08, 1041.63, 955.32, 812.92,
    367.15, 245.59, 85.25,
)  # fmt: skip
"""S2A solar irradiance per band (W/m2/um) as MTD files list it."""
NAMESPACES = {
    "L1C": "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd",
    "L2A": "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd",
}


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.024Z")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def product_metadata_xml(
    product_name: str,
    *,
    level: str,
    sensing_time: datetime,
    generation_time: datetime,
    baseline: str,
    relative_orbit: int,
    absolute_orbit: int,
    tile: str,
    cloud_pct: float,
    bands: tuple[str, ...],
    offset_dn: int,
) -> bytes:
    """Return the MTD document of a demo product.

    Args:
        product_name: the product name without ``.SAFE``.
        level: ``L1C`` or ``L2A``.
        sensing_time: datatake sensing start (UTC).
        generation_time: product generation time (UTC).
        baseline: processing baseline, e.g. ``05.00``.
        relative_orbit: the relative orbit number.
        absolute_orbit: the absolute orbit number (goes into the datatake id).
        tile: the MGRS tile.
        cloud_pct: the cloud coverage assessment.
        bands: the band names the product has (listed as IMAGE_FILE entries).
        offset_dn: the additive DN offset (``-1000`` from baseline 04.00 on, else 0: no list).

    Returns:
        UTF-8 XML bytes.
    """
    namespace = NAMESPACES[level]
    root = ET.Element(
        "n1:Level-1C_User_Product" if level == "L1C" else "n1:Level-2A_User_Product",
        {"xmlns:n1": namespace, "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance"},
    )
    root.append(ET.Comment(" synthetic demo product (include.demo), not an ESA file "))
    general = _sub(root, "n1:General_Info")
    info = _sub(general, "Product_Info")
    _sub(info, "PRODUCT_START_TIME", _iso(sensing_time))
    _sub(info, "PRODUCT_STOP_TIME", _iso(sensing_time))
    _sub(info, "PRODUCT_URI", f"{product_name}.SAFE")
    _sub(info, "PROCESSING_LEVEL", "Level-1C" if level == "L1C" else "Level-2A")
    _sub(info, "PRODUCT_TYPE", "S2MSI1C" if level == "L1C" else "S2MSI2A")
    _sub(info, "PROCESSING_BASELINE", baseline)
    _sub(info, "GENERATION_TIME", generation_time.strftime("%Y-%m-%dT%H:%M:%S.000000Z"))
    _sub(info, "PREVIEW_IMAGE_URL", "Not applicable")
    _sub(info, "PREVIEW_GEO_INFO", "Not applicable")
    mission = product_name[:3]
    datatake = _sub(
        info,
        "Datatake",
        datatakeIdentifier=(
            f"G{mission}_{sensing_time:%Y%m%dT%H%M%S}_{absolute_orbit:06d}_N{baseline}"
        ),
    )
    _sub(datatake, "SPACECRAFT_NAME", f"Sentinel-2{mission[-1]}")
    _sub(datatake, "DATATAKE_TYPE", "INS-NOBS")
    _sub(datatake, "DATATAKE_SENSING_START", _iso(sensing_time))
    _sub(datatake, "SENSING_ORBIT_NUMBER", str(relative_orbit))
    _sub(datatake, "SENSING_ORBIT_DIRECTION", "DESCENDING")
    options = _sub(info, "Query_Options", completeSingleTile="true")
    _sub(options, "PRODUCT_FORMAT", "SAFE_COMPACT")
    organisation = _sub(info, "Product_Organisation")
    granules = _sub(organisation, "Granule_List")
    granule_dir = f"GRANULE/{level}_T{tile}_A{absolute_orbit:06d}_{sensing_time:%Y%m%dT%H%M%S}"
    granule = _sub(
        granules,
        "Granule",
        datastripIdentifier=f"{mission}_OPER_MSI_{level}_DS_DEMO_{generation_time:%Y%m%dT%H%M%S}"
        f"_S{sensing_time:%Y%m%dT%H%M%S}_N{baseline}",
        granuleIdentifier=f"{mission}_OPER_MSI_{level}_TL_DEMO_{generation_time:%Y%m%dT%H%M%S}"
        f"_A{absolute_orbit:06d}_T{tile}_N{baseline}",
        imageFormat="GeoTIFF",
    )
    for band in bands:
        _sub(
            granule,
            "IMAGE_FILE",
            f"{granule_dir}/IMG_DATA/T{tile}_{sensing_time:%Y%m%dT%H%M%S}_{band}",
        )
    characteristics = _sub(general, "Product_Image_Characteristics")
    for text, index in (("NODATA", "0"), ("SATURATED", "65535")):
        special = _sub(characteristics, "Special_Values")
        _sub(special, "SPECIAL_VALUE_TEXT", text)
        _sub(special, "SPECIAL_VALUE_INDEX", index)
    order = _sub(characteristics, "Image_Display_Order")
    for channel, value in (("RED_CHANNEL", "3"), ("GREEN_CHANNEL", "2"), ("BLUE_CHANNEL", "1")):
        _sub(order, channel, value)
    if level == "L1C":
        _sub(characteristics, "QUANTIFICATION_VALUE", "10000", unit="none")
        if offset_dn:
            offsets = _sub(characteristics, "Radiometric_Offset_List")
            for band_id in range(len(BAND_IDS)):
                _sub(offsets, "RADIO_ADD_OFFSET", str(offset_dn), band_id=str(band_id))
    else:
        values = _sub(characteristics, "QUANTIFICATION_VALUES_LIST")
        _sub(values, "BOA_QUANTIFICATION_VALUE", "10000", unit="none")
        _sub(values, "AOT_QUANTIFICATION_VALUE", "1000.0", unit="none")
        _sub(values, "WVP_QUANTIFICATION_VALUE", "1000.0", unit="cm")
        if offset_dn:
            offsets = _sub(characteristics, "BOA_ADD_OFFSET_VALUES_LIST")
            for band_id in range(len(BAND_IDS)):
                _sub(offsets, "BOA_ADD_OFFSET", str(offset_dn), band_id=str(band_id))
    conversion = _sub(characteristics, "Reflectance_Conversion")
    _sub(conversion, "U", "1.03357426155566")
    irradiance = _sub(conversion, "Solar_Irradiance_List")
    for band_id, irradiance_value in enumerate(SOLAR_IRRADIANCE):
        _sub(
            irradiance,
            "SOLAR_IRRADIANCE",
            f"{irradiance_value}",
            bandId=str(band_id),
            unit="W/m²/µm",
        )
    quality = _sub(root, "n1:Quality_Indicators_Info")
    _sub(quality, "Cloud_Coverage_Assessment", f"{cloud_pct:g}")
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body


def write_product_metadata(path: Path, document: bytes) -> Path:
    """Write ``document`` to ``path`` (creating its folder) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(document)
    return path
