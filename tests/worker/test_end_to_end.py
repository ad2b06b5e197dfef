"""Escalate through the API; a worker makes the assessment; the event reaches Redis, in that order.

How long it takes is measured in bench/ (bench/jobs.py), not asserted here.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from arq import Worker

from handoffs.config import Settings
from handoffs.events import EventBus
from handoffs.jobs.worker import worker_options
from tests.conftest import Api
from tests.support.polling import wait_for
from tests.support.workers import fast_settings

pytestmark = pytest.mark.usefixtures("clean_redis")


async def test_escalation_gets_its_offline_assessment_then_its_event(
    api: Api, settings: Settings, redis: Any
) -> None:
    worker = Worker(**worker_options(fast_settings(settings, worker_poll_seconds=0.05)), handle_signals=False)
    running = asyncio.create_task(worker.async_run())
    try:
        session = await api.new_session("jane", psa_ticket_id="777", problem_summary="Outlook will not open")
        handoff = await api.hand_off(session["id"], engineer_notes="Safe mode works")
        path = f"/api/v1/ai-sessions/{session['id']}/handoffs/{handoff['id']}"

        async def ready() -> dict[str, Any] | None:
            body: dict[str, Any] = (await api.call("sam", "GET", path)).json()
            return body if body["assessment_status"] == "ready" else None

        body = await wait_for(ready, seconds=30, interval=0.05)
        assert body["ai_assessment"]["source"] == "offline"

        # The event follows the commit (the worker's relay publishes it right after).
        bus = EventBus(redis)

        async def announced() -> list[str] | None:
            events = await bus.history_after(api["jane"].account_id, "0-0") or []
            kinds = [e.type for e in events if e.handoff_id == handoff["id"]]
            return kinds if "handoff_assessment_ready" in kinds else None

        assert await wait_for(announced, seconds=30, interval=0.05) == [
            "handoff_created",
            "handoff_assessment_ready",
        ]
        detail = (await api.call("sam", "GET", f"/api/v1/ai-sessions/{session['id']}")).json()
        assert detail["escalation_package"]["source"] == "offline"
    finally:
        # close() cancels jobs still running (emails, the sweep); that is fine here.
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()
        running.cancel()
