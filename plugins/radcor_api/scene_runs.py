"""The parent side of a large radcor run: one child DAG run per range of scenes.

A run with more scenes than ``[collection_builder] scenes_per_run`` hands each range of its
scenes to a run of the companion DAG ``<dag_id>_scenes`` and waits for it in the triggerer
(docs/scale.md). Keeping each DAG run a few hundred scenes wide keeps the scheduler's work per
loop small; one run with thousands of mapped chains is scheduler-bound.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.providers.standard.triggers.external_task import DagStateTrigger

from radcor_api.names import CONF_KEY

PART_KEYS = ("parent_dag_id", "parent_run_id", "part", "start", "stop", CONF_KEY)
"""The conf of a child run (``child_conf``): which parent run, which range, the parent's conf."""


def child_run_id(parent_run_id: str, start: int) -> str:
    """Return the id of the child run holding the scenes from index ``start`` of a parent run.

    Derived, not generated, so a retried or cleared parent task finds its child run again.
    """
    return f"{parent_run_id}__scenes_{start:06d}"


def child_conf(
    conf_dict: dict[str, Any], parent_dag_id: str, parent_run_id: str, part: int, indices: range
) -> dict[str, Any]:
    """Return the conf of the child run holding scenes ``indices`` of a parent run."""
    return {
        "parent_dag_id": parent_dag_id,
        "parent_run_id": parent_run_id,
        "part": part,
        "start": indices.start,
        "stop": indices.stop,
        CONF_KEY: conf_dict,
    }


class SceneRunOperator(TriggerDagRunOperator):
    """Start the child run of one range of scenes, or find it again, and wait for its end.

    Unlike ``TriggerDagRunOperator`` alone, a retry or a clear of this task (a restart of some
    of the range's scenes clears it, docs/faults.md) attaches to the child run it started: it
    neither fails because the run exists nor resets it, which would run every scene again.
    The wait is deferred to the triggerer, so it holds no worker slot.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("wait_for_completion", True)
        kwargs.setdefault("deferrable", True)
        kwargs.setdefault("poke_interval", 10)
        kwargs.setdefault("logical_date", None)
        kwargs.setdefault("fail_when_dag_is_paused", True)
        kwargs.setdefault("openlineage_inject_parent_info", False)
        super().__init__(**kwargs)

    def execute(self, context: Any) -> None:
        """Trigger the child run, or attach to it; defer until it ends (or end now if it has)."""
        conf = dict(self.conf or {})
        run_id = child_run_id(str(conf["parent_run_id"]), int(conf["start"]))
        self.trigger_run_id = run_id
        ti = context["ti"]
        if not ti.get_dr_count(dag_id=self.trigger_dag_id, run_ids=[run_id]):
            self.log.info(
                "scene_runs.start dag_id=%s run_id=%s scenes=%s..%s",
                self.trigger_dag_id,
                run_id,
                conf["start"],
                int(conf["stop"]) - 1,
            )
            super().execute(context)  # raises: the task runner triggers the run, then defers
            return
        state = ti.get_dagrun_state(self.trigger_dag_id, run_id)
        self.log.info(
            "scene_runs.attach dag_id=%s run_id=%s state=%s", self.trigger_dag_id, run_id, state
        )
        ti.xcom_push(key="trigger_run_id", value=run_id)
        if state in self.allowed_states or state in self.failed_states:
            self._trigger_dag_run_af_3_execute_complete({"run_ids": [run_id], run_id: state})
            return
        self.defer(
            trigger=DagStateTrigger(
                dag_id=self.trigger_dag_id,
                states=[*self.allowed_states, *self.failed_states],
                run_ids=[run_id],
                execution_dates=None,
                poll_interval=self.poke_interval,
            ),
            method_name="execute_complete",
        )
