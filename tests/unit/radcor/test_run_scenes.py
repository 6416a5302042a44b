from __future__ import annotations

import pytest

from include.radcor.run_scenes import RunScenes, split_into_runs


@pytest.mark.parametrize(
    ("count", "expected_sizes"),
    [(0, []), (1, [1]), (9, [9]), (10, [10]), (11, [10, 1]), (29, [10, 10, 9]), (30, [10, 10, 10])],
)
def test_split_into_runs_under_at_and_over_the_limit_covers_each_scene_once(
    count: int, expected_sizes: list[int]
) -> None:
    ranges = split_into_runs(count, scenes_per_run=10, max_runs=3)
    assert [len(r) for r in ranges] == expected_sizes
    assert [i for r in ranges for i in r] == list(range(count))


def test_split_into_runs_beyond_capacity_names_the_settings() -> None:
    with pytest.raises(ValueError, match=r"30 one run can hold .*scenes_per_run.*max_map_length"):
        split_into_runs(31, scenes_per_run=10, max_runs=3)


def test_run_scenes_save_twice_replaces_and_pages_in_order(tmp_path) -> None:
    store = RunScenes(f"sqlite:///{tmp_path / 's.sqlite'}")
    bodies = [{"scene": {"scene_id": f"S{i:05d}"}, "i": i} for i in range(2500)]
    store.save("run-1", "plan", bodies[:10])
    assert store.save("run-1", "plan", bodies) == 2500
    assert store.count("run-1", "plan") == 2500
    assert store.load("run-1", "plan", 1234)["i"] == 1234
    assert [b["i"] for b in store.iterate("run-1", "plan")] == list(range(2500))
    assert store.count("run-2", "plan") == 0
    with pytest.raises(KeyError, match="rerun its search"):
        store.load("run-2", "plan", 0)
    assert [b["i"] for b in store.iterate("run-1", "plan", start=998, stop=1003)] == list(
        range(998, 1003)
    )
    assert store.scene_ids("run-1", "plan", range(1999, 2001)) == ["S01999", "S02000"]
    with pytest.raises(KeyError, match="has 1 of the 2 plans 2499..2500"):
        store.scene_ids("run-1", "plan", range(2499, 2501))
