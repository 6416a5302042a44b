"""What the benches share: the profile of a tiled single-band GeoTIFF they write.

The benches run as scripts (``.venv/bin/python bench/<name>.py``), so this folder is on
``sys.path`` and they import this module as ``rasters``.
"""

from __future__ import annotations

from typing import Any


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
