"""A fake Anthropic Messages API for the real SDK: an HTTP transport with scripted answers.

The anthropic SDK 2.x speaks through ``httpx2`` (httpx's successor, same API),
so the fake is an ``httpx2.MockTransport``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2 as httpx
from anthropic import AsyncAnthropic

from handoffs.ai import TOOL_NAME, AnthropicAssessor

MODEL = "claude-sonnet-5-5"

VALID_OUTPUT: dict[str, Any] = {
    "assessment": {
        "likely_cause": "A corrupted OST file after the Outlook update.",
        "what_was_tried": ["Restarted Outlook", "Ran the Inbox Repair Tool"],
        "next_steps": ["Rename the OST and let Outlook rebuild it", "Check the Exchange mailbox quota"],
        "risk": "medium",
        "confidence": 0.72,
    },
    "escalation_package": {
        "summary": "Outlook stopped syncing for the finance team after Tuesday's update.",
        "symptoms": ["Outlook shows 'Disconnected'"],
        "environment": ["Microsoft 365", "Outlook 2021"],
        "open_questions": ["Do other clients (OWA, phone) sync?"],
        "documentation_markdown": "## Escalation\nOST rebuild recommended.",
    },
}


def message(tool_input: dict[str, Any] | None = None, *, text: str | None = None) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    if tool_input is not None:
        content.append({"type": "tool_use", "id": "toolu_01", "name": TOOL_NAME, "input": tool_input})
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": "tool_use" if tool_input is not None else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 1200,
            "output_tokens": 350,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 900,
        },
    }


def overloaded() -> httpx.Response:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    return httpx.Response(529, json=body)


class FakeMessagesAPI:
    """Answers POST /v1/messages from a script; records every request body."""

    def __init__(self, *answers: httpx.Response | dict[str, Any] | Callable[[], httpx.Response]) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/messages", request.url
        self.requests.append(json.loads(request.content))
        self.headers.append(request.headers)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if callable(answer):
            answer = answer()
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)

    def assessor(self) -> AnthropicAssessor:
        client = AsyncAnthropic(
            api_key="sk-ant-test",
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(self.handler)),
            max_retries=0,
        )
        return AnthropicAssessor(client, MODEL)
