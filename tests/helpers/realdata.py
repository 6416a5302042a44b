"""Where the third-party sample data lives (``$REALDATA_DIR`` or ``../shared/realdata``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def realdata_dir() -> Path:
    """Return the realdata folder (it may not exist)."""
    return Path(os.environ.get("REALDATA_DIR") or REPO.parent / "shared" / "realdata")


def realdata(relative: str) -> Path:
    """Return ``realdata/<relative>``, skipping the test with a reason when it is absent."""
    path = realdata_dir() / relative
    if not path.exists():
        pytest.skip(f"real sample {relative} not found under {realdata_dir()} (set REALDATA_DIR)")
    return path
