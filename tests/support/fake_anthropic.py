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

from handoffs.integrations.ai import (
    TOOL_NAME,
    AnthropicAssessor,
    AssessmentInput,
    AssessmentResult,
    OfflineAssessor,
)

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


class HangingMessagesServer:
    """A real HTTP Messages API for worker processes: the first call hangs, later ones answer."""

    def __init__(self) -> None:
        import threading

        self.requests = 0
        self.first_call_started = threading.Event()
        self.release = threading.Event()
        self.url = ""

    def serve(self) -> Any:
        import threading
        from contextlib import contextmanager
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests += 1
                if fake.requests == 1:
                    fake.first_call_started.set()
                    fake.release.wait(30)  # the worker is killed while we wait
                data = json.dumps(message(VALID_OUTPUT)).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client is gone

        @contextmanager
        def running() -> Any:
            server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            server.daemon_threads = True
            fake.url = f"http://127.0.0.1:{server.server_address[1]}"
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            try:
                yield fake
            finally:
                fake.release.set()
                server.shutdown()
                server.server_close()

        return running()


class FlakyOnceAssessor:
    """Fails its first call with an error nobody foresaw, then assesses offline."""

    def __init__(self) -> None:
        self.calls = 0

    async def assess(self, data: AssessmentInput) -> AssessmentResult:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("pool exhausted")
        return await OfflineAssessor().assess(data)
