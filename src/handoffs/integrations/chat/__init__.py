"""Chat notifications: Slack Block Kit and Teams Adaptive Card messages, posted to an incoming webhook.

The webhook URL is a secret (its path is the token): nothing here puts it in a log
line, an exception or an answer (``webhook.scrub``, ``webhook.hide_in_http_logs``).
"""

from handoffs.integrations.chat.messages import (
    ChatKind,
    ChatMessage,
    payload_for,
    slack_payload,
    teams_payload,
)
from handoffs.integrations.chat.webhook import (
    MAX_URL_LENGTH,
    ChatError,
    post_message,
    validate_webhook_url,
    webhook_host,
)
from handoffs.integrations.retry_after import parse_retry_after

__all__ = [
    "MAX_URL_LENGTH",
    "ChatError",
    "ChatKind",
    "ChatMessage",
    "parse_retry_after",
    "payload_for",
    "post_message",
    "slack_payload",
    "teams_payload",
    "validate_webhook_url",
    "webhook_host",
]
