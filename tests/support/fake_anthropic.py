"""A fake Anthropic Messages API for the real SDK: an HTTP transport with scripted answers.

The anthropic SDK 2.x speaks through ``httpx2`` (httpx's successor, same API),
so the fake is an ``httpx2.MockTransport``. A streaming request (``"stream": true``,
what ``messages.stream`` sends) is answered with Server-Sent Events in the Messages
API's documented shapes: ``message_start``, per content block
``content_block_start`` / ``content_block_delta`` (``text_delta`` or
``input_json_delta`` chunks) / ``content_block_stop``, ``message_delta`` with the
usage, ``message_stop``, and ``ping``s. ``Streamed`` scripts the pace and a cut.

With ``cache=True`` the usage is worked out as the API's prompt cache would: a
request whose prefix (tools, then system, up to the block marked
``cache_control``) is long enough for the model writes it
(``cache_creation_input_tokens``) the first time and reads it
(``cache_read_input_tokens``) after.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
from anthropic import AsyncAnthropic

from handoffs.integrations.ai import (
    TOOL_NAME,
    AnthropicAssessor,
    AssessmentInput,
    AssessmentResult,
    OfflineAssessor,
    Progress,
)
from handoffs.integrations.ai.prompt import min_cacheable_tokens

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


def overloaded(retry_after: str | None = None) -> httpx.Response:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return httpx.Response(529, json=body, headers=headers)


@dataclass
class Streamed:
    """A scripted streamed answer: ``message`` sent in ``chunk``-character JSON pieces,
    ``first_delay`` before the first content chunk and ``delay`` between chunks; ``cut_after``
    chunks, the connection drops (``RemoteProtocolError``, as a peer closing mid-body gives);
    ``error`` sends an ``error`` event instead of finishing (e.g. ``overloaded_error``)."""

    message: dict[str, Any]
    chunk: int = 40
    delay: float = 0.0
    first_delay: float = 0.0
    cut_after: int | None = None
    error: str | None = None
    broken_json: str | None = None
    """Sent as the tool's input chunks instead of the message's (JSON no parser can finish)."""


def sse_events(answer: Streamed) -> list[tuple[str, dict[str, Any]]]:
    """The message as the documented stream of events (without timing)."""
    msg = answer.message
    usage = dict(msg["usage"])
    start = {**msg, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 1}}  # fmt: skip
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    events.append(("ping", {"type": "ping"}))
    for index, block in enumerate(msg["content"]):
        if block["type"] == "text":
            events.append(("content_block_start", {"type": "content_block_start", "index": index,
                           "content_block": {"type": "text", "text": ""}}))  # fmt: skip
            text = block["text"]
            for i in range(0, len(text), answer.chunk):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                               "delta": {"type": "text_delta", "text": text[i : i + answer.chunk]}}))  # fmt: skip
        else:
            events.append(("content_block_start", {"type": "content_block_start", "index": index,
                           "content_block": {**block, "input": {}}}))  # fmt: skip
            raw = answer.broken_json if answer.broken_json is not None else json.dumps(block["input"])
            for i in range(0, len(raw), answer.chunk):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                               "delta": {"type": "input_json_delta", "partial_json": raw[i : i + answer.chunk]}}))  # fmt: skip
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {"type": "message_delta",
                   "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
                   "usage": {"output_tokens": usage["output_tokens"]}}))  # fmt: skip
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _frame(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def _stream_body(answer: Streamed) -> AsyncIterator[bytes]:
    sent = 0
    for name, data in sse_events(answer):
        if name == "content_block_delta":
            await asyncio.sleep(answer.first_delay if sent == 0 else answer.delay)
            if answer.cut_after is not None and sent >= answer.cut_after:
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body"
                )
            if answer.error is not None and sent >= 3:
                yield _frame(
                    "error", {"type": "error", "error": {"type": answer.error, "message": "Overloaded"}}
                )
                return
            sent += 1
        yield _frame(name, data)


def _prefix_tokens(request: dict[str, Any]) -> int | None:
    """The tokens of the prefix up to the last ``cache_control`` marker (tools, then system), as the
    API would count them (here: 1 per 4 characters); None when nothing is marked."""
    parts: list[Any] = list(request.get("tools", []))
    system = request.get("system", [])
    parts += system if isinstance(system, list) else [{"type": "text", "text": system}]
    marked = [i for i, part in enumerate(parts) if isinstance(part, dict) and "cache_control" in part]
    if not marked:
        return None
    prefix = json.dumps(parts[: marked[-1] + 1], sort_keys=True)
    return len(prefix) // 4


Answer = httpx.Response | dict[str, Any] | Streamed | Callable[[], httpx.Response]


class FakeMessagesAPI:
    """Answers POST /v1/messages from a script (the last answer repeats); records every request body.

    A plain message dict is streamed when the request asks for a stream (chunks of 40, no delay).
    """

    def __init__(self, *answers: Answer, cache: bool = False) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []
        self.cache = cache
        self._cached: set[str] = set()
        self.prefix_tokens = 0
        """The cached prefix's length as the last request that marked one counted it."""

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/messages", request.url
        body = json.loads(request.content)
        self.requests.append(body)
        self.headers.append(request.headers)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if callable(answer):
            answer = answer()
        if isinstance(answer, httpx.Response):
            return answer
        streamed = answer if isinstance(answer, Streamed) else Streamed(answer)
        streamed.message = self._with_cache_usage(body, streamed.message)
        if not body.get("stream"):
            return httpx.Response(200, json=streamed.message)
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=_stream_body(streamed)
        )

    def _with_cache_usage(self, request: dict[str, Any], msg: dict[str, Any]) -> dict[str, Any]:
        if not self.cache:
            return msg
        usage = {**msg["usage"], "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        tokens = _prefix_tokens(request)
        if tokens is not None and tokens >= min_cacheable_tokens(str(request["model"])):
            self.prefix_tokens = tokens
            key = hashlib.sha256(
                json.dumps([request.get("tools"), request.get("system")]).encode()
            ).hexdigest()
            if key in self._cached:
                usage["cache_read_input_tokens"] = tokens
            else:
                usage["cache_creation_input_tokens"] = tokens
                self._cached.add(key)
            usage["input_tokens"] = max(1, usage["input_tokens"] - tokens)
        return {**msg, "usage": usage}

    def assessor(self, model: str = MODEL, *, streaming: bool = True) -> AnthropicAssessor:
        """The real assessor, its SDK client talking to this fake."""
        client = AsyncAnthropic(
            api_key="sk-ant-test",
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(self.handler)),
            max_retries=0,
        )
        return AnthropicAssessor(client, model, streaming=streaming)


class HangingMessagesServer:
    """A real HTTP Messages API for worker processes: the first call hangs, later ones answer."""

    def __init__(self) -> None:
        import threading

        self.requests = 0
        self.first_call_started = threading.Event()
        self.release = threading.Event()
        self.url = ""

    def serve(self) -> Any:
        from contextlib import contextmanager
        from http.server import BaseHTTPRequestHandler

        from tests.support.ports import serve_in_thread

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
                streamed = Streamed(message(VALID_OUTPUT))
                data = b"".join(_frame(name, event) for name, event in sse_events(streamed))
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client is gone

        @contextmanager
        def running() -> Any:
            with serve_in_thread(Handler) as url:
                fake.url = url
                try:
                    yield fake
                finally:
                    fake.release.set()

        return running()


class FlakyOnceAssessor:
    """Fails its first call with an error nobody foresaw, then assesses offline."""

    def __init__(self) -> None:
        self.calls = 0

    async def assess(self, data: AssessmentInput, progress: Progress | None = None) -> AssessmentResult:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("pool exhausted")
        return await OfflineAssessor().assess(data)
