"""The radcor conf is validated once, at the edge; later steps rebuild the model, trusted.

``validate_request`` checks a raw conf against the configured collections, catalogs and
processors (the ``validate`` task, the REST endpoints). Its result travels as JSON
(``RadcorConf.model_dump(mode="json")``); ``trusted_conf`` turns that JSON back into the model
without running the checks again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from include.radcor.conf import RadcorConf, conf_object, validate_conf


def validate_request(raw: object, *, processor_names: Collection[str] | None = None) -> RadcorConf:
    """Validate a radcor conf against the configured collections, catalogs and processors.

    The one validation path: the REST endpoints (preview and start), the DAG's ``validate``
    task (and so the trigger form and ``/api/v2`` runs) and pipeline YAML loading all call it,
    so one conf gets one answer everywhere. Values that are None (Airflow Params defaults for
    fields the user left empty) count as absent.

    Args:
        raw: the conf as sent; anything but a JSON object is refused on ``conf``.
        processor_names: the registered processor names (default: the processor registry's).

    Raises:
        InvalidInputError: listing every problem, each with its field and fix.
    """
    if processor_names is None:
        from include.processors.registry import registered_names  # imports every processor

        processor_names = registered_names()
    cleaned = {key: value for key, value in conf_object(raw).items() if value is not None}
    return validate_conf(cleaned, processor_names=processor_names)


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
