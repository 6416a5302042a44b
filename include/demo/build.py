"""A small, offline, Sentinel-2 L1C-like STAC catalog for ``make demo`` and integration tests.

The scenes are synthetic but shaped like the real thing:

- Grid: the real MGRS tile 23LLF (UTM zone 23 south, EPSG:32723, tile upper-left at
  x=399960, y=8700040, 109.8 km wide). Each scene covers a 20.48 km square subset in the tile's
  south-west corner, upper-left at x=399960, y=8610760 (a multiple of 240 m from the tile origin,
  so the 10, 20 and 60 m grids stay aligned), which contains the DESIGN example's bbox
  (-45.9, -12.74, -45.8, -12.6) near Luis Eduardo Magalhaes, Bahia. The pixel size is
  20480 / ``size_px`` metres: 80 m for the default 256 px, 20 m for 1024 px, 10 m for 2048 px.
  B02, B03, B04 and B08 (10 m bands in Sentinel-2) use that grid; B11 (a 20 m band) uses a grid
  twice as coarse, as in real products.
- Radiometry: uint16 digital numbers = TOA reflectance * 10000, plus the +1000 radiometric offset
  for processing baseline 04.00 and later (none before), 0 = nodata, deflate COGs. Land cover
  comes from seeded smooth noise fields: cerrado, bare soil, centre-pivot fields (vegetated or
  bare), a river and small lakes, plus fine texture.
- Per scene: spatially coherent clouds (bright, soft-edged blobs from a thresholded noise field,
  with shadows) whose share of valid pixels gives ``eo:cloud_cover``; one scene (the S2B of
  2020-01-10) has a partial swath: a nodata (0) triangle on its western edge.
- Names: real ESA-style product names (``S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_...``);
  two scenes inside 2020-01-09..2020-01-10, later ones every five days (the 2020-01-19 one as a
  Collection-1 reprocessed N0500 product, to exercise the offset).
- STAC items in collection ``sentinel-2-l1c`` with Earth Search v1-like properties, assets keyed
  by band name with hrefs ``/files/<scene>/<band>.tif`` (the demo server makes them absolute
  URLs), written through ``StaticStacBackend`` into ``root``; files go to ``root/files``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from include.catalog.static_stac import StaticStacBackend
from include.common.errors import ProcessingError
from include.demo import extras
from include.demo.scenes import (
    COLLECTION_ID,
    FILES_DIR,
    build_item,
    demo_collection,
    demo_scene_specs,
    write_scene_files,
)

log = logging.getLogger(__name__)

__all__ = ["FILES_DIR", "build_demo_catalog", "demo_collection"]


def build_demo_catalog(
    root: Path,
    *,
    scenes: int = 4,
    size_px: int = 256,
    seed: int = 0,
    product_metadata: bool = False,
    l2a: bool = False,
) -> list[dict[str, Any]]:
    """Write the demo catalog into ``root`` and return its items (as stored).

    ``root`` gets a static STAC catalog (``catalog.json``, ``sentinel-2-l1c/...``) and the scene
    files under ``root/files/<product name>/``. Building again overwrites (same seed, same
    scenes, one item each).

    Args:
        root: the catalog folder (created when missing).
        scenes: how many scenes (1..100); the first four are the fixed ones.
        size_px: pixels per side of the 10 m-class grid (even, 32..4096).
        seed: the seed of the landscape and the clouds.
        product_metadata: also write each scene's MTD_MSIL1C.xml as a ``product_metadata``
            asset (``include.demo.extras``).
        l2a: also write a ``sentinel-2-l2a`` collection with each scene's L2A product(s)
            (``include.demo.l2a``).

    Returns:
        The L1C item dicts, in scene order.

    Raises:
        InvalidInputError: when ``scenes`` or ``size_px`` is out of range.
        ProcessingError: when a scene cannot be written or stored.
    """
    specs = demo_scene_specs(scenes, seed=seed)
    backend = StaticStacBackend(root)
    collection = demo_collection()
    items: list[dict[str, Any]] = []
    for index, spec in enumerate(specs):
        files, cloud_pct = write_scene_files(
            spec, root / FILES_DIR / spec.product_name, index=index, size_px=size_px, seed=seed
        )
        item = build_item(spec, files, cloud_pct, seed=seed)
        if product_metadata:
            scene_dir = root / FILES_DIR / spec.product_name
            item = extras.with_l1c_metadata(item, spec, scene_dir, cloud_pct)
        if l2a:
            extras.add_l2a_items(backend, root, spec, index, files, seed=seed)
        backend.upsert(item, collection=collection)
        stored = backend.get(COLLECTION_ID, spec.product_name)
        if stored is None:
            raise ProcessingError(f"demo: {spec.product_name} was not stored in {root}")
        items.append(stored)
        log.info(
            "demo.scene scene=%s cloud_pct=%.2f partial_swath=%s size_px=%d",
            spec.product_name,
            cloud_pct,
            spec.nodata_corner,
            size_px,
        )
    return items
