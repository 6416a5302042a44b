"""Progress reporting for long work: a callback type and a rate-limited log reporter."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

ProgressFn = Callable[[int, "int | None"], None]
"""Called as ``progress(done_bytes, total_bytes)``; ``total_bytes`` is None when unknown."""


class ProgressLogger:
    """Turns progress callbacks into a log line every ``every_s`` seconds or ``every_pct`` percent.

    Lines read ``<event> scene=... pct=42.0 done_mb=... total_mb=... mb_s=... eta_s=...``.
    """

    def __init__(
        self,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger],
        event: str,
        *,
        every_s: float = 10.0,
        every_pct: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._event = event
        self._every_s = every_s
        self._every_pct = every_pct
        self._clock = clock
        self._start = clock()
        self._last_time = self._start
        self._last_pct = -100.0
        self.lines = 0

    def __call__(self, done_bytes: int, total_bytes: int | None) -> None:
        """Log a progress line when enough time or progress has passed since the last one."""
        now = self._clock()
        pct = 100.0 * done_bytes / total_bytes if total_bytes else None
        finished = total_bytes is not None and done_bytes >= total_bytes
        due_by_time = now - self._last_time >= self._every_s
        due_by_pct = pct is not None and pct - self._last_pct >= self._every_pct
        if not (due_by_time or due_by_pct or finished):
            return
        elapsed_s = max(now - self._start, 1e-9)
        mb_s = done_bytes / 1e6 / elapsed_s
        eta = f"{(total_bytes - done_bytes) / 1e6 / mb_s:.0f}" if total_bytes and mb_s > 0 else "?"
        self._log.info(
            "%s pct=%s done_mb=%.1f total_mb=%s mb_s=%.2f eta_s=%s",
            self._event,
            f"{pct:.1f}" if pct is not None else "?",
            done_bytes / 1e6,
            f"{total_bytes / 1e6:.1f}" if total_bytes else "?",
            mb_s,
            eta,
        )
        self._last_time = now
        if pct is not None:
            self._last_pct = pct
        self.lines += 1
