"""Scale in ``search``: too many scenes fail before any work; a large search streams.

A run with more scenes than child runs can hold fails in ``search``, before any work. The split
into child runs itself (35 scenes in child runs of 10) needs a scheduler and a triggerer:
tests/e2e/test_scale_child_runs.py. A year over a large area with more products than one
catalog search lists is planned from a split search streamed page by page into the run-scenes
table (``run_planning.stage_search``), every product once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cdse_server import CdseServer, s2_product_entity
from tests.helpers.demo_confs import year_download_conf

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def catalog_35(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from include.demo.build import build_demo_catalog
    from include.demo.server import serve

    root = tmp_path_factory.mktemp("catalog-35")
    build_demo_catalog(root, scenes=35, size_px=32)
    with serve(root, port=0) as server:
        yield server.url


def test_radcor_more_scenes_than_child_runs_hold_fails_in_search_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
    catalog_35: str,
    data_dir: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "5")  # 5 child runs of 5: 25 < 35
    monkeypatch.setenv("AIRFLOW__COLLECTION_BUILDER__SCENES_PER_RUN", "10")  # at most 5
    dag = DagBag(dag_folder=str(REPO / "dags" / "radcor.py")).dags["radcor"]
    run = dag.test(run_conf=year_download_conf(catalog_35))
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "failed"
    assert states[("search", -1)] == "failed"
    output = "".join(capfd.readouterr())
    assert "35 scenes exceed the 25 one run can hold (5 child runs x 5 scenes)" in output
    assert "raise [collection_builder] scenes_per_run" in output
    assert not (data_dir / "archive").exists()


def test_radcor_start_run_with_a_stored_preview_stores_its_plans_too(
    monkeypatch: pytest.MonkeyPatch, catalog_35: str, data_dir: Path
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from include.radcor import preview as preview_module
    from include.radcor.run_scenes import RunScenes

    # a preview of more than INLINE_PREVIEW_SCENES (1,000) goes to the run-scenes table, as the
    # plans do: both for the same run and indexes (a start run of 10,000 scenes failed so)
    monkeypatch.setattr(preview_module, "INLINE_PREVIEW_SCENES", 10)
    dag = DagBag(dag_folder=str(REPO / "dags" / "radcor.py")).dags["radcor"]
    run = dag.test(run_conf=year_download_conf(catalog_35))
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    preview = run.get_task_instance("search").xcom_pull(task_ids="search", key="preview")
    assert preview["Results"] == 35 and preview["table"] == "radcor_run_scenes"
    assert RunScenes().count(run.run_id, "preview") == RunScenes().count(run.run_id, "plan") == 35
    downloads = [s for (task_id, _), s in states.items() if task_id == "scene.download_demo"]
    assert downloads == ["success"] * 35


# -- a year over a large area: more products than one CDSE search lists, streamed to the table

AREA = (-60.0, -30.0, -40.0, -10.0)
YEAR_START = datetime(2024, 1, 1, tzinfo=UTC)
TILES = ("23LLF", "32TQM", "33UUP", "46RER")


def _fill_cdse(server: CdseServer, count: int, *, reprocessed: int) -> list[str]:
    """Serve ``count`` products over 2024 (older processings of ``reprocessed``); ids by time."""
    step = timedelta(days=366) / count
    expected = []
    for index in range(count):
        sensed = (YEAR_START + step * index).replace(microsecond=0)
        stamp = sensed.strftime("%Y%m%dT%H%M%S")
        w, s = AREA[0] + index % 19, AREA[1] + (index // 19) % 19
        ring = [[w, s], [w + 1, s], [w + 1, s + 1], [w, s + 1], [w, s]]
        footprint = {"type": "Polygon", "coordinates": [ring]}
        for baseline in ("N0510", "N0400") if index < reprocessed else ("N0510",):
            name = f"S2A_MSIL1C_{stamp}_{baseline}_R008_T{TILES[index % 4]}_{stamp}"
            entity = s2_product_entity(f"{name}.SAFE", b"x", footprint=footprint, checksums=())
            server.add_product(entity)
        expected.append(f"S2A_MSIL1C_{stamp}_N0510_R008_T{TILES[index % 4]}_{stamp}")
    return expected


def test_plan_run_streams_a_split_search_into_the_scenes_table(data_dir: Path) -> None:
    from include.catalog.static_stac import StaticStacBackend
    from include.collectors.cdse_odata import CdseODataDriver
    from include.radcor.run_planning import FOUND, plan_run
    from include.radcor.run_scenes import RunScenes
    from include.radcor.validation import validate_request

    store = RunScenes()
    run_id = "scale-stream-1"
    staged_when_asked: list[int] = []
    with CdseServer() as server:
        expected = _fill_cdse(server, 2400, reprocessed=100)
        server.max_skip = 300  # one search lists 300 products at most: the year is split
        server.on_search = lambda request: staged_when_asked.append(store.count(run_id, FOUND))
        conf = validate_request(
            {
                "w": AREA[0], "s": AREA[1], "e": AREA[2], "n": AREA[3],
                "catalog": "cdse", "dataset": "S2MSI1C",
                "start": "2024-01-01T00:00:00", "end": "2024-12-31T23:59:59",
                "action": "start", "tasks": [{"type": "download", "collection": "S2_L1C-1"}],
            }
        )  # fmt: skip
        plan = plan_run(
            conf,
            run_id=run_id,
            driver_factory=lambda name: CdseODataDriver(
                url=server.odata_url,
                options={"catalog": name, "page_size": 100, "max_skip": 300, "timeout_s": 30},
            ),
            backend=StaticStacBackend(data_dir / "stac"),
            scenes_per_run=1000,
            max_runs=10,
            store=store,
        )
    assert plan.scene_count == 2400 and [len(r) for r in plan.child_ranges] == [1000, 1000, 400]
    # every product once, its newest processing, oldest first, in the plans and the preview
    assert store.scene_ids(run_id, "plan", range(2400)) == expected
    assert store.scene_ids(run_id, "preview", range(2400)) == expected
    assert plan.preview["Results"] == 2400
    stored = json.loads(Path(plan.preview["file"]).read_text(encoding="utf-8"))
    assert list(stored) == [*expected, "Results"]
    assert store.count(run_id, FOUND) == 0  # the staging rows are gone
    # streamed: pages were stored while the search was still asking the catalog
    assert staged_when_asked[0] == 0
    assert len(set(staged_when_asked)) > 3 and 0 < staged_when_asked[-1] < 2400


def test_radcor_preview_of_a_year_past_the_catalogs_cap_lists_every_product_once(
    radcor_dag: Any, cdse_connection: None, data_dir: Path
) -> None:
    with CdseServer() as server:
        expected = _fill_cdse(server, 2400, reprocessed=100)
        server.max_skip = 300  # the catalog lists 400 a search; the driver learns it by $count
        conf = {
            "w": AREA[0], "s": AREA[1], "e": AREA[2], "n": AREA[3],
            "catalog": "CDSE",
            "catalog_args": {"url": server.odata_url, "token_url": server.token_url},
            "dataset": "S2MSI1C",
            "start": "2024-01-01T00:00:00", "end": "2024-12-31T23:59:59",
            "action": "preview",
        }  # fmt: skip
        run = radcor_dag.test(run_conf=conf)
    assert str(run.state) == "success"
    preview = run.get_task_instance("search").xcom_pull(task_ids="search", key="preview")
    assert preview["Results"] == 2400 and preview["table"] == "radcor_run_scenes"
    stored = json.loads(Path(preview["file"]).read_text(encoding="utf-8"))
    assert list(stored) == [*expected, "Results"]
