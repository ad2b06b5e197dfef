"""ConnectWise Manage REST: ticket notes and status.

Auth is HTTP Basic with ``{company}+{public_key}:{private_key}`` plus the
``clientId`` header. Notes: ``POST /service/tickets/{id}/notes`` (the escalation
as an internal analysis note, the resolution with ``resolutionFlag``); status:
``PATCH /service/tickets/{id}`` with a JSON Patch on ``status/name``
(settings ``escalated_status`` and ``resolved_status``).
"""

from __future__ import annotations

import base64
from typing import Any

from handoffs.integrations.psa.base import PsaAdapter

API_PATH = "/v4_6_release/apis/3.0"


class ConnectWiseAdapter(PsaAdapter):
    vendor = "connectwise"
    name = "ConnectWise"

    def _headers(self) -> dict[str, str]:
        company = self.settings.get("company_id") or self.credential("company_id")
        user = f"{company}+{self.credential('public_key')}:{self.credential('private_key')}"
        return {
            "Authorization": "Basic " + base64.b64encode(user.encode()).decode(),
            "clientId": self.credential("client_id"),
            "Accept": "application/vnd.connectwise.com+json; version=2022.1",
        }

    async def _note(self, ticket_id: str, text: str, *, resolution: bool) -> None:
        body: dict[str, Any] = {
            "text": text,
            "detailDescriptionFlag": False,
            "internalAnalysisFlag": not resolution,
            "resolutionFlag": resolution,
        }
        await self.request(
            "POST",
            f"{self.base_url}{API_PATH}/service/tickets/{ticket_id}/notes",
            json=body,
            headers=self._headers(),
        )

    async def add_note(self, ticket_id: str, markdown: str) -> None:
        await self._note(ticket_id, markdown, resolution=False)

    async def add_resolution(self, ticket_id: str, text: str) -> None:
        await self._note(ticket_id, text, resolution=True)

    async def mark_escalated(self, ticket_id: str) -> None:
        await self._status(ticket_id, self.settings.get("escalated_status"))

    async def mark_resolved(self, ticket_id: str) -> None:
        await self._status(ticket_id, self.settings.get("resolved_status"))

    async def _status(self, ticket_id: str, status: str | None) -> None:
        if not status:
            return
        patch = [{"op": "replace", "path": "status/name", "value": status}]
        await self.request(
            "PATCH",
            f"{self.base_url}{API_PATH}/service/tickets/{ticket_id}",
            json=patch,
            headers=self._headers(),
        )
