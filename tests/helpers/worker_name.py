"""``[core] hostname_callable`` for tests: two Celery workers on one machine get distinct names."""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    """Return ``$CB_WORKER_NAME`` (set per worker by the test) or the machine's FQDN."""
    return os.environ.get("CB_WORKER_NAME") or socket.getfqdn()
