"""Readers of provider products (Sentinel-2 SAFE/assets, Landsat bundles) and safe extraction.

Used by the correction, post and harmonization processors; nothing here writes rasters.
"""

from include.processors.products.archive import (
    ExtractionLimits,
    UnsafeArchiveError,
    extract_archive,
    is_archive,
)
from include.processors.products.landsat import (
    LandsatMetadata,
    LandsatProduct,
    MtlDocument,
    landsat_metadata,
    parse_mtl,
    parse_product_id,
)
from include.processors.products.sentinel2 import (
    S2_BANDS,
    Sentinel2Metadata,
    Sentinel2Product,
    Sentinel2TileMetadata,
    canonical_band,
    parse_product_metadata,
    parse_tile_metadata,
)

__all__ = [
    "S2_BANDS",
    "ExtractionLimits",
    "LandsatMetadata",
    "LandsatProduct",
    "MtlDocument",
    "Sentinel2Metadata",
    "Sentinel2Product",
    "Sentinel2TileMetadata",
    "UnsafeArchiveError",
    "canonical_band",
    "extract_archive",
    "is_archive",
    "landsat_metadata",
    "parse_mtl",
    "parse_product_id",
    "parse_product_metadata",
    "parse_tile_metadata",
]
