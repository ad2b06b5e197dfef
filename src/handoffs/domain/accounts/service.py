"""Users and accounts: sign-in, creating users, the demo seed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import Account, Team, User
from handoffs.enums import Role
from handoffs.errors import BadRequest, Conflict
from handoffs.security.passwords import hash_password_async, verify_password_async


class UserRepository(SQLAlchemyAsyncRepository[User]):
    model_type = User


class AccountRepository(SQLAlchemyAsyncRepository[Account]):
    model_type = Account


class TeamRepository(SQLAlchemyAsyncRepository[Team]):
    model_type = Team


def normalise_email(email: str) -> str:
    return email.strip().lower()


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "account"


class UserService:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db
        self.users = UserRepository(session=db)
        self.accounts = AccountRepository(session=db)
        self.teams = TeamRepository(session=db)

    async def authenticate(self, email: str, password: str) -> User | None:
        user = await self.users.get_one_or_none(email=normalise_email(email))
        ok = await verify_password_async(user.password_hash if user else None, password)
        return user if ok and user is not None and user.is_active else None

    async def colleagues(self, user: User, *, include_inactive: bool = False) -> Sequence[User]:
        """The users of ``user``'s account (``user`` included), by name; active ones unless asked otherwise."""
        query = select(User).where(User.account_id == user.account_id).order_by(User.name, User.id)
        if not include_inactive:
            query = query.where(User.is_active.is_(True))
        return (await self.db.scalars(query)).all()

    async def ensure_account(self, name: str, team_name: str = "Helpdesk") -> tuple[Account, Team]:
        """The account named ``name`` and its team, created when missing."""
        slug = slugify(name)
        account = await self.accounts.get_one_or_none(slug=slug)
        if account is None:
            account = await self.accounts.add(Account(name=name, slug=slug))
        team = await self.teams.get_one_or_none(account_id=account.id, name=team_name)
        if team is None:
            team = await self.teams.add(Team(account_id=account.id, name=team_name))
        return account, team

    async def create_user(
        self,
        *,
        account: Account,
        email: str,
        name: str,
        role: Role,
        password: str | None = None,
        password_hash: str | None = None,
        team: Team | None = None,
    ) -> User:
        email = normalise_email(email)
        if not name.strip():
            raise BadRequest("name must not be empty")
        if await self.db.scalar(select(func.count()).select_from(User).where(User.email == email)):
            raise Conflict(f"A user with email {email} already exists")
        if password_hash is None:
            if not password:
                raise BadRequest("password must not be empty")
            password_hash = await hash_password_async(password)
        return await self.users.add(
            User(
                account_id=account.id,
                team_id=team.id if team else None,
                email=email,
                name=name.strip(),
                role=role,
                password_hash=password_hash,
            )
        )


@dataclass(frozen=True)
class DemoUser:
    account: str
    email: str
    name: str
    role: Role


DEMO_PASSWORD = "demo"  # noqa: S105 - the documented demo password
DEMO_USERS = (
    DemoUser("Acme MSP", "jane@acme.test", "Jane Doe", Role.engineer),
    DemoUser("Acme MSP", "sam@acme.test", "Sam Senior", Role.engineer),
    DemoUser("Acme MSP", "ada@acme.test", "Ada Admin", Role.admin),
    DemoUser("Acme MSP", "olivia@acme.test", "Olivia Owner", Role.owner),
    DemoUser("Acme MSP", "victor@acme.test", "Victor Viewer", Role.viewer),
    DemoUser("Globex MSP", "gus@globex.test", "Gus Globex", Role.engineer),
    DemoUser("Globex MSP", "gina@globex.test", "Gina Globex", Role.owner),
)


async def seed_demo(db: AsyncSession) -> int:
    """Create the demo accounts and users that are missing; return how many users were added.

    Existing rows are left as they are, so seeding twice changes nothing.
    """
    service = UserService(db)
    added = 0
    demo_hash: str | None = None
    for demo in DEMO_USERS:
        account, team = await service.ensure_account(demo.account)
        if await service.users.get_one_or_none(email=demo.email) is not None:
            continue
        # One hash for the shared demo password: argon2 is slow on purpose.
        demo_hash = demo_hash or await hash_password_async(DEMO_PASSWORD)
        await service.create_user(
            account=account,
            team=team,
            email=demo.email,
            name=demo.name,
            role=demo.role,
            password_hash=demo_hash,
        )
        added += 1
    await db.commit()
    return added
