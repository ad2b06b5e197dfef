"""Ports the suite can rely on: never picked, released, and bound later by someone else.

Parallel test workers start servers all the time; a port found free and bound a
moment later may by then belong to another worker's server. A server process
gets a socket already bound (uvicorn's ``--fd``, aiosmtpd's ``sock``), and a
"dead" port is held bound but never listening, so connecting to it is refused
and nobody else can take it while the test runs.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def listening_socket(port: int = 0) -> socket.socket:
    """A TCP socket on 127.0.0.1 (``port`` 0: any free one), listening and inheritable."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


@contextmanager
def refused_port() -> Iterator[int]:
    """A port where connections are refused, reserved for the block."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield port_of(sock)


@contextmanager
def serve_in_thread(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A fake HTTP server on a port of its own (bound at once, so nobody else's) in a thread; its
    base URL while the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True  # a handler still waiting does not hold up the shutdown
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
