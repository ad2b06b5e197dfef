"""What every PSA adapter does: on escalation, a note on the ticket and an escalated status;
on resolution, the resolution on the ticket and a resolved status.

Each is a separate step (``steps``) so the job can record each call once done and a retry
repeats only what did not happen: a failed status change never posts the note twice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import httpx

from handoffs.db.models import PsaConnection


class PsaError(Exception):
    """A PSA call failed; ``transient`` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class PsaAdapter(ABC):
    vendor = "none"

    def __init__(self, connection: PsaConnection, http: httpx.AsyncClient) -> None:
        self.base_url = connection.base_url.rstrip("/")
        self.settings: dict[str, Any] = dict(connection.settings or {})
        self._credentials: dict[str, str] = dict(connection.credentials or {})
        self.http = http

    def credential(self, name: str) -> str:
        value = self._credentials.get(name)
        if not value:
            raise PsaError(f"{self.vendor}: the '{name}' credential is not configured", transient=False)
        return value

    @abstractmethod
    async def add_note(self, ticket_id: str, markdown: str) -> None:
        """The escalation documentation as an internal note."""

    @abstractmethod
    async def mark_escalated(self, ticket_id: str) -> None:
        """Move the ticket to the configured escalated status (nothing when none is configured)."""

    @abstractmethod
    async def add_resolution(self, ticket_id: str, text: str) -> None:
        """The resolution where the vendor keeps a ticket's resolution."""

    @abstractmethod
    async def mark_resolved(self, ticket_id: str) -> None:
        """Move the ticket to the configured resolved status (nothing when none is configured)."""

    def steps(
        self, phase: Literal["escalation", "resolution"], ticket_id: str, text: str
    ) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        """The calls of a phase, in order, each named as ``psa_sync_steps.step`` records it."""
        if phase == "resolution":
            return [
                ("resolution_note", lambda: self.add_resolution(ticket_id, text)),
                ("resolution_status", lambda: self.mark_resolved(ticket_id)),
            ]
        return [
            ("escalation_note", lambda: self.add_note(ticket_id, text)),
            ("escalation_status", lambda: self.mark_escalated(ticket_id)),
        ]

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One vendor call; 429/5xx and network errors are transient, other 4xx are not."""
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise PsaError(
                f"{self.vendor}: {type(exc).__name__} calling {method} {url}", transient=True
            ) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise PsaError(f"{self.vendor}: {method} {url} answered {response.status_code}", transient=True)
        if response.status_code >= 400:
            detail = response.text[:300]
            raise PsaError(
                f"{self.vendor}: {method} {url} answered {response.status_code}: {detail}", transient=False
            )
        return response
