"""What every PSA adapter does: add a note to a ticket and move it to an escalated status."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

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
    async def add_note(self, ticket_id: str, markdown: str) -> None: ...

    @abstractmethod
    async def mark_escalated(self, ticket_id: str) -> None: ...

    async def push(self, ticket_id: str, markdown: str) -> None:
        await self.add_note(ticket_id, markdown)
        await self.mark_escalated(ticket_id)

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
