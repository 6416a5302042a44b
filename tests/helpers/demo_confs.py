"""Radcor confs over the demo catalog shared by several tests."""

from __future__ import annotations

from typing import Any


def year_download_conf(catalog_url: str) -> dict[str, Any]:
    """Return a conf that downloads every demo scene of 2020 over the demo tile."""
    return {
        "w": -45.95,
        "s": -12.8,
        "e": -45.7,
        "n": -12.55,
        "catalog": "demo",
        "catalog_args": {"url": catalog_url},
        "dataset": "S2MSI1C",
        "start": "2020-01-01T00:00:00",
        "end": "2020-12-31T23:59:59",
        "action": "start",
        "tasks": [{"type": "download", "collection": "S2_L1C-1"}],
    }
