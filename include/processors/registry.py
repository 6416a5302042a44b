"""Processors by name (STYLE 2.2): an explicit dict filled by the ``@register`` decorator.

Lookup is case-insensitive; an alias logs a warning; an unknown name raises ``InvalidInputError``
listing the known names. The built-in processor modules are imported by name at the bottom, so
importing this module is enough to see every built-in processor.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

from include.common.errors import FieldProblem, InvalidInputError
from include.processors.base import Processor

log = logging.getLogger(__name__)

P = TypeVar("P", bound=type[Processor])

_PROCESSORS: dict[str, type[Processor]] = {}
_ALIASES: dict[str, str] = {}

BUILTIN_MODULES: tuple[str, ...] = (
    "include.processors.publish.processor",
    "include.processors.correction.toa",
    "include.processors.correction.provider_l2",
    "include.processors.correction.sen2cor",
    "include.processors.correction.lasrc",
    "include.processors.post.qa",
    "include.processors.post.s2cloudless",
    "include.processors.post.fmask",
    "include.processors.harmonization.processor",
)
"""Modules that register the built-in processors, imported at the bottom of this module."""


def _same_class(left: type[Processor], right: type[Processor]) -> bool:
    """Return whether two classes are the same definition (a module re-import makes a copy)."""
    return (left.__module__, left.__qualname__) == (right.__module__, right.__qualname__)


def register(name: str, *, aliases: Iterable[str] = ()) -> Callable[[P], P]:
    """Register a ``Processor`` subclass under ``name`` (and ``aliases``), case-insensitive.

    Args:
        name: the registry key, e.g. ``publish`` or ``sen2cor``.
        aliases: other names that resolve to the same class (a warning is logged when used).

    Returns:
        A class decorator returning the class unchanged.

    Raises:
        ValueError: when the name or an alias is already taken by another class.
    """
    key = name.strip().lower()
    alias_keys = tuple(alias.strip().lower() for alias in aliases)

    def decorator(cls: P) -> P:
        for taken in (key, *alias_keys):
            owner = _PROCESSORS.get(_ALIASES.get(taken, taken))
            if owner is not None and not _same_class(owner, cls):
                raise ValueError(
                    f"processor name {taken!r} is already registered by "
                    f"{owner.__module__}.{owner.__qualname__}; choose another name"
                )
        _PROCESSORS[key] = cls
        for alias in alias_keys:
            _ALIASES[alias] = key
        return cls

    return decorator


def registered_names() -> list[str]:
    """Return the registered processor names (without aliases), sorted."""
    return sorted(_PROCESSORS)


def processor_class(name: str) -> type[Processor]:
    """Return the processor class registered as ``name`` or one of its aliases.

    Args:
        name: a registry key or alias, any case.

    Returns:
        The registered ``Processor`` subclass.

    Raises:
        InvalidInputError: when no processor has that name; the message lists the known names.
    """
    wanted = name.strip().lower()
    if wanted in _PROCESSORS:
        return _PROCESSORS[wanted]
    if wanted in _ALIASES:
        canonical = _ALIASES[wanted]
        log.warning("processor.alias name=%s canonical=%s", wanted, canonical)
        return _PROCESSORS[canonical]
    raise InvalidInputError(
        FieldProblem(
            "processor",
            f"{name!r} is not a registered processor",
            f"use one of: {', '.join(registered_names()) or '(none registered)'}",
        )
    )


def make_processor(name: str) -> Processor:
    """Return a new instance of the processor registered as ``name``.

    Args:
        name: a registry key or alias, any case.

    Returns:
        A ``Processor`` ready to ``run``.

    Raises:
        InvalidInputError: when no processor has that name.
    """
    return processor_class(name)()


for _module in BUILTIN_MODULES:
    importlib.import_module(_module)
