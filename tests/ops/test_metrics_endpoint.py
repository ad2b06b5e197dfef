"""GET /metrics: behind its token, HTTP requests by route template, the outbox backlog, open
streams; a worker's metrics on its port; one count across `handoffs serve --workers 2`."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from handoffs.app import create_app
from handoffs.config import Settings
from tests.conftest import Actor
from tests.support.replicas import ROOT, log_dir
from tests.support.workers import fast_settings, job_context, run_jobs

TOKEN = "scrape-me-3f9a"


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def _by_path(text: str) -> dict[tuple[str, str], float]:
    return {
        (labels["path"], labels["status_code"]): value
        for labels, value in _samples(text, "handoffs_requests_total")
    }


async def test_without_a_token_configured_there_is_no_metrics_endpoint(settings: Settings) -> None:
    async with AsyncTestClient(app=create_app(replace(settings, metrics_token=None))) as client:
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 404


async def test_the_scrape_needs_the_token_and_shows_requests_by_route_and_the_backlog(
    settings: Settings, actors: dict[str, Actor]
) -> None:
    jane = actors["jane"]
    async with AsyncTestClient(app=create_app(replace(settings, metrics_token=TOKEN))) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            refused = await client.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert TOKEN not in refused.text
        # A user's session token is not the metrics token either.
        assert (await client.get("/metrics", headers=jane.headers)).status_code == 401

        # The registry is the process's: earlier tests counted into it too, so compare two scrapes.
        before = _by_path((await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).text)
        session = (
            await client.post("/api/v1/ai-sessions", json={"title": "VPN"}, headers=jane.headers)
        ).json()
        for _ in range(3):
            assert (
                await client.get(f"/api/v1/ai-sessions/{session['id']}", headers=jane.headers)
            ).status_code == 200
        assert (await client.get("/api/v1/ai-sessions/not-a-uuid", headers=jane.headers)).status_code in (
            400,
            404,
        )
        await client.post(
            f"/api/v1/ai-sessions/{session['id']}/handoff", json={"intent": "escalate"}, headers=jane.headers
        )

        scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain")
        text = scraped.text

    by_path = _by_path(text)
    grown = {key: value - before.get(key, 0) for key, value in by_path.items()}
    # The route template, never the raw path with its id.
    assert grown[("/api/v1/ai-sessions/{session_id}", "200")] == 3
    assert grown[("/api/v1/ai-sessions/{session_id}/handoff", "201")] == 1
    assert not any(session["id"] in path for path, _ in by_path)
    assert not any(path.startswith("/metrics") for path, _ in by_path)
    backlog = {labels["status"]: value for labels, value in _samples(text, "handoffs_outbox_backlog")}
    assert set(backlog) == {"pending", "dispatched", "failed"}
    assert all(value >= 0 for value in backlog.values())
    assert _samples(text, "handoffs_open_streams")
    # Labels never carry an account, a user or a handoff.
    assert str(jane.account_id) not in text
    assert str(jane.id) not in text


async def test_a_worker_serves_its_job_metrics_on_its_port(settings: Settings, redis: Any, api: Any) -> None:
    from handoffs.embedded import free_port

    session = await api.new_session("jane")
    await api.hand_off(session["id"])
    await run_jobs(fast_settings(settings))  # job metrics recorded in this process's registry
    port = free_port()
    worker = fast_settings(settings, worker_metrics_port=port)
    async with job_context(worker, redis), httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    jobs = {labels["function"] for labels, value in _samples(text, "handoffs_jobs_total") if value > 0}
    assert "enrich_escalation" in jobs
    # The worker's shutdown closes the port again.
    async with httpx.AsyncClient(timeout=2) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/metrics")


def test_serve_with_two_workers_counts_every_request_once_whichever_process_answered(
    settings: Settings, actors: dict[str, Actor], tmp_path: Path
) -> None:
    from handoffs.embedded import free_port
    from tests.support.replicas import replica_env, wait_served

    jane = actors["jane"]
    for _ in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = log_dir() / f"serve-workers-{port}.log"
        env = replica_env(settings, METRICS_TOKEN=TOKEN, HANDOFFS_DATA_DIR=str(tmp_path / str(port)))
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "handoffs.cli", "serve", "--port", str(port), "--workers", "2"],
                cwd=ROOT, env=env, stdout=log, stderr=log,
            )  # fmt: skip
        try:
            if not wait_served(url, proc, log_path, "handoffs serve --workers 2", timeout=60):
                continue
            with httpx.Client(base_url=url, timeout=10) as http:
                for _ in range(40):  # new connections: spread over both processes
                    with httpx.Client(base_url=url, timeout=10) as one:
                        assert one.get("/api/v1/me", headers=jane.headers).status_code == 200
                counts = []
                for _ in range(6):  # whichever process answers the scrape, it counts all 40
                    with httpx.Client(base_url=url, timeout=10) as one:
                        text = one.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
                    counts.append(
                        sum(v for labels, v in _samples(text, "handoffs_requests_total")
                            if labels["path"] == "/api/v1/me" and labels["status_code"] == "200")
                    )  # fmt: skip
                assert counts == [40] * 6, counts
                assert http.get("/health").status_code == 200
            log_text = log_path.read_text()
            assert len(set(re.findall(r"Started server process \[(\d+)\]", log_text))) == 2
            return
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    pytest.fail("three free ports in a row were taken before handoffs serve could bind them")
