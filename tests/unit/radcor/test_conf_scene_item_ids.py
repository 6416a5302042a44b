"""``scenes`` given as catalog item ids: taken for the catalog that names items so, refused else."""

from __future__ import annotations

from typing import Any

import pytest

from include.common.errors import InvalidInputError
from include.radcor.validation import validate_request

PC_S2 = "S2A_MSIL2A_20200731T080611_R078_T35MNM_20200818T062751"
ES_S2 = "S2A_13TDE_20231008_0_L2A"
ES_C1 = "S2B_T20EPT_20250731T131905_L2A"
LANDSAT_ITEM = "LC09_L2SP_084068_20250722_02_T2"
S2_PRODUCT = "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429"


def _conf(catalog: str, dataset: str, *scenes: str) -> dict[str, Any]:
    return {"catalog": catalog, "dataset": dataset, "scenes": list(scenes), "action": "preview"}


@pytest.mark.parametrize(
    ("catalog", "dataset", "scenes"),
    [
        ("PlanetaryComputer", "S2MSI2A", (PC_S2,)),
        ("planetarycomputer", "landsat_ot_c2_l2", (LANDSAT_ITEM,)),
        ("EarthSearch", "S2MSI2A", (ES_C1, ES_S2)),
        ("earthsearch", "landsat_ot_c2_l2", (LANDSAT_ITEM,)),
    ],
)
def test_scenes_item_ids_of_the_catalog_are_kept_as_given(
    catalog: str, dataset: str, scenes: tuple[str, ...]
) -> None:
    conf = validate_request(_conf(catalog, dataset, *scenes))
    assert conf.scenes == list(scenes)


def test_scenes_mix_item_ids_and_product_names_of_one_catalog() -> None:
    conf = validate_request(_conf("earthsearch", "S2MSI1C", ES_S2, S2_PRODUCT.lower()))
    assert conf.scenes == [ES_S2, S2_PRODUCT]


@pytest.mark.parametrize(
    ("catalog", "dataset", "scene", "source", "product", "use"),
    [
        (
            "cdse",
            "S2MSI2A",
            PC_S2,
            "a Planetary Computer sentinel-2-l2a item id, which catalog 'cdse' does not know",
            "S2A_MSIL2A_20200731T080611_Nxxyy_R078_T35MNM_20200818T062751",
            "'planetarycomputer'",
        ),
        (
            "usgs",
            "landsat_ot_c2_l2",
            LANDSAT_ITEM,
            "landsat-c2-l2 item id, which catalog 'usgs' does not know",
            "LC09_L2SP_084068_20250722_<processing date YYYYMMDD>_02_T2",
            "'earthsearch' or 'planetarycomputer'",
        ),
        (
            "planetarycomputer",
            "S2MSI2A",
            ES_C1,
            "an Earth Search sentinel-2-c1-l2a item id, which catalog 'planetarycomputer'",
            "S2B_MSIL2A_20250731Thhmmss_Nxxyy_Rooo_T20EPT_<generation time>",
            "'earthsearch'",
        ),
    ],
)
def test_scenes_item_id_of_another_catalog_refused_naming_it_and_the_product_name(
    catalog: str, dataset: str, scene: str, source: str, product: str, use: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        validate_request(_conf(catalog, dataset, S2_PRODUCT, scene))
    [problem] = [p for p in caught.value.problems if p.field.startswith("scenes")]
    assert problem.field == "scenes[1]"
    assert source in problem.message
    assert product in problem.fix and f"search catalog {use}" in problem.fix
