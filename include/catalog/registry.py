"""Catalog backends by name (STYLE 2.2): a ``Registry`` filled by the ``@register`` decorator.

Lookup is case-insensitive; an alias logs a warning; an unknown name raises ``InvalidInputError``
listing the known names. Built-in backend modules are imported by name at the bottom.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from include.catalog.base import CatalogBackend
from include.common.errors import FieldProblem, InvalidInputError
from include.common.registry import Registry, import_modules
from include.common.storage import catalog_root

BACKENDS: Registry[CatalogBackend] = Registry(
    "catalog backend", field="catalog_backend", event="catalog_backend"
)
"""Every catalog backend by registry key."""

BUILTIN_MODULES: tuple[str, ...] = ("include.catalog.static_stac", "include.catalog.pgstac")
"""Modules that register the built-in backends, imported at the bottom of this module."""

DEFAULT_BACKEND = "static"
BACKEND_ENV = "COLLECTION_BUILDER_CATALOG_BACKEND"
"""Which backend ``default_backend`` builds: ``static`` (default) or ``pgstac``."""


register = BACKENDS.register
"""``@register(name, aliases=(...))``: register a ``CatalogBackend`` subclass (case-insensitive
key; ``ValueError`` when the name or an alias is taken by another class)."""
registered_names = BACKENDS.names
"""Return the registered backend names (without aliases), sorted."""
backend_class = BACKENDS.get
"""Return the class registered as a name or alias (any case); ``InvalidInputError`` listing the
known names when none is."""


def make_backend(name: str = DEFAULT_BACKEND, **settings: Any) -> CatalogBackend:
    """Return a backend instance built with ``settings`` (e.g. ``root=Path(...)`` for static).

    Args:
        name: a registry key or alias, any case.
        **settings: the backend's constructor arguments.

    Returns:
        A ready ``CatalogBackend``.

    Raises:
        InvalidInputError: unknown name, or settings the backend does not take or lacks.
    """
    cls = backend_class(name)
    try:
        inspect.signature(cls).bind(**settings)
    except TypeError as err:
        raise InvalidInputError(
            FieldProblem(
                f"catalog_backend.{name}",
                f"bad settings {sorted(settings)}: {err}",
                f"give the arguments of {cls.__name__}{inspect.signature(cls)}",
            )
        ) from err
    return cls(**settings)


def default_backend() -> CatalogBackend:
    """Return the configured backend: ``$COLLECTION_BUILDER_CATALOG_BACKEND``, default static.

    ``static`` is a STAC catalog at ``storage.catalog_root()`` with asset hrefs relative to its
    items; ``pgstac`` is the database at ``$COLLECTION_BUILDER_PGSTAC_DSN`` with asset hrefs under
    ``$COLLECTION_BUILDER_PUBLIC_BASE_URL`` (see ``include.catalog.hrefs``).

    Raises:
        InvalidInputError: when the variable names no registered backend.
    """
    name = os.environ.get(BACKEND_ENV, "").strip() or DEFAULT_BACKEND
    if backend_class(name).name == "static":
        return make_backend(name, root=catalog_root())
    return make_backend(name)


import_modules(BUILTIN_MODULES)
