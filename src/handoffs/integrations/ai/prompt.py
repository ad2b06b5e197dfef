"""The fixed instructions, the tool the model must call, and the per-escalation prompt."""

from __future__ import annotations

from typing import Any

import msgspec
from anthropic.types import ToolParam

from handoffs.integrations.ai.schemas import TOOL_NAME, AssessmentInput, ModelOutput

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
