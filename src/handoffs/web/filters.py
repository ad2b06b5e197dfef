"""Jinja filters of the console: times and labels read the same on the server as in console.js."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment

from handoffs.enums import Priority

PRIORITY_RANK = {Priority.low: 0, Priority.normal: 1, Priority.high: 2, Priority.urgent: 3}


def as_datetime(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso(value: datetime | str | None) -> str:
    """RFC 3339 UTC, what ``data-at`` attributes carry for the page's clock."""
    if value is None:
        return ""
    return as_datetime(value).astimezone(UTC).isoformat().replace("+00:00", "Z")


def duration(seconds: float) -> str:
    """``45 s``, ``3 min``, ``2 h 5 min``, ``3 d``: the same steps as ``formatDuration`` in time.js."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    minutes = s // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d"


def ago(value: datetime | str | None, now: datetime | None = None) -> str:
    if value is None:
        return ""
    now = now or datetime.now(UTC)
    return f"{duration((now - as_datetime(value)).total_seconds())} ago"


def first_name(name: str) -> str:
    return name.split()[0] if name.strip() else name


def label(value: Any) -> str:
    """An enum value as a person reads it: ``not_requested`` → ``Not requested``."""
    text = str(getattr(value, "value", value)).replace("_", " ")
    return text[:1].upper() + text[1:]


def register_filters(env: Environment) -> None:
    env.filters.update(iso=iso, ago=ago, duration=duration, first_name=first_name, label=label)
    env.globals.update(priority_rank=lambda p: PRIORITY_RANK.get(Priority(p), 1))
