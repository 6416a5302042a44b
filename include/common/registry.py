"""One registry type for every role (STYLE 2.2): classes by name, filled by a decorator.

Catalog drivers (``include.collectors.registry``), processors (``include.processors.registry``)
and catalog backends (``include.catalog.registry``) each hold one ``Registry``. It is an explicit
dict filled by ``@registry.register("name", aliases=(...))``: no metaclass, no entry points. The
role's ``registry.py`` imports its built-in modules by name, so importing it is enough to see
every built-in class.

Keys are lowercase; lookup is case-insensitive; an alias logs ``<event>.alias`` as a warning; an
unknown name raises ``InvalidInputError`` whose fix lists the known names.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from include.common.errors import FieldProblem, InvalidInputError

log = logging.getLogger(__name__)

T = TypeVar("T")
"""The role's base class (``CatalogDriver``, ``Processor``, ``CatalogBackend``)."""
C = TypeVar("C", bound=type)
"""A registered class (returned unchanged by the decorator)."""


def registry_key(name: str) -> str:
    """Return the canonical key of a registry name: stripped, lowercase."""
    return name.strip().lower()


def _qualified(cls: type) -> str:
    """Return ``module.qualname``: a module imported twice makes a copy of the same class."""
    return f"{cls.__module__}.{cls.__qualname__}"


class Registry(Generic[T]):
    """Classes of one role by lowercase name, with aliases.

    Args:
        kind: what the classes are, in messages (``catalog driver``, ``processor``).
        field: the input field an unknown name is reported on (``driver``, ``processor``).
        event: the log event prefix (``driver`` logs ``driver.alias`` when an alias is used).
    """

    def __init__(self, kind: str, *, field: str, event: str) -> None:
        self.kind = kind
        self.field = field
        self.event = event
        self.classes: dict[str, type[T]] = {}
        """Registry key (lowercase) -> class."""
        self.aliases: dict[str, str] = {}
        """Alias (lowercase) -> registry key."""

    def register(self, name: str, *, aliases: Iterable[str] = ()) -> Callable[[C], C]:
        """Return a class decorator registering the class under ``name`` and ``aliases``.

        Args:
            name: the registry key, any case (stored lowercase).
            aliases: other names resolving to the same class (a warning is logged when used).

        Returns:
            A class decorator returning the class unchanged.

        Raises:
            ValueError: when the name or an alias is already taken by another class.
        """
        key = registry_key(name)
        alias_keys = tuple(registry_key(alias) for alias in aliases)

        def decorate(cls: C) -> C:
            for taken in (key, *alias_keys):
                owner = self.classes.get(self.aliases.get(taken, taken))
                if owner is not None and _qualified(owner) != _qualified(cls):
                    raise ValueError(
                        f"{self.kind} name {taken!r} is already registered by "
                        f"{_qualified(owner)}; choose another name"
                    )
            self.classes[key] = cls
            for alias in alias_keys:
                self.aliases[alias] = key
            return cls

        return decorate

    def names(self) -> list[str]:
        """Return the registered keys (without aliases), sorted."""
        return sorted(self.classes)

    def get(self, name: str) -> type[T]:
        """Return the class registered as ``name`` or one of its aliases (case-insensitive).

        Args:
            name: a registry key or alias, any case.

        Returns:
            The registered class.

        Raises:
            InvalidInputError: when no class has that name; the fix lists the known names.
        """
        wanted = registry_key(name)
        if wanted in self.classes:
            return self.classes[wanted]
        if wanted in self.aliases:
            canonical = self.aliases[wanted]
            log.warning(
                "%s.alias name=%s canonical=%s; use %r", self.event, wanted, canonical, canonical
            )
            return self.classes[canonical]
        raise InvalidInputError(
            FieldProblem(
                self.field,
                f"{name!r} is not a registered {self.kind}",
                f"use one of: {', '.join(self.names()) or '(none registered)'}",
            )
        )


def import_modules(modules: Iterable[str]) -> None:
    """Import modules by name (the built-in classes of a role register themselves on import)."""
    for module in modules:
        importlib.import_module(module)


__all__ = ["Registry", "import_modules", "registry_key"]
