"""The upstream's check-scenes request as a gap check conf, and the gap report as its answer."""

from __future__ import annotations

import pytest
from radcor_api.upstream_check import check_answer, check_conf

from include.common.errors import InvalidInputError
from include.radcor.gaps import GapCell, GapReport

REQUEST = {
    "catalog": "CDSE",
    "dataset": "S2MSI1C",
    "collections": ["S2_L1C-1", "S2_L2A-1"],
    "start_date": "2020-01-01",
    "end_date": "2020-01-31",
}


def test_bbox_and_tiles_become_the_conf_area_and_collections_publish_nodes() -> None:
    by_bbox = check_conf({**REQUEST, "bbox": [-46, -13, -45, -12], "catalog_kwargs": {"limit": 5}})
    by_tile = check_conf({**REQUEST, "grid": "MGRS", "tiles": ["23LLF"], "only_tiles": True})
    assert (by_bbox["w"], by_bbox["s"], by_bbox["e"], by_bbox["n"]) == (-46, -13, -45, -12)
    assert by_bbox["catalog_search_args"] == {"limit": 5}
    assert (by_bbox["start"], by_bbox["end"], by_bbox["action"]) == (
        "2020-01-01",
        "2020-01-31",
        "preview",
    )
    assert [t["collection"] for t in by_bbox["tasks"]] == REQUEST["collections"]
    assert {t["type"] for t in by_bbox["tasks"]} == {"publish"}
    assert by_tile["tiles"] == ["23LLF"] and "w" not in by_tile


@pytest.mark.parametrize(
    ("request_", "fields"),
    [
        ({**REQUEST, "grid": "MGRS"}, {"tiles", "bbox"}),
        ({**REQUEST, "bbox": [1, 2, 3]}, {"bbox"}),
        ({"bbox": [1, 2, 3, 4], "satsen": "S2"}, {"satsen", *REQUEST}),
        ({**REQUEST, "tiles": ["23LLF"], "collections": "S2_L1C-1"}, {"collections"}),
    ],
)
def test_bad_requests_name_each_field(request_: dict[str, object], fields: set[str]) -> None:
    with pytest.raises(InvalidInputError) as raised:
        check_conf(request_)
    assert {p.field for p in raised.value.problems} == fields


def test_answer_per_collection_as_the_upstream() -> None:
    cells = (
        GapCell("23LLF", "2020-01", ("A", "B"), {"L1C": ("A", "B"), "L2A": ("A",)}, ("B",)),
        GapCell("23LLG", "2020-01", ("C",), {"L1C": (), "L2A": ()}, ("C",)),
    )
    answer = check_answer(GapReport(("L1C", "L2A"), cells))
    assert answer["total_external"] == 3
    l1c, l2a = answer["collections"]["L1C"], answer["collections"]["L2A"]
    assert (l1c["total_scenes"], l1c["total_missing"], l1c["missing_external"]) == (2, 1, ["C"])
    assert (l1c["missing_L2A"], l1c["total_missing_L2A"]) == (["B"], 1)
    assert (l2a["total_scenes"], l2a["missing_external"], l2a["missing_L1C"]) == (1, ["B", "C"], [])
    assert l1c["scenes"] == l2a["scenes"] == ["A", "B", "C"]
