"""StepRunner without Airflow: ``force`` downloads again; a rerun updates its one activity row.

Real HTTP to the demo STAC API (its file requests counted), the real download engine, activities
in SQLite and, when ``COLLECTION_BUILDER_DB_URL`` names one, PostgreSQL.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.catalog.static_stac import StaticStacBackend
from include.collectors.registry import make_driver
from include.common.config import CollectionConfig, load_collections
from include.common.errors import ChecksumMismatchError
from include.demo.build import build_demo_catalog
from include.demo.server import FILES_PREFIX, DemoStacHandler, DemoStacServer
from include.radcor.activities import ActivityState, ActivityStore
from include.radcor.conf import TaskType
from include.radcor.context import RunContext
from include.radcor.plan import ScenePlan, plan_scene
from include.radcor.search import search_scenes
from include.radcor.step_runner import StepRunner
from include.radcor.validation import validate_request

COLLECTION = "S2_L1C-1"


class _CountingHandler(DemoStacHandler):
    """Counts the GETs of scene files (the downloads), per server."""

    def do_GET(self) -> None:
        if self.path.startswith(FILES_PREFIX):
            server: Any = self.server
            with server.count_lock:
                server.file_gets += 1
        super().do_GET()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DemoStacServer]:
    root = tmp_path / "demo"
    build_demo_catalog(root, scenes=1, size_px=64)
    running: Any = DemoStacServer(root, port=0)
    running.RequestHandlerClass = _CountingHandler
    running.file_gets = 0
    running.count_lock = threading.Lock()
    with running.start():
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ActivityStore:
    if request.param == "sqlite":
        return ActivityStore(f"sqlite:///{tmp_path / 'activities.sqlite'}")
    url = os.environ.get("COLLECTION_BUILDER_DB_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("COLLECTION_BUILDER_DB_URL is not PostgreSQL (make test sets it)")
    return ActivityStore(url)


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(path))
    return path


def _plan(server: DemoStacServer, tmp_path: Path, *, force: bool) -> ScenePlan:
    conf = validate_request(
        {
            "tiles": ["23LLF"], "catalog": "demo", "catalog_args": {"url": server.url},
            "dataset": "S2MSI1C", "start": "2020-01-01", "end": "2020-12-31",
            "action": "start", "force": force,
            "tasks": [{"type": "download", "collection": COLLECTION}],
        }
    )  # fmt: skip
    with make_driver("demo", catalog_args={"url": server.url}) as driver:
        scenes = search_scenes(conf, driver)
    assert len(scenes) == 1
    return plan_scene(conf, scenes[0], is_published=StaticStacBackend(tmp_path / "stac").exists)


def _demo_only() -> dict[str, CollectionConfig]:
    """The configured collections, with no fallback provider beyond the searched demo catalog."""
    collections = dict(load_collections())
    collections[COLLECTION] = collections[COLLECTION].model_copy(update={"providers": []})
    return collections


def _runner(
    server: DemoStacServer, plan: ScenePlan, store: ActivityStore, run_id: str, *,
    try_number: int = 1, force: bool = False,
) -> StepRunner:  # fmt: skip
    task_instance = f"radcor/{run_id}/scene.download_demo/0/try{try_number}"
    return StepRunner(
        plan,
        RunContext(dag_id="radcor", run_id=run_id, task_instance=task_instance),
        store=store,
        backend=lambda: StaticStacBackend(Path(os.environ["DATA_DIR"]) / "stac"),
        driver_factory=lambda name: make_driver(name, catalog_args={"url": server.url}),
        collections=_demo_only(),
        force=force,
    )


def _files(activity_outputs: dict[str, Any]) -> dict[str, Path]:
    return {key: Path(path) for key, path in activity_outputs["files"].items()}


def _served(server: DemoStacServer) -> list[Path]:
    return sorted(p for p in server.files_root.rglob("*") if p.is_file())


def test_step_runner_force_downloads_again_and_replaces_the_files(
    server: Any, store: ActivityStore, tmp_path: Path
) -> None:
    first_run, second_run, third_run = (f"run-{uuid.uuid4()}" for _ in range(3))
    plan = _plan(server, tmp_path, force=False)
    assert not _runner(server, plan, store, first_run).run(TaskType.DOWNLOAD).errors
    first = store.for_run(first_run)[0]
    assert first.status == ActivityState.SUCCESS
    files = _files(first.outputs)
    gets_after_first = server.file_gets
    assert gets_after_first == len(files) > 1  # one GET a band file
    before = {key: (path.stat().st_ino, path.read_bytes()) for key, path in files.items()}

    # without force, the valid files in place are reused: no file request at all
    assert not _runner(server, plan, store, second_run).run(TaskType.DOWNLOAD).errors
    assert store.for_run(second_run)[0].status == ActivityState.REUSED
    assert server.file_gets == gets_after_first

    forced_plan = _plan(server, tmp_path, force=True)
    outcome = _runner(server, forced_plan, store, third_run, force=True).run(TaskType.DOWNLOAD)
    assert not outcome.errors, outcome.errors
    forced = store.for_run(third_run)[0]
    assert forced.status == ActivityState.SUCCESS
    assert forced.message is not None and forced.message.startswith("force: downloaded again")
    assert server.file_gets == 2 * gets_after_first  # every file fetched again
    for key, path in _files(forced.outputs).items():
        inode, data = before[key]
        assert path.stat().st_ino != inode  # a new file renamed into place
        assert path.read_bytes() == data
    assert not [p for p in files["B04"].parent.iterdir() if p.suffix in (".part", ".lock")]


def test_step_runner_failed_forced_download_keeps_the_old_valid_file(
    server: Any, store: ActivityStore, tmp_path: Path
) -> None:
    first_run, forced_run = f"run-{uuid.uuid4()}", f"run-{uuid.uuid4()}"
    plan = _plan(server, tmp_path, force=False)
    assert not _runner(server, plan, store, first_run).run(TaskType.DOWNLOAD).errors
    files = _files(store.for_run(first_run)[0].outputs)
    kept = {key: (path.stat().st_ino, path.read_bytes()) for key, path in files.items()}
    served = next(p for p in _served(server) if p.name.startswith("B04"))
    original = served.read_bytes()
    corrupt = bytearray(original)
    corrupt[len(corrupt) // 2] ^= 0xFF  # same size, another checksum than the catalog's
    served.write_bytes(bytes(corrupt))
    try:
        forced_plan = _plan(server, tmp_path, force=True)
        runner = _runner(server, forced_plan, store, forced_run, force=True)
        outcome = runner.run(TaskType.DOWNLOAD)
    finally:
        served.write_bytes(original)
    assert len(outcome.errors) == 1 and isinstance(outcome.errors[0], ChecksumMismatchError)
    failed = store.for_run(forced_run)[0]
    assert failed.status == ActivityState.FAILED
    assert "ChecksumMismatchError" in (failed.error or "")
    # each file is replaced only once its new copy is verified: the corrupt band's old file is
    # untouched, the others are the old or a new verified copy; every one is valid
    assert (files["B04"].stat().st_ino, files["B04"].read_bytes()) == kept["B04"]
    for key, path in files.items():
        assert path.read_bytes() == kept[key][1]
    assert not list(files["B04"].parent.glob("*.part"))


def test_step_runner_rerun_of_a_failed_node_updates_its_one_activity_row(
    server: Any, store: ActivityStore, tmp_path: Path
) -> None:
    run_id = f"run-{uuid.uuid4()}"
    plan = _plan(server, tmp_path, force=False)
    served = next(p for p in _served(server) if p.name.startswith("B04"))
    hidden = served.with_name("hidden.bin")
    served.rename(hidden)  # the provider answers 404 for one band: try 1 fails
    try:
        outcome = _runner(server, plan, store, run_id, try_number=1).run(TaskType.DOWNLOAD)
    finally:
        hidden.rename(served)
    assert outcome.errors
    (failed,) = store.for_run(run_id)
    assert (failed.status, failed.attempts) == (ActivityState.FAILED, 1)
    assert failed.task_instance is not None and failed.task_instance.endswith("/try1")

    # the task is cleared and runs again as try 2: the same row, one more attempt, the new log
    assert not _runner(server, plan, store, run_id, try_number=2).run(TaskType.DOWNLOAD).errors
    (done,) = store.for_run(run_id)
    assert done.id == failed.id
    assert (done.status, done.attempts) == (ActivityState.SUCCESS, 2)
    assert done.task_instance == f"radcor/{run_id}/scene.download_demo/0/try2"
    assert done.error is None
    history = [(h["status"], h["task_instance"].rsplit("/", 1)[1]) for h in store.history(done.id)]
    assert history == [
        ("running", "try1"), ("failed", "try1"), ("running", "try2"), ("success", "try2"),
    ]  # fmt: skip

    # cleared again after success (try 3): the finished node is kept, its row and log link
    # stay those of the try that did the work, and the history names try 3
    gets = server.file_gets
    outcome = _runner(server, plan, store, run_id, try_number=3).run(TaskType.DOWNLOAD)
    assert outcome.states == {"0": "success"} and not outcome.errors
    (kept,) = store.for_run(run_id)
    assert (kept.status, kept.attempts, kept.task_instance) == (
        ActivityState.SUCCESS, 2, done.task_instance,
    )  # fmt: skip
    assert server.file_gets == gets
    last = store.history(kept.id)[-1]
    assert (last["status"], last["task_instance"].rsplit("/", 1)[1]) == ("success", "try3")
    assert last["message"] == f"kept: finished already by {done.task_instance}"
    # the same try looking again adds nothing
    _runner(server, plan, store, run_id, try_number=2).run(TaskType.DOWNLOAD)
    assert len(store.history(kept.id)) == 5
