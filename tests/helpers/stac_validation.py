"""Offline STAC validation with stac-validator (``stac-valid``): core schemas only.

stac-validator fetches schemas from the internet; offline it validates with ``core=True`` and a
schema map from the schema URLs to the copies pystac ships (DESIGN 3.2). Extension schemas
(eo, raster, projection, file, processing...) are not shipped by any installed package, so they
cannot be checked here: ``core`` skips them.
"""

from __future__ import annotations

import warnings
from importlib.resources import files
from pathlib import Path

SPEC = "https://schemas.stacspec.org/v1.1.0"
_LOCAL = {
    f"{SPEC}/item-spec/json-schema/{name}.json": f"stac-spec/v1.1.0/{name}.json"
    for name in (
        "item",
        "basics",
        "bands",
        "common",
        "datetime",
        "instrument",
        "licensing",
        "provider",
        "data-values",
    )
} | {
    f"{SPEC}/collection-spec/json-schema/collection.json": "stac-spec/v1.1.0/collection.json",
    f"{SPEC}/catalog-spec/json-schema/catalog.json": "stac-spec/v1.1.0/catalog.json",
    "https://geojson.org/schema/Feature.json": "geojson/Feature.json",
    "https://geojson.org/schema/Geometry.json": "geojson/Geometry.json",
}


def schema_map() -> dict[str, str]:
    """Return schema URL -> local file of the STAC 1.1.0 core schemas pystac ships."""
    root = Path(str(files("pystac.validation.jsonschemas")))
    return {url: str(root / local) for url, local in _LOCAL.items()}


def validate_offline(path: Path) -> tuple[bool, list[dict[str, object]]]:
    """Validate a STAC JSON file against the core schemas, offline; return (valid, messages)."""
    with warnings.catch_warnings():
        # the module warns on import that its PyPI name moved to stac-valid (which we install)
        warnings.simplefilter("ignore", DeprecationWarning)
        from stac_validator.validate import StacValidate

    validator = StacValidate(str(path), core=True, schema_map=schema_map())
    valid = bool(validator.run())
    return valid, list(validator.message)
