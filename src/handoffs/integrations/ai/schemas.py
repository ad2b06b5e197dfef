"""What the assessor reads and what it returns: msgspec Structs, decoded strictly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, Protocol

import msgspec

TOOL_NAME = "record_assessment"

Short = Annotated[str, msgspec.Meta(max_length=2000)]
Long = Annotated[str, msgspec.Meta(max_length=20_000)]


class Assessment(msgspec.Struct, forbid_unknown_fields=True):
    likely_cause: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    what_was_tried: Annotated[list[Short], msgspec.Meta(max_length=50)]
    next_steps: Annotated[list[Short], msgspec.Meta(min_length=1, max_length=50)]
    risk: Literal["low", "medium", "high"]
    confidence: Annotated[float, msgspec.Meta(ge=0, le=1)]


class EscalationPackage(msgspec.Struct, forbid_unknown_fields=True):
    summary: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
    symptoms: Annotated[list[Short], msgspec.Meta(max_length=50)]
    environment: Annotated[list[Short], msgspec.Meta(max_length=50)]
    open_questions: Annotated[list[Short], msgspec.Meta(max_length=50)]
    documentation_markdown: Long


class ModelOutput(msgspec.Struct, forbid_unknown_fields=True):
    """What the model must return through the tool; decoded strictly."""

    assessment: Assessment
    escalation_package: EscalationPackage


@dataclass(frozen=True, slots=True)
class PastFix:
    """A resolved escalation of the same account like this one: how the team fixed it before."""

    resolved_by: str
    resolved_on: str
    """The day, ``2026-11-03``."""
    problem: str
    resolution: str


@dataclass(frozen=True)
class AssessmentInput:
    problem_summary: str
    engineer_notes: str
    psa_ticket_id: str | None
    session_title: str
    transcript: list[dict[str, Any]]
    creator_name: str
    similar: tuple[PastFix, ...] = ()
    """The closest past resolutions (``domain.handoffs.similar``), shown to the model as context."""

    @classmethod
    def from_snapshot(
        cls, snapshot: dict[str, Any], engineer_notes: str, creator_name: str
    ) -> AssessmentInput:
        """What a handoff's session snapshot (taken when it was handed off) says."""
        return cls(
            problem_summary=str(snapshot.get("problem_summary", "")),
            engineer_notes=engineer_notes,
            psa_ticket_id=snapshot.get("psa_ticket_id"),
            session_title=str(snapshot.get("title", "")),
            transcript=list(snapshot.get("messages", [])),
            creator_name=creator_name,
        )


@dataclass(frozen=True)
class AssessmentResult:
    output: ModelOutput
    source: Literal["anthropic", "offline"]
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    fallback_reason: str | None = None
    """Set when the offline result stands in for an AI assessment that could not be made."""

    def instead_of_ai(self, reason: str) -> AssessmentResult:
        """This (offline) result, marked as standing in for the AI assessment that failed."""
        return replace(self, fallback_reason=reason)

    def assessment_json(self) -> dict[str, Any]:
        body: dict[str, Any] = msgspec.to_builtins(self.output.assessment)
        body["source"] = self.source
        body["model"] = self.model
        if self.fallback_reason is not None:
            body["fallback_reason"] = self.fallback_reason
            body["disclaimer"] = FALLBACK_DISCLAIMER
        elif self.source == "offline":
            body["disclaimer"] = OFFLINE_DISCLAIMER
        return body

    def package_json(self) -> dict[str, Any]:
        body: dict[str, Any] = msgspec.to_builtins(self.output.escalation_package)
        body["source"] = self.source
        return body


OFFLINE_DISCLAIMER = (
    "This is not an AI assessment: no ANTHROPIC_API_KEY is configured, so it was put "
    "together mechanically from the transcript and notes."
)
FALLBACK_DISCLAIMER = (
    "This is not an AI assessment: the AI assessment could not be made, so this was put "
    "together mechanically from the transcript and notes. Retry to ask the AI again."
)


class InvalidModelOutput(Exception):
    """The model answered, but not with a valid ``record_assessment`` call."""


class AnswerCutOff(Exception):
    """The streamed answer ended before the model finished it (worth another try)."""


Progress = Callable[[dict[str, Any]], None]
"""Told the model's output parsed so far (a partial ``ModelOutput`` as builtins) while it streams."""


class Assessor(Protocol):
    async def assess(self, data: AssessmentInput, progress: Progress | None = None) -> AssessmentResult: ...
