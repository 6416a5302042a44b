"""A run larger than ``scenes_per_run`` (10 in this stack) runs its scenes in child DAG runs.

35 scenes: the parent maps no scene itself, starts 4 runs of ``radcor_scenes`` (10, 10, 10, 5
scenes) and waits for them; its report adds up every scene. One scene's band is hidden, so
its child run and the parent fail; the restart endpoint then reruns that scene in its child
run, the parent waits for that child again and succeeds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.airflow_stack import SCENES_PER_RUN, AirflowStack
from tests.helpers.demo_confs import year_download_conf

SCENES = 35


@pytest.fixture(scope="module")
def catalog_35(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, list[str]]]:
    from include.demo.build import build_demo_catalog
    from include.demo.server import serve

    root = tmp_path_factory.mktemp("catalog-35")
    items = build_demo_catalog(root, scenes=SCENES, size_px=32)
    with serve(root, port=0) as server:
        by_date = sorted(items, key=lambda item: item["properties"]["datetime"])
        yield server.url, root, [str(item["id"]) for item in by_date]  # the search's order


def _child_runs(client: httpx.Client, parent_run_id: str) -> list[dict[str, Any]]:
    runs = client.get("/api/v2/dags/radcor_scenes/dagRuns", params={"limit": 100}).json()
    return sorted(
        (r for r in runs["dag_runs"] if r["conf"].get("parent_run_id") == parent_run_id),
        key=lambda r: r["conf"]["start"],
    )


def _downloads(client: httpx.Client, run_ids: list[str]) -> list[dict[str, Any]]:
    found = []
    for run_id in run_ids:
        url = f"/api/v2/dags/radcor_scenes/dagRuns/{run_id}/taskInstances"
        tis = client.get(url, params={"task_id": "scene.download_demo", "limit": 100}).json()
        found += tis["task_instances"]
    return found


def _report(client: httpx.Client, run_id: str) -> Any:
    url = f"/api/v2/dags/radcor/dagRuns/{run_id}/taskInstances/report/xcomEntries/return_value"
    return client.get(url).json().get("value")


def test_35_scenes_run_in_4_child_runs_and_a_restart_reruns_the_failed_scene(
    airflow_stack: AirflowStack, catalog_35: tuple[str, Path, list[str]]
) -> None:
    url, root, scene_ids = catalog_35
    failing = scene_ids[17]  # the second child run's (scenes 10..19)
    band = root / "files" / failing / "B04.tif"
    hidden = band.rename(band.with_suffix(".hidden"))
    try:
        with airflow_stack.client() as client:
            started = client.post("/radcor-api/radcor", json=year_download_conf(url))
            assert started.status_code == 202, started.text
            run_id = started.json()["run_id"]
            run = airflow_stack.wait_for_run(run_id, timeout_s=600)
            assert run["state"] == "failed", airflow_stack.logs()

            children = _child_runs(client, run_id)
            assert [(c["conf"]["start"], c["conf"]["stop"]) for c in children] == [
                (0, 10),
                (10, 20),
                (20, 30),
                (30, 35),
            ]
            assert [c["state"] for c in children] == ["success", "failed", "success", "success"]
            parent_tis = client.get(
                f"/api/v2/dags/radcor/dagRuns/{run_id}/taskInstances", params={"limit": 100}
            ).json()["task_instances"]
            by_task = Counter((ti["task_id"], ti["state"]) for ti in parent_tis)
            assert by_task[("scene_runs", "success")] == 3
            assert by_task[("scene_runs", "failed")] == 1
            assert by_task[("report", "failed")] == 1
            assert not any(
                ti["task_id"].startswith("scene.") and ti["state"] == "success" for ti in parent_tis
            )  # the parent maps no scene itself

            failed = client.get(
                "/radcor-api/radcor/activities", params={"run_id": run_id, "status": "failed"}
            ).json()
            assert [(a["scene_id"], a["type"]) for a in failed["activities"]] == [
                (failing, "download")
            ]
            activity_id = failed["activities"][0]["id"]
    finally:
        hidden.rename(band)

    with airflow_stack.client() as client:
        restart = client.get("/radcor-api/radcor/restart", params={"ids": str(activity_id)})
        assert restart.status_code == 202, restart.text
        cleared = {(t["dag_id"], t["task_id"]) for t in restart.json()["cleared"]}
        assert {
            ("radcor_scenes", "scene.download_demo"),
            ("radcor_scenes", "report"),
            ("radcor", "scene_runs"),
            ("radcor", "report"),
        } <= cleared
        assert airflow_stack.wait_for_run(run_id, timeout_s=300)["state"] == "success", (
            airflow_stack.logs()
        )

        children = _child_runs(client, run_id)
        assert len(children) == 4 and {c["state"] for c in children} == {"success"}
        downloads = _downloads(client, [c["dag_run_id"] for c in children])
        assert Counter(ti["rendered_map_index"] for ti in downloads) == dict.fromkeys(
            scene_ids, 1
        )  # every scene ran in exactly one child run
        assert {ti["state"] for ti in downloads} == {"success"}
        assert max(len(_downloads(client, [c["dag_run_id"]])) for c in children) == (SCENES_PER_RUN)
        activities = client.get(
            "/radcor-api/radcor/activities", params={"run_id": run_id, "limit": 100}
        ).json()
        assert activities["total"] == SCENES
        assert {a["status"] for a in activities["activities"]} == {"success"}
        assert {a["dag_id"] for a in activities["activities"]} == {"radcor"}
        report = _report(client, run_id)
        assert (report["found"], report["done"], report["failed"]) == (SCENES, SCENES, 0)

        # the steps the conf does not ask for were skipped by the scheduler, never queued
        for child in children:
            url = f"/api/v2/dags/radcor_scenes/dagRuns/{child['dag_run_id']}/taskInstances"
            tis = client.get(url, params={"limit": 100}).json()["task_instances"]
            not_asked = [
                ti
                for ti in tis
                if ti["task_id"].split(".")[-1]
                in ("correction", "harmonization", "post", "publish")
            ]
            assert not_asked
            assert {(ti["state"], ti["try_number"]) for ti in not_asked} == {("skipped", 0)}
