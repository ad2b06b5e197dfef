"""The browsable API docs at ``/schema``: Swagger UI served by the app itself, no CDN.

The assets come from the ``openapi-ui-bundles`` wheel (Swagger UI 5, which reads
OpenAPI 3.1); the page loads only same-origin scripts and styles, under the same
strict Content-Security-Policy as the console (no inline script or style).
"""

from __future__ import annotations

import html
from typing import Any

import openapi_ui_bundles
from litestar import Request, Router
from litestar.datastructures import CacheControlHeader, ResponseHeader
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.static_files import create_static_files_router

from handoffs.security.cookies import CSRF_COOKIE, CSRF_HEADER

#: Where the schema, its UI and the UI's assets live.
SCHEMA_PATH = "/schema"
ASSETS = f"{SCHEMA_PATH}/assets"

#: Sent with every answer under /schema.
DOCS_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class SwaggerUI(OpenAPIRenderPlugin):
    """Swagger UI at ``/schema`` (and ``/schema/swagger``), started by ``/static/api-docs/init.js``."""

    def __init__(self) -> None:
        super().__init__(path="/swagger", favicon="", style="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(str(openapi_schema["info"]["title"]))
        spec_url = html.escape(self.get_openapi_json_route(request))
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} API</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
  <link rel="stylesheet" href="/static/api-docs/api-docs.css">
</head>
<body>
  <div id="swagger-ui" data-spec-url="{spec_url}"
       data-csrf-cookie="{CSRF_COOKIE}" data-csrf-header="{CSRF_HEADER}"></div>
  <script src="{ASSETS}/swagger-ui-bundle.js"></script>
  <script src="/static/api-docs/init.js"></script>
</body>
</html>
""".encode()


def api_docs_router() -> Router:
    """The router Litestar serves the schema and its UI on, with the UI's assets beside them."""
    assets = create_static_files_router(
        path="/assets",
        directories=[openapi_ui_bundles.swagger_ui.static_path],
        name="api_docs_assets",
        cache_control=CacheControlHeader(max_age=3600),
        opt={"exclude_from_auth": True},
        include_in_schema=False,
    )
    return Router(
        SCHEMA_PATH,
        route_handlers=[assets],
        include_in_schema=False,
        response_headers=[ResponseHeader(name=k, value=v) for k, v in DOCS_HEADERS.items()],
    )
