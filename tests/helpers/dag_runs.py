"""Reading a finished ``dag.test()`` run: task states and the ``report`` task's XCom."""

from __future__ import annotations

import json
from typing import Any


def task_states(dag_run: Any) -> dict[tuple[str, int], str]:
    """Return ``{(task_id, map_index): state}`` of every task instance of ``dag_run``."""
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in dag_run.get_task_instances()}


def report(dag_run: Any) -> Any:
    """Return the ``report`` task's return value (decoded when stored as a JSON string)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(
                dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id="report", key="return_value"
            )
            .one()
        )
        value = row.value
    return json.loads(value) if isinstance(value, str) else value
