"""Sign-in rate limits across two real replicas: per email and per client address, 429 with
Retry-After, and the right password does not get through while limited."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from handoffs.config import Settings
from tests.support.replicas import run_replicas

PER_EMAIL, PER_ADDRESS = 3, 5


@pytest.fixture(scope="module")
def limited(settings: Settings) -> Iterator[list[str]]:
    """Two replicas with small limits, sharing the suite's Redis (as replicas share theirs)."""
    env = {
        "LOGIN_MAX_FAILURES_PER_EMAIL": str(PER_EMAIL),
        "LOGIN_MAX_FAILURES_PER_ADDRESS": str(PER_ADDRESS),
        "LOGIN_WINDOW_SECONDS": "120",
    }
    with run_replicas(settings, count=2, **env) as urls:
        yield urls


def login(url: str, email: str, password: str, path: str = "/api/v1/auth/login") -> httpx.Response:
    return httpx.post(f"{url}{path}", json={"email": email, "password": password}, timeout=10)


async def test_failures_on_either_replica_count_together_and_then_even_the_right_password_waits(
    limited: list[str], api: object
) -> None:
    a, b = limited
    assert login(a, "jane@acme.test", "wrong").status_code == 401
    assert login(b, "jane@acme.test", "wrong").status_code == 401
    assert login(a, "JANE@acme.test", "wrong").status_code == 401  # the same email, however written
    refused = login(b, "jane@acme.test", "demo")
    assert refused.status_code == 429, refused.text
    assert 1 <= int(refused.headers["Retry-After"]) <= 120
    assert refused.json()["detail"].startswith("Too many failed sign-ins; try again in")
    assert "access_token" not in refused.text
    # The console's sign-in shares the limit.
    assert login(a, "jane@acme.test", "demo", "/api/v1/auth/session").status_code == 429
    # Another person signs in meanwhile.
    assert login(a, "sam@acme.test", "demo").status_code == 200


async def test_a_success_clears_the_emails_failures(limited: list[str], api: object) -> None:
    a, _ = limited
    for _ in range(PER_EMAIL - 1):
        assert login(a, "ada@acme.test", "wrong").status_code == 401
    assert login(a, "ada@acme.test", "demo").status_code == 200
    for _ in range(PER_EMAIL - 1):
        assert login(a, "ada@acme.test", "wrong").status_code == 401
    assert login(a, "ada@acme.test", "demo").status_code == 200


async def test_one_address_trying_many_emails_is_limited(limited: list[str], api: object) -> None:
    a, b = limited
    emails = [f"nobody{i}@acme.test" for i in range(PER_ADDRESS)]
    for i, email in enumerate(emails):
        assert login((a, b)[i % 2], email, "guess").status_code == 401
    refused = login(a, "olivia@acme.test", "demo")
    assert refused.status_code == 429
    assert "Retry-After" in refused.headers
