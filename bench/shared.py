"""What the benches share: the profile of a tiled one-band GeoTIFF, a scene without footprint.

The benches run as scripts (``.venv/bin/python bench/<name>.py``), so this folder is on
``sys.path`` and they import this module as ``shared``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from include.collectors.base import Scene


def tiled_profile(
    width: int,
    height: int,
    *,
    dtype: str,
    crs: Any,
    transform: Any,
    nodata: float | None = None,
    block: int = 512,
    **creation: Any,
) -> dict[str, Any]:
    """Return a rasterio profile of a one-band tiled GeoTIFF; ``creation`` adds GDAL options."""
    return {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": dtype,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        **creation,
    }


def bench_scene(
    scene_id: str, *, catalog: str, dataset: str, when: datetime, tile: str, **extra: Any
) -> Scene:
    """Return the scene a bench processes: no cloud cover, no footprint (it has no search)."""
    from include.collectors.base import Scene

    return Scene(
        scene_id=scene_id,
        catalog=catalog,
        dataset=dataset,
        datetime=when,
        cloud_pct=0.0,
        tile=tile,
        footprint=None,
        **extra,
    )
