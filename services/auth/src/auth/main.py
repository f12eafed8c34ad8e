"""The auth service's FastAPI app: lifespan (engine, cache, tokens), routes, health checks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text

from auth.endpoints import router
from auth.models import SCHEMA
from auth.passwords import PasswordHasher
from auth.service import AuthService
from auth.settings import Settings
from common.db import create_engine, create_session_factory
from common.runtime import acquire_cache, release_cache
from common.security import AuthState, RevocationList, TokenService
from common.web import HealthCheck, add_health_routes, serve
from common.web import create_app as create_base_app

SERVICE_NAME = "auth"
log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The auth app; resources are opened by its lifespan and closed when it ends."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.database_url.get_secret_value()
        if settings.migrate_on_start:
            from auth.migrate import upgrade

            # Alembic runs its own event loop: keep it off ours.
            await asyncio.to_thread(upgrade, url)
        async with AsyncExitStack() as resources:
            engine = create_engine(url, schemas=[SCHEMA], pool_size=settings.database_pool_size)
            resources.push_async_callback(engine.dispose)
            cache = await acquire_cache(settings.redis_url.get_secret_value(), settings.cache_namespace)
            resources.push_async_callback(release_cache, cache)
            tokens = TokenService.from_settings(settings)
            revocations = RevocationList(cache)
            hasher = await PasswordHasher.create(settings.bcrypt_rounds)
            app.state.settings = settings
            app.state.engine = engine
            app.state.cache = cache
            app.state.session_factory = create_session_factory(engine)
            # Same pool, no BEGIN/COMMIT: GET /auth/me is one SELECT and nothing else.
            app.state.read_session_factory = create_session_factory(
                engine.execution_options(isolation_level="AUTOCOMMIT")
            )
            app.state.auth = AuthState(tokens, revocations)
            app.state.auth_service = AuthService(tokens, revocations, hasher)
            yield

    app = create_base_app(title="gridbot auth", lifespan=lifespan, max_body_bytes=settings.max_body_bytes)
    app.include_router(router)

    def checks() -> Mapping[str, HealthCheck]:
        async def database() -> bool:
            async with app.state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True

        async def cache() -> bool:
            alive: bool = await app.state.cache.ping()
            return alive

        return {"database": database, "cache": cache}

    add_health_routes(app, checks)
    return app


def run() -> None:
    """Start the service with uvicorn on settings.host:settings.port."""
    serve(create_app, Settings(), SERVICE_NAME)
