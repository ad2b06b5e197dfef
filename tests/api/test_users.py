"""GET /api/v1/users: the caller's colleagues (id, name, role) for pickers such as the escalation target."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import User
from tests.conftest import Api

ACME = {
    ("Ada Admin", "admin"),
    ("Jane Doe", "engineer"),
    ("Olivia Owner", "owner"),
    ("Sam Senior", "engineer"),
    ("Victor Viewer", "viewer"),
}


async def test_lists_the_callers_account_only_by_name_without_emails(api: Api) -> None:
    response = await api.call("victor", "GET", "/api/v1/users")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [u["name"] for u in body] == sorted(u["name"] for u in body)
    assert {(u["name"], u["role"]) for u in body} == ACME
    assert all(set(u) == {"id", "name", "role"} for u in body)
    assert {u["id"] for u in body} == {str(api[n].id) for n in ("ada", "jane", "olivia", "sam", "victor")}

    globex = (await api.call("gus", "GET", "/api/v1/users")).json()
    assert {u["name"] for u in globex} == {"Gina Globex", "Gus Globex"}


async def test_role_filter_gives_the_escalation_targets(api: Api) -> None:
    response = await api.call("jane", "GET", "/api/v1/users?role=engineer&role=admin&role=owner")
    assert response.status_code == 200, response.text
    assert {u["name"] for u in response.json()} == {"Ada Admin", "Jane Doe", "Olivia Owner", "Sam Senior"}

    bad = await api.call("jane", "GET", "/api/v1/users?role=wizard")
    assert bad.status_code == 400
    assert "role" in bad.json()["detail"]


async def test_deactivated_users_are_not_listed(api: Api, db: AsyncSession) -> None:
    await db.execute(update(User).where(User.email == "olivia@acme.test").values(is_active=False))
    await db.commit()
    try:
        names = {u["name"] for u in (await api.call("sam", "GET", "/api/v1/users")).json()}
        assert "Olivia Owner" not in names
        assert "Sam Senior" in names
    finally:
        await db.execute(update(User).where(User.email == "olivia@acme.test").values(is_active=True))
        await db.commit()


async def test_needs_sign_in(api: Api) -> None:
    response = await api.call(None, "GET", "/api/v1/users")
    assert response.status_code == 401
