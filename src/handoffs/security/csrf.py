"""CSRF protection for the console's cookie session: a double-submit token on unsafe methods.

Only requests that authenticate by cookie can be forged by another site, so
only those are checked: an unsafe request that carries the session cookie
and no ``Authorization`` header must echo the CSRF cookie in ``X-CSRF-Token``.
Bearer-token API clients are unaffected.
"""

from __future__ import annotations

import hmac
import json
from http.cookies import SimpleCookie

from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

from handoffs.security.auth import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE

SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}
REFUSAL = json.dumps({"detail": "CSRF token missing or wrong; reload the page and try again."}).encode()


def _cookies(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            jar.load(value.decode("latin-1"))
    return {key: morsel.value for key, morsel in jar.items()}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _needs_check(scope: Scope) -> bool:
    if scope["type"] != ScopeType.HTTP or scope["method"] in SAFE_METHODS:
        return False
    if _header(scope, b"authorization"):
        return False  # bearer clients: a browser never adds this header on its own
    return bool(_cookies(scope).get(SESSION_COOKIE))


def _token_matches(scope: Scope) -> bool:
    expected = _cookies(scope).get(CSRF_COOKIE, "")
    given = _header(scope, CSRF_HEADER.encode()) or ""
    return bool(expected) and hmac.compare_digest(expected, given)


def csrf_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if _needs_check(scope) and not _token_matches(scope):
            start: HTTPResponseStartEvent = {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(REFUSAL)).encode()),
                ],
            }
            end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": REFUSAL, "more_body": False}
            await send(start)
            await send(end)
            return
        await app(scope, receive, send)

    return middleware
