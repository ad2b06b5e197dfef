"""The application factory: one place that wires settings, database, Redis, auth and routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from advanced_alchemy.extensions.litestar import AsyncSessionConfig, SQLAlchemyAsyncConfig, SQLAlchemyPlugin
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.types import ControllerRouterHandler
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from redis.asyncio import Redis

from handoffs.accounts.controller import AuthController
from handoffs.auth import TokenIssuer, create_jwt_auth
from handoffs.config import Settings, get_settings
from handoffs.db import create_engine
from handoffs.errors import exception_handlers
from handoffs.handoffs.controller import HandoffController
from handoffs.health import HealthController
from handoffs.notifications.controller import NotificationController
from handoffs.sessions.controller import SessionController

log = logging.getLogger(__name__)


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
        redis = Redis.from_url(settings.redis, decode_responses=False)
        app.state.redis = redis
        app.state.db_engine_handle = engine
        try:
            yield
        finally:
            await redis.aclose()
            await engine.dispose()

    return Litestar(
        route_handlers=[
            HealthController,
            AuthController,
            SessionController,
            HandoffController,
            NotificationController,
            *extra_handlers,
        ],
        plugins=[SQLAlchemyPlugin(config=alchemy)],
        on_app_init=[jwt_auth.on_app_init],
        lifespan=[lifespan],
        dependencies={
            "settings": Provide(lambda: settings, sync_to_thread=False),
            "tokens": Provide(lambda: tokens, sync_to_thread=False),
        },
        exception_handlers=exception_handlers,
        openapi_config=OpenAPIConfig(
            title="handoffs",
            version="1",
            description="Hand AI troubleshooting sessions between MSP helpdesk engineers.",
            path="/schema",
            render_plugins=[ScalarRenderPlugin()],
        ),
        cors_config=None if not settings.debug else CORSConfig(allow_origins=["*"]),
        debug=settings.debug,
    )
