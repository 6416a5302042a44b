"""The radcor conf is validated once, at the edge; later steps rebuild the model, trusted.

``validate_request`` checks a raw conf against the configured collections, catalogs and
processors (the ``validate`` task, the REST endpoints). Its result travels as JSON
(``RadcorConf.model_dump(mode="json")``); ``trusted_conf`` turns that JSON back into the model
without running the checks again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from include.radcor.conf import RadcorConf, validate_conf


def validate_request(raw: Mapping[str, Any]) -> RadcorConf:
    """Validate a radcor conf against the configured collections, catalogs and processors.

    Values that are None (Airflow Params defaults for fields the user left empty) count as absent.

    Raises:
        InvalidInputError: listing every problem, each with its field and fix.
    """
    from include.processors.registry import registered_names  # imports every processor

    cleaned = {key: value for key, value in raw.items() if value is not None}
    return validate_conf(cleaned, processor_names=registered_names())


def trusted_conf(data: RadcorConf | Mapping[str, Any]) -> RadcorConf:
    """Return the model of a conf ``validate_request`` accepted earlier (its JSON), unchecked.

    Only the model's types are parsed; the configuration checks are not run again.

    Raises:
        pydantic.ValidationError: when ``data`` is not a validated conf's JSON.
    """
    if isinstance(data, RadcorConf):
        return data
    return RadcorConf.model_validate(data)


__all__ = ["trusted_conf", "validate_request"]
