"""HaloPSA REST: OAuth2 client credentials, then actions (notes) and ticket status.

Token: ``POST {auth_url}/token`` (form: grant_type=client_credentials,
client_id, client_secret, scope=all). Note: ``POST /api/Actions`` with a list of
actions; status: ``POST /api/Tickets`` with a list of ticket updates.
"""

from __future__ import annotations

from handoffs.integrations.psa.base import PsaAdapter, PsaError


class HaloAdapter(PsaAdapter):
    vendor = "halo"
    _token: str | None = None

    async def _auth(self) -> dict[str, str]:
        if self._token is None:
            auth_url = str(self.settings.get("auth_url") or f"{self.base_url}/auth").rstrip("/")
            response = await self.request(
                "POST",
                f"{auth_url}/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.credential("client_id"),
                    "client_secret": self.credential("client_secret"),
                    "scope": "all",
                },
            )
            token = response.json().get("access_token")
            if not token:
                raise PsaError("halo: the token endpoint returned no access_token", transient=False)
            self._token = str(token)
        return {"Authorization": f"Bearer {self._token}"}

    async def add_note(self, ticket_id: str, markdown: str) -> None:
        action = {
            "ticket_id": int(ticket_id) if ticket_id.isdigit() else ticket_id,
            "outcome": "Escalation",
            "note": markdown,
            "hiddenfromuser": True,
        }
        await self.request("POST", f"{self.base_url}/api/Actions", json=[action], headers=await self._auth())

    async def mark_escalated(self, ticket_id: str) -> None:
        status = self.settings.get("escalated_status_id")
        if status is None:
            return
        update = {"id": int(ticket_id) if ticket_id.isdigit() else ticket_id, "status_id": int(status)}
        await self.request("POST", f"{self.base_url}/api/Tickets", json=[update], headers=await self._auth())
