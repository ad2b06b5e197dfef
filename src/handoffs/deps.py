"""Names for injected dependencies, so handlers read ``user: CurrentUser``."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import User
from handoffs.security.auth import current_user

CurrentUser = NamedDependency[User]
DbSession = NamedDependency[AsyncSession]


async def provide_user(request: Request[Any, Any, Any]) -> User:
    return current_user(request)
