"""Autotask (Datto) REST: ticket notes and status.

Auth headers ``ApiIntegrationCode``, ``UserName``, ``Secret``. Notes:
``POST /V1.0/Tickets/{id}/Notes``; the resolution goes in the ticket's own
``resolution`` field and the status by ``PATCH /V1.0/Tickets`` with the ticket
id and the numeric status (settings ``escalated_status_id``, ``resolved_status_id``;
Autotask's "Complete" is 5).
"""

from __future__ import annotations

from handoffs.integrations.psa.base import PsaAdapter

API_PATH = "/ATServicesRest/V1.0"
NOTE_TYPE_TASK_NOTES = 1
PUBLISH_INTERNAL = 2


class AutotaskAdapter(PsaAdapter):
    vendor = "autotask"
    name = "Autotask"

    def _headers(self) -> dict[str, str]:
        return {
            "ApiIntegrationCode": self.credential("integration_code"),
            "UserName": self.credential("username"),
            "Secret": self.credential("secret"),
        }

    async def add_note(self, ticket_id: str, markdown: str) -> None:
        body = {
            "ticketID": int(ticket_id) if ticket_id.isdigit() else ticket_id,
            "title": "Escalation (handoffs)",
            "description": markdown[:32000],
            "noteType": NOTE_TYPE_TASK_NOTES,
            "publish": PUBLISH_INTERNAL,
        }
        await self.request(
            "POST", f"{self.base_url}{API_PATH}/Tickets/{ticket_id}/Notes", json=body, headers=self._headers()
        )

    async def add_resolution(self, ticket_id: str, text: str) -> None:
        await self._patch(ticket_id, {"resolution": text[:32000]})

    async def mark_escalated(self, ticket_id: str) -> None:
        status = self.settings.get("escalated_status_id")
        if status is not None:
            await self._patch(ticket_id, {"status": int(status)})

    async def mark_resolved(self, ticket_id: str) -> None:
        status = self.settings.get("resolved_status_id")
        if status is not None:
            await self._patch(ticket_id, {"status": int(status)})

    async def _patch(self, ticket_id: str, fields: dict[str, object]) -> None:
        body = {"id": int(ticket_id) if ticket_id.isdigit() else ticket_id, **fields}
        await self.request("PATCH", f"{self.base_url}{API_PATH}/Tickets", json=body, headers=self._headers())
