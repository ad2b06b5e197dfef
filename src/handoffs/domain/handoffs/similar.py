"""Similar past escalations: the account's resolved handoffs most like a text, and who fixed them.

ONE statement (``SIMILAR_RESOLVED``) over the generated, GIN-indexed ``search_vector``:

- **the query** is the text's own words, any of them: its lexemes under the same ``english``
  configuration as ``search_vector``, the first ``MAX_WORDS`` distinct ones by where they first
  appear (the title and problem come before the notes), OR-ed. The tsquery is cast from the
  quoted lexemes, not parsed again, so it holds exactly what the vectors hold, whatever the text
  was (quotes, ``&``, ``|``, ``:``, URLs and paths stay plain words); a text without words (only
  punctuation, stop words) makes a NULL query, which matches nothing.
- **the candidates** are resolved handoffs of the same account (``account_id`` first, as every
  query here) with a resolution and an outcome in ``FIX_OUTCOMES``, not of the excluded session
  (the handoff itself and its session's earlier handoffs: their text is this text).
- **the score** is ``ts_rank_cd(search_vector, query, 1|32)``: cover density with the vector's
  weights (problem 1.0, notes 0.4, resolution 0.2), divided by ``1 + ln(length)`` so a long
  handoff does not win on its length alone, then ``rank / (rank + 1)``: a float in 0..1 (a
  close match ~0.6-0.7, one shared word of the problem ~0.3). Ties: the newest resolution first.
  Only the ``MAX_RANKED`` most recently resolved matches are ranked, and only the best ``limit``
  are joined back for their snapshot's problem (the snapshot holds the transcript) and resolver.

The plan (``tests/api/test_similar.py`` EXPLAINs this statement with 5,000 resolved handoffs in
the account): the tsquery is an InitPlan, ``search_vector @@ $2`` a Bitmap Index Scan on
``ix_handoffs_search`` rechecked against the account, state and outcome, then a top-N sort by
``resolved_at`` and a top-N heapsort by score. 0.1 ms when only the match shares the words;
words every handoff shares cost 8 ms (5 words) to 22 ms (32): ranking is words x rows, which
``MAX_WORDS`` and ``MAX_RANKED`` bound (180 ms before them). docs/similar.md has the details.

Callers: the API (the ``similar`` endpoint, and ``suggested_engineers`` on a handoff's answer),
the console (the handoff screen, the escalate form) and the worker (the assessment prompt), with
an ``AsyncSession`` or an ``AsyncConnection`` alike.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import text as sql
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from handoffs.db.models import SessionHandoff
from handoffs.domain.handoffs.plan import HandOffDraft
from handoffs.domain.handoffs.schemas import HandoffOut, SimilarHandoff, SuggestedEngineer
from handoffs.domain.rows import Person
from handoffs.domain.sessions.service import UNTITLED
from handoffs.enums import SENIOR_ROLES, Outcome

log = logging.getLogger(__name__)

#: How many similar handoffs an answer lists (the contract's "up to 5").
LIMIT = 5
#: The most distinct words of a text the query looks for (index lookups and ranking work grow with it).
MAX_WORDS = 32
#: The most matching handoffs ranked, the most recently resolved: bounds the work when a common
#: word matches much of a large account (docs/similar.md has the measurements).
MAX_RANKED = 1000
#: The most characters of a text read for its words (a transcript-sized text gains nothing past them).
MAX_CHARS = 20_000
#: Resolutions that say how the team fixed it. Not ``withdrawn`` (the junior's own reason, often
#: empty), ``duplicate`` (points at another handoff, itself a candidate) nor ``not_reproducible``
#: (nothing was fixed).
FIX_OUTCOMES = (Outcome.fixed, Outcome.workaround, Outcome.other)

SIMILAR_RESOLVED = sql(
    r"""
WITH words AS (
    SELECT w.lexeme
    FROM unnest(to_tsvector('english', CAST(:text AS text))) AS w
    ORDER BY w.positions[1], w.lexeme
    LIMIT :max_words
), wanted AS (
    SELECT NULLIF(
        string_agg('''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || '''', ' | '), ''
    )::tsquery AS query
    FROM words
), matches AS (
    SELECT h.id, h.resolved_at, h.search_vector
    FROM session_handoffs AS h
    WHERE h.account_id = :account_id
      AND h.search_vector @@ (SELECT query FROM wanted)
      AND h.state = 'resolved'
      AND h.resolution IS NOT NULL
      AND h.outcome = ANY(:outcomes)
      AND h.session_id IS DISTINCT FROM CAST(:exclude_session_id AS uuid)
    ORDER BY h.resolved_at DESC
    LIMIT :max_ranked
), best AS (
    SELECT m.id, m.resolved_at, ts_rank_cd(m.search_vector, (SELECT query FROM wanted), 1|32) AS score
    FROM matches AS m
    ORDER BY score DESC, m.resolved_at DESC, m.id DESC
    LIMIT :limit
)
SELECT h.id AS handoff_id,
       h.session_id,
       coalesce(h.session_snapshot->>'problem_summary', '') AS problem_summary,
       h.resolution,
       h.resolved_by,
       r.name AS resolver_name,
       coalesce(r.is_active AND r.role = ANY(:senior_roles), false) AS resolver_available,
       h.resolved_at,
       h.outcome,
       best.score
FROM best
JOIN session_handoffs AS h ON h.id = best.id
LEFT JOIN users AS r ON r.id = h.resolved_by
ORDER BY best.score DESC, best.resolved_at DESC, best.id DESC
"""
)


async def similar_resolved(
    conn: AsyncConnection | AsyncSession,
    *,
    account_id: UUID,
    text: str,
    exclude_session_id: UUID | None,
    limit: int = LIMIT,
) -> list[SimilarHandoff]:
    """The account's resolved handoffs most like ``text``, best first (see the module).

    ``exclude_session_id``: the session the text is about; none of its handoffs is returned.
    """
    text = text[:MAX_CHARS].replace("\x00", " ")  # PostgreSQL text holds no NUL
    if not text.strip() or limit < 1:
        return []
    rows = await conn.execute(SIMILAR_RESOLVED, statement_params(account_id, text, exclude_session_id, limit))
    return [
        SimilarHandoff(
            handoff_id=row.handoff_id,
            session_id=row.session_id,
            problem_summary=row.problem_summary,
            resolution=row.resolution,
            resolved_by=Person(id=row.resolved_by, name=row.resolver_name or "") if row.resolved_by else None,
            resolved_at=row.resolved_at,
            score=round(float(row.score), 4),
            outcome=Outcome(row.outcome),
            resolver_available=row.resolver_available,
        )
        for row in rows
    ]


def statement_params(
    account_id: UUID, text: str, exclude_session_id: UUID | None, limit: int = LIMIT
) -> dict[str, Any]:
    """``SIMILAR_RESOLVED``'s parameters (the tests EXPLAIN the statement with them)."""
    return {
        "text": text,
        "max_words": MAX_WORDS,
        "max_ranked": MAX_RANKED,
        "account_id": account_id,
        "senior_roles": [role.value for role in SENIOR_ROLES],
        "outcomes": [outcome.value for outcome in FIX_OUTCOMES],
        "exclude_session_id": exclude_session_id,
        "limit": limit,
    }


def suggested_engineers(
    similar: Sequence[SimilarHandoff], *, exclude: UUID | None = None
) -> list[SuggestedEngineer]:
    """Who resolved ``similar``, most of them first (equal counts: the better match first).

    Only people one may still hand a handoff to (``resolver_available``), never ``exclude``
    (the handoff's creator, or whoever is about to raise it).
    """
    found: dict[UUID, SuggestedEngineer] = {}
    for item in similar:
        who = item.resolved_by
        if who is None or not item.resolver_available or who.id == exclude:
            continue
        if who.id in found:
            found[who.id].resolved_similar += 1
        else:
            found[who.id] = SuggestedEngineer(id=who.id, name=who.name, resolved_similar=1)
    return sorted(found.values(), key=lambda engineer: -engineer.resolved_similar)


def problem_text(snapshot: Mapping[str, Any] | None, engineer_notes: str = "") -> str:
    """What a handoff is about, as the similarity reads it: title, problem summary, notes.

    The title a session gets when it has none ("Untitled session") says nothing about it.
    """
    snapshot = snapshot or {}
    title = str(snapshot.get("title") or "")
    parts = ["" if title == UNTITLED else title, str(snapshot.get("problem_summary") or ""), engineer_notes]
    return "\n".join(part for part in parts if part.strip())


async def similar_to(
    db: AsyncConnection | AsyncSession, handoff: SessionHandoff | HandOffDraft, limit: int = LIMIT
) -> list[SimilarHandoff]:
    """The resolved handoffs most like ``handoff``, never of its own session."""
    return await similar_resolved(
        db,
        account_id=handoff.account_id,
        text=problem_text(handoff.session_snapshot, handoff.engineer_notes),
        exclude_session_id=handoff.session_id,
        limit=limit,
    )


async def handoff_answer(db: AsyncSession, handoff: SessionHandoff | HandOffDraft) -> HandoffOut:
    """One handoff as the API answers it, with who resolved similar ones: one more query."""
    out = HandoffOut.of(handoff)
    out.suggested_engineers = suggested_engineers(await similar_to(db, handoff), exclude=handoff.created_by)
    return out


async def hand_off_answer(db: AsyncSession, draft: HandOffDraft) -> HandoffOut:
    """The hand-off's answer. It runs after the commit: the escalation is made, so a failed read of
    the suggestions answers without them (and a warning) rather than a 500 the junior would retry."""
    try:
        return await handoff_answer(db, draft)
    except SQLAlchemyError:
        log.warning("could not read the suggested engineers of handoff %s", draft.id, exc_info=True)
        await db.rollback()
        return HandoffOut.of(draft)
