"""The AI assessment and escalation package: the anthropic SDK, or an offline stand-in.

``AnthropicAssessor`` asks the model to call one tool whose input schema is the
msgspec Struct we store, then decodes that input strictly; anything else is
``InvalidModelOutput``. The fixed system prompt is marked for prompt caching.
``OfflineAssessor`` fills the same fields from the transcript when no API key
is configured, and says plainly that it is not an AI assessment.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

import msgspec
from anthropic import AsyncAnthropic
from anthropic.types import MessageParam, TextBlockParam, ToolChoiceToolParam, ToolParam

SYSTEM_PROMPT = """\
You are a senior engineer at a managed service provider (MSP) helpdesk. A junior \
engineer worked a support ticket with an AI troubleshooting assistant, got stuck, \
and escalated the session to the senior team. You receive the ticket reference, \
the problem summary, the junior's notes and the full transcript.

Assess the situation for the senior who picks it up:
- the most likely cause, stated plainly, with the evidence from the transcript;
- what was already tried (so nobody repeats it), each item short;
- concrete next steps in the order you would do them;
- the risk to the customer if this is not handled soon (low, medium or high);
- your confidence in the likely cause, from 0 to 1.

Also write the escalation package: a structured summary a senior can read in \
thirty seconds, and documentation in Markdown suitable for a PSA ticket note.

Be specific to this transcript. Do not invent facts that are not in it; say what \
is unknown instead. Answer only by calling the record_assessment tool."""

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


class InvalidModelOutput(Exception):
    """The model answered, but not with a valid ``record_assessment`` call."""


class Assessor(Protocol):
    async def assess(self, data: AssessmentInput) -> AssessmentResult: ...


def _tool_schema() -> dict[str, Any]:
    schema, components = msgspec.json.schema_components([ModelOutput], ref_template="#/$defs/{name}")
    root = dict(schema[0])
    root["$defs"] = components
    return root


TOOL = ToolParam(
    name=TOOL_NAME,
    description="Record the assessment and the escalation package for the senior engineer.",
    input_schema=_tool_schema(),
)


def render_prompt(data: AssessmentInput) -> str:
    lines = [
        f"Ticket: #{data.psa_ticket_id}" if data.psa_ticket_id else "Ticket: none linked",
        f"Session title: {data.session_title}",
        f"Escalated by: {data.creator_name}",
        "",
        "Problem summary:",
        data.problem_summary or "(none given)",
        "",
        "Junior engineer's notes:",
        data.engineer_notes or "(none given)",
        "",
        f"Transcript ({len(data.transcript)} messages):",
    ]
    for message in data.transcript:
        lines.append(f"[{message.get('role', '?')}] {message.get('content', '')}")
    return "\n".join(lines)


class AnthropicAssessor:
    """The official SDK; transport and retries are the caller's (tests inject a fake transport)."""

    def __init__(self, client: AsyncAnthropic, model: str, max_tokens: int = 4096) -> None:
        self.client = client
        self.model = model
        self.max_tokens = max_tokens

    async def assess(self, data: AssessmentInput) -> AssessmentResult:
        system: list[TextBlockParam] = [
            # The fixed instructions are identical for every escalation: cache them.
            {"type": "text", "text": SYSTEM_PROMPT, "cache_control": {"type": "ephemeral"}}
        ]
        tool_choice: ToolChoiceToolParam = {"type": "tool", "name": TOOL_NAME}
        messages: list[MessageParam] = [{"role": "user", "content": render_prompt(data)}]
        message = await self.client.messages.create(
            model=self.model,
            max_tokens=self.max_tokens,
            system=system,
            tools=[TOOL],
            tool_choice=tool_choice,
            messages=messages,
        )
        usage = message.usage
        tool_inputs = [
            block.input for block in message.content if block.type == "tool_use" and block.name == TOOL_NAME
        ]
        if not tool_inputs:
            raise InvalidModelOutput(
                f"the model did not call {TOOL_NAME} (stop reason: {message.stop_reason})"
            )
        try:
            output = msgspec.convert(tool_inputs[0], ModelOutput)
        except msgspec.ValidationError as exc:
            raise InvalidModelOutput(f"the model's {TOOL_NAME} input was invalid: {exc}") from exc
        return AssessmentResult(
            output=output,
            source="anthropic",
            model=message.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_input_tokens or 0,
        )


OFFLINE_DISCLAIMER = (
    "This is not an AI assessment: no ANTHROPIC_API_KEY is configured, so it was put "
    "together mechanically from the transcript and notes."
)

#: Keyword → likely cause, for the offline assessor. First match by count wins.
_CAUSES: list[tuple[str, tuple[str, ...], str]] = [
    ("email", ("outlook", "exchange", "mailbox", "ost", "smtp", "imap", "email"),
     "A mail client or mailbox problem (profile, cached data or server connectivity)."),
    ("network", ("vpn", "dns", "dhcp", "wifi", "wi-fi", "network", "firewall", "latency"),
     "A network path problem (VPN, DNS or firewall) between the user and the service."),
    ("identity", ("password", "mfa", "login", "sign in", "locked", "account", "sso", "azure ad", "entra"),
     "An identity or authentication problem (credentials, MFA or account state)."),
    ("printing", ("printer", "print", "spooler", "driver"),
     "A printing problem (spooler, driver or queue)."),
    ("storage", ("disk", "storage", "onedrive", "sharepoint", "sync", "quota"),
     "A storage or file-sync problem (quota, sync client or permissions)."),
]  # fmt: skip


class OfflineAssessor:
    """Deterministic: the same transcript always gives the same assessment."""

    model = "offline"

    async def assess(self, data: AssessmentInput) -> AssessmentResult:
        text = " ".join(
            [data.problem_summary, data.engineer_notes, *(str(m.get("content", "")) for m in data.transcript)]
        ).lower()
        words = Counter(re.findall(r"[a-z][a-z-]+", text))
        scored = [
            (sum(words[k] if " " not in k else text.count(k) for k in keys), name, cause)
            for name, keys, cause in _CAUSES
        ]
        best = max(scored, key=lambda s: s[0])
        likely_cause = best[2] if best[0] else "Not enough in the transcript to point at a cause."
        tried = [
            _one_line(str(m.get("content", "")))
            for m in data.transcript
            if m.get("role") in {"assistant", "tool"} and str(m.get("content", "")).strip()
        ][:10]
        if data.engineer_notes.strip():
            tried.insert(0, _one_line(data.engineer_notes))
        next_steps = [
            "Read the transcript and the junior's notes; confirm the symptoms with the user.",
            "Reproduce the problem and check the logs around the time it started.",
            "Check what changed recently (updates, policies, credentials) for the affected user or device.",
        ]
        risk: Literal["low", "medium", "high"] = "medium" if best[0] else "low"
        summary = data.problem_summary or data.session_title or "No problem summary was given."
        output = ModelOutput(
            assessment=Assessment(
                likely_cause=likely_cause,
                what_was_tried=tried,
                next_steps=next_steps,
                risk=risk,
                confidence=0.2 if best[0] else 0.05,
            ),
            escalation_package=EscalationPackage(
                summary=summary,
                symptoms=[_one_line(data.problem_summary)] if data.problem_summary else [],
                environment=[f"PSA ticket #{data.psa_ticket_id}"] if data.psa_ticket_id else [],
                open_questions=["What changed just before the problem started?"],
                documentation_markdown=documentation_markdown(data, likely_cause, tried, next_steps),
            ),
        )
        return AssessmentResult(output=output, source="offline", model=self.model)


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rstrip() + "…"


def documentation_markdown(
    data: AssessmentInput, likely_cause: str | None, tried: list[str], next_steps: list[str]
) -> str:
    """The escalation write-up, in Markdown: what a PSA ticket note carries."""
    ticket = f" (ticket #{data.psa_ticket_id})" if data.psa_ticket_id else ""
    parts = [
        f"## Escalation: {data.session_title}{ticket}",
        f"Escalated by {data.creator_name}.",
        "",
        "### Problem",
        data.problem_summary or "_No summary given._",
        "",
        "### Engineer's notes",
        data.engineer_notes or "_None._",
    ]
    if likely_cause:
        parts += ["", "### Likely cause", likely_cause]
    if tried:
        parts += ["", "### Already tried", *(f"- {t}" for t in tried)]
    if next_steps:
        parts += ["", "### Next steps", *(f"{i}. {s}" for i, s in enumerate(next_steps, 1))]
    parts += ["", f"### Transcript ({len(data.transcript)} messages)"]
    parts += [
        f"- **{m.get('role', '?')}**: {_one_line(str(m.get('content', '')), 500)}" for m in data.transcript
    ]
    return "\n".join(parts)
