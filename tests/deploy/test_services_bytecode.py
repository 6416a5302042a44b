"""scripts/services.py compiles the project's modules before Airflow starts (docs/scale.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_compile_project_writes_the_bytecode_task_processes_read() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import services
    finally:
        sys.path.remove(str(REPO / "scripts"))
    sources = [
        REPO / "plugins" / "radcor_api" / "dag_factory.py",
        REPO / "include" / "radcor" / "conf.py",
        REPO / "dags" / "radcor.py",
    ]

    services.compile_project()

    for source in sources:
        cached = Path(importlib.util.cache_from_source(str(source)))
        assert cached.is_file(), f"no bytecode for {source}"
        assert cached.stat().st_mtime >= source.stat().st_mtime
