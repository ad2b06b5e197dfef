"""Text as a request may carry it: no control characters but tab, newline and carriage return.

PostgreSQL cannot store NUL, and the other C0 controls are never meant in a title, a note, an
email or a password (they are how terminal escapes and log forging get in). Every string field of
every request body is ``Text`` (or a type whose own pattern already refuses them), every string
query parameter ``TextQuery``: msgspec checks the pattern while it decodes, one compiled regex per
string and no second walk over the body, and the 400 names the field (``handoffs.errors`` words
it: ``title: control characters are not allowed (U+0000)``). Carriage return stays allowed: a
browser's textarea sends CRLF. ``tests/api/test_bad_input.py`` checks that every request field of
the OpenAPI schema carries the rule.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from litestar.params import QueryParameter

#: The refused characters, as a regex character class body: the C0 controls U+0000-U+001F but
#: U+0009, U+000A, U+000D; DEL (U+007F) and the C1 controls U+0080-U+009F (invisible, never typed,
#: and what some terminals read as escape sequences: CSI is U+009B).
CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
#: What every text field matches (an ECMA-compatible regex, so OpenAPI clients read it the same way).
NO_CONTROLS = rf"^[^{CONTROLS}]*$"

Text = Annotated[str, msgspec.Meta(pattern=NO_CONTROLS)]
"""A string of a request body; add ``msgspec.Meta(max_length=...)`` beside it for its bounds."""

TextQuery = Annotated[str | None, QueryParameter(pattern=NO_CONTROLS)]
"""An optional string query parameter (Litestar ignores msgspec's Meta on query parameters)."""

_CONTROL = re.compile(f"[{CONTROLS}]")


def first_control(value: object, depth: int = 0) -> str | None:
    """The first refused character anywhere in ``value`` (a string, or the strings of a list or
    dict, keys included, a few levels down), or None. Only an error path calls it, on the one
    field that failed."""
    if isinstance(value, str):
        found = _CONTROL.search(value)
        return found.group() if found else None
    if depth > 4:
        return None
    if isinstance(value, dict):
        items: list[object] = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return None
    for item in items:
        if (char := first_control(item, depth + 1)) is not None:
            return char
    return None


def codepoint(char: str) -> str:
    return f"U+{ord(char):04X}"
