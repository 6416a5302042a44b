"""Who runs a step and how it reaches a catalog: shared by the step runner and the wait.

Both ``step_runner`` and ``waiting`` take these from the orchestrator; neither imports the
other's module for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from include.collectors.base import CatalogDriver

DriverFactory = Callable[[str], CatalogDriver]
"""Builds the driver for a catalog name (the task layer adds credentials from a Connection)."""


@dataclass(frozen=True, slots=True)
class RunContext:
    """Who is running: opaque orchestrator ids, recorded on every activity."""

    dag_id: str
    run_id: str
    task_instance: str = ""


__all__ = ["DriverFactory", "RunContext"]
