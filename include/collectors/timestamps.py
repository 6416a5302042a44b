"""Timestamps as catalogs write them (RFC 3339 / OData DateTimeOffset), read as aware UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_FRACTION = re.compile(r"\.(\d+)")


def parse_utc_timestamp(value: str) -> datetime:
    """Parse an RFC 3339 timestamp (``Z``, any number of fraction digits) as aware UTC.

    Raises:
        ValueError: when ``value`` is not a timestamp.
    """
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
