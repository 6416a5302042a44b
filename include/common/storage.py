"""Where files live under DATA_DIR (DESIGN 4), with path components checked before use."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from include.common.config import data_dir
from include.common.errors import FieldProblem, InvalidInputError

_SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")


def safe_component(value: str, field: str) -> str:
    """Return ``value`` if it can be one path component (no separator, no ``..``).

    Raises:
        InvalidInputError: naming ``field`` when the value could escape its folder.
    """
    if not _SAFE_COMPONENT.match(value) or ".." in value:
        raise InvalidInputError(
            FieldProblem(
                field,
                f"{value!r} cannot be used as a file name",
                "use letters, digits, '_', '-' and '.' only (no '/', no '..')",
            )
        )
    return value


def _dated(root: Path, collection: str, tile: str | None, when: datetime, scene_id: str) -> Path:
    return (
        root
        / safe_component(collection, "collection")
        / safe_component(tile or "unknown-tile", "tile")
        / f"{when:%Y}"
        / f"{when:%m}"
        / safe_component(scene_id, "scene_id")
    )


def archive_dir(collection: str, tile: str | None, when: datetime, scene_id: str) -> Path:
    """Return ``DATA_DIR/archive/<collection>/<tile>/<YYYY>/<MM>/<scene>``."""
    return _dated(data_dir() / "archive", collection, tile, when, scene_id)


def published_dir(collection: str, tile: str | None, when: datetime, scene_id: str) -> Path:
    """Return ``DATA_DIR/published/<collection>/<tile>/<YYYY>/<MM>/<scene>``."""
    return _dated(data_dir() / "published", collection, tile, when, scene_id)


def work_dir(collection: str, tile: str | None, when: datetime, scene_id: str) -> Path:
    """Return the folder for intermediate products (corrected, harmonized) of a scene."""
    return _dated(data_dir() / "work", collection, tile, when, scene_id)


def catalog_root() -> Path:
    """Return the root of the static STAC catalog."""
    return data_dir() / "stac"
