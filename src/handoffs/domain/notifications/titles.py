"""How a notification reads: the bell, the email subject and the live card share it."""

from __future__ import annotations

SNIPPET_LENGTH = 70


def snippet(text: str, length: int = SNIPPET_LENGTH) -> str:
    """``text`` on one line, cut to ``length`` characters with ``…`` when longer."""
    flat = " ".join(text.split())
    if len(flat) <= length:
        return flat
    return flat[:length].rstrip() + "…"


def escalation_title(first_name: str, psa_ticket_id: str | None, problem_summary: str) -> str:
    """``Escalation from Jane · #12345: Outlook is failing to sync email…``"""
    ticket = f" · #{psa_ticket_id}" if psa_ticket_id else ""
    summary = snippet(problem_summary) or "(no problem summary)"
    return f"Escalation from {first_name}{ticket}: {summary}"


def what(intent: str) -> str:
    """How a bell entry names the handoff to its creator: ``your escalation`` or ``your parked session``."""
    return "your escalation" if intent == "escalate" else "your parked session"


def lifecycle_title(actor_name: str, verb: str, problem_summary: str) -> str:
    """``Sam Senior picked up your escalation: Outlook is failing…``: one line, cut like the escalation's."""
    summary = snippet(problem_summary) or "(no problem summary)"
    return f"{actor_name} {verb}: {summary}"


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
