"""Domain errors raised by services, mapped to HTTP once in the app factory."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DBAPIError, IntegrityError

log = logging.getLogger(__name__)


class DomainError(Exception):
    status_code = 400

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class BadRequest(DomainError):
    status_code = 400


class Forbidden(DomainError):
    status_code = 403


class NotFound(DomainError):
    """Also what a foreign tenant's id answers: never a hint that it exists."""

    status_code = 404


class Conflict(DomainError):
    status_code = 409


def _json(status_code: int, body: dict[str, Any]) -> Response[dict[str, Any]]:
    return Response(content=body, status_code=status_code, media_type=MediaType.JSON)


def domain_error_handler(_: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    return _json(exc.status_code, {"detail": exc.detail, **exc.extra})


def _describe(error: dict[str, Any]) -> str:
    message = str(error.get("message", "invalid value"))
    key = error.get("key")
    return f"{key}: {message}" if key else message


def validation_error_handler(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    """Put the first field error in ``detail`` so a person reads what to fix, not a generic line."""
    errors = exc.extra if isinstance(exc.extra, list) else []
    detail = "; ".join(_describe(e) for e in errors if isinstance(e, dict)) or exc.detail
    body: dict[str, Any] = {"detail": detail}
    if errors:
        body["errors"] = errors
    return _json(exc.status_code, body)


def http_error_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"detail": exc.detail}
    if exc.extra:
        body["extra"] = exc.extra
    response = _json(exc.status_code, body)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def integrity_error_handler(request: Request[Any, Any, Any], exc: IntegrityError) -> Response[dict[str, Any]]:
    # Services translate the constraints they expect; reaching here means a
    # race the service did not foresee. The transaction rolled back, nothing
    # was half-written, and the client can retry.
    log.warning("unhandled integrity error on %s %s: %s", request.method, request.url.path, exc.orig)
    return _json(409, {"detail": "The request conflicts with the current state; reload and try again."})


#: SQLSTATEs of a value PostgreSQL cannot store as text: a NUL character (22P05, "unsupported
#: Unicode escape sequence" for jsonb; 22021, "invalid byte sequence" for text). Input, not a bug.
NUL_SQLSTATES = {"22021", "22P05"}


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from (a few levels: repositories wrap the driver's)."""
    out: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(out) < 10:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
    return out


def refused_as_text(exc: BaseException) -> bool:
    """Whether PostgreSQL refused a value as text (a NUL character), anywhere in the cause chain:
    advanced-alchemy's repositories wrap the driver's error in their own."""
    for seen in _chain(exc):
        if getattr(seen, "sqlstate", None) in NUL_SQLSTATES:
            return True
        if isinstance(seen, DBAPIError) and getattr(seen.orig, "sqlstate", None) in NUL_SQLSTATES:
            return True
    return False


NUL_DETAIL = "Text may not contain NUL characters (\\u0000); remove them and send again."


def database_error_handler(request: Request[Any, Any, Any], exc: DBAPIError) -> Response[dict[str, Any]]:
    """A value the database refuses as text (a NUL character) is the client's: a 400 that says
    so; anything else is ours, a logged 500. The transaction rolled back; nothing was written."""
    if refused_as_text(exc):
        return _json(400, {"detail": NUL_DETAIL})
    return internal_error_handler(request, exc)


def recursion_error_handler(request: Request[Any, Any, Any], exc: RecursionError) -> Response[dict[str, Any]]:
    """A body nested so deeply that decoding it ran out of stack: the client's, a 400."""
    log.warning("refused a too deeply nested body on %s %s", request.method, request.url.path)
    return _json(400, {"detail": "The JSON body is nested too deeply."})


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if refused_as_text(exc):  # wrapped by a repository: still the client's input
        return _json(400, {"detail": NUL_DETAIL})
    database = next((e for e in _chain(exc) if isinstance(e, DBAPIError)), None)
    if database is not None:
        # Not the traceback: the driver's message can quote a bound value ("invalid input for
        # query argument $1: '<the value>'"), and values are credentials, emails, notes.
        log.error(
            "unhandled database error on %s %s: %s (SQLSTATE %s) in [SQL: %s]",
            request.method, request.url.path, type(database.orig).__name__,
            getattr(database.orig, "sqlstate", None), database.statement,
        )  # fmt: skip
        return _json(HTTP_500_INTERNAL_SERVER_ERROR, {"detail": "Internal server error; it has been logged."})
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _json(HTTP_500_INTERNAL_SERVER_ERROR, {"detail": "Internal server error; it has been logged."})


exception_handlers: dict[type[Exception] | int, Any] = {
    DomainError: domain_error_handler,
    ValidationException: validation_error_handler,
    HTTPException: http_error_handler,
    IntegrityError: integrity_error_handler,
    DBAPIError: database_error_handler,
    RecursionError: recursion_error_handler,
    HTTP_500_INTERNAL_SERVER_ERROR: internal_error_handler,
}
