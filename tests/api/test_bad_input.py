"""Bad input: a 4xx with a `detail` a person can read, never a 500, and nothing written."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import AISession, Notification, OutboxMessage, SessionHandoff, SessionMessage
from tests.conftest import Api

API = "/api/v1"
MODELS = (AISession, SessionHandoff, SessionMessage, Notification, OutboxMessage)
MAX_NOTES = 10_000
BODY_ERROR = {400, 422}
PATH_ERROR = {400, 404}


class Raw(bytes):
    """A request body sent as-is with a JSON content type (for bodies that are not valid JSON)."""


def case(
    case_id: str,
    who: str | None,
    method: str,
    path: str,
    body: Any,
    field: str | None = None,
    statuses: set[int] = BODY_ERROR,
) -> Any:
    return pytest.param(who, method, path, body, field, statuses, id=case_id)


SESSIONS = "/ai-sessions"
MESSAGES = "/ai-sessions/{session}/messages"
HANDOFF = "/ai-sessions/{session}/handoff"
LOGIN = "/auth/login"
MSG = {"role": "user", "content": "hello"}

CASES = [
    # -- malformed JSON and JSON that is not an object
    case("create-session-malformed-json", "jane", "POST", SESSIONS, Raw(b'{"title": "x"')),
    case("create-session-json-array", "jane", "POST", SESSIONS, []),
    case("create-session-json-string", "jane", "POST", SESSIONS, "Outlook"),
    case("create-session-json-number", "jane", "POST", SESSIONS, 42),
    case("create-session-json-null", "jane", "POST", SESSIONS, Raw(b"null")),
    case("message-malformed-json", "jane", "POST", MESSAGES, Raw(b"{role: user}")),
    case("message-json-array", "jane", "POST", MESSAGES, ["user", "hello"]),
    case("handoff-malformed-json", "jane", "POST", HANDOFF, Raw(b'{"intent": "escalate",}')),
    case("handoff-json-string", "jane", "POST", HANDOFF, "escalate"),
    case("handoff-json-array", "jane", "POST", HANDOFF, [{"intent": "escalate"}]),
    case("login-malformed-json", None, "POST", LOGIN, Raw(b'{"email": "jane@acme.test", "password"}')),
    case("login-json-array", None, "POST", LOGIN, ["jane@acme.test", "demo"]),
    case("login-not-json-at-all", None, "POST", LOGIN, Raw(b"email=jane@acme.test&password=demo")),
    # -- closed vocabularies
    case("unknown-intent", "jane", "POST", HANDOFF, {"intent": "panic"}, "intent"),
    case("unknown-priority", "jane", "POST", HANDOFF, {"intent": "escalate", "priority": "asap"}, "priority"),
    case("unknown-message-role", "jane", "POST", MESSAGES, {"role": "system", "content": "hi"}, "role"),
    # -- UUIDs in the body
    case(
        "target-user-id-not-a-uuid",
        "jane",
        "POST",
        HANDOFF,
        {"intent": "escalate", "target_user_id": "sam"},
        "target_user_id",
    ),
    case(
        "target-user-id-almost-a-uuid",
        "jane",
        "POST",
        HANDOFF,
        {"intent": "escalate", "target_user_id": "00000000-0000-0000-0000-00000000000g"},
        "target_user_id",
    ),
    case(
        "target-user-id-no-such-user",
        "jane",
        "POST",
        HANDOFF,
        {"intent": "escalate", "target_user_id": str(uuid4())},
        "target_user_id",
    ),
    case(
        "target-user-id-is-a-viewer",
        "jane",
        "POST",
        HANDOFF,
        {"intent": "escalate", "target_user_id": "@victor"},
        "target_user_id",
    ),
    case(
        "target-user-id-is-the-caller",
        "jane",
        "POST",
        HANDOFF,
        {"intent": "escalate", "target_user_id": "@jane"},
        "target_user_id",
    ),
    # -- lengths
    case(
        "engineer-notes-over-limit",
        "jane",
        "POST",
        HANDOFF,
        {"intent": "escalate", "engineer_notes": "n" * (MAX_NOTES + 1)},
        "engineer_notes",
    ),
    case("empty-message-content", "jane", "POST", MESSAGES, {"role": "user", "content": ""}, "content"),
    case("psa-ticket-id-too-long", "jane", "POST", SESSIONS, {"psa_ticket_id": "T" * 65}, "psa_ticket_id"),
    case("title-too-long", "jane", "POST", SESSIONS, {"title": "t" * 201}, "title"),
    # -- missing required fields
    case("missing-intent", "jane", "POST", HANDOFF, {"priority": "high"}, "intent"),
    case("empty-handoff-body", "jane", "POST", HANDOFF, {}, "intent"),
    case("missing-message-role", "jane", "POST", MESSAGES, {"content": "hello"}, "role"),
    case("missing-message-content", "jane", "POST", MESSAGES, {"role": "user"}, "content"),
    case("login-missing-email", None, "POST", LOGIN, {"password": "demo"}, "email"),
    case("login-missing-password", None, "POST", LOGIN, {"email": "jane@acme.test"}, "password"),
    # -- unknown fields
    case(
        "session-unknown-field",
        "jane",
        "POST",
        SESSIONS,
        {"title": "x", "owner_id": str(uuid4())},
        "owner_id",
    ),
    case("message-unknown-field", "jane", "POST", MESSAGES, {**MSG, "author": "sam"}, "author"),
    case(
        "handoff-unknown-field",
        "jane",
        "POST",
        HANDOFF,
        {"intent": "escalate", "claimed_by": str(uuid4())},
        "claimed_by",
    ),
    case(
        "login-unknown-field",
        None,
        "POST",
        LOGIN,
        {"email": "jane@acme.test", "password": "demo", "role": "owner"},
        "role",
    ),
    # -- wrong types
    case("priority-number", "jane", "POST", HANDOFF, {"intent": "escalate", "priority": 3}, "priority"),
    case("intent-boolean", "jane", "POST", HANDOFF, {"intent": True}, "intent"),
    case(
        "engineer-notes-list",
        "jane",
        "POST",
        HANDOFF,
        {"intent": "escalate", "engineer_notes": ["a", "b"]},
        "engineer_notes",
    ),
    case("message-content-number", "jane", "POST", MESSAGES, {"role": "user", "content": 5}, "content"),
    case("psa-ticket-id-number", "jane", "POST", SESSIONS, {"psa_ticket_id": 12345}, "psa_ticket_id"),
    case("login-email-number", None, "POST", LOGIN, {"email": 5, "password": "demo"}, "email"),
    # -- bad UUIDs in paths
    case("get-session-bad-uuid", "jane", "GET", "/ai-sessions/not-a-uuid", None, statuses=PATH_ERROR),
    case(
        "get-session-uuid-with-junk",
        "jane",
        "GET",
        "/ai-sessions/{session}x",
        None,
        statuses=PATH_ERROR,
    ),
    case("message-bad-session-uuid", "jane", "POST", "/ai-sessions/123/messages", MSG, statuses=PATH_ERROR),
    case(
        "handoff-bad-session-uuid",
        "jane",
        "POST",
        "/ai-sessions/abc/handoff",
        {"intent": "escalate"},
        statuses=PATH_ERROR,
    ),
    case(
        "list-handoffs-bad-session-uuid",
        "jane",
        "GET",
        "/ai-sessions/zzz/handoffs",
        None,
        statuses=PATH_ERROR,
    ),
    case(
        "get-handoff-bad-handoff-uuid",
        "jane",
        "GET",
        "/ai-sessions/{session}/handoffs/not-a-uuid",
        None,
        statuses=PATH_ERROR,
    ),
    case(
        "claim-bad-handoff-uuid",
        "sam",
        "POST",
        "/ai-sessions/{session}/handoffs/42/claim",
        None,
        statuses=PATH_ERROR,
    ),
    case(
        "release-bad-session-uuid",
        "sam",
        "POST",
        "/ai-sessions/nope/handoffs/{session}/release",
        None,
        statuses=PATH_ERROR,
    ),
    case("read-notification-bad-uuid", "sam", "POST", "/notifications/xyz/read", None, statuses=PATH_ERROR),
    # -- a NUL character, which PostgreSQL cannot store as text: refused as the body decodes,
    #    naming the field and the character
    case("session-title-nul", "jane", "POST", SESSIONS, {"title": "Out\u0000look"}, "title: control", {400}),
    case(
        "session-summary-nul",
        "jane",
        "POST",
        SESSIONS,
        {"problem_summary": "sync\u0000"},
        "problem_summary: control characters are not allowed (U+0000)",
        {400},
    ),
    case(
        "message-content-nul",
        "jane",
        "POST",
        MESSAGES,
        {"role": "user", "content": "a\u0000b"},
        "content: control",
        {400},
    ),
    case(
        "handoff-notes-nul",
        "jane",
        "POST",
        HANDOFF,
        {"intent": "escalate", "engineer_notes": "\u0000"},
        "engineer_notes: control",
        {400},
    ),
    case(
        "login-email-nul",
        None,
        "POST",
        LOGIN,
        {"email": "jane@acme.test\u0000", "password": "demo"},
        "email: control characters are not allowed (U+0000)",
        {400},
    ),
    case(
        "login-password-nul",
        None,
        "POST",
        LOGIN,
        {"email": "jane@acme.test", "password": "demo\u0000"},
        "password: control characters are not allowed (U+0000)",
        {400},
    ),
    # -- the other C0 controls (an escape sequence, a backspace to forge a log line, ...)
    case("session-title-escape", "jane", "POST", SESSIONS, {"title": "\u001b[31mred"}, "(U+001B)", {400}),
    # -- DEL and the C1 controls: invisible, and CSI (U+009B) starts an escape sequence on its own
    case("session-title-csi", "jane", "POST", SESSIONS, {"title": "\u009b31mred"}, "(U+009B)", {400}),
    case(
        "session-summary-del",
        "jane",
        "POST",
        SESSIONS,
        {"title": "ok", "problem_summary": "a\u007fb"},
        "(U+007F)",
        {400},
    ),
    case(
        "message-content-backspace",
        "jane",
        "POST",
        MESSAGES,
        {"role": "user", "content": "ok\u0008\u0008no"},
        "content: control characters are not allowed (U+0008)",
        {400},
    ),
    case(
        "handoff-notes-unit-separator",
        "jane",
        "POST",
        HANDOFF,
        {"intent": "park", "engineer_notes": "a\u001fb"},
        "engineer_notes: control characters are not allowed (U+001F)",
        {400},
    ),
    case(
        "ticket-id-vertical-tab",
        "jane",
        "POST",
        SESSIONS,
        {"psa_ticket_id": "T-1\u000b"},
        "psa_ticket_id: control characters are not allowed (U+000B)",
        {400},
    ),
    # -- JSON nested far deeper than any body of this API
    case(
        "session-deeply-nested",
        "jane",
        "POST",
        SESSIONS,
        Raw(b'{"title": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        statuses={400},
    ),
]


async def row_counts(db: AsyncSession) -> dict[str, int]:
    counts = {
        model.__tablename__: int(await db.scalar(select(func.count()).select_from(model)) or 0)
        for model in MODELS
    }
    await db.rollback()  # hold no transaction open across the request
    return counts


async def session_row(db: AsyncSession, session_id: str) -> tuple[Any, ...]:
    row = (
        await db.execute(
            select(AISession.status, AISession.assignee_id, AISession.updated_at).where(
                AISession.id == session_id
            )
        )
    ).one()
    await db.rollback()
    return tuple(row)


def with_actor_ids(api: Api, body: Any) -> Any:
    """``"@sam"`` in a body stands for that demo user's id."""
    if not isinstance(body, dict):
        return body
    return {
        key: str(api[value[1:]].id) if isinstance(value, str) and value.startswith("@") else value
        for key, value in body.items()
    }


async def send(api: Api, who: str | None, method: str, path: str, body: Any) -> Any:
    body = with_actor_ids(api, body)
    kwargs: dict[str, Any] = {}
    if isinstance(body, Raw):
        kwargs = {"content": bytes(body), "headers": {"Content-Type": "application/json"}}
    elif body is not None:
        kwargs = {"content": json.dumps(body), "headers": {"Content-Type": "application/json"}}
    return await api.call(who, method, API + path, **kwargs)


@pytest.mark.parametrize(("who", "method", "template", "body", "field", "statuses"), CASES)
async def test_bad_input_answers_4xx_with_detail_and_writes_nothing(
    api: Api,
    db: AsyncSession,
    who: str | None,
    method: str,
    template: str,
    body: Any,
    field: str | None,
    statuses: set[int],
) -> None:
    session = await api.new_session("jane", psa_ticket_id="12345")
    path = template.format(session=session["id"])
    before = await row_counts(db)
    session_before = await session_row(db, session["id"])

    response = await send(api, who, method, path, body)

    assert response.status_code in statuses, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert detail.strip()
    assert "Traceback" not in detail
    if field is not None:
        assert field in detail, detail
    assert await row_counts(db) == before
    assert await session_row(db, session["id"]) == session_before


# (template, body, table that gains exactly one row, field, stored length)
AT_THE_LIMIT = [
    pytest.param(
        HANDOFF,
        {"intent": "escalate", "engineer_notes": "n" * MAX_NOTES},
        SessionHandoff,
        "engineer_notes",
        MAX_NOTES,
        id="engineer-notes-exactly-10000",
    ),
    pytest.param(
        HANDOFF,
        {"intent": "park", "engineer_notes": "p" * MAX_NOTES},
        SessionHandoff,
        "engineer_notes",
        MAX_NOTES,
        id="park-notes-exactly-10000",
    ),
    pytest.param(
        SESSIONS, {"psa_ticket_id": "T" * 64}, AISession, "psa_ticket_id", 64, id="psa-ticket-id-exactly-64"
    ),
    pytest.param(SESSIONS, {"title": "t" * 200}, AISession, "title", 200, id="title-exactly-200"),
    pytest.param(
        MESSAGES,
        {"role": "tool", "content": "x"},
        SessionMessage,
        "content",
        1,
        id="message-content-one-char",
    ),
]


@pytest.mark.parametrize(("template", "body", "model", "field", "length"), AT_THE_LIMIT)
async def test_value_at_the_limit_is_accepted(
    api: Api, db: AsyncSession, template: str, body: dict[str, Any], model: Any, field: str, length: int
) -> None:
    session = await api.new_session("jane", psa_ticket_id="12345")
    before = await row_counts(db)

    response = await send(api, "jane", "POST", template.format(session=session["id"]), body)

    assert response.status_code == 201, response.text
    created = response.json()
    assert len(created[field]) == length
    after = await row_counts(db)
    assert after[model.__tablename__] == before[model.__tablename__] + 1
    stored = await db.scalar(select(getattr(model, field)).where(model.id == created["id"]))
    await db.rollback()
    assert stored is not None
    assert len(stored) == length


async def test_a_nul_in_psa_credentials_is_a_400_and_the_secret_reaches_no_log(
    api: Api, db: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue #14's case: a failed write used to log its SQL parameters, credentials included."""
    caplog.set_level("DEBUG")
    body = {
        "vendor": "halo",
        "base_url": "https://acme.halopsa.com",
        "credentials": {"client_id": "ACME-CID-42", "client_secret": "S3cr3t-Halo-Key\u0000"},
    }
    response = await api.call("ada", "PUT", f"{API}/psa-connection", json=body)
    assert response.status_code == 400, response.text
    assert (
        response.json()["detail"] == "credentials.client_secret: control characters are not allowed (U+0000)"
    )
    assert "S3cr3t-Halo-Key" not in caplog.text
    assert "S3cr3t-Halo-Key" not in response.text
    assert (await api.call("ada", "GET", f"{API}/psa-connection")).json()["vendor"] == "none"


async def test_a_nul_in_the_life_after_the_pick_up_is_a_400(api: Api) -> None:
    session, handoff = await api.claimed("sam")
    for action, body in (
        ("comments", {"body": "which build?\u0000"}),
        ("resolve", {"resolution": "fixed\u0000"}),
        ("release", {"reason": "\u0000"}),
    ):
        response = await api.act("sam", session, handoff, action, body)
        assert response.status_code == 400, (action, response.text)
        field = next(iter(body))
        assert response.json()["detail"] == f"{field}: control characters are not allowed (U+0000)"
    assert (await api.read("sam", session, handoff)).json()["state"] == "claimed"
    assert (await api.read("sam", session, handoff, "comments")).json() == []
    search = await api.call("sam", "GET", f"{API}/handoffs", params={"q": "vpn\u0000"})
    assert search.status_code == 400, search.text
    assert search.json()["errors"] == [
        {"key": "q", "message": "control characters are not allowed (U+0000)", "source": "query"}
    ]


@pytest.mark.expect_error_logs  # the 500 handler logs the database error, as it should
async def test_a_failed_statement_never_carries_its_values_into_the_500s_log(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The engine hides bound parameters, and the 500 handler logs a database error without
    the driver's message, which can quote a value ("invalid input for query argument $1: …")."""
    from types import SimpleNamespace

    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from handoffs.db.engine import create_engine
    from handoffs.errors import internal_error_handler

    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as failed:
                await conn.execute(text("SELECT CAST(:secret AS integer)"), {"secret": "S3cr3t-Halo-Key"})
    finally:
        await engine.dispose()
    assert "hidden due to hide_parameters" in str(failed.value)
    request = SimpleNamespace(method="PUT", url=SimpleNamespace(path="/api/v1/psa-connection"))
    with caplog.at_level("DEBUG"):
        response = internal_error_handler(request, failed.value)  # type: ignore[arg-type]
    assert response.status_code == 500
    assert "S3cr3t-Halo-Key" not in caplog.text
    assert "SELECT CAST($1 AS integer)" in caplog.text  # what failed is still there to debug


async def test_tab_newline_and_a_browsers_crlf_are_kept_as_sent(api: Api, db: AsyncSession) -> None:
    """Only the other C0 controls are refused: a textarea's CRLF and a pasted tab are text."""
    summary = "Outlook:\r\n\tsync fails\r\nafter the update"
    session = await api.new_session("jane", problem_summary=summary, title="tab\there")
    handoff = await api.hand_off(session["id"], engineer_notes="tried:\r\n- safe mode\r\n- new profile")
    assert session["problem_summary"] == summary
    assert handoff["engineer_notes"] == "tried:\r\n- safe mode\r\n- new profile"
    stored = await db.scalar(select(AISession.problem_summary).where(AISession.id == session["id"]))
    await db.rollback()
    assert stored == summary


#: Strings a field's own pattern may accept (a ticket id, an email, a URL, plain text); with a
#: control character inside, none may be accepted any more.
SAMPLES = ("x", "T-1", "jane@acme.test", "https://acme.halopsa.com/api", "two words")
REFUSED = [chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20))]


def _string_schemas(schema: Any) -> Any:
    """Every JSON schema of a string inside ``schema`` (properties, items, map keys and values)."""
    if isinstance(schema, dict):
        if schema.get("type") == "string":
            yield schema
        for value in schema.values():
            yield from _string_schemas(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _string_schemas(value)


def _refuses_controls(pattern: str) -> bool:
    import re

    accepted = [s for s in SAMPLES if re.search(pattern, s)]
    return bool(accepted) and not any(
        re.search(pattern, variant)
        for sample in accepted
        for char in REFUSED
        for variant in (sample[:1] + char + sample[1:], sample + char)
    )


def test_every_text_field_of_every_request_refuses_control_characters(app: Any) -> None:
    """Every string of every request body (msgspec's schema: dict keys and values included) and every
    string query parameter, console pages included, carries a pattern that refuses the controls
    (handoffs.domain.text): a new field without ``Text`` fails here, not in production."""
    import msgspec
    from litestar.routes import HTTPRoute

    unchecked: list[str] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler, kwargs_model in route.route_handler_map.values():
            where = f"{sorted(handler.http_methods)} {route.path}"
            parameters = handler.parsed_fn_signature.parameters
            if "data" in parameters:
                body = msgspec.json.schema(parameters["data"].annotation)
                for string in _string_schemas(body):
                    if "enum" in string or "const" in string or "format" in string:
                        continue  # a closed vocabulary, a UUID, a time: decoded into something else
                    if not _refuses_controls(string.get("pattern", "")):
                        unchecked.append(f"{where} body: {string}")
            for query in kwargs_model.expected_query_params:
                field = parameters[query.field_name]
                types = {t.annotation for t in field.inner_types} if field.is_union else {field.annotation}
                if str in types and not _refuses_controls(
                    getattr(field.kwarg_definition, "pattern", "") or ""
                ):
                    unchecked.append(f"{where} query {query.field_alias}")
    assert not unchecked, "\n".join(unchecked)


async def test_a_value_nested_10000_deep_in_a_free_form_field_is_a_400(api: Api) -> None:
    """The PSA settings are the one map of values a request takes: nested past the stack it is a
    400 "nested too deeply", below that a type error naming the field; never a 500."""
    for depth, expected in ((10_000, "nested too deeply"), (500, "settings")):
        nested = '{"a": ' * depth + "1" + "}" * depth
        body = f'{{"vendor": "halo", "base_url": "https://acme.halopsa.com", "settings": {nested}}}'
        response = await send(api, "ada", "PUT", "/psa-connection", Raw(body.encode()))
        assert response.status_code == 400, response.text
        assert expected in response.json()["detail"]
    assert (await api.call("ada", "GET", f"{API}/psa-connection")).json()["vendor"] == "none"


async def test_a_lone_surrogate_in_any_string_is_a_400_and_a_pair_is_kept(api: Api) -> None:
    """A lone UTF-16 surrogate (``\\ud800``) has no UTF-8 form, so the driver could not send it
    (a 500); msgspec refuses it while decoding, so it never gets that far. A proper pair (an
    emoji) is kept."""
    for body in (
        b'{"title": "before \\ud800 after", "problem_summary": "down"}',
        b'{"title": "VPN", "problem_summary": "trailing \\udfff"}',
    ):
        response = await send(api, "jane", "POST", "/ai-sessions", Raw(body))
        assert response.status_code == 400, response.text
        assert response.json()["detail"]
    paired = await send(
        api,
        "jane",
        "POST",
        "/ai-sessions",
        Raw(b'{"title": "VPN \\ud83d\\ude00", "problem_summary": "down"}'),
    )
    assert paired.status_code == 201, paired.text
    assert paired.json()["title"] == "VPN \U0001f600"


async def test_a_release_after_a_refused_re_handoff_puts_it_back_and_names_no_integrity_error(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue #14: a release used to re-open a handoff beside the junior's second one, and the unique
    index answered a generic 409 from the UPDATE. The second hand-off is refused while the first is
    claimed (one unresolved handoff per session), so the release has nothing to collide with."""
    caplog.set_level("WARNING", logger="handoffs.errors")
    session, handoff = await api.claimed("sam")
    again = await api.call(
        "jane", "POST", f"{API}/ai-sessions/{session['id']}/handoff", json={"intent": "escalate"}
    )
    assert again.status_code == 409, again.text
    assert again.json()["handoff_id"] == handoff["id"]
    released = await api.act("sam", session, handoff, "release", {"reason": "need the logs first"})
    assert released.status_code == 200, released.text
    assert released.json()["state"] == "open"
    twice = await api.call(
        "jane", "POST", f"{API}/ai-sessions/{session['id']}/handoff", json={"intent": "park"}
    )
    assert twice.status_code == 409, twice.text
    assert twice.json() == {
        "detail": "This session already has an open handoff.",
        "handoff_id": handoff["id"],
        "state": "open",
    }
    assert "integrity" not in caplog.text


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        pytest.param([None, None], "settings: Expected `object`, got `array`", id="an-array"),
        pytest.param("x", "settings: Expected `object`, got `str`", id="a-string"),
        pytest.param(
            {"tenant\u0000": "acme"},
            "settings: control characters are not allowed (U+0000)",
            id="nul-in-a-key",
        ),
    ],
)
async def test_psa_settings_of_the_wrong_shape_are_a_400_naming_settings(
    api: Api, value: Any, detail: str
) -> None:
    """Found by schemathesis: Litestar blamed a refused `settings` field on the app's `settings`
    dependency of the same name, and answered 500 (handoffs.errors.misread_body_error)."""
    body = {"vendor": "halo", "base_url": "https://acme.halopsa.com", "settings": value}
    response = await api.call("ada", "PUT", f"{API}/psa-connection", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == detail
    assert response.json()["errors"][0]["source"] == "body"
    assert (await api.call("ada", "GET", f"{API}/psa-connection")).json()["vendor"] == "none"


@pytest.mark.parametrize(
    "path", ["/psa-connection", "/integrations/chat", "/integrations/chat/test", "/metrics/handoffs"]
)
async def test_options_on_a_route_guarded_by_its_controller_answers_its_methods_not_a_500(
    api: Api, path: str
) -> None:
    """Found by schemathesis: the auth middleware lets OPTIONS through unauthenticated (a CORS
    preflight), and a controller's role guard then asked for a user that was not there."""
    response = await api.call(None, "OPTIONS", API + path)
    assert response.status_code == 204, response.text
    assert "OPTIONS" in response.headers["allow"]
    get = await api.call(None, "GET", API + path)
    assert get.status_code in (401, 405), get.text
