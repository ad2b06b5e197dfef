"""A real SMTP server in the test process (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.ports import listening_socket, port_of


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.fail_next = 0
        self.connections = 0
        """SMTP sessions that sent at least one message."""
        self._peers: set[Any] = set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.fail_next > 0:
            self.fail_next -= 1
            return "451 4.3.0 Try again later"
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        if session.peer not in self._peers:  # (host, port): one per client connection
            self._peers.add(session.peer)
            self.connections += 1
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]


class _BoundController(Controller):  # type: ignore[misc]
    """aiosmtpd's controller on a socket we bound ourselves (see tests/support/ports.py)."""

    def __init__(self, handler: Any, sock: socket.socket) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=port_of(sock))
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, str]]:
    inbox = Inbox()
    sock = listening_socket()
    port = port_of(sock)
    controller = _BoundController(inbox, sock)
    controller.start()
    try:
        yield inbox, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()
