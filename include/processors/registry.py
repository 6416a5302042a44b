"""Processors by name (STYLE 2.2): a ``Registry`` filled by the ``@register`` decorator.

Lookup is case-insensitive; an alias logs a warning; an unknown name raises ``InvalidInputError``
listing the known names. The built-in processor modules are imported by name at the bottom, so
importing this module is enough to see every built-in processor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from include.common.registry import Registry, import_modules
from include.processors.base import Processor

P = TypeVar("P", bound=type[Processor])

PROCESSORS: Registry[Processor] = Registry("processor", field="processor", event="processor")
"""Every processor by registry key."""
_PROCESSORS = PROCESSORS.classes
_ALIASES = PROCESSORS.aliases

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
    return PROCESSORS.register(name, aliases=aliases)


def registered_names() -> list[str]:
    """Return the registered processor names (without aliases), sorted."""
    return PROCESSORS.names()


def processor_class(name: str) -> type[Processor]:
    """Return the processor class registered as ``name`` or one of its aliases.

    Args:
        name: a registry key or alias, any case.

    Returns:
        The registered ``Processor`` subclass.

    Raises:
        InvalidInputError: when no processor has that name; the message lists the known names.
    """
    return PROCESSORS.get(name)


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


import_modules(BUILTIN_MODULES)
