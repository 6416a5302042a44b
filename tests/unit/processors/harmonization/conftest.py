"""Harmonization test fixtures: real metadata from ``../shared/realdata`` and small rasters.

Rasters are built on the real grids of the real metadata (the eodag T31TDH tile, the stactools
Landsat 8 scene) at coarse resolution, so every test stays in milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

from include.collectors.base import Scene
from include.common.config import CollectionConfig, load_collections
from include.processors.base import ProcessorInputs
from tests.helpers.realdata import realdata_dir

REPO = Path(__file__).resolve().parents[4]
T31TDH_PRODUCT = "eodag/products/S2A_MSIL1C_20180101T105441_N0206_R051_T31TDH_20180101T124911"
T31TDH_TILE = f"{T31TDH_PRODUCT}/GRANULE/L1C_T31TDH_A013204_20180101T105435/MTD_TL.xml"
T31TDH_ORIGIN = (399960.0, 4800000.0)
T31TDH_EPSG = 32631
LANDSAT_DIR = "stactools-landsat/data-files/assets3"
LANDSAT_ID = "LC08_L2SP_008059_20191201_20200825_02_T1"


def real(relative: str) -> Path:
    """Return a real sample file, or skip the test with the reason when it is absent."""
    path = realdata_dir() / relative
    if not path.exists():
        pytest.skip(f"real sample {relative} is absent (set REALDATA_DIR to ../shared/realdata)")
    return path


def with_baseline_0400(l1c_metadata: str) -> str:
    """Return a real MTD_MSIL1C.xml text turned into a baseline 04.00 product metadata.

    Baseline 04.00 added ``Radiometric_Offset_List`` (RADIO_ADD_OFFSET -1000 for every band,
    band_id 0..12) right after ``QUANTIFICATION_VALUE`` (ESA S2 PSD 14.9); the rest is the real
    file unchanged.
    """
    offsets = "".join(
        f'<RADIO_ADD_OFFSET band_id="{band_id}">-1000</RADIO_ADD_OFFSET>' for band_id in range(13)
    )
    text = l1c_metadata.replace(
        "<PROCESSING_BASELINE>02.06</PROCESSING_BASELINE>",
        "<PROCESSING_BASELINE>04.00</PROCESSING_BASELINE>",
    )
    text, count = re.subn(
        r"(<QUANTIFICATION_VALUE[^>]*>10000</QUANTIFICATION_VALUE>)",
        rf"\1<Radiometric_Offset_List>{offsets}</Radiometric_Offset_List>",
        text,
    )
    assert count == 1
    return text


def write_raster(
    path: Path,
    data: np.ndarray[Any, Any],
    *,
    origin: tuple[float, float],
    pixel_m: float,
    epsg: int,
    nodata: float | None,
    scale: float | None = None,
    offset: float | None = None,
) -> Path:
    """Write a one-band GeoTIFF (optionally with scale/offset metadata, as correction writes)."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype.name,
        crs=f"EPSG:{epsg}",
        transform=Affine(pixel_m, 0.0, origin[0], 0.0, -pixel_m, origin[1]),
        nodata=nodata,
    ) as ds:
        ds.write(data, 1)
        if scale is not None or offset is not None:
            ds.scales = (scale if scale is not None else 1.0,)
            ds.offsets = (offset if offset is not None else 0.0,)
    return path


def scene(scene_id: str, tile: str = "31TDH") -> Scene:
    """Return a Scene for ``scene_id``."""
    return Scene(
        scene_id=scene_id,
        catalog="test",
        dataset="test",
        datetime=datetime(2018, 1, 1, 10, 54, tzinfo=UTC),
        cloud_pct=0.0,
        tile=tile,
        footprint=None,
    )


@pytest.fixture(scope="session")
def collections() -> dict[str, CollectionConfig]:
    """The project's collections."""
    return load_collections()


MakeInputs = Callable[..., ProcessorInputs]


@pytest.fixture
def make_inputs(tmp_path: Path, collections: dict[str, CollectionConfig]) -> MakeInputs:
    """Build ProcessorInputs for a collection, files and args; output goes under tmp_path."""

    def build(
        collection: str,
        files: dict[str, Path],
        *,
        scene_id: str,
        args: dict[str, Any] | None = None,
        out: str = "out",
        tile: str = "31TDH",
    ) -> ProcessorInputs:
        return ProcessorInputs(
            scene=scene(scene_id, tile),
            collection=collections[collection],
            files=files,
            output_dir=tmp_path / out,
            args=args or {},
        )

    return build
