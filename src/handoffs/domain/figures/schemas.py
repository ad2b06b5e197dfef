"""The team figures as the API answers them. Times are seconds; a percentile with no data is null."""

from __future__ import annotations

from datetime import datetime

import msgspec

from handoffs.domain.rows import Person
from handoffs.enums import Priority


class Durations(msgspec.Struct):
    """``percentile_cont`` 0.5 and 0.9 (interpolated) and the maximum, in seconds."""

    p50: float | None
    p90: float | None
    max: float | None


class PriorityFigures(msgspec.Struct):
    """The period's escalations of one priority, and their median time to a first claim."""

    escalations: int
    time_to_claim_p50: float | None


class EngineerFigures(msgspec.Struct):
    """One engineer's share of the period's handoffs (definitions in docs/team-figures.md)."""

    user: Person
    claimed: int
    """Handoffs they hold now or held when it was resolved (``claimed_by``)."""
    resolved: int
    """Handoffs they resolved (``resolved_by``), withdrawn ones excluded."""
    time_to_claim_p50: float | None
    """Over the handoffs they claimed first and kept; null when none."""


class TeamFigures(msgspec.Struct):
    since: datetime
    until: datetime
    escalations: int
    parked: int
    claimed: int
    resolved: int
    withdrawn: int
    unclaimed_now: int
    time_to_claim_seconds: Durations
    time_to_resolve_seconds: Durations
    by_priority: dict[Priority, PriorityFigures]
    by_engineer: list[EngineerFigures]
    ladder_steps: int
    ai_cost_usd: float = 0.0
    """What the AI assessments of the period's handoffs cost, in USD (handoffs.pricing)."""
