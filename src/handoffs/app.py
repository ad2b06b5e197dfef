"""The application factory: one place that wires settings, database, Redis, auth and routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from advanced_alchemy.extensions.litestar import AsyncSessionConfig, SQLAlchemyAsyncConfig, SQLAlchemyPlugin
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.logging.config import LoggingConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.types import ControllerRouterHandler

from handoffs.accounts.controller import AuthController, UserController
from handoffs.auth import TokenIssuer, create_jwt_auth
from handoffs.config import Settings, get_settings
from handoffs.csrf import csrf_middleware
from handoffs.db import create_engine, create_sessionmaker
from handoffs.errors import exception_handlers
from handoffs.events import EventBus
from handoffs.handoffs.controller import HandoffController
from handoffs.health import HealthController
from handoffs.jobs.queue import create_arq_pool
from handoffs.logs import LOG_FORMAT
from handoffs.notifications.controller import NotificationController
from handoffs.psa.controller import PsaConnectionController
from handoffs.relay import ArqJobQueue, OutboxRelay
from handoffs.sessions.controller import SessionController
from handoffs.stream.controller import EscalationStreamController
from handoffs.stream.hub import EventHub
from handoffs.web import static_files_router, template_config
from handoffs.web.api_docs import SCHEMA_PATH, SwaggerUI, api_docs_router
from handoffs.web.controller import ConsoleController

log = logging.getLogger(__name__)


def provide_relay(state: State) -> OutboxRelay:
    relay: OutboxRelay = state.relay
    return relay


def provide_hub(state: State) -> EventHub:
    hub: EventHub = state.hub
    return hub


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
    jwt_auth = create_jwt_auth(settings, alchemy)
    tokens = TokenIssuer(jwt_auth)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # One Redis pool per process serves jobs (arq), events and health.
        redis = await create_arq_pool(settings)
        bus = EventBus(redis)
        # The relay's own small pool, without pre-ping: one flusher runs at a
        # time, and a batch that meets a dropped connection stays pending for
        # the sweep, which is cheaper than three round trips per batch.
        relay_engine = create_engine(settings, pre_ping=False, pool_size=2, max_overflow=2)
        relay = OutboxRelay(
            create_sessionmaker(relay_engine), bus, ArqJobQueue(redis), fast_path=settings.outbox_fast_path
        )
        app.state.update(redis=redis, engine=engine, bus=bus, relay=relay)
        # The replica's one Redis subscription for every live-stream client.
        hub = EventHub(
            settings.redis,
            bus,
            queue_size=settings.sse_client_queue,
            keepalive_seconds=settings.sse_keepalive_seconds,
            gc_gen0_threshold=settings.sse_gc_gen0_threshold,
        )
        await hub.start()
        app.state.hub = hub
        try:
            yield
        finally:
            await hub.stop()
            await relay.drain()
            await redis.aclose()
            await relay_engine.dispose()
            await engine.dispose()

    return Litestar(
        route_handlers=[
            HealthController,
            AuthController,
            SessionController,
            HandoffController,
            NotificationController,
            EscalationStreamController,
            PsaConnectionController,
            UserController,
            # The browser console: pages, and the static files they load.
            ConsoleController,
            static_files_router(),
            *extra_handlers,
        ],
        template_config=template_config(),
        plugins=[SQLAlchemyPlugin(config=alchemy)],
        on_app_init=[jwt_auth.on_app_init],
        # One line format for the process; unhandled errors are logged by handoffs.errors.
        logging_config=LoggingConfig(formatters={"standard": {"format": LOG_FORMAT}}, log_exceptions="never"),
        lifespan=[lifespan],
        dependencies={
            "settings": Provide(lambda: settings, sync_to_thread=False),
            "tokens": Provide(lambda: tokens, sync_to_thread=False),
            "relay": Provide(provide_relay, sync_to_thread=False),
            "hub": Provide(provide_hub, sync_to_thread=False),
        },
        middleware=[csrf_middleware],
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
