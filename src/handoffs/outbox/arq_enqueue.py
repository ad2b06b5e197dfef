"""Handing jobs to arq: its ``enqueue_job``, but onto the relay's pipeline.

The relay sends a whole batch of outbox rows (jobs and live events) in one
Redis round trip; arq's own ``enqueue_job`` costs one round trip per job.
The script below is that function's rule in one atomic step, so the job a
worker reads is byte for byte what arq would have queued.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

from arq.constants import default_queue_name, expires_extra_ms, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from handoffs.enums import JobTopic

# arq's enqueue_job, made atomic in one script so a batch costs one round trip:
# refuse when the job or its result exists, else store the job and queue it.
# KEYS: job key, result key, queue; ARGV: job id, serialized job, expiry ms, score.
_ENQUEUE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('PSETEX', KEYS[1], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1
"""


class JobQueue(Protocol):
    """The one seam through which jobs are enqueued (arq in production)."""

    async def enqueue_into(self, pipe: Pipeline, function: str, outbox_id: UUID) -> None: ...


#: Jobs that go ahead of the queue: arq starts queued jobs by score, oldest first, so the score of
#: these is moved back by this much. The assessment is what a senior watches arrive on the context
#: screen; behind a burst of escalations it would otherwise wait for every earlier escalation's
#: emails, PSA note and chat post to start (bench/README.md, "assessment.py").
HEAD_START_MS: dict[str, int] = {JobTopic.enrich_escalation: 60_000}


class ArqJobQueue:
    """Enqueues arq jobs exactly as ``ArqRedis.enqueue_job`` would, but onto a pipeline (with the
    queue position of ``HEAD_START_MS``)."""

    def __init__(self, redis: Redis, queue_name: str = default_queue_name) -> None:
        self.queue_name = queue_name
        self._script = redis.register_script(_ENQUEUE_LUA)

    async def enqueue_into(self, pipe: Pipeline, function: str, outbox_id: UUID) -> None:
        job_id = str(outbox_id)
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        job = serialize_job(function, (job_id,), {}, None, now_ms)
        await self._script(
            keys=[job_key_prefix + job_id, result_key_prefix + job_id, self.queue_name],
            args=[job_id, job, expires_extra_ms, now_ms - HEAD_START_MS.get(function, 0)],
            client=pipe,
        )
