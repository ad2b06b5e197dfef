"""CSRF protection for the console's cookie session.

Only requests that the session cookie authenticates can be forged by another
site, so exactly those are checked; bearer-token API clients are unaffected.

- **Which requests.** Unsafe methods that carry the session cookie and no
  ``Authorization`` credential. "No credential" follows the JWT middleware's
  own rule: it authenticates by the header when the header has something after
  its scheme, and falls back to the cookie otherwise. So ``Authorization: x``
  (nothing after a scheme) does not skip the check while the cookie signs the
  request in, and ``Authorization: Bearer <anything>`` is authenticated (or
  refused) by the header alone, never by the cookie.
- **The token is bound to the session**: ``X-CSRF-Token`` must be
  ``HMAC(secret, session token)``, not merely equal to a cookie. A cookie an
  attacker plants from a sibling subdomain (cookie tossing) cannot match, and a
  token from one session is worthless in another. The readable ``handoffs_csrf``
  cookie only carries that value to the page's script.
- **Where the request comes from.** Browsers say it: ``Sec-Fetch-Site`` must be
  ``same-origin`` (or ``none``, the user's own navigation), else ``Origin``, when
  sent, must be this site's (the request's own scheme and host, or
  ``PUBLIC_URL``'s). Checked on unsafe cookie requests and on the cookie
  sign-in (``POST /api/v1/auth/session``), which must also be JSON: a form or a
  ``text/plain`` post from another site cannot sign a victim into the
  attacker's account (login CSRF). A client that sends neither header (curl, an
  old browser) relies on the token alone.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from handoffs.security.cookies import CSRF_HEADER, SESSION_COOKIE, csrf_token_for

SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}
COOKIE_SIGN_IN = "/api/v1/auth/session"
#: What a browser sends for its own pages' requests (``none``: typed in, a bookmark).
SAME_SITE = {"same-origin", "none"}


def _refusal(status: int, detail: str) -> tuple[HTTPResponseStartEvent, HTTPResponseBodyEvent]:
    body = json.dumps({"detail": detail}).encode()
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


def _headers(scope: Scope) -> dict[bytes, str]:
    # The last of a repeated header wins; cookies are joined (a browser sends one header).
    found: dict[bytes, str] = {}
    for key, value in scope.get("headers", []):
        text = value.decode("latin-1")
        found[key] = f"{found[key]}; {text}" if key == b"cookie" and key in found else text
    return found


def _session_token(headers: dict[bytes, str]) -> str:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get(b"cookie", ""))
    except CookieError:
        return ""
    morsel = jar.get(SESSION_COOKIE)
    # The cookie holds "Bearer <jwt>"; the middleware reads its last word, and so do we.
    return morsel.value.split(" ")[-1] if morsel is not None else ""


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


class _Checks:
    def __init__(self, secret: str, public_url: str) -> None:
        self.secret = secret
        self.public_origin = _origin_of(public_url)

    def cross_site(self, scope: Scope, headers: dict[bytes, str]) -> bool:
        """Whether the browser says this request comes from another site."""
        fetch_site = headers.get(b"sec-fetch-site")
        if fetch_site is not None:
            return fetch_site.strip().lower() not in SAME_SITE
        origin = headers.get(b"origin")
        if origin is None:
            return False
        own = f"{scope.get('scheme', 'http')}://{headers.get(b'host', '')}".lower()
        return origin.strip().lower() not in {own, self.public_origin}

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        if scope["type"] != ScopeType.HTTP or scope["method"] in SAFE_METHODS:
            return None
        headers = _headers(scope)
        if scope["path"] == COOKIE_SIGN_IN:
            if self.cross_site(scope, headers):
                return 403, "Sign in from this site's own sign-in page."
            # A cross-site form or fetch always sends a type (text/plain, a form's); no type and no
            # body is the handler's 400.
            content_type = headers.get(b"content-type", "application/json").split(";")[0].strip().lower()
            if content_type != "application/json":
                return 415, "The sign-in takes a JSON body (Content-Type: application/json)."
            return None
        if headers.get(b"authorization", "").partition(" ")[2]:
            return None  # the header authenticates (or is refused); the cookie plays no part
        session = _session_token(headers)
        if not session:
            return None  # not signed in by cookie: nothing a forged request could ride on
        if self.cross_site(scope, headers):
            return 403, "This request came from another site; use the console's own pages."
        given = headers.get(CSRF_HEADER.encode(), "")
        if not given or not hmac.compare_digest(
            given.encode(), csrf_token_for(session, self.secret).encode()
        ):
            return 403, "CSRF token missing or wrong; reload the page and try again."
        return None


def csrf_middleware_for(secret: str, public_url: str) -> Callable[[ASGIApp], ASGIApp]:
    """The middleware (a factory Litestar calls with the next app), keyed to the app's secret."""
    checks = _Checks(secret, public_url)

    def csrf_middleware(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            refused = checks.refusal(scope)
            if refused is not None:
                start, end = _refusal(*refused)
                await send(start)
                await send(end)
                return
            await app(scope, receive, send)

        return middleware

    return csrf_middleware
