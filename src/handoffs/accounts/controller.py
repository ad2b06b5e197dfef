"""Sign-in and the current user."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException

from handoffs.accounts.schemas import LoginIn, LoginOut, UserOut
from handoffs.accounts.service import UserService
from handoffs.auth import TokenIssuer, current_user
from handoffs.deps import DbSession
from handoffs.models import User


class AuthController(Controller):
    path = "/api/v1"
    tags = ["auth"]

    @post("/auth/login", status_code=200, security=[])
    async def login(
        self, data: LoginIn, db_session: DbSession, tokens: NamedDependency[TokenIssuer]
    ) -> LoginOut:
        """Exchange email and password for a bearer token."""
        user = await UserService(db_session).authenticate(data.email, data.password)
        if user is None:
            raise NotAuthorizedException("Wrong email or password")
        token, expires_at = tokens.issue(user)
        return LoginOut(access_token=token, user=UserOut.of(user), expires_at=expires_at)

    @get("/me")
    async def me(self, request: Request[User, Any, Any]) -> UserOut:
        """The signed-in user."""
        return UserOut.of(current_user(request))
