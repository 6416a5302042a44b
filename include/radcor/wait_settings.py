"""How the ``wait_online`` step waits for an offline scene: mode, poll interval, timeout, fallback.

Each setting comes from, first match wins:

1. the download node's ``args`` in the conf (``wait_mode``, ``poll_interval_s``,
   ``wait_timeout_s``, ``fallback_online``);
2. the ``options`` of the scene's catalog in ``config/catalogs.yaml`` (same keys);
3. for the poll interval only, the environment variable ``TASK_RETRY_DELAY`` (seconds; the
   upstream collection builder's name for the wait between offline-scene retries, DESIGN 1.1.1);
4. the defaults: ``reschedule`` mode, 3600 s between polls, a 3-day timeout, fallback on.

``wait_mode: reschedule`` waits in an Airflow sensor in reschedule mode (the worker slot is freed
between polls); ``deferrable`` hands the polling to a trigger in the triggerer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from include.common.config import CatalogConfig
from include.common.errors import ConfigError, FieldProblem, InvalidInputError

POLL_INTERVAL_ENV = "TASK_RETRY_DELAY"
DEFAULT_POLL_INTERVAL_S = 3600.0
DEFAULT_TIMEOUT_S = 3 * 24 * 3600.0
MIN_POLL_INTERVAL_S = 1.0
MAX_TIMEOUT_S = 30 * 24 * 3600.0
WAIT_ARG_KEYS: tuple[str, ...] = (
    "wait_mode",
    "poll_interval_s",
    "wait_timeout_s",
    "fallback_online",
)
"""Keys of a download node's ``args`` (and of a catalog's ``options``) read by this module."""


class WaitMode(StrEnum):
    """How an offline scene is waited for."""

    RESCHEDULE = "reschedule"
    """A sensor in reschedule mode: no worker slot is held between polls."""
    DEFERRABLE = "deferrable"
    """A trigger polls in the triggerer (asyncio); no worker slot is held either."""


@dataclass(frozen=True, slots=True)
class WaitSettings:
    """The resolved settings of one scene's wait."""

    mode: WaitMode = WaitMode.RESCHEDULE
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    fallback_online: bool = True
    """Download from a lower-priority provider that has the scene online instead of waiting."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "wait_mode": str(self.mode),
            "poll_interval_s": self.poll_interval_s,
            "wait_timeout_s": self.timeout_s,
            "fallback_online": self.fallback_online,
        }


_FIXES = {
    "wait_mode": f"use one of: {', '.join(m.value for m in WaitMode)}",
    "poll_interval_s": f"give seconds between polls, a number from {MIN_POLL_INTERVAL_S:g} "
    "up to wait_timeout_s (default: $TASK_RETRY_DELAY, else 3600)",
    "wait_timeout_s": f"give the longest wait in seconds, a number above 0 and at most "
    f"{MAX_TIMEOUT_S:g} (30 days; default 259200, 3 days)",
    "fallback_online": "use true or false (a JSON boolean)",
}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _problems(values: Mapping[str, Any], where: str) -> list[FieldProblem]:
    problems: list[FieldProblem] = []

    def add(key: str, message: str) -> None:
        problems.append(FieldProblem(f"{where}.{key}" if where else key, message, _FIXES[key]))

    mode = values.get("wait_mode")
    if mode is not None and (
        not isinstance(mode, str) or mode.strip().lower() not in {m.value for m in WaitMode}
    ):
        add("wait_mode", f"{mode!r} is not a wait mode")
    interval = values.get("poll_interval_s")
    if interval is not None and (not _is_number(interval) or interval < MIN_POLL_INTERVAL_S):
        add(
            "poll_interval_s", f"{interval!r} is not a number of seconds >= {MIN_POLL_INTERVAL_S:g}"
        )
    timeout = values.get("wait_timeout_s")
    if timeout is not None and (not _is_number(timeout) or not 0 < timeout <= MAX_TIMEOUT_S):
        add("wait_timeout_s", f"{timeout!r} is not a number of seconds in (0, {MAX_TIMEOUT_S:g}]")
    elif (
        timeout is not None and interval is not None and _is_number(interval) and interval > timeout
    ):
        add("poll_interval_s", f"{interval} is longer than wait_timeout_s {timeout}")
    fallback = values.get("fallback_online")
    if fallback is not None and not isinstance(fallback, bool):
        add("fallback_online", f"{fallback!r} is not a boolean")
    return problems


def check_wait_args(args: Mapping[str, Any], where: str) -> list[FieldProblem]:
    """Return the problems of the wait settings in a download node's ``args`` (others ignored).

    Args:
        args: the node's ``args``.
        where: the field path of ``args`` (``tasks[0].args``), prefixed to each problem.
    """
    return _problems(args, where)


def poll_interval_from_env(env: Mapping[str, str] | None = None) -> float | None:
    """Return ``$TASK_RETRY_DELAY`` in seconds, or None when unset or empty.

    Raises:
        ConfigError: when it is set to something other than a number >= 1.
    """
    text = (os.environ if env is None else env).get(POLL_INTERVAL_ENV, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= MIN_POLL_INTERVAL_S:
        raise ConfigError(
            f"${POLL_INTERVAL_ENV}",
            POLL_INTERVAL_ENV,
            f"{text!r} is not a number of seconds >= {MIN_POLL_INTERVAL_S:g}; set it to the wait "
            "between offline-scene polls (e.g. 3600) or unset it",
        )
    return value


def resolve_wait_settings(
    catalog: str,
    catalog_config: CatalogConfig | None,
    node_args: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> WaitSettings:
    """Return the wait settings of a scene of ``catalog`` for one download node.

    Args:
        catalog: the scene's catalog name (for messages).
        catalog_config: its ``config/catalogs.yaml`` entry (None: not configured, defaults).
        node_args: the download node's ``args`` (already checked by ``validate_conf``).
        env: the environment (default ``os.environ``), for ``TASK_RETRY_DELAY``.

    Raises:
        ConfigError: a wait option of the catalog, or ``TASK_RETRY_DELAY``, is invalid.
        InvalidInputError: the node's args are invalid (a conf that skipped validation).
    """
    options = dict(catalog_config.options) if catalog_config is not None else {}
    bad_options = _problems(options, "")
    if bad_options:
        first = bad_options[0]
        raise ConfigError(
            "catalogs.yaml",
            f"catalogs.{catalog}.options.{first.field}",
            f"{first.message}; {first.fix}",
        )
    args = dict(node_args or {})
    bad_args = _problems(args, "args")
    if bad_args:
        raise InvalidInputError(bad_args)

    def pick(key: str) -> Any:
        return args.get(key) if args.get(key) is not None else options.get(key)

    interval = pick("poll_interval_s")
    if interval is None:
        interval = poll_interval_from_env(env)
    timeout = pick("wait_timeout_s")
    timeout_s = float(timeout) if timeout is not None else DEFAULT_TIMEOUT_S
    poll_interval_s = float(interval) if interval is not None else DEFAULT_POLL_INTERVAL_S
    mode = pick("wait_mode")
    fallback = pick("fallback_online")
    return WaitSettings(
        mode=WaitMode(str(mode).strip().lower()) if mode is not None else WaitMode.RESCHEDULE,
        poll_interval_s=min(poll_interval_s, timeout_s),
        timeout_s=timeout_s,
        fallback_online=bool(fallback) if fallback is not None else True,
    )


__all__ = [
    "DEFAULT_POLL_INTERVAL_S",
    "DEFAULT_TIMEOUT_S",
    "POLL_INTERVAL_ENV",
    "WAIT_ARG_KEYS",
    "WaitMode",
    "WaitSettings",
    "check_wait_args",
    "poll_interval_from_env",
    "resolve_wait_settings",
]
