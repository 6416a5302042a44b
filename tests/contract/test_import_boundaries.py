"""`include/` never imports Airflow, FastAPI or the plugins; packages depend in one direction."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

INCLUDE = Path(__file__).resolve().parents[2] / "include"
FORBIDDEN = ("airflow", "fastapi", "plugins", "radcor_api", "dags")
# a package may import only the packages listed for it (besides itself)
ALLOWED = {
    "common": set(),
    "collectors": {"common"},
    "processors": {"common", "collectors"},
    "catalog": {"common", "collectors", "processors"},
    "radcor": {"common", "collectors", "processors", "catalog"},
    "demo": {"common", "collectors", "processors", "catalog"},
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


MODULES = sorted(INCLUDE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(INCLUDE)))
def test_include_module_respects_boundaries(path: Path) -> None:
    package = path.relative_to(INCLUDE).parts[0]
    for name in _imports(path):
        top = name.split(".")[0]
        assert top not in FORBIDDEN, f"{path.name} imports {name}"
        if top == "include" and package in ALLOWED:
            target = name.split(".")[1]
            assert target == package or target in ALLOWED[package], (
                f"include/{package} must not import include.{target} ({path.name})"
            )
