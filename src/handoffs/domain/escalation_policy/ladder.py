"""The ladder's rules, pure: which levels apply to a handoff and when the next one is due.

``after_seconds`` counts from ``ladder_started_at`` (the creation, or the last release);
urgent handoffs step up twice as fast; low ones and parked ones never step up. Audiences:
``seniors`` = engineers, admins and owners; ``admins`` = admins and owners; ``owners``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from handoffs.domain.escalation_policy.schemas import Level
from handoffs.enums import HandoffIntent, Priority, Role

DEFAULT_LEVELS: tuple[Level, ...] = (
    Level(after_seconds=600, notify="seniors"),
    Level(after_seconds=1800, notify="admins"),
)

AUDIENCE_ROLES: dict[str, tuple[Role, ...]] = {
    "seniors": (Role.engineer, Role.admin, Role.owner),
    "admins": (Role.admin, Role.owner),
    "owners": (Role.owner,),
}
AUDIENCE_LABELS = {"seniors": "the seniors", "admins": "admins and owners", "owners": "the owners"}


def levels_of(stored: Sequence[dict[str, Any]] | None) -> list[Level]:
    """The account's levels as stored (JSON), or the default when it has none."""
    if not stored:
        return list(DEFAULT_LEVELS)
    return msgspec.convert(list(stored), list[Level])


def steps_up(intent: HandoffIntent | str, priority: Priority | str) -> bool:
    return intent == HandoffIntent.escalate and priority != Priority.low


def due_at(
    started: datetime, priority: Priority | str, levels: Sequence[Level], index: int
) -> datetime | None:
    """When level ``index`` (0-based) is due, or None when there is no such level."""
    if index >= len(levels):
        return None
    seconds = levels[index].after_seconds / (2 if priority == Priority.urgent else 1)
    return started + timedelta(seconds=seconds)


def first_due(
    started: datetime, intent: HandoffIntent | str, priority: Priority | str, levels: Sequence[Level]
) -> datetime | None:
    """The ladder's first due time for a handoff that starts (or restarts) waiting at ``started``."""
    return due_at(started, priority, levels, 0) if steps_up(intent, priority) else None


def check_increasing(levels: Sequence[Level]) -> str | None:
    """Why these levels are not a ladder, or None: each must come after the one before."""
    for before, after in itertools.pairwise(levels):
        if after.after_seconds <= before.after_seconds:
            return (
                f"levels: after_seconds must increase from one level to the next "
                f"({after.after_seconds} s comes after {before.after_seconds} s)"
            )
    return None
