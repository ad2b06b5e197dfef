"""Job: the AI assessment and escalation package of an escalation.

The model's answer streams in; ``AssessmentDeltas`` puts it on the live stream as
it grows. A failure worth retrying is retried (``Retry-After`` honoured); one that
exhausts the attempts stores the offline assessor's result instead, marked as
standing in, so the senior still has a summary and a documentation package.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import anthropic
import httpx2
from sqlalchemy import any_, select, text
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncConnection
from uuid_utils.compat import uuid7

from handoffs import metrics
from handoffs.db.models import OutboxMessage, SessionHandoff, User
from handoffs.domain.handoffs.similar import problem_text, similar_resolved
from handoffs.enums import EVENT_TOPIC, AssessmentStatus, TimelineKind
from handoffs.events import HandoffAssessmentFailed, HandoffAssessmentReady, event_payload
from handoffs.integrations.ai import (
    AnswerCutOff,
    AssessmentInput,
    AssessmentResult,
    InvalidModelOutput,
    OfflineAssessor,
    PastFix,
)
from handoffs.integrations.retry_after import parse_retry_after
from handoffs.jobs.context import JobContext
from handoffs.jobs.live_assessment import AssessmentDeltas
from handoffs.jobs.runner import (
    BATCH_IDS,
    DoneAlready,
    OutboxJob,
    PermanentError,
    TransientError,
    run_outbox_job,
)
from handoffs.pricing import cost_usd

log = logging.getLogger(__name__)

#: Invalid model output is retried once, then stored as failed.
INVALID_OUTPUT_ATTEMPTS = 2


async def enrich_escalation(ctx: dict[str, Any], outbox_id: str) -> str:
    return await run_outbox_job(ctx, outbox_id, _enrich, _give_up, load=_load)


_HANDOFF_ID = OutboxMessage.payload["handoff_id"].astext.cast(PG_UUID(as_uuid=True))
_LOAD = (
    select(
        *OutboxJob.COLUMNS,
        SessionHandoff.assessment_status,
        SessionHandoff.session_snapshot,
        SessionHandoff.engineer_notes,
        SessionHandoff.session_id,
        User.name.label("creator_name"),
    )
    .outerjoin(SessionHandoff, SessionHandoff.id == _HANDOFF_ID)
    .outerjoin(User, User.id == SessionHandoff.created_by)
    .where(OutboxMessage.id == any_(BATCH_IDS))
)


async def _load(jc: JobContext, ids: Sequence[UUID]) -> list[tuple[OutboxJob | None, AssessmentInput | None]]:
    """Outbox rows and the model's input in one read; no input once the assessment is stored or given up.

    The input includes the account's closest past resolutions (``domain.handoffs.similar``): one
    more statement per job that still needs the model, on the same connection.
    """
    found: dict[UUID, tuple[OutboxJob, AssessmentInput | None]] = {}
    async with jc.engine.connect() as conn:
        for r in (await conn.execute(_LOAD, {"ids": ids})).all():
            data = None
            # Gone, or already stored (or given up): never call the model twice.
            if r.assessment_status == AssessmentStatus.pending:
                data = AssessmentInput.from_snapshot(r.session_snapshot, r.engineer_notes, r.creator_name)
                data = replace(data, similar=await _past_fixes(conn, r))
            found[r.id] = (OutboxJob.from_row(r), data)
    return [found.get(outbox_id, (None, None)) for outbox_id in ids]


#: Past resolutions shown to the model: enough to recognise a pattern, few enough to stay short.
PAST_FIXES_IN_PROMPT = 3


async def _past_fixes(conn: AsyncConnection, r: Any) -> tuple[PastFix, ...]:
    similar = await similar_resolved(
        conn,
        account_id=r.account_id,
        text=problem_text(r.session_snapshot, r.engineer_notes),
        exclude_session_id=r.session_id,
        limit=PAST_FIXES_IN_PROMPT,
    )
    return tuple(
        PastFix(
            resolved_by=s.resolved_by.name if s.resolved_by else "a former colleague",
            resolved_on=s.resolved_at.date().isoformat(),
            problem=s.problem_summary,
            resolution=s.resolution,
        )
        for s in similar
    )


async def _enrich(
    jc: JobContext, row: OutboxJob, attempt: int, data: AssessmentInput | None
) -> str | DoneAlready:
    handoff_id = UUID(row.payload["handoff_id"])
    if data is None:
        return "nothing to do: assessment already stored or handoff gone"
    deltas = AssessmentDeltas(
        jc.bus, handoff_id=handoff_id, session_id=str(row.payload["session_id"]), account_id=row.account_id
    )
    # No database connection is held while the model thinks.
    try:
        result = await jc.assessor.assess(data, deltas)
    except InvalidModelOutput as exc:
        raise TransientError(str(exc), max_attempts=INVALID_OUTPUT_ATTEMPTS) from exc
    except AnswerCutOff as exc:
        raise TransientError(str(exc)) from exc
    except (anthropic.APIError, httpx2.TransportError) as exc:
        raise ai_failure(exc, cap=jc.settings.job_retry_cap_seconds) from exc
    finally:
        await deltas.close()
    stored = await _store_result(jc, row, attempt, handoff_id, result)
    if not stored:
        return DoneAlready("another run stored the assessment first")
    log.info(
        "assessment ready for handoff %s (%s, %d in / %d out tokens, %d deltas)",
        handoff_id, result.source, result.input_tokens, result.output_tokens, deltas.published,
    )  # fmt: skip
    return DoneAlready(f"assessment ready ({result.source})")


#: The Messages API's error types that are worth another try when they arrive inside a stream
#: (the HTTP status is then 200, so the SDK cannot tell from it).
_BUSY_ERROR_TYPES = {
    "overloaded_error": "overloaded",
    "rate_limit_error": "rate-limiting us",
    "api_error": "failing",
}


def ai_failure(
    exc: anthropic.APIError | httpx2.TransportError, *, cap: float
) -> TransientError | PermanentError:
    """What a failed model call means for the job, with a reason a person can read."""
    if isinstance(exc, anthropic.APIStatusError):
        error = exc.body.get("error") if isinstance(exc.body, dict) else None
        error_type = error.get("type") if isinstance(error, dict) else None
        status = exc.status_code
        if status == 200 and error_type in _BUSY_ERROR_TYPES:
            return TransientError(f"the AI service was {_BUSY_ERROR_TYPES[error_type]} mid-answer")
        if status == 429 or status >= 500:
            busy = {429: "rate-limiting us", 529: "overloaded"}.get(status, "failing")
            headers = exc.response.headers
            defer = _retry_after_ms(headers.get("retry-after-ms")) or parse_retry_after(
                headers.get("retry-after")
            )
            return TransientError(
                f"the AI service was {busy} ({status})", defer=None if defer is None else min(defer, cap)
            )
        said = error.get("message") if isinstance(error, dict) else None
        return PermanentError(f"the AI service refused the request ({status}): {said or exc.message}"[:500])
    if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
        return TransientError("the AI service did not answer in time")
    if isinstance(exc, anthropic.APIConnectionError | httpx2.ConnectError):
        return TransientError("the AI service could not be reached")
    if isinstance(exc, httpx2.TransportError):
        return TransientError("the AI service's answer was cut off")
    return TransientError(f"the AI service failed ({type(exc).__name__})")


def _retry_after_ms(value: str | None) -> float | None:
    try:
        return max(0.001, float(value) / 1000) if value else None
    except ValueError:
        return None


async def _store_result(
    jc: JobContext, row: OutboxJob, attempt: int, handoff_id: UUID, result: AssessmentResult, *,
    failure: str | None = None,
) -> bool:  # fmt: skip
    """Store an assessment (or, with ``failure``, the offline one standing in); False if raced."""
    assessment = result.assessment_json()
    ids = {
        "handoff_id": str(handoff_id),
        "session_id": str(row.payload["session_id"]),
        "account_id": str(row.account_id),
    }
    if failure is None:
        event = event_payload(HandoffAssessmentReady(**ids, assessment=assessment))
        detail = {"source": result.source, "model": result.model}
    else:
        event = event_payload(HandoffAssessmentFailed(**ids, reason=failure, assessment=assessment))
        detail = {"reason": failure[:500], "fallback": "offline"}
    stored = await jc.coalesced(_store)(
        _Stored(
            handoff_id=handoff_id,
            assessment=json.dumps(assessment),
            status=AssessmentStatus.ready if failure is None else AssessmentStatus.failed,
            error=None if failure is None else f"The AI assessment could not be made: {failure}",
            model=result.model,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cache_read_tokens=result.cache_read_tokens,
            cache_write_tokens=result.cache_write_tokens,
            cost_usd=cost_usd(
                jc.prices, result.model, input_tokens=result.input_tokens, output_tokens=result.output_tokens,
                cache_write_tokens=result.cache_write_tokens, cache_read_tokens=result.cache_read_tokens,
            ),
            package=json.dumps(result.package_json()),
            event_id=uuid7(),
            timeline_id=uuid7(),
            timeline_kind=TimelineKind.assessment_ready if failure is None else TimelineKind.assessment_failed,
            timeline_detail=json.dumps(detail),
            account_id=row.account_id,
            event=json.dumps(event),
            outbox_id=row.id,
            outbox_status="done" if failure is None else "failed",
            attempt=attempt,
        )
    )  # fmt: skip
    try:
        await jc.bus.forget_partial(handoff_id)
    except Exception as exc:  # it expires by itself; the API shows it only while pending
        log.warning("partial assessment of handoff %s not cleared: %r", handoff_id, exc)
    if stored:
        metrics.ASSESSMENTS.labels(result.source if failure is None else "failed").inc()
        metrics.AI_TOKENS.labels("input").inc(result.input_tokens)
        metrics.AI_TOKENS.labels("output").inc(result.output_tokens)
        metrics.AI_TOKENS.labels("cache_read").inc(result.cache_read_tokens)
        metrics.AI_TOKENS.labels("cache_write").inc(result.cache_write_tokens)
    return stored


@dataclass(frozen=True, slots=True)
class _Stored:
    """One job's result, as the parameters of one row of ``_STORE``."""

    handoff_id: UUID
    assessment: str
    status: str
    error: str | None
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    package: str
    event_id: UUID
    timeline_id: UUID
    timeline_kind: str
    timeline_detail: str
    account_id: UUID
    event: str
    outbox_id: UUID
    outbox_status: str
    attempt: int


#: Storing assessments is one fixed-shape statement for any number of jobs
#: (their results come as arrays): each result on its handoff (only while
#: still pending, so two racing runs store one), the package on the session
#: (the newest handoff's, should one batch hold two of a session), an event
#: (``handoff_assessment_ready``, or ``…_failed`` for an offline stand-in) in
#: the outbox and a timeline entry per stored result, and every job's own
#: outbox row finished, in one round trip.
_STORE = text(
    """
WITH input AS (
    SELECT * FROM unnest(
        CAST(:handoff_id AS uuid[]), CAST(:assessment AS text[]), CAST(:status AS text[]),
        CAST(:error AS text[]), CAST(:model AS text[]),
        CAST(:input_tokens AS int[]), CAST(:output_tokens AS int[]), CAST(:cache_read_tokens AS int[]),
        CAST(:cache_write_tokens AS int[]), CAST(:cost_usd AS numeric[]),
        CAST(:package AS text[]), CAST(:event_id AS uuid[]), CAST(:timeline_id AS uuid[]),
        CAST(:timeline_kind AS text[]), CAST(:timeline_detail AS text[]), CAST(:account_id AS uuid[]),
        CAST(:event AS text[]), CAST(:outbox_id AS uuid[]), CAST(:outbox_status AS text[]),
        CAST(:attempt AS int[])
    ) AS i(handoff_id, assessment, status, error, model, input_tokens, output_tokens, cache_read_tokens,
           cache_write_tokens, cost_usd, package, event_id, timeline_id, timeline_kind, timeline_detail,
           account_id, event, outbox_id, outbox_status, attempt)
), stored AS (
    UPDATE session_handoffs h
    SET ai_assessment = CAST(i.assessment AS jsonb), assessment_status = i.status, assessment_error = i.error,
        ai_model = i.model, ai_input_tokens = h.ai_input_tokens + i.input_tokens,
        ai_output_tokens = h.ai_output_tokens + i.output_tokens,
        ai_cache_read_tokens = h.ai_cache_read_tokens + i.cache_read_tokens,
        ai_cache_write_tokens = h.ai_cache_write_tokens + i.cache_write_tokens,
        ai_cost_usd = h.ai_cost_usd + i.cost_usd, updated_at = :now
    FROM input i
    WHERE h.id = i.handoff_id AND h.assessment_status = 'pending'
    RETURNING h.id AS handoff_id, h.session_id, i.package, i.event_id, i.account_id, i.event,
        i.timeline_id, i.timeline_kind, i.timeline_detail
), packaged AS (
    UPDATE ai_sessions s SET escalation_package = CAST(p.package AS jsonb), updated_at = :now
    FROM (
        SELECT DISTINCT ON (session_id) session_id, package FROM stored ORDER BY session_id, handoff_id DESC
    ) p
    WHERE s.id = p.session_id
), announced AS (
    INSERT INTO outbox (id, account_id, topic, payload, status, attempts, created_at, updated_at)
    SELECT event_id, account_id, :event_topic, CAST(event AS jsonb), 'pending', 0, :now, :now FROM stored
), recorded AS (
    INSERT INTO handoff_timeline (id, account_id, handoff_id, kind, actor_id, detail, created_at, updated_at)
    SELECT timeline_id, account_id, handoff_id, timeline_kind, NULL, CAST(timeline_detail AS jsonb), :now, :now
    FROM stored
), finished AS (
    UPDATE outbox o SET status = i.outbox_status, attempts = GREATEST(o.attempts, i.attempt), completed_at = :now, updated_at = :now
    FROM input i
    WHERE o.id = i.outbox_id
)
SELECT event_id FROM stored
"""
)
_STORED_FIELDS = _Stored.__slots__


async def _store(jc: JobContext, results: Sequence[_Stored]) -> list[bool]:
    """Store the results of concurrent jobs; for each, whether it was stored (not raced by another run)."""
    params: dict[str, Any] = {name: [getattr(r, name) for r in results] for name in _STORED_FIELDS}
    params["now"] = datetime.now(UTC)
    params["event_topic"] = EVENT_TOPIC
    async with jc.engine.begin() as conn:
        announced = set((await conn.execute(_STORE, params)).scalars())
    jc.relay.dispatch_soon(announced)
    return [r.event_id in announced for r in results]


async def _give_up(jc: JobContext, row: OutboxJob, reason: str) -> None:
    """The AI could not assess it: store the offline assessor's result in its place (marked so),
    with the reason; the senior gets a summary and a package, and Retry asks the AI again."""
    handoff_id = UUID(row.payload["handoff_id"])
    _, data = await jc.coalesced(_load)(row.id)
    if data is None:
        return  # stored meanwhile, or gone
    fallback = (await OfflineAssessor().assess(data)).instead_of_ai(reason)
    # Attempt 0: the runner records the attempts and the reason on the outbox row right after.
    await _store_result(jc, row, 0, handoff_id, fallback, failure=reason)
