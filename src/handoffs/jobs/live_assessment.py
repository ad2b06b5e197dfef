"""The assessment as it is written: coalesced deltas on the live stream.

The model's tool input grows by a few characters per chunk, dozens of chunks a
second. ``AssessmentDeltas`` is the ``progress`` callback of one streaming
assessment: it keeps only the newest snapshot and publishes at most one
``handoff_assessment_delta`` per ``interval`` (the first at once, the last one
``interval`` after the one before it). Each delta is also kept as the handoff's
partial (``EventBus.publish_partial``), which a client that joins late reads
from the API. Publishing never blocks or fails the assessment: a Redis error
costs a delta, not the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from handoffs.events import EventBus, HandoffAssessmentDelta, event_payload

log = logging.getLogger(__name__)

#: At most one delta per handoff per this many seconds (API.md: 100 ms).
DELTA_INTERVAL_SECONDS = 0.1


def field_being_written(snapshot: Any, path: str = "") -> tuple[str, str]:
    """The path and text of the last leaf of a partial JSON value: what the model writes now.

    JSON arrives in order, so the newest text is always the last key's (or item's) value.
    """
    if isinstance(snapshot, dict) and snapshot:
        key = next(reversed(snapshot))
        return field_being_written(snapshot[key], f"{path}.{key}" if path else str(key))
    if isinstance(snapshot, list) and snapshot:
        return field_being_written(snapshot[-1], f"{path}.{len(snapshot) - 1}" if path else "0")
    if isinstance(snapshot, str):
        return path, snapshot
    if snapshot is None or isinstance(snapshot, (dict, list)):
        return path, ""
    return path, str(snapshot)


class AssessmentDeltas:
    """The coalescing publisher of one handoff's streaming assessment (a ``Progress``)."""

    def __init__(
        self,
        bus: EventBus,
        *,
        handoff_id: UUID,
        session_id: str,
        account_id: UUID,
        interval: float = DELTA_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.handoff_id = str(handoff_id)
        self.session_id = session_id
        self.account_id = str(account_id)
        self.interval = interval
        self.clock = clock
        self.published = 0
        self._latest: dict[str, Any] | None = None
        self._last_sent = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._sending = False
        self._closed = False

    def __call__(self, snapshot: dict[str, Any]) -> None:
        if self._closed:
            return
        self._latest = snapshot
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._latest is not None and not self._closed:
            wait = self._last_sent + self.interval - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            snapshot, self._latest = self._latest, None
            self._last_sent = self.clock()
            self._sending = True
            try:
                await self._publish(snapshot)
            finally:
                self._sending = False
        self._task = None

    async def _publish(self, snapshot: dict[str, Any]) -> None:
        field, text = field_being_written(snapshot)
        delta = HandoffAssessmentDelta(
            handoff_id=self.handoff_id,
            session_id=self.session_id,
            account_id=self.account_id,
            field=field,
            text=text,
            partial=snapshot,
        )
        try:
            await self.bus.publish_partial(event_payload(delta))
            self.published += 1
        except Exception as exc:  # a lost delta is not worth failing the assessment
            log.warning("assessment delta for handoff %s not published: %r", self.handoff_id, exc)

    async def close(self) -> None:
        """Stop: no delta goes out after this returns (the final assessment follows instead)."""
        self._closed = True
        task = self._task
        if task is None:
            return
        if not self._sending:
            task.cancel()  # it is waiting out the interval: nothing is lost by stopping it
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._task = None
