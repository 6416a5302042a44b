"""In-task retries of provider calls that failed transiently (DESIGN 1.2, STYLE 2.5).

The download engine retries its own transfers (``download.download_file``); this module gives the
same policy to every other provider call the task layer makes in one go (a search, an availability
check, an order): ``TransientError`` (5xx, timeouts, dropped connections, 429, an expired token
the provider refused as a 5xx) is retried with exponential backoff and +-50 % jitter, a 429's
``Retry-After`` is honoured when it fits in ``max_delay_s``, and anything else is raised at once.
When the attempts are used up the last error is raised, so Airflow's own task retries
(``retries``, ``retry_delay``, ``retry_exponential_backoff``) take over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from include.collectors.download import retry_delay_s
from include.common.errors import TransientError

log = logging.getLogger(__name__)

DEFAULT_ATTEMPTS = 3
DEFAULT_BASE_DELAY_S = 1.0
DEFAULT_MAX_DELAY_S = 30.0

_Result = TypeVar("_Result")


def call_with_retries(
    call: Callable[[], _Result],
    *,
    what: str,
    max_attempts: int = DEFAULT_ATTEMPTS,
    base_delay_s: float = DEFAULT_BASE_DELAY_S,
    max_delay_s: float = DEFAULT_MAX_DELAY_S,
    sleep: Callable[[float], None] = time.sleep,
) -> _Result:
    """Return ``call()``, retrying it after a ``TransientError``.

    Args:
        call: the provider call (no arguments; bind them with a lambda).
        what: what the call does, for the log (``"cdse availability S2A_..."``).
        max_attempts: attempts in all (1 means no retry).
        base_delay_s: the first backoff; doubled per attempt, with jitter.
        max_delay_s: the longest wait here; a longer ``Retry-After`` is left to Airflow's retry.
        sleep: the wait function (tests record instead of sleeping).

    Returns:
        What ``call`` returned.

    Raises:
        TransientError: the last transient error, when the attempts are used up or a 429 asks
            for a longer wait than ``max_delay_s``.
        CollectionBuilderError: any other error of ``call``, at once.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except TransientError as err:
            delay = retry_delay_s(err, attempt, base_delay_s=base_delay_s, max_delay_s=max_delay_s)
            if attempt >= max(1, max_attempts) or delay is None:
                log.warning("retry.gave_up what=%s attempts=%d error=%s", what, attempt, err)
                raise
            log.warning(
                "retry.wait what=%s attempt=%d/%d delay_s=%.2f error=%s",
                what,
                attempt,
                max_attempts,
                delay,
                err,
            )
            sleep(delay)


__all__ = ["DEFAULT_ATTEMPTS", "call_with_retries"]
