"""What the assessor reads and what it returns: msgspec Structs, decoded strictly."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class AssessmentInput:
    problem_summary: str
    engineer_notes: str
    psa_ticket_id: str | None
    session_title: str
    transcript: list[dict[str, Any]]
    creator_name: str

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

    def assessment_json(self) -> dict[str, Any]:
        body: dict[str, Any] = msgspec.to_builtins(self.output.assessment)
        body["source"] = self.source
        body["model"] = self.model
        if self.source == "offline":
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


class InvalidModelOutput(Exception):
    """The model answered, but not with a valid ``record_assessment`` call."""


class Assessor(Protocol):
    async def assess(self, data: AssessmentInput) -> AssessmentResult: ...
