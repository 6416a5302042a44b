"""The preview of a search: upstream's shape (keyed by scene id, plus ``Results``), stored.

A small preview travels inline (XCom, HTTP body); a large one is written to a file and to the
run-scenes table, and a reference travels instead.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from include.collectors.base import Scene
from include.common.config import data_dir
from include.radcor.run_scenes import RunScenes

log = logging.getLogger(__name__)

INLINE_PREVIEW_SCENES = 1000
"""A preview with more scenes goes to a file (and the run-scenes table); XCom keeps a reference."""


def human_size(size_bytes: int | None) -> str:
    """Return a size as the upstream's preview writes it: ``813.67 MB`` (binary units).

    The upstream took it from sentinelsat, which divides by 1024 and keeps two decimals.
    """
    if size_bytes is None:
        return "unknown"
    value = float(size_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1024:
            return f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} TB"


def preview_entry(scene: Scene) -> dict[str, Any]:
    """Return one scene as the upstream guide shows it, then our extra fields.

    ``type`` is the product-name part of the id (``MSIL1C``, ``MSIL2A``, ``L1TP``), not the
    catalog's product type; ``date`` is the acquisition day; ``tileid`` and ``pathrow`` both
    hold the tile (MGRS or WRS-2 path/row), as the guide gives both.
    """
    from shapely.geometry import shape

    return {
        "pathrow": scene.tile,
        "sceneid": scene.scene_id,
        "type": product_type(scene),
        "date": scene.datetime.date().isoformat(),
        "cloud": scene.cloud_pct,
        "footprint": shape(scene.footprint).wkt if scene.footprint else None,
        "tileid": scene.tile,
        "size": human_size(scene.size_bytes),
        "link": scene.link,
        "icon": scene.quicklook,
        "datetime": scene.datetime.isoformat(),
        "size_bytes": scene.size_bytes,
        "online": scene.online,
        "provider": scene.catalog,
    }


def preview(scenes: list[Scene]) -> dict[str, Any]:
    """Return the upstream-shaped preview: an object keyed by scene id plus ``Results``."""
    result: dict[str, Any] = {scene.scene_id: preview_entry(scene) for scene in scenes}
    result["Results"] = len(scenes)
    return result


_S2_LEVEL = re.compile(r"(?:^|[^a-z0-9])(?:msi)?(l1c|l2a)(?:$|[^a-z0-9])|s2msi(1c|2a)", re.I)


def product_type(scene: Scene) -> str | None:
    """Return the upstream's ``type``: the product-name part of the scene id.

    Sentinel-2 ids in the ESA form give it (``S2A_MSIL1C_...`` -> ``MSIL1C``); other Sentinel-2
    ids (Earth Search's ``S2A_23LLF_20200109_0_L2A``) get ``MSIL1C``/``MSIL2A`` from the id's
    level or the dataset. Landsat product ids give their correction level (``L1TP``, ``L2SP``).
    """
    parts = scene.scene_id.split("_")
    if len(parts) > 1 and re.fullmatch(r"MSIL[12][AC]", parts[1]):
        return parts[1]
    if scene.scene_id.upper().startswith("S2"):
        for text in (scene.scene_id, scene.dataset):
            match = _S2_LEVEL.search(text)
            if match:
                level = (match.group(1) or "l" + match.group(2)).upper()
                return f"MSI{level}"
    if len(parts) > 1 and re.fullmatch(r"L[12][A-Z0-9]{2}", parts[1]):
        return parts[1]
    return parts[1] if len(parts) > 1 else None


def is_large(count: int) -> bool:
    """Return whether a preview of ``count`` scenes is stored rather than kept inline."""
    return count > INLINE_PREVIEW_SCENES


def store_preview(
    run_id: str, result: dict[str, Any], store: RunScenes | None = None
) -> dict[str, Any]:
    """Keep a small preview inline; write a large one to a file and return a reference."""
    count = int(result.get("Results", 0))
    if not is_large(count):
        return result
    entries = [v for k, v in result.items() if k != "Results"]
    (store or RunScenes()).save(run_id, "preview", entries)
    return write_preview_file(run_id, entries, count)


def write_preview_file(
    run_id: str, entries: Iterable[dict[str, Any]], count: int
) -> dict[str, Any]:
    """Write a large preview's ``entries`` (in order) to the run's preview file, one at a time.

    The file holds the upstream's shape (an object keyed by scene id plus ``Results``); the
    entries are in the run-scenes table already (kind ``preview``).

    Returns:
        The reference that travels instead of the preview.
    """
    folder = data_dir() / "runs" / run_id.replace("/", "_").replace(":", "_")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "preview.json"
    tmp = path.with_suffix(".json.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        out.write("{")
        for entry in entries:
            out.write(f"{json.dumps(entry['sceneid'])}: {json.dumps(entry)}, ")
        out.write(f'"Results": {count}}}')
    tmp.replace(path)
    log.info("search.preview_stored scenes=%d path=%s", count, path)
    return {"Results": count, "file": str(path), "table": "radcor_run_scenes", "run_id": run_id}
