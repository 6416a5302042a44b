"""Every registered driver, processor and backend honours its role's interface (STYLE 2.2)."""

from __future__ import annotations

import inspect

import pytest

from include.catalog.base import CatalogBackend
from include.catalog.registry import backend_class
from include.catalog.registry import registered_names as backend_names
from include.collectors.base import CatalogDriver
from include.collectors.registry import driver_class, known_drivers
from include.common.errors import InvalidInputError
from include.processors.base import Processor
from include.processors.registry import processor_class
from include.processors.registry import registered_names as processor_names


@pytest.mark.parametrize("name", known_drivers())
def test_driver_is_a_catalog_driver_with_typed_methods(name: str) -> None:
    cls = driver_class(name)
    assert issubclass(cls, CatalogDriver)
    assert not inspect.isabstract(cls)
    for method in ("search", "availability", "order", "download"):
        signature = inspect.signature(getattr(cls, method))
        kinds = {p.kind for p in signature.parameters.values()}
        assert inspect.Parameter.VAR_POSITIONAL not in kinds, f"{name}.{method} takes *args"
        assert inspect.Parameter.VAR_KEYWORD not in kinds, f"{name}.{method} takes **kwargs"


@pytest.mark.parametrize("name", processor_names())
def test_processor_declares_name_version_and_task_type(name: str) -> None:
    cls = processor_class(name)
    assert issubclass(cls, Processor)
    assert not inspect.isabstract(cls)
    assert cls.name == name
    assert cls.version and cls.version != "0"
    assert cls.task_type in {"correction", "harmonization", "post", "publish"}


@pytest.mark.parametrize("name", backend_names())
def test_backend_is_a_catalog_backend(name: str) -> None:
    cls = backend_class(name)
    assert issubclass(cls, CatalogBackend)
    assert not inspect.isabstract(cls)


@pytest.mark.parametrize(
    "lookup", [driver_class, processor_class, backend_class], ids=["driver", "processor", "backend"]
)
def test_unknown_name_lists_the_known_ones(lookup) -> None:  # noqa: ANN001
    with pytest.raises(InvalidInputError, match="use one of"):
        lookup("no-such-thing")
