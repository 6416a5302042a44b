"""``CatalogHook``: which Airflow Connection a catalog uses, and its drivers built with it.

The only place that knows the rule (STYLE 2.3, as an Airflow provider's hook owns its
Connection): the conf's ``catalog_args.conn_id`` for the conf's own catalog, else the catalog's
``conn_id`` in ``config/catalogs.yaml``. A Connection the conf names must exist; a configured
default may be absent (public catalogs). Tasks, the sensor, the trigger and the API routes all
build drivers here; only how a Connection is looked up differs by process (``lookup``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from airflow.sdk.exceptions import AirflowNotFoundException

from include.collectors.base import CatalogDriver, Credentials
from include.collectors.registry import make_driver
from include.common.config import load_catalogs
from include.common.errors import FieldProblem, InvalidInputError
from include.radcor.conf import RadcorConf
from include.radcor.context import DriverFactory

ConnectionLookup = Callable[[str], Any]
"""Returns the Connection of an id (``login``, ``password``, ``extra_dejson``); raises
``AirflowNotFoundException`` when there is none."""


def task_connection(conn_id: str) -> Any:
    """Look a Connection up from a task or the triggerer (through the Task SDK)."""
    from airflow.sdk import Connection

    return Connection.get(conn_id)


def server_connection(conn_id: str) -> Any:
    """Look a Connection up in the API server (its secrets backends and metadata DB)."""
    from airflow.models.connection import Connection

    return Connection.get_connection_from_secrets(conn_id)


def read_credentials(
    conn_id: str | None, *, required: bool, lookup: ConnectionLookup = task_connection
) -> Credentials | None:
    """Return the plain credentials of Airflow Connection ``conn_id`` (None when there is none).

    Args:
        conn_id: the Connection id; None for none.
        required: whether a missing Connection is an error (the conf named it) or not (the
            catalog's configured default may legitimately be absent).
        lookup: how this process reads a Connection.

    Returns:
        The credentials, or None.

    Raises:
        InvalidInputError: when a required Connection does not exist.
    """
    if not conn_id:
        return None
    try:
        conn = lookup(conn_id)
    except AirflowNotFoundException as err:
        if not required:
            return None
        raise InvalidInputError(
            FieldProblem(
                "catalog_args.conn_id",
                f"Airflow Connection {conn_id!r} does not exist",
                f"create it: airflow connections add {conn_id} --conn-login ... --conn-password ..",
            )
        ) from err
    return Credentials(
        username=conn.login, password=conn.password, extra=dict(conn.extra_dejson or {})
    )


class CatalogHook:
    """Builds catalog drivers with the credentials of the Connection each catalog uses.

    :param catalog: the conf's catalog: its ``catalog_args`` apply to it, not to fallbacks.
    :param catalog_args: the conf's ``catalog_args`` (endpoint overrides, ``conn_id``).
    :param lookup: how this process reads a Connection (``task_connection`` in tasks and the
        triggerer, ``server_connection`` in the API server).
    """

    def __init__(
        self,
        catalog: str,
        catalog_args: Mapping[str, Any] | None = None,
        *,
        lookup: ConnectionLookup = task_connection,
    ) -> None:
        self.catalog = catalog
        self.catalog_args = dict(catalog_args or {})
        self.lookup = lookup

    @classmethod
    def for_conf(
        cls, conf: RadcorConf, *, lookup: ConnectionLookup = task_connection
    ) -> CatalogHook:
        """Return the hook of a validated conf's catalog."""
        return cls(conf.catalog, conf.catalog_args.driver_args(), lookup=lookup)

    def _explicit_conn_id(self, catalog: str) -> str | None:
        """Return the Connection the conf names for ``catalog`` (only for its own catalog)."""
        if catalog != self.catalog:
            return None
        return self.catalog_args.get("conn_id") or None

    def conn_id(self, catalog: str) -> str | None:
        """Return the id of the Connection ``catalog`` uses (None: no credentials)."""
        explicit = self._explicit_conn_id(catalog)
        if explicit:
            return explicit
        configured = load_catalogs().get(catalog)
        return configured.conn_id if configured is not None else None

    def credentials(self, catalog: str) -> Credentials | None:
        """Return the credentials ``catalog`` uses (None when it needs or has none).

        Raises:
            InvalidInputError: the Connection the conf names does not exist.
        """
        required = self._explicit_conn_id(catalog) is not None
        return read_credentials(self.conn_id(catalog), required=required, lookup=self.lookup)

    def get_driver(self, catalog: str) -> CatalogDriver:
        """Return a driver of ``catalog`` with its credentials (a context manager: close it).

        Raises:
            InvalidInputError: the Connection the conf names does not exist, or a bad option.
        """
        args = self.catalog_args if catalog == self.catalog else {}
        return make_driver(catalog, catalog_args=args, credentials=self.credentials(catalog))

    @property
    def driver_factory(self) -> DriverFactory:
        """``catalog name -> driver``, as ``include.radcor`` takes it."""
        return self.get_driver


__all__ = [
    "CatalogHook",
    "ConnectionLookup",
    "read_credentials",
    "server_connection",
    "task_connection",
]
