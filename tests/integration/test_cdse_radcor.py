"""Real ``dag.test()`` runs of the radcor DAG against the loopback CDSE (tests/helpers/cdse_server).

The Airflow Connection ``cdse_default`` comes from ``AIRFLOW_CONN_CDSE_DEFAULT`` (JSON), which the
task SDK reads; the conf points ``catalog_args.url`` and ``token_url`` at the loopback server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.radcor.activities import ActivityStore
from tests.helpers.cdse_server import CdseServer, mtd_footprint, safe_zip
from tests.helpers.dag_runs import report, task_states
from tests.helpers.realdata import realdata, realdata_dir

REPO = Path(__file__).resolve().parents[2]
REAL = "S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248"
SECOND = "S2B_MSIL1C_20210913T042659_N0301_R133_T46RER_20210913T065913"
"""A second product of the same tile, zipped from the same real SAFE metadata files."""


def _realdata() -> Path:
    realdata(f"stactools-sentinel2/{REAL}.SAFE")
    return realdata_dir()


@pytest.fixture(scope="module")
def cdse() -> Iterator[tuple[CdseServer, dict[str, bytes], dict[str, Any]]]:
    realdata = _realdata()
    safe = realdata / "stactools-sentinel2" / f"{REAL}.SAFE"
    footprint = mtd_footprint(safe / "MTD_MSIL1C.xml")
    server = CdseServer()
    zips = {}
    for name, cloud in ((REAL, 7.5), (SECOND, 31.0)):
        zips[name] = safe_zip(
            name,
            {"manifest.safe": safe / "manifest.safe", "MTD_MSIL1C.xml": safe / "MTD_MSIL1C.xml"},
        )
        server.add_s2_product(name + ".SAFE", zips[name], footprint=footprint, cloud_pct=cloud)
    sentinel1 = realdata / "cdsetool" / "query" / "mock" / "sentinel_1"
    if sentinel1.is_dir():
        server.load_recorded_pages(sentinel1)  # other collections the filter must leave out
    try:
        yield server, zips, footprint
    finally:
        server.close()


def _conf(server: CdseServer, footprint: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    from shapely.geometry import shape

    w, s, e, n = shape(footprint).bounds
    conf: dict[str, Any] = {
        "w": w,
        "s": s,
        "e": e,
        "n": n,
        "catalog": "CDSE",
        "catalog_args": {"url": server.odata_url, "token_url": server.token_url},
        "dataset": "S2MSI1C",
        "start": "2021-09-01T00:00:00",
        "end": "2021-09-30T23:59:59",
        "cloud": 100,
        "action": "start",
        "force": False,
        "tasks": [{"type": "download", "collection": "S2_L1C-1", "args": {}}],
    }
    conf.update(overrides)
    return conf


def test_radcor_cdse_preview_lists_the_s2_products_only(
    radcor_dag: Any,
    cdse: tuple[CdseServer, dict[str, bytes], dict[str, Any]],
    cdse_connection: None,
    data_dir: Path,
) -> None:
    server, _, footprint = cdse
    run = radcor_dag.test(run_conf=_conf(server, footprint, action="preview", cloud=50))
    assert str(run.state) == "success", task_states(run)
    preview = report(run)
    assert preview["Results"] == 2
    entry = preview[REAL]
    assert entry["tileid"] == "46RER"
    assert entry["cloud"] == 7.5
    assert entry["type"] == "MSIL1C"  # the product-name part, as the upstream guide shows
    assert entry["provider"] == "cdse"
    assert entry["link"].startswith(server.odata_url + "/Products(")
    assert entry["footprint"].startswith("POLYGON")
    assert not (data_dir / "archive").exists()


def test_radcor_scihub_alias_downloads_verified_zips_from_cdse(
    radcor_dag: Any,
    cdse: tuple[CdseServer, dict[str, bytes], dict[str, Any]],
    cdse_connection: None,
    data_dir: Path,
) -> None:
    server, zips, footprint = cdse
    grants_before = len(server.grants)
    run = radcor_dag.test(run_conf=_conf(server, footprint, catalog="SciHub"))
    assert str(run.state) == "success", task_states(run)
    for name, content in zips.items():
        target = data_dir / "archive" / "S2_L1C-1" / "46RER" / "2021" / "09" / name / f"{name}.zip"
        assert target.read_bytes() == content
    activities = ActivityStore().for_run(run.run_id)
    assert {a.status for a in activities} == {"success"}
    assert {a.provider for a in activities} == {"cdse"}
    assert all(a.checksum and a.checksum.startswith("blake3:") for a in activities)
    assert len(server.grants) > grants_before  # logged in with the Connection's password
