"""The offline assessor: the same fields, put together mechanically when no model is available."""

from __future__ import annotations

import re
from collections import Counter
from typing import Literal

from handoffs.integrations.ai.schemas import (
    Assessment,
    AssessmentInput,
    AssessmentResult,
    EscalationPackage,
    ModelOutput,
    Progress,
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

    async def assess(self, data: AssessmentInput, progress: Progress | None = None) -> AssessmentResult:
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
