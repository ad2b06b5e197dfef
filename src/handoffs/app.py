"""The application factory: one place that wires settings, database, Redis, auth and routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from advanced_alchemy.extensions.litestar import AsyncSessionConfig, SQLAlchemyAsyncConfig, SQLAlchemyPlugin
from advanced_alchemy.extensions.litestar.plugins.init.config.common import SESSION_TERMINUS_ASGI_EVENTS
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi.config import OpenAPIConfig
from litestar.types import BeforeMessageSendHookHandler, ControllerRouterHandler, Message, Scope

from handoffs.config import Settings, get_settings
from handoffs.db.engine import create_engine
from handoffs.deps import provide_user
from handoffs.domain.accounts.controller import AuthController, UserController
from handoffs.domain.chat_integration.controller import ChatIntegrationController
from handoffs.domain.escalation_policy.controller import EscalationPolicyController
from handoffs.domain.figures.controller import TeamFiguresController
from handoffs.domain.handoffs.controller import HandoffController, HandoffSearchController
from handoffs.domain.notifications.controller import NotificationController
from handoffs.domain.psa_connection.controller import PsaConnectionController
from handoffs.domain.sessions.controller import SessionController
from handoffs.error_docs import ErrorResponses
from handoffs.errors import exception_handlers
from handoffs.health import HealthController
from handoffs.logs import app_logging
from handoffs.metrics_endpoint import MetricsController, prometheus_config
from handoffs.outbox.relay import OutboxRelay
from handoffs.request_id import install as install_request_id
from handoffs.runtime import STATE_KEY, Runtime, open_runtime, runtime_of
from handoffs.security.auth import TokenIssuer, create_jwt_auth
from handoffs.security.csrf import csrf_middleware_for
from handoffs.stream.controller import EscalationStreamController
from handoffs.stream.hub import EventHub
from handoffs.web import static_files_router, template_config
from handoffs.web.api_docs import SCHEMA_PATH, SwaggerUI, api_docs_router
from handoffs.web.controller import ConsoleController

log = logging.getLogger(__name__)


def provide_runtime(state: State) -> Runtime:
    return runtime_of(state)


def provide_relay(state: State) -> OutboxRelay:
    return runtime_of(state).relay


def provide_hub(state: State) -> EventHub:
    hub = runtime_of(state).hub
    assert hub is not None, "an API runtime always has a hub"
    return hub


def only_at_terminus(handler: BeforeMessageSendHookHandler) -> BeforeMessageSendHookHandler:
    """advanced-alchemy's before-send handler (close the request's session as the response
    starts), asked only about the messages it acts on: a live stream sends one body message per
    event to each of thousands of clients, and the default looked the session up in the scope
    for every one (bench/README.md, "fanout")."""

    async def before_send(message: Message, scope: Scope) -> None:
        if message["type"] in SESSION_TERMINUS_ASGI_EVENTS:
            await handler(message, scope)  # type: ignore[misc]  # Litestar's union of sync and async

    return before_send


def create_app(
    settings: Settings | None = None, *, extra_handlers: Sequence[ControllerRouterHandler] = ()
) -> Litestar:
    """Build the API. ``settings`` defaults to the environment (uvicorn's factory mode).

    ``extra_handlers`` lets benchmarks mount a baseline route on the very same stack.
    """
    settings = settings or get_settings()
    engine = create_engine(settings)
    alchemy = SQLAlchemyAsyncConfig(
        engine_instance=engine,
        session_dependency_key="db_session",
        # Services commit, then build the response from the same objects.
        session_config=AsyncSessionConfig(expire_on_commit=False),
    )
    # The handler is made for this config's session key (unique per config, so per app).
    assert callable(alchemy.before_send_handler)
    alchemy.before_send_handler = only_at_terminus(alchemy.before_send_handler)
    jwt_auth = create_jwt_auth(settings, alchemy)
    tokens = TokenIssuer(jwt_auth)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # The plugin's engine, and the relay, bus, Redis and live-stream hub (handoffs.runtime).
        runtime = await open_runtime(settings, role="api", engine=engine)
        app.state[STATE_KEY] = runtime
        try:
            yield
        finally:
            await runtime.close()

    logging_setup = app_logging(settings.log_format)
    app = Litestar(
        route_handlers=[
            HealthController,
            AuthController,
            SessionController,
            HandoffController,
            HandoffSearchController,
            EscalationPolicyController,
            NotificationController,
            EscalationStreamController,
            PsaConnectionController,
            ChatIntegrationController,
            UserController,
            TeamFiguresController,
            MetricsController,
            # The browser console: pages, and the static files they load.
            ConsoleController,
            static_files_router(),
            *extra_handlers,
        ],
        template_config=template_config(),
        # ErrorResponses: the schema documents the refusals each operation can answer (error_docs).
        # LOG_FORMAT=json: structlog's plugin (handoffs.logs).
        plugins=[SQLAlchemyPlugin(config=alchemy), ErrorResponses(), *logging_setup.plugins],
        on_app_init=[jwt_auth.on_app_init],
        # The process's format (LOG_FORMAT), at the level the CLI set (`handoffs -v`: DEBUG).
        logging_config=logging_setup.config,
        lifespan=[lifespan],
        dependencies={
            "settings": Provide(lambda: settings, sync_to_thread=False),
            "tokens": Provide(lambda: tokens, sync_to_thread=False),
            "relay": Provide(provide_relay, sync_to_thread=False),
            "hub": Provide(provide_hub, sync_to_thread=False),
            "runtime": Provide(provide_runtime, sync_to_thread=False),
            # The signed-in user, for every handler that asks for `user: CurrentUser`.
            "user": Provide(provide_user),
        },
        middleware=[
            csrf_middleware_for(settings.resolved_secret_key(), settings.public_url),
            prometheus_config().middleware,
        ],
        exception_handlers=exception_handlers,
        openapi_config=OpenAPIConfig(
            title="handoffs",
            version="1",
            description="Hand AI troubleshooting sessions between MSP helpdesk engineers.",
            path=SCHEMA_PATH,
            # Served from the app (no CDN): /schema works offline, under a strict CSP.
            render_plugins=[SwaggerUI()],
            openapi_router=api_docs_router(),
        ),
        cors_config=None if not settings.debug else CORSConfig(allow_origins=["*"]),
        debug=settings.debug,
    )
    # Around everything, routing and the app's exception handler included: X-Request-ID on every
    # response, and the id, method, path and user on every line logged while serving it.
    install_request_id(app)
    return app
