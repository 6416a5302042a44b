from __future__ import annotations

import pytest

from include.radcor.run_scenes import RunScenes, split_into_groups


@pytest.mark.parametrize(
    ("count", "expected_sizes"),
    [(0, [0, 0, 0]), (9, [9, 0, 0]), (10, [10, 0, 0]), (11, [10, 1, 0]), (30, [10, 10, 10])],
)
def test_split_into_groups_under_at_and_over_the_limit_fills_in_order(
    count: int, expected_sizes: list[int]
) -> None:
    groups = split_into_groups(count, group_size=10, groups=3)
    assert [len(g) for g in groups] == expected_sizes
    assert [i for g in groups for i in g] == list(range(count))


def test_split_into_groups_beyond_capacity_names_the_fix() -> None:
    with pytest.raises(ValueError, match="COLLECTION_BUILDER_SCENE_GROUPS"):
        split_into_groups(31, group_size=10, groups=3)


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
