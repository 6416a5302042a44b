"""The upstream guide's requests, literally (bdc-collection-builder ``USING.rst``).

Bodies and paths as the guide's curl examples send them; tests replay them unchanged.
"""

from __future__ import annotations

from typing import Any

S2_ITEMS_TO_PUBLISH = [
    {"name": "B01", "pattern": "**/*B01_60m.jp2"},
    {"name": "B02", "pattern": "**/*B02_10m.jp2"},
    {"name": "B03", "pattern": "**/*B03_10m.jp2"},
    {"name": "B04", "pattern": "**/*B04_10m.jp2"},
    {"name": "B05", "pattern": "**/*B05_20m.jp2"},
    {"name": "B06", "pattern": "**/*B06_20m.jp2"},
    {"name": "B07", "pattern": "**/*B07_20m.jp2"},
    {"name": "B08", "pattern": "**/*B08_10m.jp2"},
    {"name": "B8A", "pattern": "**/*B8A_20m.jp2"},
    {"name": "B09", "pattern": "**/*B09_60m.jp2"},
    {"name": "B11", "pattern": "**/*B11_20m.jp2"},
    {"name": "B12", "pattern": "**/*B12_20m.jp2"},
    {"name": "SCL", "pattern": "**/*SCL_20m.jp2"},
]

SENTINEL2: dict[str, Any] = {
    "tiles": ["18LUN"],
    "catalog": "ESA",
    "dataset": "S2MSI2A",
    "start": "2023-02-07T00:00:00",
    "end": "2023-02-07T23:59:59",
    "cloud": 20,
    "action": "start",
    "force": True,
    "tasks": [
        {
            "type": "download",
            "collection": "S2_L2A-1",
            "args": {"glob_pattern": "*", "path_include_month": True},
            "tasks": [
                {
                    "type": "publish",
                    "collection": "S2_L2A-1",
                    "args": {"path_include_month": True, "items_to_publish": S2_ITEMS_TO_PUBLISH},
                    "tasks": [],
                }
            ],
        }
    ],
}
"""*Collecting Sentinel 2 L1C Images*: ``curl -XPOST ... localhost:5000/api/radcor``."""

LANDSAT8: dict[str, Any] = {
    "w": -48.33171,
    "s": -14.06716,
    "e": -46.21973,
    "n": -11.95925,
    "catalog": "USGS",
    "dataset": "landsat_ot_c2_l1",
    "start": "2020-02-20T00:00:00",
    "end": "2020-02-23T23:59:59",
    "cloud": 100,
    "action": "start",
    "force": True,
    "tasks": [
        {
            "type": "download",
            "collection": "LC8_DN-1",
            "args": {},
            "tasks": [{"type": "publish", "collection": "LC8_DN-1", "args": {}}],
        }
    ],
}
"""*Collecting Landsat-8 Level 1 Images*: ``curl -XPOST ... localhost:5000/api/radcor``."""

RADCOR_PATH = "/api/radcor"
RESTART_PATH = "/api/radcor/restart?ids=1"
"""*Restart by identifier*: ``curl -XGET ... localhost:5000/api/radcor/restart?ids=1``."""

PREVIEW_ENTRY_KEYS = (
    "pathrow",
    "sceneid",
    "type",
    "date",
    "cloud",
    "footprint",
    "tileid",
    "size",
    "link",
    "icon",
)
"""The keys of one scene in the guide's answer, in the guide's order."""
SIZE_RE = r"\d+\.\d\d (B|KB|MB|GB|TB)"
"""The guide's ``"size": "813.67 MB"``."""
