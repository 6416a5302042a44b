"""Complete searches by construction: split a search the catalog cannot list in one go.

Every catalog caps what one query lists (CDSE OData's ``$skip`` 10,000, USGS M2M's
``maxResults``, a STAC API's page budget ``max_pages``). A driver runs each *window* (its query
with a time range and an area) through ``run_window``, which raises ``WindowTooLargeError`` when
the window would pass the catalog's limit, before returning anything as if it were all. The window
is then cut in two halves in time, or, when its time range is shorter than ``min_span_s`` (many
products sensed at once), in four quarters of its area; the pieces run again, ``max_workers`` at
once. The scenes of the windows are merged and de-duplicated by product: a product found by two
windows (a footprint across an area cut, a sensing time on a time cut) comes out once, and of two
processings of one acquisition the newest wins (``newest_processing``: ``scene_ids.product_key``
and ``scene_ids.processing_rank``).

Memory: ``iter_complete_search`` holds the scenes of at most ``max_workers`` windows (each under
the catalog's limit) plus the ids already given out; it yields one window's scenes at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import UTC, datetime

from include.collectors.base import Scene, SearchQuery
from include.collectors.scene_ids import processing_rank, product_key
from include.common.errors import FieldProblem, InvalidInputError

log = logging.getLogger(__name__)

WORLD: tuple[float, float, float, float] = (-180.0, -90.0, 180.0, 90.0)
MIN_SPAN_S = 1.0
"""A window shorter than this is cut by area rather than by time."""
MIN_AREA_DEG = 0.01
"""A window narrower than this (degrees) is not cut again: the search is refused."""
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


class WindowTooLargeError(Exception):
    """Raised by a driver's ``run_window``: the window would pass the catalog's limit.

    Internal to a search: ``iter_complete_search`` cuts the window and never lets it out.
    """

    def __init__(self, limit: int, found: int | None = None) -> None:
        super().__init__(f"more than {limit} results" + (f" ({found})" if found else ""))
        self.limit = limit
        self.found = found


def _area_of(query: SearchQuery) -> tuple[float, float, float, float]:
    if query.bbox is not None:
        return query.bbox
    if query.geometry is not None:
        from shapely.geometry import shape

        w, s, e, n = shape(query.geometry).bounds
        return (w, s, e, n)
    return WORLD


def split_in_time(query: SearchQuery, *, min_span_s: float) -> list[SearchQuery] | None:
    """Return ``query`` cut in two halves of its time range, or None when too short to cut."""
    start = query.start or EARLIEST
    end = query.end or datetime.now(UTC)
    if (end - start).total_seconds() < min_span_s:
        return None
    middle = start + (end - start) / 2
    # Both halves hold the middle instant (catalogs compare ge/le): a product sensed then is
    # found twice and merged once, and no sub-second sensing time falls between the halves.
    return [replace(query, start=start, end=middle), replace(query, start=middle, end=end)]


def split_in_area(query: SearchQuery) -> list[SearchQuery] | None:
    """Return ``query`` cut in four quarters of its area, or None when too small to cut.

    A query with a geometry keeps, in each quarter, the part of its geometry inside it.
    """
    if query.bbox is None and query.geometry is None:
        return None  # an area would leave out products without a footprint (auxiliary files)
    w, s, e, n = _area_of(query)
    if e - w < MIN_AREA_DEG and n - s < MIN_AREA_DEG:
        return None
    mid_x, mid_y = (w + e) / 2, (s + n) / 2
    boxes = [(w, s, mid_x, mid_y), (mid_x, s, e, mid_y), (w, mid_y, mid_x, n), (mid_x, mid_y, e, n)]
    if query.geometry is None:
        return [replace(query, bbox=b, geometry=None) for b in boxes]
    from shapely.geometry import box, mapping, shape

    whole = shape(query.geometry)
    parts: list[SearchQuery] = []
    for b in boxes:
        piece = whole.intersection(box(*b))
        if not piece.is_empty and (piece.area > 0 or whole.area == 0):
            parts.append(replace(query, bbox=None, geometry=dict(mapping(piece))))
    return parts


def _describe(query: SearchQuery) -> str:
    area = ",".join(f"{v:.3f}" for v in _area_of(query))
    start = query.start.isoformat() if query.start else "-"
    end = query.end.isoformat() if query.end else "-"
    return f"start={start} end={end} area={area}"


def newest_processing(scenes: list[Scene]) -> list[Scene]:
    """Return ``scenes`` with one scene per product id and acquisition: the newest processing.

    Order is kept (the first place the product was seen).
    """
    best: dict[tuple[str, ...], tuple[tuple[object, ...], int]] = {}
    kept: list[Scene | None] = []
    for scene in scenes:
        key = product_key(scene.scene_id)
        rank = processing_rank(scene.scene_id)
        held = best.get(key)
        if held is None:
            best[key] = (rank, len(kept))
            kept.append(scene)
        elif rank > held[0]:
            kept[held[1]] = None
            best[key] = (rank, len(kept))
            kept.append(scene)
    return [scene for scene in kept if scene is not None]


def merge_window(scenes: list[Scene], given: set[str]) -> list[Scene]:
    """Return ``scenes`` without those already ``given`` and with the newest processing only.

    Adds the returned ids to ``given``.
    """
    fresh = [scene for scene in newest_processing(scenes) if scene.scene_id not in given]
    given.update(scene.scene_id for scene in fresh)
    return fresh


def iter_complete_search(
    query: SearchQuery,
    run_window: Callable[[SearchQuery], list[Scene]],
    *,
    catalog: str,
    max_workers: int = 2,
    min_span_s: float = MIN_SPAN_S,
) -> Iterator[list[Scene]]:
    """Yield the scenes of ``query``, window by window, each product once.

    Args:
        query: the whole search.
        run_window: runs one window; raises ``WindowTooLargeError`` when it would pass the
            catalog's limit.
        catalog: the catalog name, for messages.
        max_workers: windows searched at once.
        min_span_s: a window shorter than this is cut by area instead of time.

    Yields:
        The new scenes of each window as it completes (not in time order).

    Raises:
        InvalidInputError: a window too small to cut still passes the limit.
    """
    given: set[str] = set()
    windows = 1
    with ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="search") as pool:
        pending: dict[Future[list[Scene]], SearchQuery] = {pool.submit(run_window, query): query}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    window = pending.pop(future)
                    try:
                        scenes = future.result()
                    except WindowTooLargeError as err:
                        pieces = split_in_time(window, min_span_s=min_span_s) or split_in_area(
                            window
                        )
                        if pieces is None:
                            raise _unsplittable(catalog, window, err) from err
                        log.info(
                            "search.split catalog=%s %s pieces=%d limit=%d",
                            catalog,
                            _describe(window),
                            len(pieces),
                            err.limit,
                        )
                        windows += len(pieces)
                        for piece in pieces:
                            pending[pool.submit(run_window, piece)] = piece
                        continue
                    yield merge_window(scenes, given)
        finally:
            for future in pending:
                future.cancel()
    if windows > 1:
        log.info("search.windows catalog=%s windows=%d scenes=%d", catalog, windows, len(given))


def complete_search(
    query: SearchQuery,
    run_window: Callable[[SearchQuery], list[Scene]],
    *,
    catalog: str,
    max_workers: int = 2,
    min_span_s: float = MIN_SPAN_S,
) -> list[Scene]:
    """Return every scene of ``query`` once, sorted by datetime then id (see the iterator).

    Raises:
        InvalidInputError: a window too small to cut still passes the catalog's limit.
    """
    found: list[Scene] = []
    for scenes in iter_complete_search(
        query, run_window, catalog=catalog, max_workers=max_workers, min_span_s=min_span_s
    ):
        found.extend(scenes)
    return sorted(newest_processing(found), key=lambda scene: (scene.datetime, scene.scene_id))


def _unsplittable(catalog: str, window: SearchQuery, err: WindowTooLargeError) -> InvalidInputError:
    return InvalidInputError(
        FieldProblem(
            "start,end",
            f"catalog {catalog!r} has {err} in {_describe(window)}, a window too short and "
            "too small to split further",
            "raise the catalog's page limits in config/catalogs.yaml or narrow cloud or tiles",
        )
    )


def scenes_of(pages: Iterator[list[Scene]]) -> Iterator[Scene]:
    """Yield the scenes of ``pages`` one by one."""
    for page in pages:
        yield from page


__all__: list[str] = [
    "WindowTooLargeError",
    "complete_search",
    "iter_complete_search",
    "merge_window",
    "newest_processing",
    "scenes_of",
    "split_in_area",
    "split_in_time",
]
