"""Product metadata of every processing baseline: where quantification and offsets live.

Each MTD starts from a real one in ../shared/realdata (tests/helpers/s2_layouts.py says how it
is adapted to a baseline the samples lack, following the PSD): 02.00-02.14 have only
QUANTIFICATION_VALUE / BOA_QUANTIFICATION_VALUE; 04.00 on add RADIO_ADD_OFFSET (L1C) or
BOA_ADD_OFFSET (L2A) per band_id; Sen2Cor 2.4 (PSD 14.2) prefixed the L2A tags with ``L2A_``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from include.common.errors import InvalidInputError
from include.processors.products import parse_product_metadata
from tests.helpers import s2_layouts as lay


def _write(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("baseline", ["02.00", "02.01", "02.04", "02.05", "02.07", "02.09",
                                      "02.12", "02.14", "03.00", "03.01"])  # fmt: skip
def test_l1c_before_0400_has_no_offsets(tmp_path: Path, baseline: str) -> None:
    text = lay.set_baseline(lay.real_text(f"{lay.L1C_N0206}/MTD_MSIL1C.xml"), baseline)
    meta = parse_product_metadata(_write(tmp_path, text, "MTD_MSIL1C.xml"))
    assert meta.processing_baseline == baseline
    assert (meta.quantification_value, meta.offsets) == (10000.0, {})
    assert meta.reflectance_scale_offset("B04") == (pytest.approx(1e-4), 0.0)


@pytest.mark.parametrize("baseline", ["04.00", "05.00", "05.09", "05.10", "05.11"])
def test_l1c_from_0400_reads_radio_add_offset(tmp_path: Path, baseline: str) -> None:
    text = lay.set_baseline(lay.real_text(lay.L1C_N0509_MTD), baseline)
    meta = parse_product_metadata(_write(tmp_path, text, "MTD_MSIL1C.xml"))
    assert meta.processing_baseline == baseline
    assert meta.offsets == dict.fromkeys(lay.BANDS, -1000.0)
    # (DN - 1000) / 10000: DN 1000 is reflectance 0, DN 3000 is 0.2
    scale, offset = meta.reflectance_scale_offset("B12")
    assert 3000 * scale + offset == pytest.approx(0.2)
    assert 1000 * scale + offset == pytest.approx(0.0)


def test_l1c_offset_list_present_but_zero_gives_no_shift(tmp_path: Path) -> None:
    text = lay.real_text(lay.L1C_N0509_MTD).replace(
        ">-1000</RADIO_ADD_OFFSET>", ">0</RADIO_ADD_OFFSET>"
    )
    meta = parse_product_metadata(_write(tmp_path, text, "MTD_MSIL1C.xml"))
    assert meta.offsets == dict.fromkeys(lay.BANDS, 0.0)
    assert meta.reflectance_scale_offset("B04") == (pytest.approx(1e-4), 0.0)


def test_l1c_per_band_offsets_go_to_their_band_id(tmp_path: Path) -> None:
    text = lay.set_baseline(lay.real_text(f"{lay.L1C_N0206}/MTD_MSIL1C.xml"), "04.00")
    text = lay.add_offsets(text, {i: -1000.0 - i for i in range(13)})
    meta = parse_product_metadata(_write(tmp_path, text, "MTD_MSIL1C.xml"))
    assert meta.offsets["B01"] == -1000.0
    assert meta.offsets["B08"] == -1007.0 and meta.offsets["B8A"] == -1008.0
    assert meta.offsets["B12"] == -1012.0


def test_l1c_from_0400_without_its_offset_list_is_refused(tmp_path: Path) -> None:
    text = lay.set_baseline(lay.real_text(f"{lay.L1C_N0206}/MTD_MSIL1C.xml"), "05.10")
    with pytest.raises(
        InvalidInputError,
        match="baseline 05.10 has RADIO_ADD_OFFSET values but the file lists none",
    ):
        parse_product_metadata(_write(tmp_path, text, "MTD_MSIL1C.xml"))


@pytest.mark.parametrize("baseline", ["02.07", "02.11", "02.13", "02.14", "03.00"])
def test_l2a_before_0400_reads_boa_quantification_only(tmp_path: Path, baseline: str) -> None:
    text = lay.set_baseline(lay.real_text(f"{lay.L2A_N0214}/MTD_MSIL2A.xml"), baseline)
    meta = parse_product_metadata(_write(tmp_path, text, "MTD_MSIL2A.xml"))
    assert meta.level == "L2A" and meta.processing_baseline == baseline
    assert (meta.quantification_value, meta.offsets) == (10000.0, {})


@pytest.mark.parametrize("baseline", ["04.00", "05.00", "05.10"])
def test_l2a_from_0400_reads_boa_add_offset_not_a_radio_one(tmp_path: Path, baseline: str) -> None:
    text = lay.set_baseline(lay.real_text(f"{lay.L2A_N0214}/MTD_MSIL2A.xml"), baseline)
    text = lay.add_offsets(text, -1000)
    meta = parse_product_metadata(_write(tmp_path, text, "MTD_MSIL2A.xml"))
    assert meta.offsets == dict.fromkeys(lay.BANDS, -1000.0)
    assert meta.reflectance_scale_offset("B02") == (pytest.approx(1e-4), pytest.approx(-0.1))


def test_l2a_from_0400_without_boa_offsets_is_refused(tmp_path: Path) -> None:
    text = lay.set_baseline(lay.real_text(f"{lay.L2A_N0214}/MTD_MSIL2A.xml"), "04.00")
    with pytest.raises(
        InvalidInputError, match="04.00 has BOA_ADD_OFFSET values but the file lists none"
    ):
        parse_product_metadata(_write(tmp_path, text, "MTD_MSIL2A.xml"))


def test_local_sen2cor_baseline_9999_without_offsets_is_read(tmp_path: Path) -> None:
    # Sen2Cor run outside the ground segment writes N99.99 and no offsets before 04.00 input
    text = lay.set_baseline(lay.real_text(f"{lay.L2A_N0214}/MTD_MSIL2A.xml"), "99.99")
    meta = parse_product_metadata(_write(tmp_path, text, "MTD_MSIL2A.xml"))
    assert meta.offsets == {} and meta.quantification_value == 10000.0


def test_sen2cor_24_l2a_prefixed_tags_take_the_boa_value_not_the_l1c_one(tmp_path: Path) -> None:
    text = lay.sen2cor_24_mtd(
        lay.set_baseline(lay.real_text(f"{lay.L2A_N0214}/MTD_MSIL2A.xml"), "02.05"),
        boa_quantification=1000,
    )
    assert "<L2A_BOA_QUANTIFICATION_VALUE" in text and "<IMAGE_FILE>" not in text
    meta = parse_product_metadata(_write(tmp_path, text, "MTD_MSIL2A.xml"))
    assert meta.level == "L2A"
    assert meta.quantification_value == 1000.0  # L2A_BOA_..., not L1C_TOA_... (10000)
    assert meta.product_uri == "S2B_MSIL2A_20210122T133229_N0214_R081_T22HBD_20210122T155500"
    assert len(meta.image_files) == 35  # IMAGE_FILE_2A entries
    assert meta.image_files[0].rsplit("/", 1)[-1].startswith("L2A_T22HBD_")


def test_l2a_prefixed_boa_add_offset_is_read(tmp_path: Path) -> None:
    text = lay.set_baseline(lay.real_text(f"{lay.L2A_N0214}/MTD_MSIL2A.xml"), "04.00")
    text = lay.add_offsets(text, -1000).replace("BOA_ADD_OFFSET", "L2A_BOA_ADD_OFFSET")
    meta = parse_product_metadata(_write(tmp_path, text, "MTD_MSIL2A.xml"))
    assert meta.offsets == dict.fromkeys(lay.BANDS, -1000.0)


def test_oper_format_product_metadata_reads_image_ids(tmp_path: Path) -> None:
    safe = lay.oper_l1c_safe(tmp_path, ("31TDH",))
    (mtd,) = safe.glob("S2A_OPER_MTD_SAFL1C_PDMC_*.xml")
    meta = parse_product_metadata(mtd)
    assert meta.level == "L1C" and meta.processing_baseline == "02.04"
    assert meta.quantification_value == 10000.0 and meta.offsets == {}
    assert meta.product_uri is not None and meta.product_uri.startswith("S2A_OPER_PRD_MSIL1C_PDMC_")
    assert len(meta.image_files) == 13
