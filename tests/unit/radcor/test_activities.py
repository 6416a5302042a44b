from __future__ import annotations

import os
import uuid

import pytest

from include.radcor.activities import ActivityKey, ActivityState, ActivityStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> ActivityStore:
    if request.param == "sqlite":
        return ActivityStore(f"sqlite:///{tmp_path / 'activities.sqlite'}")
    url = os.environ.get("COLLECTION_BUILDER_DB_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("COLLECTION_BUILDER_DB_URL is not PostgreSQL (make test sets it)")
    return ActivityStore(url)


def _key(run_id: str, node_id: str = "0") -> ActivityKey:
    return ActivityKey(
        "radcor",
        run_id,
        "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429",
        node_id,
        "download",
        "S2_L1C-1",
    )


def test_record_running_then_success_keeps_one_row_and_history(store: ActivityStore) -> None:
    run_id = f"run-{uuid.uuid4()}"
    store.record(_key(run_id), ActivityState.RUNNING, catalog="demo")
    activity_id = store.record(
        _key(run_id),
        ActivityState.SUCCESS,
        size_bytes=42,
        outputs={"files": {"B04": "/data/B04.tif"}},
    )
    rows = store.for_run(run_id)
    assert len(rows) == 1
    row = rows[0]
    assert row.status == ActivityState.SUCCESS
    assert row.attempts == 1
    assert row.catalog == "demo"
    assert row.outputs == {"files": {"B04": "/data/B04.tif"}}
    assert row.started_at is not None and row.finished_at is not None
    assert [h["status"] for h in store.history(activity_id)] == ["running", "success"]


def test_record_retry_counts_attempts_and_clears_error(store: ActivityStore) -> None:
    run_id = f"run-{uuid.uuid4()}"
    store.record(_key(run_id), ActivityState.RUNNING)
    store.record(_key(run_id), ActivityState.FAILED, error="ProviderUnavailableError: 503")
    assert store.for_run(run_id)[0].error == "ProviderUnavailableError: 503"
    store.record(_key(run_id), ActivityState.RUNNING)
    store.record(_key(run_id), ActivityState.SUCCESS)
    row = store.for_run(run_id)[0]
    assert row.attempts == 2
    assert row.error is None


def test_list_filters_by_status_and_collection(store: ActivityStore) -> None:
    run_id = f"run-{uuid.uuid4()}"
    store.record(_key(run_id, "0"), ActivityState.SUCCESS)
    store.record(_key(run_id, "0.0"), ActivityState.FAILED)
    failed = store.search(filters={"run_id": run_id, "status": "failed"})
    assert [a.key.node_id for a in failed] == ["0.0"]
    assert store.search(filters={"run_id": run_id, "collection": "nope"}) == []
