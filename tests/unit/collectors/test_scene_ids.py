"""Scene id parsing: hand cases per naming rule and the real product names in shared/realdata."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from include.collectors.scene_ids import (
    CatalogItemId,
    SceneIdentity,
    catalog_item_id,
    is_mgrs_tile,
    item_id_problem,
    parse_scene_id,
    parse_wrs2_pathrow,
)
from include.common.errors import InvalidInputError

S2 = "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429"
LANDSAT = "LC08_L1TP_221069_20200110_20200114_02_T1"

# Names in realdata that are not product names, with the reason they must be rejected.
RENAMED_FIXTURES = {
    # stactools renamed the folder; its MTD_MSIL1C.xml PRODUCT_URI carries N0209.
    "S2A_MSIL1C_20200717T221941_R029_T01LAC_20200717T234135",
    # the s2-l1c-n0509 folder drops the product discriminator; its PRODUCT_URI has it.
    "S2B_MSIL1C_20230601T094549_N0509_R079_T34UDD",
}


def _realdata() -> Path:
    default = Path(__file__).resolve().parents[3].parent / "shared" / "realdata"
    root = Path(os.environ.get("REALDATA_DIR", default))
    if not root.is_dir():
        pytest.skip(f"real data folder {root} is absent; set REALDATA_DIR to ../shared/realdata")
    return root


def _rejected(scene_id: Any, field: str = "scene_id") -> str:
    with pytest.raises(InvalidInputError) as caught:
        parse_scene_id(scene_id, field=field)
    [problem] = caught.value.problems
    assert problem.field == field
    assert problem.fix
    return f"{problem.message}; {problem.fix}"


# --- Sentinel-2 -----------------------------------------------------------------------------


def test_parse_scene_id_s2_product_gives_every_part() -> None:
    identity = parse_scene_id(S2)
    assert identity == SceneIdentity(
        scene_id=S2,
        kind="s2-product",
        family="sentinel-2",
        platform="sentinel-2a",
        sensor="MSI",
        level="L1C",
        datetime=datetime(2020, 1, 9, 13, 22, 31, tzinfo=UTC),
        tile="23LLF",
        processing_baseline="02.08",
        relative_orbit=38,
        product_discriminator="20200109T145429",
    )
    assert identity.baseline_tuple == (2, 8)
    assert identity.wrs_path is None


def test_parse_scene_id_safe_suffix_case_and_blanks_canonical() -> None:
    text = "  s2b_msil2a_20210122t133229_n0214_r081_t22hbd_20210122t155500.SAFE "
    identity = parse_scene_id(text)
    assert identity.scene_id == "S2B_MSIL2A_20210122T133229_N0214_R081_T22HBD_20210122T155500"
    assert (identity.platform, identity.level, identity.tile) == ("sentinel-2b", "L2A", "22HBD")


@pytest.mark.parametrize("mission", ["S2A", "S2B", "S2C", "S2D"])
def test_parse_scene_id_s2_missions_platform(mission: str) -> None:
    identity = parse_scene_id(mission + S2[3:])
    assert identity.platform == f"sentinel-2{mission[-1].lower()}"


def test_parse_scene_id_s2_baselines_compare_as_tuples() -> None:
    old = parse_scene_id(S2.replace("N0208", "N0399"))
    new = parse_scene_id(S2.replace("N0208", "N0400"))
    assert old.baseline_tuple is not None and new.baseline_tuple is not None
    assert old.baseline_tuple < (4, 0) <= new.baseline_tuple
    assert new.processing_baseline == "04.00"


@pytest.mark.parametrize("orbit", ["R001", "R143"])
def test_parse_scene_id_s2_orbit_bounds_accepted(orbit: str) -> None:
    assert parse_scene_id(S2.replace("R038", orbit)).relative_orbit == int(orbit[1:])


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (S2.replace("S2A", "S2E"), "mission 'S2E'"),
        (S2.replace("MSIL1C", "MSIL1B"), "product level 'MSIL1B'"),
        (S2.replace("MSIL1C", "MSIL2B"), "product level 'MSIL2B'"),
        (S2.replace("20200109T132231", "20201309T132231"), "sensing time"),
        (S2.replace("20200109T132231", "20200109T256000"), "sensing time"),
        (S2.replace("N0208", "N208"), "processing baseline"),
        (S2.replace("N0208", "X0208"), "processing baseline"),
        (S2.replace("R038", "R000"), "relative orbit"),
        (S2.replace("R038", "R144"), "relative orbit"),
        (S2.replace("T23LLF", "23LLFX"), "tile"),
        (S2.replace("T23LLF", "T23ILF"), "tile"),
        (S2.replace("T23LLF", "T23LAF"), "tile"),  # column A belongs to zones 1, 4, 7, ...
        (S2.replace("_20200109T145429", "_2020010914"), "product discriminator"),
        (S2 + "_EXTRA", "8 parts"),
        ("S2A_MSIL1C_20200109T132231", "3 parts"),
    ],
)
def test_parse_scene_id_s2_broken_part_named(bad: str, expected: str) -> None:
    text = _rejected(bad, "scenes[2]")
    assert expected in text
    assert "MMM_MSIXXX_" in text


@pytest.mark.parametrize(
    "item_id",
    [
        "S2A_MSIL2A_20190101T000001_R116_T60VUK_20201007T214652",  # Planetary Computer
        "S2A_13TDE_20231008_0_L2A",  # Earth Search
    ],
)
def test_parse_scene_id_catalog_item_id_points_to_product_uri(item_id: str) -> None:
    assert "s2:product_uri" in _rejected(item_id)


def test_parse_scene_id_old_long_s2_name_rejected() -> None:
    text = _rejected("S2A_OPER_MSI_L1C_TL_SGS__20181231T203637_A018414_T10SDG")
    assert "old-format" in text and "compact product name" in text


# --- Landsat product ids ----------------------------------------------------------------------


def test_parse_scene_id_landsat_product_gives_every_part() -> None:
    assert parse_scene_id(LANDSAT) == SceneIdentity(
        scene_id=LANDSAT,
        kind="landsat-product",
        family="landsat",
        platform="landsat-8",
        sensor="OLI_TIRS",
        level="L1TP",
        datetime=datetime(2020, 1, 10, tzinfo=UTC),
        tile="221069",
        processing_date=date(2020, 1, 14),
        collection_number=2,
        collection_category="T1",
    )
    identity = parse_scene_id(LANDSAT)
    assert (identity.wrs_path, identity.wrs_row) == (221, 69)


@pytest.mark.parametrize(
    ("mission", "platform", "sensor"),
    [
        ("LC09", "landsat-9", "OLI_TIRS"),
        ("LO08", "landsat-8", "OLI"),
        ("LT08", "landsat-8", "TIRS"),
        ("LE07", "landsat-7", "ETM+"),
        ("LT05", "landsat-5", "TM"),
        ("LT04", "landsat-4", "TM"),
        ("LM05", "landsat-5", "MSS"),
        ("LM01", "landsat-1", "MSS"),
    ],
)
def test_parse_scene_id_landsat_sensors_named(mission: str, platform: str, sensor: str) -> None:
    identity = parse_scene_id(f"{mission}_L1TP_221069_20000110_20000114_02_T1")
    assert (identity.platform, identity.sensor) == (platform, sensor)


@pytest.mark.parametrize("level", ["L1TP", "L1GT", "L1GS", "L2SP", "L2SR"])
def test_parse_scene_id_landsat_levels_accepted(level: str) -> None:
    assert parse_scene_id(LANDSAT.replace("L1TP", level)).level == level


def test_parse_scene_id_landsat_wrs1_paths_for_landsat_1_to_3() -> None:
    assert parse_scene_id("LM02_L1GS_251010_19770110_20200914_02_T2").tile == "251010"
    assert "WRS-2" in _rejected("LM05_L1GS_251010_19850110_20200914_02_T2")


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("LE08" + LANDSAT[4:], "Landsat 8 carried no sensor 'E'"),
        ("LC07" + LANDSAT[4:], "Landsat 7 carried no sensor 'C'"),
        ("LX08" + LANDSAT[4:], "sensor letter 'X'"),
        ("LC8_" + LANDSAT[5:], "two-digit satellite"),
        (LANDSAT.replace("L1TP", "L1XX"), "correction level 'L1XX'"),
        (LANDSAT.replace("221069", "234069"), "path 234"),
        (LANDSAT.replace("221069", "221249"), "row 249"),
        (LANDSAT.replace("221069", "000069"), "path 000"),
        (LANDSAT.replace("20200110", "20200230"), "acquisition date"),
        (LANDSAT.replace("20200114", "20200109"), "before the acquisition date"),
        (LANDSAT.replace("_02_", "_03_"), "collection '03'"),
        (LANDSAT.replace("_T1", "_T3"), "category 'T3'"),
        (LANDSAT.replace("L1TP", "L2SP").replace("_02_", "_01_"), "Collection 2"),
        (LANDSAT.replace("L1TP", "L2SP").replace("_T1", "_RT"), "Collection 2"),
        ("LM05_L2SP_221069_19850110_20200114_02_T1", "Collection 2"),
    ],
)
def test_parse_scene_id_landsat_broken_part_named(bad: str, expected: str) -> None:
    text = _rejected(bad)
    assert expected in text


def test_parse_scene_id_landsat_item_id_without_processing_date_points_to_product_id() -> None:
    assert "landsat:product_id" in _rejected("LC09_L2SP_084068_20250722_02_T2")


# --- Landsat legacy scene ids ------------------------------------------------------------------


def test_parse_scene_id_landsat_scene_id_gives_pathrow_and_date() -> None:
    identity = parse_scene_id("LC82210692020010LGN00")
    assert (identity.kind, identity.platform, identity.sensor) == (
        "landsat-scene",
        "landsat-8",
        "OLI_TIRS",
    )
    assert (identity.tile, identity.datetime) == ("221069", datetime(2020, 1, 10, tzinfo=UTC))
    assert (identity.level, identity.ground_station, identity.archive_version) == (None, "LGN", 0)


def test_parse_scene_id_landsat_scene_id_leap_day_of_year() -> None:
    assert parse_scene_id("LC80120252020366LGN00").datetime.date() == date(2020, 12, 31)
    assert "day of year '366'" in _rejected("LC80120252019366LGN00")


@pytest.mark.parametrize(
    "bad", ["LE82210692020010LGN00", "LC82340692020010LGN00", "LC8221069202001XLGN00"]
)
def test_parse_scene_id_landsat_scene_id_broken_rejected(bad: str) -> None:
    assert "LXSPPPRRRYYYYDDDGSIVV" in _rejected(bad)


# --- anything else -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../" + S2, S2 + "/..", "a\\b", "S2A..x", "/etc/passwd"])
def test_parse_scene_id_path_like_rejected(bad: str) -> None:
    assert "path separator" in _rejected(bad, "scenes[0]")


@pytest.mark.parametrize("bad", ["", "   ", "hello", "S1A_IW_GRDH_1SDV_20200101T000000", 42, None])
def test_parse_scene_id_not_an_id_rejected_with_examples(bad: Any) -> None:
    text = _rejected(bad)
    assert S2[:10] in text or "LXSS" in text or "S2A_MSIL1C" in text


# --- tiles ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("23LLF", "23LLF"),
        ("T23LLF", "23LLF"),
        (" t23llf ", "23LLF"),
        ("1LAC", "01LAC"),
        ("01LAC", "01LAC"),
        ("60VUK", "60VUK"),
        ("31TDH", "31TDH"),
        ("59VMF", "59VMF"),
    ],
)
def test_is_mgrs_tile_valid_canonical(text: str, canonical: str) -> None:
    assert is_mgrs_tile(text) == canonical


@pytest.mark.parametrize(
    "text",
    [
        "61LLF",
        "00LAC",
        "23ILF",
        "23OLF",
        "23ALF",
        "23BLF",
        "23YLF",
        "23LAF",
        "23LSF",
        "23LLW",
        "23LIF",
        "23LLI",
        "23LLO",
        "23LLFX",
        "TT23LLF",
        "",
        "221069",
    ],
)
def test_is_mgrs_tile_invalid_none(text: str) -> None:
    assert is_mgrs_tile(text) is None


def test_is_mgrs_tile_not_a_string_none() -> None:
    assert is_mgrs_tile(23) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["221069", "221/069", "221-069", " 221069 ", "001001", "233248"])
def test_parse_wrs2_pathrow_valid_canonical(text: str) -> None:
    assert parse_wrs2_pathrow(text) == re.sub(r"\D", "", text)


@pytest.mark.parametrize(
    "text", ["234069", "221249", "000069", "221000", "22106", "221 069", "221/69", "23LLF", ""]
)
def test_parse_wrs2_pathrow_invalid_none(text: str) -> None:
    assert parse_wrs2_pathrow(text) is None


# --- real names ---------------------------------------------------------------------------------


def _names_in(root: Path) -> set[str]:
    """Product-name candidates among the folder and file names (not the regexes under test)."""
    found: set[str] = set()
    for path in root.rglob("*"):
        name = path.name
        start = name.find("S2")
        if start >= 0 and "_MSIL" in name:
            found.add(name[start:].removesuffix(".SAFE"))
        elif re.match(r"L[A-Z]\d\d_", name):
            found.add(name[:40])  # product ids have a fixed length of 40 characters
    return found


def test_parse_scene_id_realdata_names_all_parse() -> None:
    names = _names_in(_realdata())
    assert len(names) >= 10, names
    assert RENAMED_FIXTURES <= names
    for name in sorted(names - RENAMED_FIXTURES):
        assert parse_scene_id(name).scene_id == name
    for name in RENAMED_FIXTURES:
        _rejected(name)


def test_parse_scene_id_s2_metadata_agrees_with_name() -> None:
    files = sorted(_realdata().rglob("MTD_MSIL*.xml"))
    assert len(files) >= 5
    for path in files:
        xml = path.read_text(encoding="utf-8")

        def tag(name: str, xml: str = xml) -> str:
            match = re.search(f"<{name}>([^<]+)<", xml)
            assert match, name
            return match.group(1)

        identity = parse_scene_id(tag("PRODUCT_URI"))
        assert identity.processing_baseline == tag("PROCESSING_BASELINE")
        assert identity.relative_orbit == int(tag("SENSING_ORBIT_NUMBER"))
        assert identity.platform == tag("SPACECRAFT_NAME").lower()
        assert tag("PROCESSING_LEVEL") == f"Level-{identity.level[1:]}"  # type: ignore[index]
        started = datetime.fromisoformat(tag("PRODUCT_START_TIME"))
        assert identity.datetime == started.replace(microsecond=0)
        granule = re.search(r"GRANULE/L[12][AC]_T(\w{5})_", xml)
        assert granule and identity.tile == granule.group(1)


def _mtl(path: Path) -> dict[str, str]:
    pairs = re.findall(r"^\s*(\w+) = \"?([^\"\n]*)\"?$", path.read_text(), flags=re.M)
    return dict(pairs)


def test_parse_scene_id_landsat_mtl_agrees_with_ids() -> None:
    files = sorted(_realdata().rglob("*_MTL.txt"))
    assert len(files) >= 4
    for path in files:
        mtl = _mtl(path)
        product = parse_scene_id(mtl["LANDSAT_PRODUCT_ID"])
        scene = parse_scene_id(mtl["LANDSAT_SCENE_ID"])
        assert product.level == mtl.get("PROCESSING_LEVEL", mtl.get("DATA_TYPE"))  # C2 / C1 MTL
        assert product.collection_number == int(mtl["COLLECTION_NUMBER"])
        assert product.collection_category == mtl["COLLECTION_CATEGORY"]
        assert product.platform == mtl["SPACECRAFT_ID"].lower().replace("_", "-")
        assert product.sensor == mtl["SENSOR_ID"]
        wrs = f"{int(mtl['WRS_PATH']):03d}{int(mtl['WRS_ROW']):03d}"
        acquired = date.fromisoformat(mtl["DATE_ACQUIRED"])
        for identity in (product, scene):
            assert identity.tile == wrs
            assert identity.datetime.date() == acquired


@cache
def _json_bodies(root: Path) -> tuple[Any, ...]:
    """Every JSON document in realdata: recorded HTTP response bodies and JSON files."""
    bodies: list[Any] = []
    for path in sorted(root.rglob("*.yaml")):
        for interaction in yaml.safe_load(path.read_text(encoding="utf-8"))["interactions"]:
            body = interaction["response"]["body"]["string"]
            if body.lstrip().startswith("{"):
                bodies.append(json.loads(body))
    bodies += [json.loads(p.read_text(encoding="utf-8")) for p in sorted(root.rglob("*.json"))]
    return tuple(bodies)


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from _dicts(child)
    elif isinstance(value, list):
        for child in value:
            yield from _dicts(child)


def test_parse_scene_id_stac_item_properties_agree() -> None:
    checked = 0
    for body in _json_bodies(_realdata()):
        for props in _dicts(body):
            if isinstance(props.get("s2:product_uri"), str):
                identity = parse_scene_id(props["s2:product_uri"])
                tile = props.get("s2:mgrs_tile") or "{:02d}{}{}".format(  # Earth Search: mgrs:*
                    props["mgrs:utm_zone"], props["mgrs:latitude_band"], props["mgrs:grid_square"]
                )
                assert identity.tile == tile
                if props.get("sat:relative_orbit") is not None:
                    assert identity.relative_orbit == props["sat:relative_orbit"]
                assert identity.processing_baseline == props["s2:processing_baseline"]
                assert identity.platform == props["platform"].lower()
                checked += 1
            if isinstance(props.get("landsat:scene_id"), str) and "landsat:wrs_path" in props:
                identity = parse_scene_id(props["landsat:scene_id"])
                assert identity.wrs_path == int(props["landsat:wrs_path"])
                assert identity.wrs_row == int(props["landsat:wrs_row"])
                assert identity.platform == props.get("platform", identity.platform)
                checked += 1
    assert checked >= 40


def test_parse_scene_id_usgs_display_and_entity_ids_agree() -> None:
    pairs = [
        (d["displayId"], d["entityId"])
        for body in _json_bodies(_realdata())
        for d in _dicts(body)
        if isinstance(d.get("displayId"), str) and re.fullmatch(r"L\w{20}", str(d.get("entityId")))
    ]
    assert len(pairs) >= 5
    for display_id, entity_id in pairs:
        product, scene = parse_scene_id(display_id), parse_scene_id(entity_id)
        assert (product.tile, product.datetime, product.platform) == (
            scene.tile,
            scene.datetime,
            scene.platform,
        )


# --- catalog item ids -------------------------------------------------------------------------

STAC_COLLECTIONS = ("sentinel-2-l1c", "sentinel-2-l2a", "sentinel-2-c1-l2a", "landsat-c2-l2")


@pytest.mark.parametrize(
    ("item_id", "catalogs", "product_form"),
    [
        (
            "S2A_MSIL2A_20200731T080611_R078_T35MNM_20200818T062751",
            ("planetarycomputer",),
            "S2A_MSIL2A_20200731T080611_Nxxyy_R078_T35MNM_20200818T062751",
        ),
        (
            "S2A_13TDE_20231008_0_L2A",
            ("earthsearch",),
            "S2A_MSIL2A_20231008Thhmmss_Nxxyy_Rooo_T13TDE_<generation time>",
        ),
        (
            "S2B_T20EPT_20250731T131905_L2A",
            ("earthsearch",),
            "S2B_MSIL2A_20250731Thhmmss_Nxxyy_Rooo_T20EPT_<generation time>",
        ),
        (
            "LC09_L2SP_084068_20250722_02_T2",
            ("earthsearch", "planetarycomputer"),
            "LC09_L2SP_084068_20250722_<processing date YYYYMMDD>_02_T2",
        ),
    ],
)
def test_catalog_item_id_names_its_catalogs_and_the_product_form(
    item_id: str, catalogs: tuple[str, ...], product_form: str
) -> None:
    item = catalog_item_id(f" {item_id} ")
    assert item is not None
    assert (item.item_id, item.catalogs, item.product_form) == (item_id, catalogs, product_form)


@pytest.mark.parametrize(
    "value",
    [
        S2,  # product names are not item ids
        LANDSAT,
        "LC82210692020010LGN00",
        "S2A_OPER_MSI_L1C_TL_SGS__20181231T203637_A018414_T10SDG",  # a granule id
        "S2A_13TDE_20231008_0_L1B",  # no such level
        "S2E_T20EPT_20250731T131905_L2A",  # no such mission
        "S2A_MSIL2A_20200731T080611_R078_T35MNM",  # cut short
        "LC09_L2SP_084068_20250722_02_T3",  # no such tier
        "",
        5,
    ],
)
def test_catalog_item_id_is_none_for_other_ids(value: Any) -> None:
    assert catalog_item_id(value) is None


def test_item_id_problem_names_the_catalogs_and_the_product_name_to_use() -> None:
    item = catalog_item_id("S2A_MSIL2A_20200731T080611_R078_T35MNM_20200818T062751")
    assert isinstance(item, CatalogItemId)
    problem = item_id_problem(item, "scenes[2]", "cdse")
    assert problem.field == "scenes[2]"
    assert "Planetary Computer sentinel-2-l2a item id, which catalog 'cdse'" in problem.message
    assert "S2A_MSIL2A_20200731T080611_Nxxyy_R078_T35MNM_20200818T062751" in problem.fix
    assert "s2:product_uri" in problem.fix and "'planetarycomputer'" in problem.fix
    landsat = catalog_item_id("LC08_L2SP_221069_20200110_02_T1")
    assert landsat is not None
    fix = item_id_problem(landsat, "scenes[0]", "usgs").fix
    assert "landsat:product_id" in fix and "'earthsearch' or 'planetarycomputer'" in fix


def _recorded_items(root: Path) -> Iterator[dict[str, Any]]:
    """Every STAC item of the four collections in the recorded answers of realdata."""
    for path in sorted(root.rglob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        interactions = document.get("interactions", []) if isinstance(document, dict) else []
        for interaction in interactions:
            body = ((interaction.get("response") or {}).get("body") or {}).get("string")
            if not isinstance(body, str) or not body.startswith("{"):
                continue
            for feature in json.loads(body).get("features") or []:
                if isinstance(feature, dict) and feature.get("collection") in STAC_COLLECTIONS:
                    yield feature


def _form_pattern(product_form: str) -> re.Pattern[str]:
    """The product form's placeholders (``Nxxyy``, ``<...>``) as patterns of what they stand for."""
    pattern = re.escape(product_form)
    for placeholder, part in (
        (r"Nxxyy", r"N\d{4}"),
        (r"Rooo", r"R\d{3}"),
        (r"Thhmmss", r"T\d{6}"),
        (r"<generation\ time>", r"\d{8}T\d{6}"),
        (r"<processing\ date\ YYYYMMDD>", r"\d{8}"),
    ):
        pattern = pattern.replace(placeholder, part)
    return re.compile(pattern)


def test_catalog_item_id_recognises_every_recorded_catalog_item_and_its_product() -> None:
    items = list(_recorded_items(_realdata() / "pystac-client"))
    assert {item["collection"] for item in items} >= {"sentinel-2-l2a", "landsat-c2-l2"}
    for item in items:
        recognised = catalog_item_id(item["id"])
        assert recognised is not None, item["id"]
        props = item["properties"]
        product = props.get("s2:product_uri") or props.get("landsat:product_id")
        if product:  # Earth Search's v1 items name it too; the product id follows the form
            name = str(product).removesuffix(".SAFE")
            assert _form_pattern(recognised.product_form).fullmatch(name), (item["id"], name)
            assert catalog_item_id(name) is None  # a product name is never an item id
