"""Asset hrefs a catalog can keep: no path of the machine that published the files.

The publish processor gives asset hrefs as absolute paths under ``DATA_DIR/published``. Before
storing an item, a backend turns each of them into:

- a path relative to the item's own JSON file (static catalog): the folder holding the catalog
  and ``published/`` can be moved, or served over HTTP, as is;
- ``<public base URL>/<path relative to DATA_DIR/published>`` (served catalogs such as pgstac),
  the base URL being ``$COLLECTION_BUILDER_PUBLIC_BASE_URL``; without it, the bare relative path.

Hrefs that are URLs, already relative, or absolute paths outside ``DATA_DIR/published`` are kept
as given (the demo catalog's ``/files/...`` hrefs are paths of its own server).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from include.common.config import data_dir

PUBLISHED_DIR = "published"
"""The folder under ``DATA_DIR`` holding published files (DESIGN 4; ``storage.published_dir``)."""


def published_root() -> Path:
    """Return ``DATA_DIR/published``, resolved."""
    return (data_dir() / PUBLISHED_DIR).resolve()


def local_path(href: str) -> Path | None:
    """Return the absolute local path an href names (a path or ``file://`` URL), else None."""
    if href.startswith("file://"):
        return Path(unquote(urlsplit(href).path))
    if href.startswith("/"):
        return Path(href)
    return None


def published_path(href: str, root: Path) -> Path | None:
    """Return an href's path relative to the published ``root``, or None when it is not under it."""
    path = local_path(href)
    if path is None:
        return None
    resolved = path.resolve()
    return resolved.relative_to(root) if resolved.is_relative_to(root) else None


def _with_asset_hrefs(
    item: dict[str, Any], new_href: Callable[[str], str | None]
) -> dict[str, Any]:
    """Return a copy of ``item`` whose asset hrefs are ``new_href(href)`` where it is not None."""
    record = copy.deepcopy(item)
    for asset in (record.get("assets") or {}).values():
        href = asset.get("href") if isinstance(asset, dict) else None
        changed = new_href(href) if isinstance(href, str) else None
        if changed is not None:
            asset["href"] = changed
    return record


def relative_asset_hrefs(item: dict[str, Any], item_file: Path, root: Path) -> dict[str, Any]:
    """Return ``item`` with asset hrefs under ``root`` made relative to ``item_file``'s folder.

    Args:
        item: a STAC Item dict.
        item_file: where the item's JSON file is written.
        root: the published folder (``published_root()``).

    Returns:
        A copy of the item.
    """
    folder = item_file.parent.resolve()

    def relative(href: str) -> str | None:
        inside = published_path(href, root)
        return Path(os.path.relpath(root / inside, folder)).as_posix() if inside else None

    return _with_asset_hrefs(item, relative)


def public_asset_hrefs(item: dict[str, Any], base_url: str | None, root: Path) -> dict[str, Any]:
    """Return ``item`` with asset hrefs under ``root`` as ``<base_url>/<relative path>``.

    Args:
        item: a STAC Item dict.
        base_url: the URL serving ``root`` (no trailing ``/``), or None for the bare path.
        root: the published folder (``published_root()``).

    Returns:
        A copy of the item.
    """

    def public(href: str) -> str | None:
        inside = published_path(href, root)
        if inside is None:
            return None
        relative = quote(inside.as_posix())
        return f"{base_url}/{relative}" if base_url else relative

    return _with_asset_hrefs(item, public)


def local_asset_hrefs(item: dict[str, Any]) -> list[str]:
    """Return the asset keys whose hrefs are still absolute local paths."""
    return [
        str(key)
        for key, asset in (item.get("assets") or {}).items()
        if isinstance(asset, dict) and local_path(str(asset.get("href", ""))) is not None
    ]
