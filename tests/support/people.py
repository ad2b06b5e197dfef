"""People a test may change as it likes: fresh users, signed in through the real endpoint.

The demo users' tokens are shared by a whole test session; a test that deactivates a user,
changes a role or signs a token out uses one of these instead. ``clean_tables`` removes them
before the next test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import Account, User
from handoffs.domain.accounts.service import DEMO_PASSWORD, UserService
from handoffs.enums import Role


@dataclass(frozen=True)
class Person:
    id: UUID
    email: str
    account_id: UUID


async def new_colleague(db: AsyncSession, of: str = "sam@acme.test", role: Role = Role.engineer) -> Person:
    """A new user in the account of ``of``, with the demo password (and its hash: no argon2 cost)."""
    demo = (await db.scalars(select(User).where(User.email == of))).one()
    account = await db.get(Account, demo.account_id)
    assert account is not None
    user = await UserService(db).create_user(
        account=account,
        email=f"new-{uuid4().hex[:12]}@{of.split('@')[1]}",
        name="Nina Newcomer",
        role=role,
        password_hash=demo.password_hash,
    )
    await db.commit()
    return Person(user.id, user.email, user.account_id)


async def change_user(db: AsyncSession, person: Person, **values: Any) -> None:
    """Deactivate someone, or change their role, as an administrator would in the database."""
    await db.execute(update(User).where(User.id == person.id).values(**values))
    await db.commit()


async def sign_in(http: httpx.AsyncClient, base_url: str, person: Person) -> str:
    """A bearer token from ``POST /api/v1/auth/login`` (its own ``jti``, as every login's)."""
    response = await http.post(
        f"{base_url}/api/v1/auth/login", json={"email": person.email, "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])
