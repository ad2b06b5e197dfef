"""The account's chat integration as the API takes and shows it: the webhook URL is write-only."""

from __future__ import annotations

from typing import Annotated

import msgspec

from handoffs.db.models import ChatIntegration
from handoffs.domain.text import Text
from handoffs.enums import Priority
from handoffs.integrations.chat import MAX_URL_LENGTH, ChatKind, webhook_host


class ChatIntegrationIn(msgspec.Struct, forbid_unknown_fields=True):
    kind: ChatKind
    webhook_url: Annotated[Text, msgspec.Meta(max_length=MAX_URL_LENGTH)] | None = None
    """Omit to keep the stored one. Slack: ``https://hooks.slack.com/services/…``; Teams: the channel's
    Workflows (Power Automate) or incoming webhook URL. https, naming a public host (the installation's
    ``OUTBOUND_ALLOWED_HOSTS`` may allow others, over plain http too)."""
    min_priority: Priority | None = None
    """The lowest priority whose escalation is posted (ladder steps always are). Omit to keep it."""


class ChatIntegrationOut(msgspec.Struct):
    kind: ChatKind
    min_priority: Priority
    webhook_url_set: bool
    webhook_host: str | None
    """Only the host of the stored URL (``hooks.slack.com``): its path is the webhook's secret."""

    @classmethod
    def of(cls, integration: ChatIntegration | None) -> ChatIntegrationOut:
        if integration is None:
            return cls(ChatKind.none, Priority.normal, False, None)
        url = integration.webhook_url or ""
        return cls(
            ChatKind(integration.kind),
            integration.min_priority,
            bool(url),
            webhook_host(url) if url else None,
        )


class ChatTestOut(msgspec.Struct, omit_defaults=True):
    """What a test message did, for a person: ``error`` says why not in words (never the URL)."""

    ok: bool
    status_code: int | None = None
    error: str | None = None
