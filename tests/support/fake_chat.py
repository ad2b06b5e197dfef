"""A local fake chat webhook (Slack or Teams): real HTTP on 127.0.0.1, records posts, scripted answers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.ports import serve_in_thread

#: The path of the fake webhook: its last part plays the secret token, which must never leak.
SECRET_TOKEN = "XyZsecretTOKEN0123456789"
WEBHOOK_PATH = f"/services/T0000TEST/B0000TEST/{SECRET_TOKEN}"


@dataclass(frozen=True)
class Answer:
    """A scripted answer: status, headers, body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class FakeChat:
    posts: list[Post] = field(default_factory=list)
    script: list[Answer] = field(default_factory=list)
    """Answers for the next posts, in order, before answering ``200 ok``."""
    delay: float = 0.0
    """Seconds to wait before answering (a slow service, for overlapping runs)."""
    base_url: str = ""

    @property
    def url(self) -> str:
        """The webhook URL to configure (http on 127.0.0.1, as the validation allows)."""
        return self.base_url + WEBHOOK_PATH

    def bodies(self) -> list[Any]:
        return [p.body for p in self.posts]


def _handler(fake: FakeChat) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            body: Any = json.loads(raw) if raw and "json" in self.headers.get("Content-Type", "") else raw
            headers = {k.lower(): v for k, v in self.headers.items()}
            fake.posts.append(Post(self.path, headers, body, time.monotonic()))
            if fake.delay:
                time.sleep(fake.delay)
            answer = fake.script.pop(0) if fake.script else Answer(200, body="ok")
            data = answer.body.encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def fake_chat_server() -> Iterator[FakeChat]:
    fake = FakeChat()
    with serve_in_thread(_handler(fake)) as url:
        fake.base_url = url
        yield fake
