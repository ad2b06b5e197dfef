"""HaloPSA REST: OAuth2 client credentials, then actions (notes) and ticket status.

Token: ``POST {auth_url}/token`` (form: grant_type=client_credentials,
client_id, client_secret, scope=all). Notes are actions: ``POST /api/Actions`` with a
list of actions (the escalation hidden from the end user with outcome "Escalation", the
resolution with outcome "Resolution"); status: ``POST /api/Tickets`` with a list of ticket
updates (settings ``escalated_status_id``, ``resolved_status_id``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from handoffs.integrations.psa.base import DETAIL_BODY_CHARS, PsaAdapter, PsaError


class HaloAdapter(PsaAdapter):
    vendor = "halo"
    name = "Halo"
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
            try:
                answer = response.json()
            except ValueError:
                answer = None
            token = answer.get("access_token") if isinstance(answer, dict) else None
            if not token:
                said = " ".join(response.text[:DETAIL_BODY_CHARS].split())
                raise PsaError(
                    "Halo's token endpoint answered without an access token",
                    transient=False,
                    detail=f"Halo: POST {urlsplit(auth_url).path}/token answered {response.status_code} "
                    f"without an access_token: {self.redact(said, {})}",
                )
            self._token = str(token)
        return {"Authorization": f"Bearer {self._token}"}

    def _extra_secrets(self) -> list[str]:
        return [self._token] if self._token else []

    async def _action(self, ticket_id: str, outcome: str, note: str) -> None:
        action = {
            "ticket_id": int(ticket_id) if ticket_id.isdigit() else ticket_id,
            "outcome": outcome,
            "note": note,
            "hiddenfromuser": True,
        }
        await self.request("POST", f"{self.base_url}/api/Actions", json=[action], headers=await self._auth())

    async def add_note(self, ticket_id: str, markdown: str) -> None:
        await self._action(ticket_id, "Escalation", markdown)

    async def add_resolution(self, ticket_id: str, text: str) -> None:
        await self._action(ticket_id, "Resolution", text)

    async def mark_escalated(self, ticket_id: str) -> None:
        await self._status(ticket_id, self.settings.get("escalated_status_id"))

    async def mark_resolved(self, ticket_id: str) -> None:
        await self._status(ticket_id, self.settings.get("resolved_status_id"))

    async def _status(self, ticket_id: str, status: str | int | None) -> None:
        if status is None:
            return
        update = {"id": int(ticket_id) if ticket_id.isdigit() else ticket_id, "status_id": int(status)}
        await self.request("POST", f"{self.base_url}/api/Tickets", json=[update], headers=await self._auth())
