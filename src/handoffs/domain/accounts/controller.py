"""Sign-in and the current user."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, QueryParameter
from litestar.security.jwt import Token

from handoffs.db.models import User
from handoffs.db.tenancy import SYSTEM, scoped
from handoffs.deps import DbSession
from handoffs.domain.accounts.schemas import (
    Colleague,
    LoggedOut,
    LoginIn,
    LoginOut,
    SessionOut,
    UserOut,
)
from handoffs.domain.accounts.service import UserService
from handoffs.domain.notifications.titles import duration
from handoffs.enums import Role
from handoffs.errors import Detail
from handoffs.runtime import runtime_of
from handoffs.security.auth import TokenIssuer, current_user
from handoffs.security.login_limits import LoginLimiter
from handoffs.security.revocation import revoke
from handoffs.stream.guard import EndReason

#: A sign-in's own refusals (public: no token to be refused for).
SIGN_IN_REFUSALS = {
    401: ResponseSpec(data_container=Detail, generate_examples=False, description="Wrong email or password"),
    429: ResponseSpec(
        data_container=Detail,
        generate_examples=False,
        description="Too many failed sign-ins; see Retry-After",
    ),
}
#: The cookie sign-in's refusals besides: another site's page (login CSRF), a body not JSON.
COOKIE_SIGN_IN_REFUSALS = {
    **SIGN_IN_REFUSALS,
    403: ResponseSpec(data_container=Detail, generate_examples=False, description="Sent from another site"),
    415: ResponseSpec(data_container=Detail, generate_examples=False, description="The body is not JSON"),
}


async def sign_in(request: Request[Any, Any, Any], db: DbSession, data: LoginIn) -> User:
    """The user these credentials name, within the sign-in limits (429 past them, before the
    password is even checked), or 401."""
    runtime = runtime_of(request.app.state)
    limiter = LoginLimiter.of(runtime.redis, runtime.settings)
    address = request.client.host if request.client else "unknown"
    wait = await limiter.retry_after(address, data.email)
    if wait is not None:
        raise TooManyRequestsException(
            f"Too many failed sign-ins; try again in {duration(wait)}.",
            headers={"Retry-After": str(wait)},
        )
    # An email names a user of any account: looked up in row-level security's system scope, in
    # a transaction ended right after, so nothing else of the request reads across accounts.
    with scoped(SYSTEM):
        user = await UserService(db).authenticate(data.email, data.password)
        await db.commit()  # read-only; instead of the rollback the session's close would send
    if user is None:
        await limiter.failed(address, data.email)
        raise NotAuthorizedException("Wrong email or password")
    await limiter.succeeded(data.email)
    return user


class AuthController(Controller):
    path = "/api/v1"
    tags = ["auth"]

    @post("/auth/login", status_code=200, security=[], responses=SIGN_IN_REFUSALS)
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LoginIn],
        db_session: DbSession,
        tokens: NamedDependency[TokenIssuer],
    ) -> LoginOut:
        """Exchange email and password for a bearer token (rate limited per email and address)."""
        user = await sign_in(request, db_session, data)
        token, expires_at = tokens.issue(user)
        return LoginOut(access_token=token, user=UserOut.of(user), expires_at=expires_at)

    @post("/auth/session", status_code=200, security=[], responses=COOKIE_SIGN_IN_REFUSALS)
    async def open_session(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LoginIn],
        db_session: DbSession,
        tokens: NamedDependency[TokenIssuer],
    ) -> Response[SessionOut]:
        """Sign in the browser console: an HttpOnly session cookie and a CSRF token."""
        user = await sign_in(request, db_session, data)
        token, expires_at = tokens.issue(user)
        session, companion, csrf = tokens.session_cookies(token)
        body = SessionOut(user=UserOut.of(user), csrf_token=csrf, expires_at=expires_at)
        return Response(body, cookies=[session, companion])

    @post("/auth/logout", status_code=200)
    async def logout(
        self, request: Request[User, Token, Any], tokens: NamedDependency[TokenIssuer]
    ) -> Response[LoggedOut]:
        """Sign out: this token (bearer or the console's cookie) is refused from now on: on this
        replica at once, on the others within `AUTH_USER_CACHE_SECONDS`; the console's cookies
        are cleared. Its live streams end: on this replica at once, on the others at their next
        keepalive tick."""
        runtime = runtime_of(request.app.state)
        if await revoke(runtime.redis, request.auth):
            if runtime.revocations is not None:
                runtime.revocations.deny(request.auth)
            if runtime.hub is not None:
                runtime.hub.end_streams(str(request.auth.jti), EndReason.signed_out)
        return Response(LoggedOut(), cookies=tokens.cleared_cookies())

    @get("/me")
    async def me(self, request: Request[User, Any, Any]) -> UserOut:
        """The signed-in user."""
        return UserOut.of(current_user(request))


class UserController(Controller):
    path = "/api/v1/users"
    tags = ["users"]

    @get("/")
    async def list_users(
        self,
        request: Request[User, Any, Any],
        db_session: DbSession,
        role: Annotated[
            list[Role] | None,
            QueryParameter(name="role", description="Only these roles (repeat for several)."),
        ] = None,
    ) -> list[Colleague]:
        """Active users of the caller's account, by name: e.g. the target picker of an escalation."""
        users = await UserService(db_session).colleagues(current_user(request))
        return [Colleague.of(u) for u in users if not role or u.role in role]
