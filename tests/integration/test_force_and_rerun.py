"""`force` downloads again, and a cleared task reruns into its activity: real `dag.test()` runs.

The demo STAC API counts the scene-file requests it answers, so "downloaded again" is what the
server saw, not what our code says. The clear is the one the radcor restart endpoint makes
(``airflow_ops.clear_task_instances``: the task instance and its downstream), and the run then
goes on as the scheduler would run it (``dag.test``'s own loop, on the same run).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.radcor.activities import Activity, ActivityStore, parse_task_instance
from include.radcor.conf import TaskType
from tests.helpers.dag_runs import task_states

pytestmark = pytest.mark.integration


@pytest.fixture
def counting_catalog(tmp_path: Path) -> Iterator[Any]:
    """A demo STAC API with 2 scenes whose handler counts GETs of scene files."""
    from include.demo.build import build_demo_catalog
    from include.demo.server import FILES_PREFIX, DemoStacHandler, DemoStacServer

    class CountingHandler(DemoStacHandler):
        def do_GET(self) -> None:
            if self.path.startswith(FILES_PREFIX):
                with self.server.count_lock:  # type: ignore[attr-defined]
                    self.server.file_gets += 1  # type: ignore[attr-defined]
            super().do_GET()

    root = tmp_path / "catalog"
    build_demo_catalog(root, scenes=2, size_px=64)
    server: Any = DemoStacServer(root, port=0)
    server.RequestHandlerClass = CountingHandler
    server.file_gets = 0
    server.count_lock = threading.Lock()
    with server.start():
        yield server


def _conf(url: str, *, force: bool = False) -> dict[str, Any]:
    return {
        "w": -45.95, "s": -12.8, "e": -45.7, "n": -12.55,
        "catalog": "demo", "catalog_args": {"url": url}, "dataset": "S2MSI1C",
        "start": "2020-01-01T00:00:00", "end": "2020-12-31T23:59:59", "cloud": 100,
        "action": "start", "force": force,
        "tasks": [{"type": "download", "collection": "S2_L1C-1", "args": {},
                   "tasks": [{"type": "publish", "collection": "S2_L1C-1", "args": {}}]}],
    }  # fmt: skip


def _by_type(run_id: str, task_type: TaskType) -> dict[str, Activity]:
    return {
        a.key.scene_id: a for a in ActivityStore().for_run(run_id) if a.key.task_type == task_type
    }


def test_force_run_downloads_every_file_again_and_replaces_it(
    radcor_dag: Any, counting_catalog: Any, data_dir: Path
) -> None:
    first = radcor_dag.test(run_conf=_conf(counting_catalog.url))
    assert str(first.state) == "success", task_states(first)
    downloads = _by_type(first.run_id, TaskType.DOWNLOAD)
    assert len(downloads) == 2
    files = [Path(p) for a in downloads.values() for p in a.outputs["files"].values()]
    gets = counting_catalog.file_gets
    assert gets == len(files) > 2  # one GET per band file
    inodes = {path: path.stat().st_ino for path in files}

    again = radcor_dag.test(run_conf=_conf(counting_catalog.url))  # published: all skipped
    assert str(again.state) == "success", task_states(again)
    assert {str(a.status) for a in ActivityStore().for_run(again.run_id)} == {"skipped"}
    assert counting_catalog.file_gets == gets

    forced = radcor_dag.test(run_conf=_conf(counting_catalog.url, force=True))
    assert str(forced.state) == "success", task_states(forced)
    assert counting_catalog.file_gets == 2 * gets  # the server sent every file again
    redone = _by_type(forced.run_id, TaskType.DOWNLOAD)
    assert {str(a.status) for a in redone.values()} == {"success"}  # not "reused"
    assert all((a.message or "").startswith("force: downloaded again") for a in redone.values())
    for path, inode in inodes.items():
        assert path.stat().st_ino != inode  # a new verified copy renamed over the old one
    published = _by_type(forced.run_id, TaskType.PUBLISH)
    assert {str(a.status) for a in published.values()} == {"success"}
    assert not list((data_dir / "archive").rglob("*.part"))


class _Restarter:
    """The caller the restart endpoint logs (``user.get_name()``)."""

    def get_name(self) -> str:
        return "test"


def _run_cleared(dag: Any, run_id: str, timeout_s: float = 300) -> Any:
    """Run the cleared task instances of ``run_id`` as ``dag.test()`` runs a run's tasks."""
    from airflow import settings
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    session = settings.Session()
    dag_run = session.scalar(
        select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id)
    )
    dag_run.dag = DBDagBag().get_dag_for_run(dag_run, session=session)
    dag_run.state = DagRunState.RUNNING  # what the scheduler does with a queued run
    session.commit()
    deadline = time.monotonic() + timeout_s
    while dag_run.state == DagRunState.RUNNING:
        assert time.monotonic() < deadline, task_states(dag_run)
        session.expire_all()
        schedulable, _ = dag_run.update_state(session=session)
        for ti in schedulable:
            ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        scheduled = [
            ti
            for ti in dag_run.get_task_instances(session=session)
            if ti.state == TaskInstanceState.SCHEDULED
        ]
        for ti in scheduled:
            try:
                _run_task(ti=ti, task=dag.task_dict[ti.task_id])
            except Exception:  # noqa: BLE001, S112 - dag.test's loop: the state tells
                continue
    session.close()
    return dag_run


def test_cleared_failed_download_reruns_into_the_same_activity_with_the_new_log(
    radcor_dag: Any, counting_catalog: Any, data_dir: Path, tmp_path: Path
) -> None:
    from radcor_api.airflow_ops import TaskInstanceKey, clear_task_instances

    band = sorted(counting_catalog.files_root.glob("*/B04.tif"))[0]
    broken_scene = band.parent.name
    hidden = tmp_path / "hidden.tif"
    band.rename(hidden)  # 404 for one band of one scene: its download fails, not retried
    try:
        first = radcor_dag.test(run_conf=_conf(counting_catalog.url))
    finally:
        hidden.rename(band)
    assert str(first.state) == "failed"
    before = _by_type(first.run_id, TaskType.DOWNLOAD)[broken_scene]
    assert (str(before.status), before.attempts) == ("failed", 1)
    assert before.task_instance is not None
    ref = parse_task_instance(before.task_instance)
    assert (ref.task_id, ref.try_number) == ("scene.download_demo", 1)
    others = {
        sid: (a.attempts, a.task_instance)
        for sid, a in _by_type(first.run_id, TaskType.DOWNLOAD).items()
        if sid != broken_scene
    }
    rows_before = len(ActivityStore().for_run(first.run_id))

    cleared = clear_task_instances(
        [TaskInstanceKey(ref.dag_id, ref.run_id, ref.task_id, ref.map_index)],
        _Restarter(),  # type: ignore[arg-type]
    )
    assert {key.task_id for key, _ in cleared} >= {"scene.download_demo", "report"}
    rerun = _run_cleared(radcor_dag, first.run_id)
    assert str(rerun.state) == "success", task_states(rerun)

    after = _by_type(first.run_id, TaskType.DOWNLOAD)[broken_scene]
    assert after.id == before.id  # the same row, nothing duplicated
    assert len(ActivityStore().for_run(first.run_id)) == rows_before  # nothing duplicated
    assert (str(after.status), after.attempts) == ("success", 2)
    assert after.task_instance is not None and after.task_instance != before.task_instance
    new_ref = parse_task_instance(after.task_instance)
    ti = rerun.get_task_instance(ref.task_id, map_index=ref.map_index)
    assert new_ref.try_number == ti.try_number == 2  # the log link names the new try's log
    history = ActivityStore().history(after.id)
    assert [(h["status"], parse_task_instance(h["task_instance"]).try_number) for h in history] == [
        ("running", 1), ("failed", 1), ("running", 2), ("success", 2),
    ]  # fmt: skip
    publish = _by_type(first.run_id, TaskType.PUBLISH)[broken_scene]
    assert (str(publish.status), publish.attempts) == ("success", 1)  # was upstream_failed
    # the other scene's download was not cleared: its activity is as it was
    assert {
        sid: (a.attempts, a.task_instance)
        for sid, a in _by_type(first.run_id, TaskType.DOWNLOAD).items()
        if sid != broken_scene
    } == others
