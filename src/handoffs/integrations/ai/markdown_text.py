"""People's Markdown as one line: plain text for the list fields (console, PSA), or one line of
Markdown that renders like the original for the write-up.

Both read the source through markdown-it-py's tokens (CommonMark, ``html=False``), so list
markers, headings, quotes and emphasis go where the parser says they are, not where a regex
guesses: a link keeps its text, inline code and code blocks keep their content.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from markdown_it import MarkdownIt
from markdown_it.token import Token

_MD = MarkdownIt("commonmark", {"html": False}).enable("strikethrough")

#: Links the write-up keeps as links; any other link is written as its text.
_LINK_SCHEMES = re.compile(r"(?i)(?:https?://|mailto:)")
#: Inline Markdown's punctuation, backslash-escaped in text: what is text stays text.
_SPECIAL = re.compile(r"([\\`*_\[\]<>&~#|!])")
#: What would start a block (list, heading, quote, rule) at the start of a line.
_BLOCK_START = re.compile(r"^(?:(\d{1,9})([.)])|([-+=]))")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Piece:
    """One run of a line: text, inline code, an emphasis marker opening or closing, or a link."""

    kind: Literal["text", "code", "open", "close", "link"]
    text: str
    href: str = ""


@dataclass(frozen=True, slots=True)
class Block:
    """A paragraph, heading, list item or table cell's text, or a code block's content."""

    pieces: tuple[Piece, ...]
    code: bool  # a fenced or indented code block: pasted output rather than prose
    item: bool = False  # in a list item

    @property
    def text(self) -> str:
        """Its text with its line breaks, for splitting into sentences or lines."""
        return "".join(p.text for p in self.pieces if p.kind != "open" and p.kind != "close")


def blocks(markdown: str) -> list[Block]:
    """The blocks of ``markdown`` that hold text, in order."""
    found: list[Block] = []
    items = 0  # list items open around the token
    for token in _MD.parse(markdown):
        items += {"list_item_open": 1, "list_item_close": -1}.get(token.type, 0)
        if token.type == "inline":
            pieces = tuple(_inline(token.children or []))
            if any(p.text.strip() for p in pieces):
                found.append(Block(pieces, code=False, item=items > 0))
        elif token.type in ("fence", "code_block") and token.content.strip():
            found.append(Block((Piece("code", token.content),), code=True, item=items > 0))
    return found


def one_line(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def plain_text(markdown: str) -> str:
    """``markdown``'s text on one line: ``**Restarted** [the spooler](https://…)`` → ``Restarted the spooler``."""
    return one_line(" ".join(b.text for b in blocks(markdown)))


def clip(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, ending in "…" when it was cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def markdown_line(markdown: str, limit: int = 500) -> str:
    """``markdown`` as one line of valid Markdown: inline code, emphasis and http(s)/mailto links
    kept, all other text escaped, cut after about ``limit`` characters of text with "…" and its
    open emphasis closed. Safe to put after ``- `` or a heading's ``### ``."""
    # Only the start is kept, so only the start is parsed: a 100 KB paste costs what 4 KB does.
    pieces = [p for i, b in enumerate(blocks(markdown[: limit * 4])) for p in _spaced(b, i)]
    out: list[str] = []
    open_marks: list[str] = []
    left = limit
    for piece in pieces:
        if left <= 0 and piece.kind != "close":
            out.append("…")
            out.extend(reversed(open_marks))
            break
        if piece.kind == "open":
            open_marks.append(piece.text)
            out.append(piece.text)
            continue
        if piece.kind == "close":
            if open_marks:
                open_marks.pop()
            out.append(piece.text)
            continue
        text = _SPACES.sub(" ", piece.text)
        if piece.kind == "code":
            text = text.strip()
        if not out and not open_marks:
            text = text.lstrip()
        cut = len(text) > left
        if cut:
            text = text[:left].rstrip()
        out.append(_render(piece, text))
        left -= len(text)
        if cut:
            out.append("…")
            out.extend(reversed(open_marks))
            break
    return _escape_block_start("".join(out).rstrip())


def _spaced(block: Block, index: int) -> Iterable[Piece]:
    if index:
        yield Piece("text", " ")
    yield from block.pieces


def _inline(children: Sequence[Token]) -> Iterable[Piece]:
    link: list[str] | None = None  # the text of the link being read
    href = ""
    for token in children:
        if token.type in ("text", "code_inline", "softbreak", "hardbreak", "image"):
            text = "\n" if token.type.endswith("break") else token.content
            if token.type == "image":
                text = "".join(c.content for c in token.children or []) or str(token.attrGet("src") or "")
            if link is not None:
                link.append(text)
            elif text:
                yield Piece("code" if token.type == "code_inline" else "text", text)
        elif token.type == "link_open":
            link, href = [], str(token.attrGet("href") or "")
        elif token.type == "link_close" and link is not None:
            yield Piece("link", "".join(link), href)
            link = None
        elif link is None and token.type.endswith(("_open", "_close")) and token.markup:
            yield Piece("open" if token.type.endswith("_open") else "close", token.markup)


def _render(piece: Piece, text: str) -> str:
    if piece.kind == "code":
        return _code(text)
    if piece.kind == "link" and _LINK_SCHEMES.match(piece.href):
        url = piece.href.replace("(", "%28").replace(")", "%29")
        return f"[{_escape(text) or _escape(url)}]({url})"
    return _escape(text)


def _code(text: str) -> str:
    if not text:
        return ""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _escape(text: str) -> str:
    return _SPECIAL.sub(r"\\\1", text)


def _escape_block_start(line: str) -> str:
    """``1986. was a year`` → ``1986\\. was a year``: text, not an ordered list."""
    match = _BLOCK_START.match(line)
    if match is None:
        return line
    if match.group(1):
        return f"{match.group(1)}\\{line[len(match.group(1)) :]}"
    return "\\" + line
