"""Processors by name (STYLE 2.2): a ``Registry`` filled by the ``@register`` decorator.

Lookup is case-insensitive; an alias logs a warning; an unknown name raises ``InvalidInputError``
listing the known names. The built-in processor modules are imported by name at the bottom, so
importing this module is enough to see every built-in processor.
"""

from __future__ import annotations

from include.common.registry import Registry, import_modules
from include.processors.base import Processor

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


register = PROCESSORS.register
"""``@register(name, aliases=(...))``: register a ``Processor`` subclass (case-insensitive key;
``ValueError`` when the name or an alias is taken by another class)."""
registered_names = PROCESSORS.names
"""Return the registered processor names (without aliases), sorted."""
processor_class = PROCESSORS.get
"""Return the class registered as a name or alias (any case); ``InvalidInputError`` listing the
known names when none is."""


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
