"""The upstream guide's curl calls, replayed literally against a started Airflow.

Bodies and paths are the guide's (``tests/helpers/upstream_guide.py``, from the upstream's
``USING.rst``); only the host and the auth header differ. The catalogs the guide names, ``ESA``
(CDSE) and ``USGS``, are loopback servers here: the stack's configuration folder points their
URLs there, as a deployer would, and Connections ``cdse_default`` and ``usgs_default`` hold
their test accounts. Each serves one product the guide's request finds: a Sentinel-2 L2A of
tile 18LUN on 2023-02-07 (real L2A metadata moved there) and a Landsat-8 L1TP of 221069 on
2020-02-23 (real L1TP metadata moved there).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import packages as pk
from tests.helpers import upstream_guide
from tests.helpers.airflow_stack import REPO, AirflowStack, postgres_ready, started_stack
from tests.helpers.cdse_server import CdseServer
from tests.helpers.m2m_server import APP_TOKEN, USERNAME, M2MServer, scene_from_mtl
from tests.helpers.realdata import realdata

S2_PRODUCT = "S2A_MSIL2A_20230207T152641_N0509_R025_T18LUN_20230207T203042"
GUIDE_S2 = pk.S2Relocation(
    S2_PRODUCT, epsg=32718, upper_left=(199960, 8800040), utm_zone="18S", boa_offset=-1000
)
"""Tile 18LUN (UTM 18S): the real N0214 L2A metadata moved to the guide's tile and day."""
L8_PRODUCT = "LC08_L1TP_221069_20200223_20200822_02_T1"
L8_CENTER = (-47.3, -13.0)
"""Inside the guide's bbox (w -48.33, s -14.07, e -46.22, n -11.96)."""


def landsat_l1tp_at(product_id: str, center_lonlat: tuple[float, float], zone: int) -> Any:
    """The real LC08 L1TP MTL moved to ``product_id``'s path/row and date; rasters generated."""
    folder = realdata(pk.LANDSAT_L1TP_OLI)
    odl = (folder / f"{folder.name}_MTL.txt").read_text(encoding="utf-8")
    pathrow, day = product_id.split("_")[2:4]
    values = pk.moved_scene_values(
        path=int(pathrow[:3]), row=int(pathrow[3:]), acquired=f"{day[:4]}-{day[4:6]}-{day[6:]}",
        center_lonlat=center_lonlat, zone=zone,
    )  # fmt: skip
    xml = pk.derived_mtl_xml(pk._xml_from_odl(odl), product_id=product_id, values=values)
    return pk.landsat_package(mtl_xml=xml, derivation=f"L1TP MTL moved to {product_id}")


def _local_config(folder: Path, cdse: CdseServer, m2m: M2MServer) -> Path:
    """A copy of ``config/`` with CDSE and USGS at the loopback servers, no other providers."""
    shutil.copytree(REPO / "config", folder)
    catalogs_path = folder / "catalogs.yaml"
    catalogs = yaml.safe_load(catalogs_path.read_text())
    catalogs["catalogs"]["cdse"]["url"] = cdse.odata_url
    cdse_options = catalogs["catalogs"]["cdse"].setdefault("options", {})
    cdse_options["token_url"] = cdse.token_url
    catalogs["catalogs"]["usgs"]["url"] = m2m.url
    catalogs_path.write_text(yaml.safe_dump(catalogs))
    collections_path = folder / "collections.yaml"
    collections = yaml.safe_load(collections_path.read_text())
    for name, catalog in (("S2_L2A-1", "cdse"), ("LC8_DN-1", "usgs")):
        entry = collections["collections"][name]
        entry["providers"] = [p for p in entry.get("providers", []) if p["catalog"] == catalog]
        assert entry["providers"], f"{name} has no {catalog} provider in config/collections.yaml"
    collections_path.write_text(yaml.safe_dump(collections))
    return folder


@pytest.fixture(scope="module")
def guide_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    if not postgres_ready():
        pytest.skip("e2e tests need PostgreSQL on 127.0.0.1:5432 and psql (make test has both)")
    s2 = pk.s2_package(pk.S2_L2A_N0214_T22HBD, relocation=GUIDE_S2)
    l8 = landsat_l1tp_at(L8_PRODUCT, L8_CENTER, zone=23)
    work = tmp_path_factory.mktemp("guide")
    cdse = CdseServer()
    realdata("kapadia-usgs")
    m2m = M2MServer(realdata("usgs-m2m-docs").parent)
    try:
        cdse.add_s2_product(
            s2.name + ".SAFE",
            s2.zip_bytes,
            footprint=s2.metadata.footprint,
            cloud_pct=12.0,
            quicklook=True,
        )
        scene = scene_from_mtl(l8.write_mtl(work), "landsat_ot_c2_l1")
        scene.archive = l8.tar_bytes
        m2m.add_scene(scene)
        env = {
            "COLLECTION_BUILDER_CONFIG_DIR": str(_local_config(work / "config", cdse, m2m)),
            "AIRFLOW_CONN_CDSE_DEFAULT": json.dumps(
                {"conn_type": "http", "login": "alice", "password": "s3cret"}
            ),
            "AIRFLOW_CONN_USGS_DEFAULT": json.dumps(
                {"conn_type": "http", "login": USERNAME, "password": APP_TOKEN}
            ),
        }
        with started_stack(tmp_path_factory.mktemp("e2e-guide-var"), extra_env=env) as stack:
            yield stack
    finally:
        cdse.close()
        m2m.close()


def _post_guide(stack: AirflowStack, body: dict[str, Any]) -> dict[str, Any]:
    with stack.client() as client:
        response = client.post(
            upstream_guide.RADCOR_PATH,
            content=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _check_entry(entry: dict[str, Any], scene_id: str, kind: str, tile: str) -> None:
    assert tuple(entry)[: len(upstream_guide.PREVIEW_ENTRY_KEYS)] == (
        upstream_guide.PREVIEW_ENTRY_KEYS
    )
    assert entry["sceneid"] == scene_id
    assert entry["type"] == kind
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", entry["date"])
    assert isinstance(entry["cloud"], float)
    assert entry["footprint"].startswith(("POLYGON", "MULTIPOLYGON"))
    assert entry["tileid"] == entry["pathrow"] == tile
    assert re.fullmatch(upstream_guide.SIZE_RE, entry["size"]), entry["size"]
    assert entry["link"].startswith("http")


def test_guide_sentinel2_example_runs_and_answers_the_guides_shape(
    guide_stack: AirflowStack,
) -> None:
    result = _post_guide(guide_stack, copy.deepcopy(upstream_guide.SENTINEL2))
    assert result["Results"] == 1
    entry = result[S2_PRODUCT]
    _check_entry(entry, S2_PRODUCT, "MSIL2A", "18LUN")
    assert entry["date"] == "2023-02-07"
    assert entry["icon"] and "Assets(" in entry["icon"]
    (run,) = result["runs"]
    assert guide_stack.wait_for_run(run["run_id"])["state"] == "success", guide_stack.logs()


def test_guide_landsat8_example_runs_and_answers_the_guides_shape(
    guide_stack: AirflowStack,
) -> None:
    result = _post_guide(guide_stack, copy.deepcopy(upstream_guide.LANDSAT8))
    assert result["Results"] == 1
    _check_entry(result[L8_PRODUCT], L8_PRODUCT, "L1TP", "221069")
    assert result[L8_PRODUCT]["date"] == "2020-02-23"
    (run,) = result["runs"]
    assert guide_stack.wait_for_run(run["run_id"])["state"] == "success", guide_stack.logs()


def test_guide_restart_by_identifier_literally(guide_stack: AirflowStack) -> None:
    # activity 1 is the first the stack recorded: the Sentinel-2 example's download
    with guide_stack.client() as client:
        response = client.get(
            upstream_guide.RESTART_PATH, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["action"], body["total"]) == ("PREVIEW", 1)
    (activity,) = body["activities"]
    assert activity["id"] == 1
    assert {"sceneid", "activity_type", "collection_id", "status"} <= set(activity)
