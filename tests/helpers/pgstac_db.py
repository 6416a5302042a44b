"""A throwaway pgstac database on the machine's PostgreSQL, for tests (created, then dropped)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

ADMIN_DSN = os.environ.get("CB_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def postgres_problem() -> str | None:
    """Return why pgstac tests cannot run here (no server, no PostGIS), or None."""
    try:
        with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3) as conn:
            row = conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'"
            ).fetchone()
    except psycopg.OperationalError as err:
        return f"PostgreSQL is not reachable at {ADMIN_DSN}: {err}"
    if row is None:
        return "PostGIS is not installed: apt-get install -y --no-upgrade postgresql-15-postgis-3"
    return None


@contextmanager
def throwaway_database(prefix: str = "cb_pgstac_test") -> Iterator[str]:
    """Yield the DSN of a database that does not exist yet; drop it (with force) afterwards."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield dsn
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
