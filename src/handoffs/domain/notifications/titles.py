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
