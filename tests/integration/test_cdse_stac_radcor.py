"""Real ``dag.test()`` runs of radcor against the loopback CDSE STAC API (catalog CDSE-STAC).

The server (tests/helpers/cdse_stac_server.py) answers CDSE's STAC search with items in CDSE's
shape, whose ``Product`` asset points at the loopback OData ``$value`` endpoint that serves the
product zip (zipped from real SAFE metadata files) behind a Keycloak bearer token. The Airflow
Connection ``cdse_default`` comes from ``AIRFLOW_CONN_CDSE_DEFAULT`` (JSON), which the task SDK
reads; the conf points ``catalog_args.url`` and ``token_url`` at the loopback server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.radcor.activities import ActivityStore
from tests.helpers.cdse_server import mtd_footprint, safe_zip
from tests.helpers.cdse_stac_server import CdseStacServer
from tests.helpers.dag_runs import report, task_states
from tests.helpers.realdata import realdata, realdata_dir

REPO = Path(__file__).resolve().parents[2]
REAL = "S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248"
SECOND = "S2B_MSIL1C_20210913T042659_N0301_R133_T46RER_20210913T065913"
"""A second product of the same tile, zipped from the same real SAFE metadata files."""
PASSWORD = "s3cret"  # noqa: S105 - the loopback server's test account


def _realdata() -> Path:
    realdata(f"stactools-sentinel2/{REAL}.SAFE")
    return realdata_dir()


@pytest.fixture(scope="module")
def cdse_stac() -> Iterator[tuple[CdseStacServer, dict[str, bytes], dict[str, Any]]]:
    realdata = _realdata()
    safe = realdata / "stactools-sentinel2" / f"{REAL}.SAFE"
    footprint = mtd_footprint(safe / "MTD_MSIL1C.xml")
    server = CdseStacServer()
    zips = {}
    for name, cloud, checksum in ((REAL, 7.5, "md5"), (SECOND, 31.0, "blake3")):
        zips[name] = safe_zip(
            name,
            {"manifest.safe": safe / "manifest.safe", "MTD_MSIL1C.xml": safe / "MTD_MSIL1C.xml"},
        )
        server.add_s2_item(
            name,
            zips[name],
            footprint=footprint,
            cloud_pct=cloud,
            checksum=checksum,
            safe_suffix=name == SECOND,
        )
    try:
        yield server, zips, footprint
    finally:
        server.close()


def _conf(server: CdseStacServer, footprint: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    from shapely.geometry import shape

    w, s, e, n = shape(footprint).bounds
    conf: dict[str, Any] = {
        "tiles": None,  # dag.test keeps Params of earlier runs in this process
        "geom": None,
        "scenes": None,
        "w": w,
        "s": s,
        "e": e,
        "n": n,
        "catalog": "CDSE-STAC",
        "catalog_args": {"url": server.stac_url, "token_url": server.token_url},
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


def test_radcor_cdse_stac_preview_lists_the_products(
    radcor_dag: Any,
    cdse_stac: tuple[CdseStacServer, dict[str, bytes], dict[str, Any]],
    cdse_connection: None,
    data_dir: Path,
) -> None:
    server, zips, footprint = cdse_stac
    grants_before = len(server.grants)
    run = radcor_dag.test(run_conf=_conf(server, footprint, action="preview", cloud=50))
    assert str(run.state) == "success", task_states(run)
    preview = report(run)
    assert preview["Results"] == 2
    entry = preview[REAL]
    assert entry["sceneid"] == REAL
    assert entry["tileid"] == "46RER"
    assert entry["cloud"] == 7.5
    assert entry["type"] == "MSIL1C"  # the product-name part, as the upstream guide shows
    assert entry["provider"] == "cdse-stac"
    assert entry["link"] == f"{server.stac_url}/collections/sentinel-2-l1c/items/{REAL}"
    assert entry["footprint"].startswith("POLYGON")
    assert SECOND in preview  # its item id carries .SAFE; the scene id does not
    assert not (data_dir / "archive").exists()
    assert len(server.grants) == grants_before  # previewing needs no login
    assert all(
        r.method == "POST" and "authorization" not in r.headers for r in server.search_requests()
    )


def test_radcor_cdse_stac_start_downloads_verified_product_zips(
    radcor_dag: Any,
    cdse_stac: tuple[CdseStacServer, dict[str, bytes], dict[str, Any]],
    cdse_connection: None,
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    server, zips, footprint = cdse_stac
    grants_before = len(server.grants)
    run = radcor_dag.test(run_conf=_conf(server, footprint))
    assert str(run.state) == "success", task_states(run)
    for name, content in zips.items():
        target = data_dir / "archive" / "S2_L1C-1" / "46RER" / "2021" / "09" / name / f"{name}.zip"
        assert target.read_bytes() == content
        assert list(target.parent.iterdir()) == [target]  # the zip alone: no per-file assets
    activities = ActivityStore().for_run(run.run_id)
    assert {a.status for a in activities} == {"success"}
    assert {a.provider for a in activities} == {"cdse-stac"}
    assert {a.catalog for a in activities} == {"cdse-stac"}
    checksums = {a.key.scene_id: a.checksum for a in activities}
    assert checksums[REAL] is not None and checksums[REAL].startswith("md5:")  # as the item says
    assert checksums[SECOND] is not None and checksums[SECOND].startswith("blake3:")
    assert len(server.grants) > grants_before  # logged in with the Connection's password
    assert not any("/Nodes(" in r.path for r in server.requests)
    logs = caplog.text + "".join(capfd.readouterr())
    assert "download.done" in logs  # the task logs were captured
    assert server.issued_tokens
    for token in server.issued_tokens:
        assert token not in logs
    assert PASSWORD not in logs


def test_radcor_cdse_stac_scenes_field_finds_products_by_name(
    radcor_dag: Any,
    cdse_stac: tuple[CdseStacServer, dict[str, bytes], dict[str, Any]],
    cdse_connection: None,
    data_dir: Path,
) -> None:
    server, _, footprint = cdse_stac
    conf = _conf(
        server,
        footprint,
        action="preview",
        scenes=[SECOND],
        w=None,
        s=None,
        e=None,
        n=None,
        start=None,
        end=None,
    )
    run = radcor_dag.test(run_conf=conf)
    assert str(run.state) == "success", task_states(run)
    preview = report(run)
    assert preview["Results"] == 1
    assert preview[SECOND]["tileid"] == "46RER"
    body = server.search_requests()[-1].json()
    assert body["ids"] == [SECOND, f"{SECOND}.SAFE"]
