"""When a service asked us to come back: its ``Retry-After`` header, read the same way for all.

Anthropic, Slack and Teams send seconds; RFC 9110 also allows an HTTP date.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: A service asking for more than this is waited on no longer: the usual backoff caps there too.
RETRY_AFTER_CAP_SECONDS = 300.0


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds from now, 1..``RETRY_AFTER_CAP_SECONDS``;
    None when absent or unreadable (then the usual backoff applies)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(1.0, min(seconds, RETRY_AFTER_CAP_SECONDS))  # at least a second: no hot loop
