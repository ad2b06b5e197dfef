"""Schemathesis against the app's own OpenAPI schema: no input gives a 5xx, every answer is one the
schema documents (status, content type, body), for every operation but the live stream.

Bounded and repeatable: ``MAX_EXAMPLES`` per operation, derandomised (the same cases every run),
valid and invalid inputs (schemathesis' positive and negative modes). The app runs in-process
(ASGI, its lifespan on schemathesis' event loop thread) against this worker's database. Callers
are demo users with tokens minted without a token id, so fuzzing ``/auth/logout`` revokes
nothing: engineers (the junior owns the sessions, the senior may claim) take turns, admins take
the admin-only operations. Half the cases of an operation with ids in its path get the ids of real
sessions, handoffs and notifications, so the handlers behind the 404s are reached too.

Deselect with ``-m "not schemathesis"``; it runs in ``make test``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import count
from typing import Any
from uuid import UUID

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from handoffs.app import create_app
from handoffs.config import Settings
from tests.conftest import Actor, mint_token

pytestmark = pytest.mark.schemathesis

MAX_EXAMPLES = 25
STREAM = "/api/v1/ai-sessions/escalations/stream"
#: Who may call them at all; anyone else would only ever read the 403.
ADMIN_ONLY = ("/api/v1/psa-connection", "/api/v1/integrations/chat", "/api/v1/escalation-policy")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


class World:
    """Real rows for the ids in paths, and the callers' tokens, made through the API itself."""

    def __init__(self, client: Any, tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens
        self.ids: list[dict[str, str]] = []
        #: Cases of this operation so far: whose turn it is, and which get real ids (the same ones
        #: every run, however pytest-xdist spreads the operations).
        self.turns = count()

    def post(self, who: str, path: str, body: Any = None) -> dict[str, Any]:
        response = self.client.post(path, json=body, headers=self.auth(who))
        assert response.status_code in (200, 201), response.text
        return dict(response.json())

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def build(self) -> None:
        for intent, claim in (("escalate", False), ("escalate", True), ("park", False)):
            session = self.post(
                "jane", "/api/v1/ai-sessions", {"title": "VPN", "problem_summary": "drops hourly"}
            )
            base = f"/api/v1/ai-sessions/{session['id']}"
            self.post("jane", f"{base}/messages", {"role": "user", "content": "it drops every hour"})
            handoff = self.post("jane", f"{base}/handoff", {"intent": intent, "engineer_notes": "tried"})
            if claim:
                self.post("sam", f"{base}/handoffs/{handoff['id']}/claim")
            self.ids.append({"session_id": session["id"], "handoff_id": handoff["id"]})
        notes = self.client.get("/api/v1/notifications", headers=self.auth("sam")).json()
        for ids, note in zip(self.ids, notes, strict=False):
            ids["notification_id"] = note["id"]


@pytest.fixture
def world(settings: Settings, engine: AsyncEngine, actors: dict[str, Actor]) -> Iterator[World]:
    """A separate app instance (schemathesis runs its lifespan on its own event loop thread),
    stopped after each operation: its relay has finished before the next test truncates tables."""
    tokens = {who: mint_token(settings, actors[who].id) for who in ("jane", "sam", "ada")}
    app = create_app(settings)
    try:
        with asgi.get_client(app) as client:
            world = World(client, tokens)
            world.build()
            yield world
    finally:
        asgi.shutdown_lifespans()


class IntegrityWarnings(logging.Handler):
    """Issue #14: 1,829 "unhandled integrity error" warnings under fuzzing; a service names its
    conflicts, so none may reach the generic handler."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "integrity" in record.getMessage():
            self.messages.append(record.getMessage())


@pytest.fixture
def integrity_warnings() -> Iterator[IntegrityWarnings]:
    handler = IntegrityWarnings()
    logger = logging.getLogger("handoffs.errors")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def _schema() -> Any:
    """The app's schema, read at collection from an app that is never started (no database needed)."""
    offline = Settings(
        database_url="postgresql://nobody@127.0.0.1:9/none",
        redis_url="redis://127.0.0.1:9/0",
        secret_key="x" * 40,
    )
    document = create_app(offline).openapi_schema.to_schema()
    return schemathesis.openapi.from_dict(document).exclude(path=STREAM)


schema = _schema()


def _is_uuid(value: Any) -> bool:
    try:
        UUID(str(value))
    except ValueError:
        return False
    return True


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_gets_a_5xx_and_every_answer_is_the_documented_one(
    case: Any, world: World, integrity_warnings: IntegrityWarnings
) -> None:
    turn = next(world.turns)
    path = case.operation.path
    who = "ada" if path.startswith(ADMIN_ONLY) else ("jane", "sam")[turn % 2]
    if case.path_parameters and turn % 4 < 2 and world.ids:
        real = world.ids[(turn // 4) % len(world.ids)]
        for name, value in list(case.path_parameters.items()):
            if name in real and _is_uuid(value):
                case.path_parameters[name] = real[name]
    case.call_and_validate(
        session=world.client, base_url=f"http://{asgi.HOST}", headers=world.auth(who), checks=CHECKS
    )
    assert not integrity_warnings.messages, integrity_warnings.messages
