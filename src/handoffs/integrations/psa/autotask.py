"""Autotask (Datto) REST: ticket notes and status.

Auth headers ``ApiIntegrationCode``, ``UserName``, ``Secret``. Notes:
``POST /V1.0/Tickets/{id}/Notes``; status: ``PATCH /V1.0/Tickets`` with the
ticket id and the numeric status.
"""

from __future__ import annotations

from handoffs.integrations.psa.base import PsaAdapter

API_PATH = "/ATServicesRest/V1.0"
NOTE_TYPE_TASK_NOTES = 1
PUBLISH_INTERNAL = 2


class AutotaskAdapter(PsaAdapter):
    vendor = "autotask"

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

    async def mark_escalated(self, ticket_id: str) -> None:
        status = self.settings.get("escalated_status_id")
        if status is None:
            return
        body = {"id": int(ticket_id) if ticket_id.isdigit() else ticket_id, "status": int(status)}
        await self.request("PATCH", f"{self.base_url}{API_PATH}/Tickets", json=body, headers=self._headers())
