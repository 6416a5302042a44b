"""No module of `include/` or `plugins/` is part of an import circle; the triggerer loads no task.

The graph is built statically with ``ast`` over both trees and counts every import, those inside
functions and under ``TYPE_CHECKING`` too: an import moved into a function hides a circle from
Python, not from a reader. Modules are named as Python imports them: ``include.radcor.conf``,
and ``radcor_api.triggers`` (``plugins/`` is on Airflow's path). Importing a submodule runs its
package's ``__init__`` too; that implicit edge is not counted (Python resolves it whatever the
order), only the imports written in the code.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOTS = {REPO / "include": "include", REPO / "plugins": ""}


def _module_files() -> dict[str, Path]:
    """Return every module of both trees by its import name."""
    modules: dict[str, Path] = {}
    for root, prefix in ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([prefix, *parts] if prefix else parts)
            if name:
                modules[name] = path
    return modules


def _imported_names(path: Path, module: str) -> Iterator[str]:
    """Yield the dotted names a module imports (``from a import b`` yields ``a`` and ``a.b``)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")
                package = package if is_package else package[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Return module -> the project modules it imports."""
    modules = _module_files()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {t for t in _imported_names(path, name) if t in modules and t != name}
        # ``from pkg import sub`` names the submodule: drop the package then, as Python
        # imports the package anyway (implicit edges are not counted)
        graph[name] = {t for t in targets if not any(o.startswith(f"{t}.") for o in targets)}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_import_graph_sees_imports_inside_functions() -> None:
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert _cycles(graph) == [["a", "b"]]
    assert "include.radcor.conf" in import_graph()["include.radcor.plan"]


TASK_MODULES = (
    "radcor_api.tasks",
    "radcor_api.dag_factory",
    "radcor_api.sensors",
    "radcor_api.scene_runs",
    "include.radcor.step_runner",
)
"""Modules of task code: the triggerer, which imports ``radcor_api.triggers``, loads none."""

KNOWN_CYCLES: list[list[str]] = []
"""Circles left to break, each named here until it is gone (the test fails when one is fixed
and still listed, so this list only shrinks)."""


def test_no_module_of_include_or_plugins_is_in_an_import_circle() -> None:
    cycles = _cycles(import_graph())
    assert cycles == KNOWN_CYCLES, "import circles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_triggerer_path_reaches_no_task_module_statically() -> None:
    graph = import_graph()
    seen: set[str] = set()
    pending = ["radcor_api.triggers"]
    while pending:
        module = pending.pop()
        if module not in seen:
            seen.add(module)
            pending.extend(graph.get(module, ()))
    assert seen.isdisjoint(TASK_MODULES), sorted(seen.intersection(TASK_MODULES))


def test_importing_the_trigger_loads_no_task_module() -> None:
    """The triggerer imports the trigger by its classpath; it must not load the tasks' code."""
    code = "import sys, radcor_api.triggers; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'plugins'}"},
    )
    loaded = set(result.stdout.split())
    assert "radcor_api.triggers" in loaded
    assert loaded.isdisjoint(TASK_MODULES), sorted(loaded.intersection(TASK_MODULES))
