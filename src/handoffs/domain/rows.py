"""Response Structs read straight off ORM rows."""

from __future__ import annotations

from typing import Self
from uuid import UUID

import msgspec
from sqlalchemy.orm import aliased

from handoffs.db.models import User


class Person(msgspec.Struct):
    """Someone as an answer names them: a card, a bell entry, a timeline line."""

    id: UUID
    name: str


class FromRow(msgspec.Struct):
    """A response whose fields are its row's attributes of the same names.

    ``of(row)`` is ``msgspec.convert(row, cls, from_attributes=True)``: no field is
    copied by hand, and a field the row lacks takes the Struct's default.
    """

    @classmethod
    def of(cls, row: object) -> Self:
        return msgspec.convert(row, cls, from_attributes=True)


#: A handoff's people, as queries join ``users`` for their names (one alias each, shared).
Creator = aliased(User, name="creator")
Claimer = aliased(User, name="claimer")
Resolver = aliased(User, name="resolver")
