"""Response Structs read straight off ORM rows."""

from __future__ import annotations

from typing import Self

import msgspec


class FromRow(msgspec.Struct):
    """A response whose fields are its row's attributes of the same names.

    ``of(row)`` is ``msgspec.convert(row, cls, from_attributes=True)``: no field is
    copied by hand, and a field the row lacks takes the Struct's default.
    """

    @classmethod
    def of(cls, row: object) -> Self:
        return msgspec.convert(row, cls, from_attributes=True)
