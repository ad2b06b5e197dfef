"""Jinja filters of the console: times and labels read the same on the server as in console.js,
and people's and the AI's prose rendered as sanitized Markdown."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import nh3
from jinja2 import Environment
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup

from handoffs.domain.notifications.titles import duration, snippet
from handoffs.enums import Priority

PRIORITY_RANK = {Priority.low: 0, Priority.normal: 1, Priority.high: 2, Priority.urgent: 3}


def as_datetime(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso(value: datetime | str | None) -> str:
    """RFC 3339 UTC, what ``<time datetime>`` attributes carry for the page's clock."""
    if value is None:
        return ""
    return as_datetime(value).astimezone(UTC).isoformat().replace("+00:00", "Z")


def clock_utc(value: datetime | str | None, now: datetime | None = None) -> str:
    """``14:05 UTC`` (``2026-03-02 14:05 UTC`` on another day than ``now``): a time's text from the
    server, saying its zone, until time.js writes it in the browser's zone."""
    if value is None:
        return ""
    at = as_datetime(value).astimezone(UTC)
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    return at.strftime("%H:%M UTC" if at.date() == today else "%Y-%m-%d %H:%M UTC")


def day_utc(value: datetime | str | None, now: datetime | None = None) -> str:
    """``3 Nov`` (``3 Nov 2025`` in another year than ``now``), in UTC until time.js writes the
    browser's own day: a date said in a sentence ("fixed a similar one on 3 Nov")."""
    if value is None:
        return ""
    at = as_datetime(value).astimezone(UTC)
    year = (now or datetime.now(UTC)).astimezone(UTC).year
    return f"{at.day} {at:%b}" + ("" if at.year == year else f" {at.year}")


def ago(value: datetime | str | None, now: datetime | None = None) -> str:
    if value is None:
        return ""
    now = now or datetime.now(UTC)
    return f"{duration((now - as_datetime(value)).total_seconds())} ago"


def first_name(name: str) -> str:
    return name.split()[0] if name.strip() else name


def label(value: Any) -> str:
    """An enum value as a person reads it: ``not_requested`` → ``Not requested``."""
    text = str(getattr(value, "value", value)).replace("_", " ")
    return text[:1].upper() + text[1:]


_GAVE_UP = re.compile(r"gave up after (\d+) attempts: (.+)", re.DOTALL)


def reason_sentence(reason: str) -> str:
    """Why the AI assessment failed, as a sentence: ``gave up after 5 attempts: the AI service was
    overloaded (529)`` → ``The AI service was overloaded (529), 5 times in a row.``"""
    text = str(reason).strip().rstrip(".")
    if match := _GAVE_UP.fullmatch(text):
        text = f"{match[2]}, {match[1]} times in a row"
    return (text[:1].upper() + text[1:] + ".") if text else ""


# -- Markdown ----------------------------------------------------------------
#
# Transcript messages, engineer notes, the AI assessment and the escalation
# package are written in Markdown (by people and by the model). They are
# rendered on the server in two steps, each enough on its own:
#
# 1. markdown-it-py, CommonMark with ``html=False``: HTML in the source is
#    text (escaped), never markup; a link whose URL is not http(s):// or
#    mailto: stays its source text (``[x](javascript:...)``).
# 2. nh3 (Ammonia) cleans the result against an allowlist: formatting tags
#    only, ``href`` on links with http, https or mailto only, no relative
#    URLs (``//host`` is one), every link ``rel="noopener noreferrer
#    nofollow"`` and ``target="_blank"``, no ``style``/``class``/event
#    attributes (Ammonia's harmless ``title``/``lang`` stay).
#
# Images become links to the picture (the CSP loads images from this site
# only, and a remote picture would tell its host who read the page).
# Headings are moved down to h4-h6, under the page's h1-h3.

#: The tags rendered Markdown may hold.
MARKDOWN_TAGS = {
    "p", "br", "hr", "strong", "em", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
MARKDOWN_ATTRIBUTES = {"a": {"href"}, "ol": {"start"}}
MARKDOWN_URL_SCHEMES = {"http", "https", "mailto"}
MARKDOWN_LINK_REL = "noopener noreferrer nofollow"
_ALLOWED_URL = re.compile(r"(?i)(?:https?://|mailto:)")
_HEADING_TAGS = {"h1": "h4", "h2": "h5", "h3": "h6", "h4": "h6", "h5": "h6", "h6": "h6"}


def _image_as_link(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    text = self.renderInlineAsText(token.children or [], options, env) or src
    return f'<a href="{escapeHtml(src)}">{escapeHtml(text)}</a>'


def _allowed_url(url: str) -> bool:
    """markdown-it's link check, narrowed to the schemes nh3 keeps: any other link stays its source text."""
    return _ALLOWED_URL.match(url) is not None


def _shift_headings(state: StateCore) -> None:
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = _HEADING_TAGS[token.tag]


def _markdown_parser() -> MarkdownIt:
    # breaks: a newline is a line break, as people type in a chat or a textarea.
    md = MarkdownIt("commonmark", {"html": False, "linkify": True, "breaks": True, "typographer": False})
    md.enable(["linkify", "table", "strikethrough"])
    # Bare URLs become links only with their scheme (https://...): `install.sh` or `outlook.pst` stays text.
    assert md.linkify is not None, "linkify-it-py is installed with markdown-it-py[linkify]"
    md.linkify.set({"fuzzy_link": False})
    md.validateLink = _allowed_url  # type: ignore[method-assign]
    md.add_render_rule("image", _image_as_link)
    md.core.ruler.push("shift_headings", _shift_headings)
    return md


_MD = _markdown_parser()


def sanitize_html(rendered: str) -> Markup:
    """The second step on its own: whatever HTML it is given, only the allowlist comes out."""
    cleaned = nh3.clean(
        rendered,
        tags=MARKDOWN_TAGS,
        attributes=MARKDOWN_ATTRIBUTES,
        url_schemes=MARKDOWN_URL_SCHEMES,
        url_relative="deny",
        link_rel=MARKDOWN_LINK_REL,
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )
    return Markup(cleaned.strip())  # noqa: S704 - nh3's output: allowlisted tags and attributes only


def markdown(text: Any) -> Markup:
    """Block Markdown (paragraphs, lists, code blocks, quotes, tables) as safe HTML."""
    if text is None or text == "":
        return Markup("")
    return sanitize_html(_MD.render(str(text)))


def markdown_inline(text: Any) -> Markup:
    """One paragraph's Markdown (bold, code, links) without the ``<p>``: for list items and short fields."""
    if text is None or text == "":
        return Markup("")
    return sanitize_html(_MD.renderInline(str(text)))


def register_filters(env: Environment) -> None:
    env.filters.update(
        iso=iso,
        clock_utc=clock_utc,
        day_utc=day_utc,
        snippet=snippet,
        ago=ago,
        duration=duration,
        first_name=first_name,
        label=label,
        reason_sentence=reason_sentence,
        markdown=markdown,
        markdown_inline=markdown_inline,
    )
    env.globals.update(priority_rank=lambda p: PRIORITY_RANK.get(Priority(p), 1))
