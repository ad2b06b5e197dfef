"""What a chat notification says, and its two shapes: Slack Block Kit and a Teams Adaptive Card.

One :class:`ChatMessage` (plain text values) becomes either payload; each format
escapes the people's text its own way (Slack mrkdwn: ``&``, ``<``, ``>``; an
Adaptive Card's TextBlock and FactSet take the text as it is).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ChatKind(StrEnum):
    """Where an account's chat notifications go (``chat_integrations.kind``)."""

    slack = "slack"
    teams = "teams"
    none = "none"


#: Slack's limits: a header's plain text, a section field's text.
SLACK_HEADER_MAX = 150
SLACK_FIELD_MAX = 2000


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One notification, as a person reads it. Every value is plain text."""

    title: str
    """The notification's title: ``Escalation from Jane · #12345: Outlook is failing…``."""
    priority: str
    creator: str
    """Who escalated."""
    waiting: str
    """How long it has waited unclaimed: ``just raised``, ``12 min``, ``1 h 05 min``."""
    stage: str
    """``New escalation`` for the escalation itself, ``Stepped up to admins`` for a ladder level."""
    link: str
    link_label: str = "Open the handoff"


def slack_escape(text: str) -> str:
    """Slack's three control characters, as its formatting docs ask (mrkdwn and the ``text`` fallback)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def slack_payload(message: ChatMessage) -> dict[str, Any]:
    """A Block Kit message for an incoming webhook: ``text`` (notifications, screen readers) and ``blocks``."""

    def field(label: str, value: str) -> dict[str, str]:
        return {"type": "mrkdwn", "text": _cut(f"*{label}*\n{slack_escape(value)}", SLACK_FIELD_MAX)}

    fallback = f"{message.stage}: {message.title} ({message.priority} priority, from {message.creator})"
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": message.link_label},
        "url": message.link,
        "action_id": "open_handoff",
    }
    if message.priority in {"high", "urgent"}:
        button["style"] = "danger" if message.priority == "urgent" else "primary"
    return {
        "text": slack_escape(fallback),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _cut(message.title, SLACK_HEADER_MAX)}},
            {
                "type": "section",
                "fields": [
                    field("Priority", message.priority.capitalize()),
                    field("Escalated by", message.creator),
                    field("Waiting", message.waiting),
                    field("Level", message.stage),
                ],
            },
            {"type": "actions", "elements": [button]},
        ],
    }


def teams_payload(message: ChatMessage) -> dict[str, Any]:
    """A message with one Adaptive Card attachment: what Teams incoming webhooks and Power Automate
    ("post to a channel when a webhook request is received") both take."""
    attention = message.priority == "urgent" or message.stage != "New escalation"
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": [
            {
                "type": "TextBlock",
                "text": message.stage,
                "size": "Small",
                "weight": "Bolder",
                "color": "Attention" if attention else "Accent",
                "wrap": True,
            },
            {"type": "TextBlock", "text": message.title, "size": "Medium", "weight": "Bolder", "wrap": True},
            {
                "type": "FactSet",
                "facts": [
                    {"title": "Priority", "value": message.priority.capitalize()},
                    {"title": "Escalated by", "value": message.creator},
                    {"title": "Waiting", "value": message.waiting},
                ],
            },
        ],
        "actions": [{"type": "Action.OpenUrl", "title": message.link_label, "url": message.link}],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def payload_for(kind: ChatKind | str, message: ChatMessage) -> dict[str, Any]:
    if kind == ChatKind.slack:
        return slack_payload(message)
    if kind == ChatKind.teams:
        return teams_payload(message)
    raise ValueError(f"no chat message shape for kind {kind!r}")


def waiting_words(seconds: float) -> str:
    """``just raised``, ``4 min``, ``1 h 05 min``, ``2 d 3 h``: how long a handoff has waited."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "just raised"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def stage_words(level: int, notify: str | None) -> str:
    """What a level means to the channel: the escalation itself, or a step of the ladder."""
    if level <= 0:
        return "New escalation"
    who = {"seniors": "the seniors", "admins": "admins", "owners": "owners"}.get(notify or "")
    if who is None:
        return f"Still unclaimed: stepped up (level {level})"
    return f"Stepped up to {who}"
