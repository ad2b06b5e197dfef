"""Logs: LOG_FORMAT=json lines (parse, ids bound, secrets masked), the request id, the text format
kept by default, and a graceful shutdown bounded by SHUTDOWN_GRACE_SECONDS."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
import signal
import socket
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.contextvars import bound_contextvars

from handoffs.config import Settings
from handoffs.domain.accounts.service import DEMO_PASSWORD
from handoffs.integrations.ai import OfflineAssessor
from handoffs.logs import TEXT_FORMAT, JsonFormatter
from tests.conftest import Api, settle
from tests.support.replicas import Served, run_serve
from tests.support.sse import open_stream, stream_http
from tests.support.workers import run_jobs

pytestmark = pytest.mark.slow

API = "/api/v1"
WRONG_PASSWORD = "Wr0ng-Horse-Battery-9"
PSA_SECRET = "S3cr3t-Halo-Key-77"
QUERY_SECRET = "Qu3ry-Api-Key-55"
HEX_ID = re.compile(r"[0-9a-f]{32}")


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of a LOG_FORMAT=json log as the object it is (a line that is not one fails)."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except ValueError:
            pytest.fail(f"log line {number} is not JSON: {line!r}")
        assert isinstance(parsed, dict), line
        for key in ("timestamp", "level", "logger", "message"):
            assert key in parsed, f"log line {number} has no {key}: {line}"
        assert parsed["timestamp"].endswith("Z"), parsed["timestamp"]
        datetime.fromisoformat(parsed["timestamp"])
        out.append(parsed)
    return out


def lines_of(served: Served, request_id: str, within: float = 10) -> list[dict[str, Any]]:
    """The lines logged while serving the request ``request_id`` (waits for its access line)."""
    deadline = time.monotonic() + within
    while True:
        mine = [line for line in json_lines(served.log()) if line.get("request_id") == request_id]
        if any(line["logger"] == "uvicorn.access" for line in mine) or time.monotonic() > deadline:
            return mine
        time.sleep(0.05)


@pytest.fixture(scope="module")
def json_serve(settings: Settings, engine: AsyncEngine) -> Iterator[Served]:
    with run_serve(settings, LOG_FORMAT="json") as served:
        yield served


def sign_in(url: str, email: str, password: str = DEMO_PASSWORD) -> dict[str, Any]:
    response = httpx.post(f"{url}{API}/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return dict(response.json())


# -- the request id -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("lb-7f3a.2_x", True),
        ("a" * 64, True),
        ("a" * 65, False),  # too long
        ("two words", False),
        ("id\u00e9", False),
        ("", False),
    ],
)
async def test_a_sane_incoming_request_id_is_echoed_and_anything_else_replaced(
    client: AsyncTestClient[Litestar], sent: str, kept: bool
) -> None:
    response = await client.get("/health", headers={"X-Request-ID": sent.encode()})
    assert response.status_code == 200
    echoed = response.headers["x-request-id"]
    if kept:
        assert echoed == sent
    else:
        assert HEX_ID.fullmatch(echoed), echoed


async def test_every_response_carries_a_request_id_also_401s_and_unknown_paths(
    client: AsyncTestClient[Litestar],
) -> None:
    """The id is bound around routing and the app's exception handler, not inside one route."""
    ids = set()
    for path, status in (("/health", 200), (f"{API}/me", 401), ("/no/such/page", 404)):
        response = await client.get(path)
        assert response.status_code == status, path
        assert HEX_ID.fullmatch(response.headers["x-request-id"]), path
        ids.add(response.headers["x-request-id"])
    assert len(ids) == 3  # one each: nothing carried over from the previous request


# -- JSON lines of a real `handoffs serve` ---------------------------------------------------------


def test_json_logs_are_one_object_per_line_with_the_request_id_bound(json_serve: Served) -> None:
    response = httpx.get(f"{json_serve.url}/health", headers={"X-Request-ID": "probe-1.a_b"})
    assert response.headers["x-request-id"] == "probe-1.a_b"
    (access,) = [line for line in lines_of(json_serve, "probe-1.a_b") if line["logger"] == "uvicorn.access"]
    assert access["level"] == "info"
    assert (access["method"], access["path"]) == ("GET", "/health")
    assert "GET /health HTTP/1.1" in access["message"]
    assert "account_id" not in access  # nobody signed in

    generated = httpx.get(f"{json_serve.url}/health").headers["x-request-id"]
    assert HEX_ID.fullmatch(generated)
    assert lines_of(json_serve, generated)
    # uvicorn's own start-up lines went through the same formatter.
    lines = json_lines(json_serve.log())
    assert any(line["logger"] == "uvicorn.error" and "Application startup complete" in line["message"]
               for line in lines)  # fmt: skip


def test_an_authenticated_requests_lines_name_its_account_user_and_route(json_serve: Served) -> None:
    signed_in = sign_in(json_serve.url, "jane@acme.test")
    jane, token = signed_in["user"], signed_in["access_token"]
    missing = "00000000-0000-4000-8000-000000000000"
    response = httpx.get(
        f"{json_serve.url}{API}/ai-sessions/{missing}",
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "authed-1"},
    )
    assert response.status_code == 404
    (access,) = [line for line in lines_of(json_serve, "authed-1") if line["logger"] == "uvicorn.access"]
    assert access["account_id"] == jane["account_id"]
    assert access["user_id"] == jane["id"]
    assert access["path"] == f"{API}/ai-sessions/{{session_id}}"  # the route, not the id
    assert token not in json_serve.log()


def test_a_wrong_password_and_a_refused_psa_secret_reach_no_log_line(json_serve: Served) -> None:
    """Issue #14: bodies are never logged, and a secret in a query string is masked."""
    url = json_serve.url
    refused = httpx.post(
        f"{url}{API}/auth/login",
        json={"email": "jane@acme.test", "password": WRONG_PASSWORD},
        headers={"X-Request-ID": "wrong-password"},
    )
    assert refused.status_code == 401
    ada = sign_in(url, "ada@acme.test")["access_token"]
    body = {
        "vendor": "halo",
        "base_url": "https://acme.halopsa.com",
        "credentials": {"client_id": "ACME-CID-42", "client_secret": f"{PSA_SECRET}\u0000"},
    }
    write = httpx.put(
        f"{url}{API}/psa-connection",
        json=body,
        headers={"Authorization": f"Bearer {ada}", "X-Request-ID": "psa-write"},
    )
    assert write.status_code == 400, write.text
    leaky = httpx.get(
        f"{url}{API}/me",
        params={"api_key": QUERY_SECRET, "q": "visible"},
        headers={"Authorization": f"Bearer {ada}", "X-Request-ID": "query-secret"},
    )
    assert leaky.status_code == 200
    for request_id in ("wrong-password", "psa-write", "query-secret"):
        assert any(line["logger"] == "uvicorn.access" for line in lines_of(json_serve, request_id))
    (query_line,) = [
        line for line in lines_of(json_serve, "query-secret") if line["logger"] == "uvicorn.access"
    ]
    assert "api_key=[redacted]&q=visible" in query_line["message"]
    text = json_serve.log()
    json_lines(text)  # every line still parses
    for secret in (WRONG_PASSWORD, PSA_SECRET, QUERY_SECRET, ada):
        assert secret not in text


def test_text_logs_are_unchanged_by_default(settings: Settings, engine: AsyncEngine) -> None:
    with run_serve(settings) as served:
        response = httpx.get(f"{served.url}/health")
        assert HEX_ID.fullmatch(response.headers["x-request-id"])  # echoed in either format
        served.proc.terminate()
        served.proc.wait(timeout=30)
    lines = served.log().splitlines()
    assert not any(line.startswith("{") for line in lines)
    # uvicorn's lines as uvicorn writes them, ours in TEXT_FORMAT.
    assert any(
        re.fullmatch(r'INFO: +127\.0\.0\.1:\d+ - "GET /health HTTP/1\.1" 200( OK)?', line) for line in lines
    )
    ours = re.compile(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO    handoffs\.stream\.hub: stopping: ended 0 live streams; .*"
    )
    assert any(ours.fullmatch(line) for line in lines), lines[-10:]
    assert TEXT_FORMAT == "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


# -- the formatter and the worker, in this process --------------------------------------------------


@contextlib.contextmanager
def captured(logger: logging.Logger) -> Iterator[list[dict[str, Any]]]:
    """What ``logger`` (and the loggers below it) write in the JSON format, parsed on exit."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        lines.extend(json_lines(stream.getvalue()))


def test_secret_keys_are_masked_at_any_depth_and_exceptions_are_a_field() -> None:
    log = logging.getLogger("tests.logging.formatter")
    log.setLevel(logging.INFO)

    with captured(log) as lines, bound_contextvars(request_id="r-1", account_id="a-1", user_id="u-1"):
        log.info(
            "PSA answered %s",
            "{'access_token': 'tok-123', 'scope': 'all'}",
            extra={
                "client_secret": "cs-1", "Authorization": "Bearer b-1",
                "settings": {"tenant": "acme", "api-key": "k-1", "nested": [{"private_key": "pk-1"}]},
            },
        )  # fmt: skip
        try:
            raise RuntimeError("could not post to webhook_url=https://hooks.example/T/X")
        except RuntimeError:
            log.exception("chat failed")

    first, failed = lines
    assert (first["request_id"], first["account_id"], first["user_id"]) == ("r-1", "a-1", "u-1")
    assert first["message"] == "PSA answered {'access_token': '[redacted]', 'scope': 'all'}"
    assert first["client_secret"] == first["Authorization"] == "[redacted]"
    assert first["settings"] == {
        "tenant": "acme", "api-key": "[redacted]", "nested": [{"private_key": "[redacted]"}]
    }  # fmt: skip
    assert failed["level"] == "error"
    assert failed["exception"].startswith("Traceback (most recent call last):")
    assert "RuntimeError: could not post to webhook_url=[redacted]" in failed["exception"]
    for secret in ("tok-123", "cs-1", "b-1", "k-1", "pk-1", "hooks.example"):
        assert secret not in json.dumps([first, failed])


@pytest.mark.expect_error_logs
def test_the_suites_error_guard_sees_errors_whichever_the_format(no_unexpected_error_logs: Any) -> None:
    """tests/conftest.py fails a test on unexpected ERROR records: JSON rendering must not hide them."""
    with captured(logging.getLogger()) as lines:
        logging.getLogger("handoffs.errors").error("unhandled error on %s %s", "GET", "/x")
    assert [line["message"] for line in lines] == ["unhandled error on GET /x"]
    assert [r.getMessage() for r in no_unexpected_error_logs.records] == ["unhandled error on GET /x"]


def test_an_unknown_log_format_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from handoffs.config import ConfigError

    monkeypatch.setenv("LOG_FORMAT", "JSON")
    assert Settings.from_env().log_format == "json"
    monkeypatch.setenv("LOG_FORMAT", "yaml")
    with pytest.raises(ConfigError, match="LOG_FORMAT must be one of text, json, got 'yaml'"):
        Settings.from_env()
    monkeypatch.setenv("LOG_FORMAT", "text")
    monkeypatch.setenv("SHUTDOWN_GRACE_SECONDS", "-1")
    with pytest.raises(ConfigError, match="SHUTDOWN_GRACE_SECONDS must be 0 or more"):
        Settings.from_env()


async def test_a_jobs_lines_carry_its_job_id_and_function(
    api: Api, settings: Settings, clean_redis: None, caplog: pytest.LogCaptureFixture
) -> None:
    session = await api.new_session("jane")
    handoff = await api.hand_off(session["id"])
    await settle(api.client)
    caplog.set_level(logging.INFO, logger="arq.worker")
    caplog.set_level(logging.INFO, logger="handoffs.jobs")
    with captured(logging.getLogger()) as lines:  # arq's lines and ours both reach the root
        await run_jobs(settings, extra_ctx={"assessor": OfflineAssessor()})
    (ready,) = [line for line in lines if line["message"].startswith("assessment ready for handoff")]
    assert handoff["id"] in ready["message"]
    assert ready["function"] == "enrich_escalation"
    started = [line for line in lines if line["logger"] == "arq.worker" and "→" in line["message"]]
    assert started
    for line in started:
        assert line["job_id"] in line["message"]  # arq's "→ <job id>:<function>(…)"
    assert ready["job_id"] in {line["job_id"] for line in started}


# -- graceful shutdown -----------------------------------------------------------------------------


def _slow_login(url: str, password: str) -> tuple[socket.socket, bytes]:
    """A sign-in whose headers and half its body are sent; returns the socket and the rest."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"email": "jane@acme.test", "password": password}).encode()
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(
        f"POST {API}/auth/login HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:10]
    )
    return sock, body[10:]


def _response(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


async def test_sigterm_lets_a_request_in_flight_finish_and_exits_within_the_grace_period(
    settings: Settings, engine: AsyncEngine
) -> None:
    grace = 3
    with run_serve(settings, LOG_FORMAT="json", SHUTDOWN_GRACE_SECONDS=str(grace)) as served:
        token = sign_in(served.url, "jane@acme.test")["access_token"]
        async with stream_http() as http, open_stream(http, served.url, token) as stream:
            await stream.ready()
            finishing, rest = _slow_login(served.url, DEMO_PASSWORD)
            stalled, _ = _slow_login(served.url, DEMO_PASSWORD)  # the rest of it never comes
            await asyncio.sleep(0.3)  # both requests are being served
            stopped = time.monotonic()
            served.proc.send_signal(signal.SIGTERM)
            # The stream ends at once (the hub), not at the end of the grace period.
            await asyncio.wait_for(stream.ended.wait(), grace - 1)
            assert stream.error is None
            # A request in flight finishes after the signal: its client gets its answer.
            await asyncio.sleep(0.5)
            finishing.sendall(rest)
            answer = await asyncio.to_thread(_response, finishing)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            # The stalled one holds the process until the grace period ends, and no longer.
            code = await asyncio.to_thread(served.proc.wait, grace + 15)
            took = time.monotonic() - stopped
            stalled.close()
            finishing.close()
    assert code in (0, -signal.SIGTERM), code
    assert grace - 0.5 < took < grace + 10, took
    lines = json_lines(served.log())
    messages = [line["message"] for line in lines]
    assert any(m.startswith("stopping: ended 1 live streams") for m in messages), messages[-12:]
    assert "Cancel 1 running task(s), timeout graceful shutdown exceeded" in messages, messages[-12:]
    assert "Application shutdown complete." in messages, messages[-12:]
    assert messages[-1].startswith("Finished server process")


def test_an_app_built_in_a_process_the_cli_did_not_set_up_still_logs_info(settings: Settings) -> None:
    """``serve --workers N`` spawns fresh processes that build the app without the CLI's logging
    set-up: Python's WARNING default would drop every INFO line of the app."""
    import subprocess
    import sys

    from tests.support.replicas import ROOT, replica_env

    probe = (
        "import logging, time\n"
        "from handoffs.app import create_app\n"
        "create_app()\n"
        "logging.getLogger('handoffs.probe').info('probe line from a fresh process')\n"
        "time.sleep(0.3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=replica_env(settings),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "probe line from a fresh process" in done.stdout + done.stderr


HIDDEN_EMAIL = "hidden@acme.test"


async def test_a_failed_statements_values_reach_no_log_line_in_either_format(engine: AsyncEngine) -> None:
    """PostgreSQL's DETAIL ("Key (email)=(…) already exists") is in the driver's error text, so in
    every traceback of it; both formats drop it and keep the constraint's name."""
    from sqlalchemy import text as sql
    from sqlalchemy.exc import IntegrityError

    from handoffs.logs import JsonFormatter, TextFormatter

    try:
        async with engine.begin() as conn:
            await conn.execute(sql("CREATE TEMP TABLE leak (email text UNIQUE)"))
            # Bound, so the traceback's copy of this source line does not hold the value itself.
            await conn.execute(sql("INSERT INTO leak VALUES (:email), (:email)"), {"email": HIDDEN_EMAIL})
    except IntegrityError:
        record = logging.LogRecord(
            "tests.leak", logging.ERROR, __file__, 1, "write failed", (), sys.exc_info()
        )
    else:
        pytest.fail("the duplicate was accepted")
    for formatter in (TextFormatter(), JsonFormatter()):
        line = formatter.format(record)
        assert "leak_email_key" in line, line
        assert "DETAIL:" in line, line
        assert HIDDEN_EMAIL not in line, line
