"""A raster's pixel grid, and reading another raster onto it by nearest neighbour."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT

from include.common.errors import FieldProblem, InvalidInputError


@dataclass(frozen=True, slots=True)
class Grid:
    """A raster grid: CRS, transform and size."""

    crs: Any
    transform: Affine
    width: int
    height: int

    @classmethod
    def of(cls, path: Path) -> Grid:
        """Return the grid of the raster at ``path``.

        Raises:
            InvalidInputError: when the file cannot be read or is not georeferenced.
        """
        try:
            with rasterio.open(path) as ds:
                if ds.crs is None:
                    raise InvalidInputError(
                        FieldProblem(f"files[{path.name}]", "is not georeferenced", "check it")
                    )
                return cls(ds.crs, ds.transform, ds.width, ds.height)
        except RasterioError as err:
            raise InvalidInputError(
                FieldProblem(f"files[{path.name}]", f"cannot be read: {err}", "run it again")
            ) from err

    @property
    def resolution(self) -> float:
        """The pixel width in CRS units."""
        return abs(self.transform.a)

    def upsampling_factor(self, fine: Grid) -> int | None:
        """Return k when each of this grid's pixels is exactly k x k pixels of ``fine``.

        Same CRS and origin, no rotation, pixels k times larger, covering ``fine``: then nearest
        neighbour resampling onto ``fine`` is repeating each pixel k times in both directions.
        """
        mine, theirs = self.transform, fine.transform
        if self.crs != fine.crs or (mine.b, mine.d, theirs.b, theirs.d) != (0, 0, 0, 0):
            return None
        if (mine.c, mine.f) != (theirs.c, theirs.f) or theirs.a == 0:
            return None
        factor = round(mine.a / theirs.a)
        if factor < 2 or (mine.a, mine.e) != (theirs.a * factor, theirs.e * factor):
            return None
        covers = self.width * factor >= fine.width and self.height * factor >= fine.height
        return factor if covers else None


def on_grid(ds: Any, grid: Grid, nodata: float | None) -> WarpedVRT:
    """Return ``ds`` on ``grid`` by nearest neighbour (a WarpedVRT; close it after use)."""
    return WarpedVRT(
        ds,
        crs=grid.crs,
        transform=grid.transform,
        width=grid.width,
        height=grid.height,
        resampling=Resampling.nearest,
        nodata=nodata,
    )
