"""Domain errors raised by services, mapped to HTTP once in the app factory."""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, InternalServerException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.utils.scope.state import ScopeState
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from handoffs.db.encryption import UnreadableSecret
from handoffs.domain.text import NO_CONTROLS, codepoint, first_control

log = logging.getLogger(__name__)


# -- the bodies every error answers with (documented in the OpenAPI schema by handoffs.error_docs)


class Detail(msgspec.Struct):
    """An error body: what went wrong, in words (401, 403, 404, 429, and 409s with no more to say)."""

    detail: str


class FieldError(msgspec.Struct, omit_defaults=True):
    """One refused value of a request: which (``key``: ``title``, ``levels[0].after_seconds``),
    where it was (``source``: ``body``, ``query``, ``path``) and what is wrong with it."""

    message: str
    key: str | None = None
    source: str | None = None


class InvalidRequest(msgspec.Struct, omit_defaults=True):
    """A 400: ``detail`` says what to fix in words (the field errors joined, a refused value's
    field first); ``errors`` lists each refused field when the request did not decode."""

    detail: str
    errors: list[FieldError] | None = None


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


#: How msgspec words a string its ``pattern`` refused; the text types' own one (handoffs.domain.text).
PATTERN_REFUSED = "Expected `str` matching regex"
CONTROLS_REFUSED = f"{PATTERN_REFUSED} {NO_CONTROLS!r}"
CONTROLS_MESSAGE = "control characters are not allowed"
#: The field a body error's key starts with: ``credentials`` of ``credentials[...]``.
_FIELD = re.compile(r"[^.\[]+")


def _sent_value(request: Request[Any, Any, Any], error: dict[str, Any]) -> Any:
    """The value the refused field was sent with (the whole top-level field of a body), or None."""
    key = str(error.get("key") or "")
    if error.get("source") == "query":
        return request.query_params.getall(key, [])
    field = _FIELD.match(key)
    if error.get("source") != "body" or field is None:
        return None
    # The body as Litestar decoded it before it converted it to the handler's Struct (cached on the
    # connection). An internal of Litestar's: without it the message only lacks the code point.
    try:
        body = ScopeState.from_scope(request.scope).json
    except Exception:  # pragma: no cover - a Litestar upgrade moved it
        return None
    return body.get(field.group()) if isinstance(body, dict) else None


def _worded(request: Request[Any, Any, Any], error: dict[str, Any]) -> dict[str, Any]:
    """A refused pattern says why when the reason is a control character: which one, not the regex;
    and a value of a mapping (``credentials[...]``) is named by its key when the key is plain text."""
    message = str(error.get("message", ""))
    if not message.startswith(PATTERN_REFUSED):
        return error
    value = _sent_value(request, error)
    char = first_control(value)
    if char is None:
        return {**error, "message": CONTROLS_MESSAGE} if message == CONTROLS_REFUSED else error
    key = str(error.get("key") or "")
    if key.endswith("[...]") and isinstance(value, dict):
        name = next((k for k, v in value.items() if first_control(v) and not first_control(k)), None)
        key = f"{key[:-5]}.{name}" if name is not None else key
    return {**error, "key": key, "message": f"{CONTROLS_MESSAGE} ({codepoint(char)})"}


def validation_error_handler(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    """Put the field errors in ``detail`` so a person reads what to fix, not a generic line; a
    control character is named by its code point (``title: control characters are not allowed
    (U+0000)``)."""
    errors = (
        [_worded(request, e) for e in exc.extra if isinstance(e, dict)] if isinstance(exc.extra, list) else []
    )
    detail = "; ".join(_describe(e) for e in errors) or exc.detail
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


#: Retry-After of a 503 for a busy pool: connections come free within milliseconds once it eases.
BUSY_RETRY_AFTER_SECONDS = 1


def pool_timeout_handler(request: Request[Any, Any, Any], exc: PoolTimeout) -> Response[dict[str, Any]]:
    """No pooled database connection came free within ``DB_POOL_TIMEOUT``: this replica is
    overloaded, not the request wrong. A 503 a client may retry; nothing was written."""
    log.warning("no database connection free for %s %s: %s", request.method, request.url.path, exc)
    return Response(
        {"detail": "The service is busy; try again in a moment."},
        status_code=503,
        media_type=MediaType.JSON,
        headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
    )


def unreadable_secret_handler(
    request: Request[Any, Any, Any], exc: UnreadableSecret
) -> Response[dict[str, Any]]:
    """A stored secret no configured key decrypts: the installation's keys are wrong, not the
    request. Said as such to the admin who asked (only admins read these settings), and logged."""
    log.error("%s on %s %s", exc, request.method, request.url.path)
    detail = (
        f"The stored {exc.what} cannot be read with the configured DATA_ENCRYPTION_KEY: an operator "
        'has to configure the key they were written with (docs/deployment.md, "Secrets at rest").'
    )
    return _json(HTTP_500_INTERNAL_SERVER_ERROR, {"detail": detail})


def recursion_error_handler(request: Request[Any, Any, Any], exc: RecursionError) -> Response[dict[str, Any]]:
    """A body nested so deeply that decoding it ran out of stack: the client's, a 400."""
    log.warning("refused a too deeply nested body on %s %s", request.method, request.url.path)
    return _json(400, {"detail": "The JSON body is nested too deeply."})


#: msgspec's words for a refused value of the request body: ``<why> - at `$.data.<field>```, or a
#: refused map key: ``<why> - at `key` in `$.data.<field>```.
_BODY_ERROR = re.compile(r"^(?P<message>.*?) - at (?:`key` in )?`\$\.data(?:\.(?P<key>[^`]+))?`$", re.DOTALL)


def misread_body_error(exc: Exception) -> ValidationException | None:
    """The 400 Litestar should have raised for a body field named like a dependency.

    Litestar decides whose fault a failed conversion is by the failing key's top-level name, so a
    body field that shares a name with an injected dependency (``PsaConnectionIn.settings`` and the
    app's ``settings``) turns the client's mistake into a 500. msgspec's own message still says
    where it was: in the body (``$.data``), which no dependency ever is.
    """
    cause = exc.__cause__
    if not isinstance(exc, InternalServerException) or not isinstance(cause, msgspec.ValidationError):
        return None
    found = _BODY_ERROR.match(str(cause))
    if found is None:
        return None
    error = {"message": found["message"], "source": "body"}
    if found["key"]:
        error["key"] = found["key"]
    return ValidationException(detail="Invalid request body", extra=[error])


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if refused_as_text(exc):  # wrapped by a repository: still the client's input
        return _json(400, {"detail": NUL_DETAIL})
    if (refusal := misread_body_error(exc)) is not None:
        return validation_error_handler(request, refusal)
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
    PoolTimeout: pool_timeout_handler,
    RecursionError: recursion_error_handler,
    UnreadableSecret: unreadable_secret_handler,
    HTTP_500_INTERNAL_SERVER_ERROR: internal_error_handler,
}
