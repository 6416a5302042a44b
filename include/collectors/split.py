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

import abc
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import ClassVar, TypeVar

from include.collectors.base import CatalogDriver, Scene, SearchQuery
from include.collectors.scene_ids import processing_rank, product_key
from include.common.errors import FieldProblem, InvalidInputError

log = logging.getLogger(__name__)
_Item = TypeVar("_Item")

WORLD: tuple[float, float, float, float] = (-180.0, -90.0, 180.0, 90.0)
MIN_SPAN_S = 1.0
"""A window shorter than this is cut by area rather than by time."""
MAX_WINDOWS = 4096
"""The most windows one search is cut into (a server that ignores dates would need endless)."""
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


def split_in_time(
    query: SearchQuery, *, min_span_s: float, step: timedelta | None = None
) -> list[SearchQuery] | None:
    """Return ``query`` cut in two halves of its time range, or None when too short to cut.

    ``step``: the catalog compares times at this precision only (USGS M2M: whole days). The cut
    then falls on a step boundary (counted from the Unix epoch, so days cut at 00:00 UTC) and
    the first half ends just before it, so the halves share no step; a range within one step
    cannot be cut.
    """
    start = query.start or EARLIEST
    end = query.end or datetime.now(UTC)
    if step is not None:
        cut = _step_boundary(start, end, step)
        if cut is None:
            return None
        before = cut - timedelta(microseconds=1)
        return [replace(query, start=start, end=before), replace(query, start=cut, end=end)]
    if (end - start).total_seconds() < min_span_s:
        return None
    middle = start + (end - start) / 2
    # Both halves hold the middle instant (catalogs compare ge/le): a product sensed then is
    # found twice and merged once, and no sub-second sensing time falls between the halves.
    return [replace(query, start=start, end=middle), replace(query, start=middle, end=end)]


def _step_boundary(start: datetime, end: datetime, step: timedelta) -> datetime | None:
    """Return the step boundary nearest the middle of ``(start, end]``, or None if it has none."""
    middle = start + (end - start) / 2
    steps = (middle - EARLIEST) // step
    for candidate in (EARLIEST + steps * step, EARLIEST + (steps + 1) * step):
        if start < candidate <= end:
            return candidate
    return None


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
    return newest_of(scenes, lambda scene: scene.scene_id)


def newest_of(items: Sequence[_Item], scene_id: Callable[[_Item], str]) -> list[_Item]:
    """Return ``items`` with one per product and acquisition: the newest processing's.

    ``scene_id`` gives an item's scene id (items may be scenes or lighter records of them).
    Order is kept (the first place the product was seen); of two equal ids the first stays.
    """
    best: dict[tuple[str, ...], tuple[tuple[object, ...], int]] = {}
    kept: list[_Item | None] = []
    for item in items:
        key = product_key(scene_id(item))
        rank = processing_rank(scene_id(item))
        held = best.get(key)
        if held is None:
            best[key] = (rank, len(kept))
            kept.append(item)
        elif rank > held[0]:
            kept[held[1]] = None
            best[key] = (rank, len(kept))
            kept.append(item)
    return [item for item in kept if item is not None]


def merge_window(scenes: list[Scene], given: set[str]) -> list[Scene]:
    """Return ``scenes`` without those already ``given`` and with the newest processing only.

    Adds the returned ids to ``given``.
    """
    fresh = [scene for scene in newest_processing(scenes) if scene.scene_id not in given]
    given.update(scene.scene_id for scene in fresh)
    return fresh


@dataclass(frozen=True, slots=True)
class Splitting:
    """How one catalog's searches are split: its name, parallel windows, time precision."""

    catalog: str
    """The catalog name, for messages."""
    max_workers: int = 2
    """Windows searched at once."""
    min_span_s: float = MIN_SPAN_S
    """A window shorter than this is cut by area instead of time."""
    time_step: timedelta | None = None
    """The catalog's time precision, when coarser than instants (``split_in_time``'s step)."""
    max_windows: int = MAX_WINDOWS
    """The most windows one search may take; a catalog ignoring our filters would take more."""

    def pieces(self, window: SearchQuery) -> list[SearchQuery] | None:
        """Return ``window`` cut in time, else in area; None when it cannot be cut."""
        return split_in_time(
            window, min_span_s=self.min_span_s, step=self.time_step
        ) or split_in_area(window)


def iter_complete_search(
    query: SearchQuery,
    run_window: Callable[[SearchQuery], list[Scene]],
    splitting: Splitting,
) -> Iterator[list[Scene]]:
    """Yield the scenes of ``query``, window by window, each scene id once.

    Two processings of one product found by two windows both come out (a window cannot take
    back what it yielded): a consumer that keeps only the newest uses ``newest_processing`` or
    ``processing_rank`` on what it gathered.

    Args:
        query: the whole search.
        run_window: runs one window; raises ``WindowTooLargeError`` when it would pass the
            catalog's limit.
        splitting: the catalog's name, parallel windows and time precision.

    Yields:
        The new scenes of each window as it completes (not in time order).

    Raises:
        InvalidInputError: a window too small to cut still passes the limit, or the search
            took more than ``max_windows`` windows.
    """
    given: set[str] = set()
    windows = 1
    workers = max(1, splitting.max_workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="search") as pool:
        pending: dict[Future[list[Scene]], SearchQuery] = {pool.submit(run_window, query): query}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    window = pending.pop(future)
                    try:
                        scenes = future.result()
                    except WindowTooLargeError as err:
                        pieces = splitting.pieces(window)
                        if pieces is None:
                            raise _too_large(
                                splitting,
                                f"has {err} in {_describe(window)}, a window too "
                                "short and too small to split",
                            ) from err
                        if windows + len(pieces) > splitting.max_windows:
                            raise _too_large(
                                splitting,
                                f"still has {err} in {_describe(window)} after {windows} windows",
                            ) from err
                        log.info(
                            "search.split catalog=%s %s pieces=%d limit=%d",
                            splitting.catalog,
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
        log.info(
            "search.windows catalog=%s windows=%d scenes=%d",
            splitting.catalog,
            windows,
            len(given),
        )


def complete_search(
    query: SearchQuery,
    run_window: Callable[[SearchQuery], list[Scene]],
    splitting: Splitting,
) -> list[Scene]:
    """Return every scene of ``query`` once, newest processings, sorted by datetime then id.

    Raises:
        InvalidInputError: as ``iter_complete_search``.
    """
    found: list[Scene] = []
    for scenes in iter_complete_search(query, run_window, splitting):
        found.extend(scenes)
    return by_time(newest_processing(found))


def by_time(scenes: list[Scene]) -> list[Scene]:
    """Return ``scenes`` sorted by datetime, then scene id (how every search answers)."""
    return sorted(scenes, key=lambda scene: (scene.datetime, scene.scene_id))


def _too_large(splitting: Splitting, what: str) -> InvalidInputError:
    return InvalidInputError(
        FieldProblem(
            "start,end",
            f"catalog {splitting.catalog!r} {what}",
            "raise options.max_pages of this catalog in config/catalogs.yaml, or narrow the "
            "cloud limit, the tiles or the area",
        )
    )


class SplitSearchDriver(CatalogDriver):
    """A driver whose catalog caps what one query lists: its searches split by ``Splitting``.

    A subclass gives ``search_window`` (one window; ``WindowTooLargeError`` at the catalog's
    limit) and ``search_ids`` (scene ids). A search by ids or with a ``limit`` is one query,
    never split, so a limit reached there is refused; ``search`` and ``iter_search`` are this
    class's.
    """

    search_time_step: ClassVar[timedelta | None] = None
    """The catalog's time precision, when it compares dates only (``Splitting.time_step``)."""

    @property
    def splitting(self) -> Splitting:
        """How this catalog's searches are split."""
        return Splitting(
            self.catalog, max_workers=self.search_workers, time_step=self.search_time_step
        )

    @abc.abstractmethod
    def search_window(self, query: SearchQuery) -> list[Scene]:
        """Return the scenes of one window, in any order.

        Raises:
            WindowTooLargeError: the window would pass the catalog's limit.
        """

    @abc.abstractmethod
    def search_ids(self, query: SearchQuery) -> list[Scene]:
        """Return the scenes of a search by scene ids, in any order.

        Raises:
            WindowTooLargeError: the search passes the catalog's limit.
        """

    def search(self, query: SearchQuery) -> list[Scene]:
        """Return every scene matching ``query`` once, sorted by datetime then id.

        A search past the catalog's limits is split by time, then area, and merged, the newest
        processing of a product kept; a search by ids or with a ``limit`` is never split.

        Raises:
            InvalidInputError: a bad query, or a search that cannot be split to fit.
            ProviderError, TransientError: the catalog refused or kept failing.
        """
        if query.scene_ids or query.limit is not None:
            try:
                direct = self.search_ids if query.scene_ids else self.search_window
                scenes = by_time(direct(query))[: query.limit]
            except WindowTooLargeError as err:
                raise _too_large(
                    self.splitting,
                    f"has {err} for this search (searches by id or with a limit are not split)",
                ) from err
        else:
            scenes = complete_search(query, self.search_window, self.splitting)
        log.info(
            "search.done catalog=%s dataset=%s scenes=%d", self.catalog, query.dataset, len(scenes)
        )
        return scenes

    def iter_search(self, query: SearchQuery) -> Iterator[Scene]:
        """Yield every scene matching ``query``, window by window (not sorted).

        Holds one window's scenes at a time; see ``iter_complete_search`` for processings.

        Raises:
            InvalidInputError, ProviderError, TransientError: as ``search``.
        """
        if query.scene_ids or query.limit is not None:
            yield from self.search(query)
            return
        yield from scenes_of(iter_complete_search(query, self.search_window, self.splitting))


def scenes_of(pages: Iterator[list[Scene]]) -> Iterator[Scene]:
    """Yield the scenes of ``pages`` one by one."""
    for page in pages:
        yield from page


__all__: list[str] = [
    "SplitSearchDriver",
    "Splitting",
    "WindowTooLargeError",
    "by_time",
    "complete_search",
    "iter_complete_search",
    "merge_window",
    "newest_of",
    "newest_processing",
    "scenes_of",
    "split_in_area",
    "split_in_time",
]
