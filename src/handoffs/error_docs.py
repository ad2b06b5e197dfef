"""The OpenAPI schema documents the errors each operation can answer, with the bodies it sends.

Left alone, Litestar documents one error per operation that takes input: a 400 of its own
shape (``{status_code, detail, extra}``), which ``handoffs.errors`` never sends. As each route is
registered, :class:`ErrorResponses` adds to its operations the refusals that follow from how the
route is built, unless the handler documents that status itself (``responses=``):

- **400** ``InvalidRequest`` (``{detail, errors?}``) when it takes input: a body, path or query
  parameters;
- **401** ``Detail`` unless the path is public (``PUBLIC_PATHS``, ``exclude_from_auth``);
- **403** ``Detail`` when a role guard stands in front of it (the role is named), or on an unsafe
  method, which a console cookie session must send with its CSRF token;
- **404** ``Detail`` when its path names something (an id of another account answers 404 too).

What depends on the handler's own rules (409s and their bodies, 429, a public sign-in's 401) is
written on the handler. ``tests/api/test_schemathesis.py`` holds every answer to the schema.
"""

from __future__ import annotations

import re
from typing import Any

from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute

from handoffs.errors import Detail, InvalidRequest
from handoffs.security.auth import PUBLIC_PATHS, RoleGuard

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

INVALID = ResponseSpec(
    data_container=InvalidRequest,
    generate_examples=False,
    description="The request is not one this operation takes: `detail` says what to fix, `errors` "
    "lists each refused field (a control character other than tab, newline or carriage return in any "
    "text, a value out of bounds, an unknown field, malformed or too deeply nested JSON)",
)
UNAUTHENTICATED = ResponseSpec(
    data_container=Detail,
    generate_examples=False,
    description="No bearer token (or console session), or one that is expired, signed out or of a "
    "deactivated user",
)
NOT_FOUND = ResponseSpec(
    data_container=Detail,
    generate_examples=False,
    description="Nothing of that id the caller may see (another account's ids answer the same)",
)
CSRF = "a console cookie session sent no CSRF token, or the wrong one"


def _takes_input(kwargs_model: Any) -> bool:
    return bool(
        kwargs_model.expected_path_params
        or kwargs_model.expected_query_params
        or kwargs_model.expected_header_params
        or kwargs_model.expected_cookie_params
        or "data" in kwargs_model.expected_reserved_kwargs
    )


def _is_public(route: HTTPRoute, handler: HTTPRouteHandler) -> bool:
    # The same test the JWT middleware makes: its ``exclude`` patterns, searched in the path.
    return bool(handler.opt.get("exclude_from_auth")) or any(re.search(p, route.path) for p in PUBLIC_PATHS)


def _forbidden(handler: HTTPRouteHandler) -> ResponseSpec | None:
    reasons = [
        f'the caller\'s role is below {guard.minimum.value} ("Your role may not {guard.action}.")'
        for layer in handler.ownership_layers
        for guard in layer.guards or ()
        if isinstance(guard, RoleGuard)
    ]
    if UNSAFE_METHODS & set(handler.http_methods):
        reasons.append(CSRF)
    if not reasons:
        return None
    return ResponseSpec(
        data_container=Detail, generate_examples=False, description="Refused: " + "; or ".join(reasons)
    )


def standard_errors(
    route: HTTPRoute, handler: HTTPRouteHandler, kwargs_model: Any
) -> dict[int, ResponseSpec]:
    """The refusals ``handler`` can answer on ``route`` by how it is built (see the module)."""
    errors: dict[int, ResponseSpec] = {}
    if _takes_input(kwargs_model):
        errors[400] = INVALID
    if not _is_public(route, handler):
        errors[401] = UNAUTHENTICATED
    if (forbidden := _forbidden(handler)) is not None:
        errors[403] = forbidden
    if route.path_parameters:
        errors[404] = NOT_FOUND
    return errors


class ErrorResponses(ReceiveRoutePlugin):
    """Adds the standard refusals to every operation in the schema as its route is registered
    (the schema itself is built later, on its first request)."""

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute):
            return
        for handler, kwargs_model in route.route_handler_map.values():
            if not handler.resolve_include_in_schema():
                continue
            documented = dict(handler.responses or {})
            for status, spec in standard_errors(route, handler, kwargs_model).items():
                documented.setdefault(status, spec)
            handler.responses = documented
