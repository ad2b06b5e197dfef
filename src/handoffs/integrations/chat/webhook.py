"""Posting to a chat incoming webhook, and keeping its URL secret while doing so.

A webhook URL carries its credential in the path (Slack ``/services/T…/B…/token``,
Teams ``/webhookb2/…``, Power Automate ``…&sig=…``). So:

- errors are worded by us from the status and the host, never from httpx's
  messages (which contain the URL) and never chained to them;
- httpx logs every request with its URL at INFO: while a post is in flight a
  filter on the httpx/httpcore loggers rewrites the URL to ``scheme://host/…``
  (a context variable says which URL, so other requests' logs are untouched).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from handoffs.integrations.outbound import HostNotFound, OutboundPolicy, OutboundRefused
from handoffs.integrations.retry_after import parse_retry_after

#: ``chat_integrations.webhook_url`` is String(2000).
MAX_URL_LENGTH = 2000


class ChatError(Exception):
    """A post did not go through. ``reason`` is for people, in our words (the host, a status, what
    it means): it goes on the timeline, which every engineer reads. ``detail`` adds what the
    service answered, for the log, the delivery row and the admin's test message. Neither ever
    holds the URL. ``transient`` says whether trying again may help, ``retry_after`` when the
    service said."""

    def __init__(
        self,
        reason: str,
        *,
        transient: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or reason
        self.transient = transient
        self.status_code = status_code
        self.retry_after = retry_after


#: What a webhook URL looks like, for the 400 that refuses one.
EXAMPLES = "https://hooks.slack.com/services/… or https://….webhook.office.com/…"


def validate_webhook_url(url: str, policy: OutboundPolicy) -> str:
    """``url`` stripped, or ``ValueError`` saying what is wrong with it (without repeating it):
    the outbound policy's rules (https, a public host; handoffs.integrations.outbound)."""
    return policy.check_url(url, "webhook_url", example=EXAMPLES, max_length=MAX_URL_LENGTH)


def webhook_host(url: str) -> str | None:
    """The host alone (``hooks.slack.com``): what answers and errors may show of a webhook."""
    try:
        return urlsplit(url).hostname or None
    except ValueError:
        return None


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/…"


def _secret_forms(url: str) -> tuple[str, ...]:
    """The ways the URL (or its path, the token) may be spelled in a message, longest first."""
    forms = {url}
    parts = urlsplit(url)
    forms.add(parts.path + (f"?{parts.query}" if parts.query else ""))
    with contextlib.suppress(Exception):  # a URL httpx refuses is never sent: nothing more to hide
        parsed = httpx.URL(url)
        forms.add(str(parsed))
        forms.add(parsed.raw_path.decode("ascii", "replace"))
    return tuple(sorted((f for f in forms if len(f) > 1), key=len, reverse=True))


def scrub(text: str, url: str) -> str:
    """``text`` with every spelling of ``url`` (and of its path) replaced by ``scheme://host/…``."""
    for form in _secret_forms(url):
        text = text.replace(form, _redacted(url) if "://" in form else "/…")
    return text


_POSTING: ContextVar[str | None] = ContextVar("chat_webhook_posting", default=None)


class _HideWebhook(logging.Filter):
    """Rewrites a log record that mentions the webhook being posted to (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        url = _POSTING.get()
        if url:
            message = record.getMessage()
            cleaned = scrub(message, url)
            if cleaned != message:
                record.msg, record.args = cleaned, ()
        return True


_FILTER = _HideWebhook()
#: A logger's filters apply to its own records only, so each logger that writes is named.
_HTTP_LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy")
for _name in _HTTP_LOGGERS:
    logging.getLogger(_name).addFilter(_FILTER)


@contextmanager
def hide_in_http_logs(url: str) -> Iterator[None]:
    token = _POSTING.set(url)
    try:
        yield
    finally:
        _POSTING.reset(token)


@dataclass(frozen=True, slots=True)
class Posted:
    status_code: int


async def post_message(
    http: httpx.AsyncClient, url: str, payload: dict[str, Any], *, timeout_seconds: float = 15.0
) -> Posted:
    """POST ``payload`` as JSON to the webhook; ``ChatError`` in words a person understands otherwise.

    429 and 5xx, timeouts and connection errors are transient; any other 4xx is not
    (the webhook is gone, the channel archived, the message refused), nor is a 3xx
    (redirects are not followed) or an address ``http``'s outbound policy refuses.
    """
    host = webhook_host(url) or "the chat service"
    with hide_in_http_logs(url):
        try:
            response = await http.post(url, json=payload, timeout=timeout_seconds, follow_redirects=False)
        except OutboundRefused as exc:
            raise ChatError(f"the webhook address is not allowed ({exc.why})", transient=False) from None
        except HostNotFound:
            raise ChatError(
                f"could not connect to {host} (the name does not resolve)", transient=True
            ) from None
        except httpx.TimeoutException:
            raise ChatError(f"{host} did not answer within {timeout_seconds:g} s", transient=True) from None
        except httpx.ConnectError:
            raise ChatError(
                f"could not connect to {host} (connection refused or no route)", transient=True
            ) from None
        except httpx.HTTPError as exc:
            raise ChatError(
                f"the connection to {host} failed ({type(exc).__name__})", transient=True
            ) from None
        except Exception as exc:  # e.g. httpx.InvalidURL, whose message holds the URL
            raise ChatError(f"could not post to {host} ({type(exc).__name__})", transient=False) from None
    status = response.status_code
    body = scrub(response.text[:300].strip(), url)
    if 200 <= status < 300:
        throttled = _teams_throttle(body)
        if throttled is None:
            return Posted(status)
        status = throttled  # an Office 365 connector answers 200 and says the error in the body
    raise _refusal(host, status, body, response.headers.get("Retry-After"))


def _teams_throttle(body: str) -> int | None:
    """The status inside Teams' ``Microsoft Teams endpoint returned HTTP error 429 …`` 200 answers."""
    prefix = "Microsoft Teams endpoint returned HTTP error "
    if not body.startswith(prefix):
        return None
    code = body[len(prefix) :].split(" ", 1)[0]
    return int(code) if code.isdigit() else 500


def _refusal(host: str, status: int, body: str, retry_after: str | None) -> ChatError:
    """The error a non-2xx answer means (returned, for the caller to raise)."""
    said = f": {body}" if body and not body.lstrip().startswith("<") else ""
    if status < 400:
        reason = f"{host} answered with a redirect ({status}), which is not followed"
        return ChatError(reason, transient=False, status_code=status, detail=reason + said)
    if status == 429:
        wait = parse_retry_after(retry_after)
        after = f"; asked to wait {wait:g} s" if wait is not None else ""
        return ChatError(
            f"{host} is rate limiting us (429){after}", transient=True, status_code=status, retry_after=wait
        )
    if status >= 500:
        reason = f"{host} had a problem ({status})"
        return ChatError(reason, transient=True, status_code=status, detail=reason + said)
    meaning = {
        400: "refused the message",
        401: "refused the webhook's credentials",
        403: "does not allow this webhook to post",
        404: "does not know this webhook (deleted, or the URL is wrong)",
        410: "says the webhook or its channel is gone",
    }.get(status, "refused the post")
    reason = f"{host} {meaning} ({status})"
    return ChatError(reason, transient=False, status_code=status, detail=reason + said)
