"""``EXPLAIN`` of a SQLAlchemy statement, to show which index a query the service runs uses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ClauseElement, Executable
from sqlalchemy.ext.compiler import compiles


class Explain(Executable, ClauseElement):
    """``EXPLAIN <statement>`` with the statement's own bound parameters."""

    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(Explain, "postgresql")
def _compile_explain(element: Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN " + compiler.process(element.statement, **kw)
