"""Sign-in and the current user."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException
from litestar.params import JSONBody, QueryParameter

from handoffs.db.models import User
from handoffs.deps import DbSession
from handoffs.domain.accounts.schemas import Colleague, LoggedOut, LoginIn, LoginOut, SessionOut, UserOut
from handoffs.domain.accounts.service import UserService
from handoffs.enums import Role
from handoffs.security.auth import TokenIssuer, current_user


class AuthController(Controller):
    path = "/api/v1"
    tags = ["auth"]

    @post("/auth/login", status_code=200, security=[])
    async def login(
        self, data: JSONBody[LoginIn], db_session: DbSession, tokens: NamedDependency[TokenIssuer]
    ) -> LoginOut:
        """Exchange email and password for a bearer token."""
        user = await UserService(db_session).authenticate(data.email, data.password)
        if user is None:
            raise NotAuthorizedException("Wrong email or password")
        token, expires_at = tokens.issue(user)
        return LoginOut(access_token=token, user=UserOut.of(user), expires_at=expires_at)

    @post("/auth/session", status_code=200, security=[])
    async def open_session(
        self, data: JSONBody[LoginIn], db_session: DbSession, tokens: NamedDependency[TokenIssuer]
    ) -> Response[SessionOut]:
        """Sign in the browser console: an HttpOnly session cookie and a CSRF token."""
        user = await UserService(db_session).authenticate(data.email, data.password)
        if user is None:
            raise NotAuthorizedException("Wrong email or password")
        token, expires_at = tokens.issue(user)
        session, companion, csrf = tokens.session_cookies(token)
        body = SessionOut(user=UserOut.of(user), csrf_token=csrf, expires_at=expires_at)
        return Response(body, cookies=[session, companion])

    @post("/auth/logout", status_code=200)
    async def logout(self, tokens: NamedDependency[TokenIssuer]) -> Response[LoggedOut]:
        """End the console session (clears its cookies)."""
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
