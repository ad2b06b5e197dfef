"""The console's cookies and its CSRF token: names, and how the token is derived from the session.

Shared by the sign-in (``auth``), which sets them, and the CSRF check (``csrf``), which reads them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

#: The console's session cookie (HttpOnly) and its CSRF companion (readable by the page's script).
SESSION_COOKIE = "handoffs_session"
CSRF_COOKIE = "handoffs_csrf"
CSRF_HEADER = "x-csrf-token"


def csrf_token_for(session_token: str, secret: str) -> str:
    """The CSRF token of a session: an HMAC of its bearer token, so it is worthless elsewhere."""
    digest = hmac.new(secret.encode(), b"csrf\x00" + session_token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
