"""JWT authentication (Litestar's JWTCookieAuth) and role guards.

API clients send ``Authorization: Bearer <token>``; the browser console holds
the same token in an HttpOnly, SameSite cookie (``SESSION_COOKIE``), with the
double-submit CSRF check of ``handoffs.security.csrf`` on unsafe methods. The token
names the user only; account, team and role come from the user's row, read at most
``AUTH_USER_CACHE_SECONDS`` ago (handoffs.security.user_cache), so a role change or
deactivation applies within that, and nothing about the tenant is ever taken from
the request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.security.jwt import JWTCookieAuth, Token
from sqlalchemy import select

from handoffs.config import Settings
from handoffs.db.models import User
from handoffs.db.tenancy import SYSTEM, enter_account, use_scope
from handoffs.enums import Role
from handoffs.request_id import bind_user
from handoffs.runtime import STATE_KEY
from handoffs.security.cookies import CSRF_COOKIE, SESSION_COOKIE, csrf_token_for
from handoffs.security.tokens import KeptToken
from handoffs.security.user_cache import UserCache

#: Paths reachable without a token.
#: Patterns searched anywhere in the path (Litestar), so ``/metrics`` is anchored: it has its own
#: token (handoffs.metrics_endpoint), not a user's, while ``/api/v1/metrics/handoffs`` is a user's.
PUBLIC_PATHS = ["/api/v1/auth/login", "/api/v1/auth/session", "/health", "/schema", "^/metrics$"]


def create_jwt_auth(settings: Settings, alchemy: SQLAlchemyAsyncConfig) -> JWTCookieAuth[User]:
    users = UserCache(settings.auth_user_cache_seconds)

    async def retrieve_user(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> User | None:
        try:
            user_id = UUID(token.sub)
        except ValueError:
            return None
        runtime = connection.app.state.get(STATE_KEY)
        if (
            runtime is not None
            and runtime.revocations is not None
            and await runtime.revocations.revoked(token)
        ):
            return None  # signed out
        user = users.get(user_id)
        if user is None:
            # The same session the handler's `db_session` dependency gets, so a
            # request opens one connection, not two.
            db = alchemy.provide_session(connection.app.state, connection.scope)
            # Row-level security (handoffs.db.tenancy): the token's user is looked up before their
            # account is known, so in the system scope; the same statement then narrows the rest of
            # its transaction to the user's account (enter_account: no extra round trip).
            use_scope(SYSTEM)
            found = (
                await db.execute(
                    select(User, enter_account(User.account_id)).where(
                        User.id == user_id, User.is_active.is_(True)
                    )
                )
            ).first()
            if found is None:
                use_scope(None)
                return None
            user = found[0]
            users.keep(user)
        # The request's later transactions begin narrowed to the user's account.
        use_scope(user.account_id)
        bind_user(user.account_id, user.id)  # the request's later log lines name them
        return user

    return JWTCookieAuth[User](
        retrieve_user_handler=retrieve_user,
        token_cls=KeptToken,
        token_secret=settings.resolved_secret_key(),
        default_token_expiration=timedelta(minutes=settings.token_ttl_minutes),
        exclude=PUBLIC_PATHS,
        key=SESSION_COOKIE,
        samesite="lax",
        secure=settings.public_url.startswith("https://"),
        description="A bearer token from POST /api/v1/auth/login (or the console's session cookie).",
    )


class TokenIssuer:
    """Mints bearer tokens for signed-in users (a plain class, so it injects cleanly)."""

    def __init__(self, jwt_auth: JWTCookieAuth[User]) -> None:
        self._jwt_auth = jwt_auth
        self.ttl: timedelta = jwt_auth.default_token_expiration

    def issue(self, user: User) -> tuple[str, datetime]:
        # A unique id per token, so signing out can revoke exactly this one (security/revocation.py).
        token = self._jwt_auth.create_token(
            identifier=str(user.id), token_expiration=self.ttl, token_unique_jwt_id=secrets.token_urlsafe(16)
        )
        return token, datetime.now(UTC) + self.ttl

    def session_cookies(self, token: str) -> tuple[Cookie, Cookie, str]:
        """The console's session cookie (HttpOnly) and its CSRF cookie, plus the CSRF token: an HMAC of
        the session's token (handoffs.security.csrf), readable by the page's script."""
        csrf = csrf_token_for(token, self._jwt_auth.token_secret)
        max_age = int(self.ttl.total_seconds())
        secure = bool(self._jwt_auth.secure)
        session = Cookie(
            key=SESSION_COOKIE, value=f"Bearer {token}", httponly=True, samesite="lax",
            secure=secure, max_age=max_age, path="/",
        )  # fmt: skip
        companion = Cookie(
            key=CSRF_COOKIE,
            value=csrf,
            httponly=False,
            samesite="lax",
            secure=secure,
            max_age=max_age,
            path="/",
        )
        return session, companion, csrf

    @staticmethod
    def cleared_cookies() -> list[Cookie]:
        return [
            Cookie(key=SESSION_COOKIE, value="", max_age=0, path="/", httponly=True, samesite="lax"),
            Cookie(key=CSRF_COOKIE, value="", max_age=0, path="/", samesite="lax"),
        ]


def current_user(connection: ASGIConnection[Any, Any, Any, Any]) -> User:
    # From the scope, not ``connection.user``, which raises (a 500) where the auth middleware did
    # not run: a request it lets through unauthenticated is refused as one.
    user = connection.scope.get("user")
    if not isinstance(user, User):
        raise NotAuthorizedException("Not signed in")
    return user


@dataclass(frozen=True, slots=True)
class RoleGuard:
    """A guard that lets ``minimum`` and higher roles through; ``action`` words the 403. A value,
    not a closure, so the OpenAPI schema can say who may (``handoffs.error_docs``); ``async``
    because Litestar runs a sync guard in a worker thread, a hop per request for one comparison."""

    minimum: Role
    action: str

    async def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if connection.scope.get("method") == "OPTIONS":
            # Litestar's own answer (the Allow header), which the auth middleware lets through
            # unauthenticated as a CORS preflight must be: nothing to guard, and no user to ask.
            return
        if not current_user(connection).role.at_least(self.minimum):
            raise PermissionDeniedException(f"Your role may not {self.action}.")


def requires_role(minimum: Role, action: str) -> RoleGuard:
    return RoleGuard(minimum, action)
