"""A local fake PSA server (ConnectWise, Autotask, Halo): real HTTP, records calls, scripted failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from tests.support.ports import serve_in_thread


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Reply:
    """A scripted answer with its own body and headers (a redirect, an internal server's 403 page)."""

    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakePsa:
    calls: list[Call] = field(default_factory=list)
    fail_with: list[int | Reply] = field(default_factory=list)
    """Statuses (or replies) to answer the next calls with, before answering normally (0: this call
    answers normally)."""
    url: str = ""

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def paths(self) -> list[str]:
        return [f"{c.method} {c.path}" for c in self.calls]


def _handler(fake: FakePsa) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            ctype = self.headers.get("Content-Type", "")
            body: Any = raw
            if "json" in ctype and raw:
                body = json.loads(raw)
            elif "x-www-form-urlencoded" in ctype:
                body = {k: v[0] for k, v in parse_qs(raw).items()}
            fake.calls.append(
                Call(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            status = fake.fail_with.pop(0) if fake.fail_with else 0
            if isinstance(status, Reply):
                self._send(status.status, status.body.encode(), "text/plain", status.headers)
                return
            if status:
                self._reply(status, {"message": "scripted failure"})
                return
            if self.path.endswith("/token"):
                self._reply(200, {"access_token": "halo-token", "token_type": "Bearer", "expires_in": 3600})
            else:
                self._reply(201 if self.command == "POST" else 200, {"id": len(fake.calls)})

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json", {})

        def _send(self, status: int, data: bytes, ctype: str, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = _serve

    return Handler


@contextmanager
def fake_psa_server() -> Iterator[FakePsa]:
    fake = FakePsa()
    with serve_in_thread(_handler(fake)) as url:
        fake.url = url
        yield fake
