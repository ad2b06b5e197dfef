"""What every PSA adapter does: on escalation, a note on the ticket and an escalated status;
on resolution, the resolution on the ticket and a resolved status.

Each is a separate step (``steps``) so the job can record each call once done and a retry
repeats only what did not happen: a failed status change never posts the note twice.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, Literal
from urllib.parse import quote, quote_plus, urlsplit

import httpx

from handoffs.db.models import PsaConnection
from handoffs.integrations.outbound import HostNotFound, OutboundRefused


class PsaError(Exception):
    """A PSA call failed.

    ``reason`` is in our words (the vendor, a status, what it means): it goes on the handoff,
    where every engineer of the account reads it. ``detail`` adds what the vendor answered,
    for the log and the account's admins (``GET /api/v1/psa-connection``); neither ever
    holds a credential. ``transient`` says whether trying again may help.
    """

    def __init__(self, reason: str, *, transient: bool, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.detail = detail or reason


#: How much of a vendor's answer the detail keeps.
DETAIL_BODY_CHARS = 500


class PsaAdapter(ABC):
    vendor = "none"
    name = "the PSA"
    """The vendor as people name it, in reasons: ``Halo refused the credentials (403)``."""

    def __init__(self, connection: PsaConnection, http: httpx.AsyncClient) -> None:
        self.base_url = connection.base_url.rstrip("/")
        self.settings: dict[str, Any] = dict(connection.settings or {})
        self._credentials: dict[str, str] = dict(connection.credentials or {})
        self.http = http

    def credential(self, name: str) -> str:
        value = self._credentials.get(name)
        if not value:
            raise PsaError(f"{self.name}: the '{name}' credential is not configured", transient=False)
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
        """One vendor call, redirects not followed. 429, 5xx and network errors are transient;
        other 4xx, a 3xx and an address the outbound policy refuses are not."""
        where = f"{self.name}: {method} {urlsplit(url).path}"
        try:
            response = await self.http.request(method, url, follow_redirects=False, **kwargs)
        except httpx.InvalidURL:  # a row saved before URLs were checked; its message quotes the URL
            raise PsaError("the PSA address is not a valid URL", transient=False) from None
        except OutboundRefused as exc:
            raise PsaError(
                f"the PSA address is not allowed ({exc.why})",
                transient=False,
                detail=f"{where}: {exc.host}: {exc.why} is not allowed (OUTBOUND_ALLOWED_HOSTS)",
            ) from None
        except HostNotFound:
            raise PsaError(
                f"could not reach {self.name} (the name does not resolve)", transient=True
            ) from None
        except httpx.TimeoutException:
            raise PsaError(f"could not reach {self.name} (timeout)", transient=True) from None
        except httpx.ConnectError as exc:
            said = str(exc).replace(url, urlsplit(url).netloc)[:300]  # the socket's or TLS's words
            failed = (
                "TLS failed"
                if "ssl" in said.lower() or "certificate" in said.lower()
                else "connection refused"
            )
            raise PsaError(
                f"could not reach {self.name} ({failed})", transient=True, detail=f"{where}: {said}"
            ) from None
        except httpx.HTTPError as exc:  # its message may quote the URL: the class name is enough
            raise PsaError(f"could not reach {self.name} ({type(exc).__name__})", transient=True) from None
        status = response.status_code
        if status < 300:
            return response
        reason, transient = self._meaning(status)
        said = " ".join(response.text[:DETAIL_BODY_CHARS].split())
        if 300 <= status < 400:
            said = f"Location: {response.headers.get('Location', '')} {said}".strip()
        detail = f"{where} answered {status}" + (f": {self.redact(said, kwargs)}" if said else "")
        raise PsaError(reason, transient=transient, detail=detail)

    def _meaning(self, status: int) -> tuple[str, bool]:
        """The reason for an answer that is not a success, and whether to try again."""
        if status < 400:
            return f"{self.name} answered with a redirect ({status}), which is not followed", False
        if status in (401, 403):
            return f"{self.name} refused the credentials ({status})", False
        if status == 404:
            return f"{self.name} does not know the ticket or the address ({status})", False
        if status == 429:
            return f"{self.name} is rate limiting us ({status})", True
        if status >= 500:
            return f"{self.name} answered {status}", True
        return f"{self.name} refused the request ({status})", False

    def redact(self, text: str, request: dict[str, Any]) -> str:
        """``text`` without any credential, token or auth header value, however it is spelled
        (as sent, URL-encoded, JSON-escaped): a vendor, or whatever answers at its address,
        may echo the request."""
        secrets = [*self._credentials.values(), *self._extra_secrets()]
        for header, value in dict(request.get("headers") or {}).items():
            if header.lower() in {"accept", "content-type"}:
                continue
            secrets.append(str(value))
            secrets.append(str(value).split(" ", 1)[-1])  # "Basic …", "Bearer …"
        forms = set()
        for secret in secrets:
            if len(secret) >= 4:
                forms.update({secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]})
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, "[redacted]")
        return text

    def _extra_secrets(self) -> list[str]:
        """Secrets an adapter holds besides the credentials (a token it was given)."""
        return []
