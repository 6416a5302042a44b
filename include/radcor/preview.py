"""The preview of a search: upstream's shape (keyed by scene id, plus ``Results``), stored.

A small preview travels inline (XCom, HTTP body); a large one is written to a file and to the
run-scenes table, and a reference travels instead.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from include.collectors.base import Scene
from include.common.config import data_dir
from include.radcor.run_scenes import RunScenes

log = logging.getLogger(__name__)

INLINE_PREVIEW_SCENES = 1000
"""A preview with more scenes goes to a file (and the run-scenes table); XCom keeps a reference."""


def human_size(size_bytes: int | None) -> str:
    """Return a size such as ``812.3 MB`` (upstream's preview shows sizes this way)."""
    if size_bytes is None:
        return "unknown"
    value = float(size_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    return f"{value:.1f} TB"


def preview(scenes: list[Scene]) -> dict[str, Any]:
    """Return the upstream-shaped preview: an object keyed by scene id plus ``Results``."""
    from shapely.geometry import shape

    result: dict[str, Any] = {}
    for scene in scenes:
        entry: dict[str, Any] = {
            "sceneid": scene.scene_id,
            "type": scene.properties.get("product_type") or _product_type(scene.scene_id),
            "date": scene.datetime.isoformat(),
            "cloud": scene.cloud_pct,
            "footprint": shape(scene.footprint).wkt if scene.footprint else None,
            "size": human_size(scene.size_bytes),
            "size_bytes": scene.size_bytes,
            "link": scene.link,
            "icon": scene.quicklook,
            "online": scene.online,
            "provider": scene.catalog,
        }
        tile_key = "pathrow" if scene.tile and scene.tile.isdigit() else "tileid"
        entry[tile_key] = scene.tile
        result[scene.scene_id] = entry
    result["Results"] = len(scenes)
    return result


def _product_type(scene_id: str) -> str | None:
    parts = scene_id.split("_")
    return parts[1] if len(parts) > 1 else None


def store_preview(
    run_id: str, result: dict[str, Any], store: RunScenes | None = None
) -> dict[str, Any]:
    """Keep a small preview inline; write a large one to a file and return a reference."""
    count = int(result.get("Results", 0))
    if count <= INLINE_PREVIEW_SCENES:
        return result
    folder = data_dir() / "runs" / run_id.replace("/", "_").replace(":", "_")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "preview.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    tmp.replace(path)
    entries = [v for k, v in result.items() if k != "Results"]
    (store or RunScenes()).save(run_id, "preview", entries)
    log.info("search.preview_stored scenes=%d path=%s", count, path)
    return {"Results": count, "file": str(path), "table": "radcor_run_scenes", "run_id": run_id}
