"""The auth service's FastAPI app: lifespan (engine, cache, tokens), routes, health checks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from auth.endpoints import router
from auth.models import SCHEMA
from auth.passwords import PasswordHasher
from auth.service import AuthService
from auth.settings import Settings
from common.resources import infrastructure_checks, open_resources
from common.web import HealthCheck, add_health_routes, serve
from common.web import create_app as create_base_app

SERVICE_NAME = "auth"
log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The auth app; resources are opened by its lifespan and closed when it ends."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from auth.migrate import upgrade

        async with AsyncExitStack() as stack:
            resources = await open_resources(stack, settings, [SCHEMA], upgrade=upgrade)
            resources.install(app.state)
            hasher = await PasswordHasher.create(settings.bcrypt_rounds)
            app.state.settings = settings
            app.state.auth_service = AuthService(resources.auth.tokens, resources.auth.revocations, hasher)
            yield

    app = create_base_app(title="gridbot auth", lifespan=lifespan, max_body_bytes=settings.max_body_bytes)
    app.include_router(router)

    def checks() -> Mapping[str, HealthCheck]:
        return infrastructure_checks(app.state.engine, app.state.cache, None)

    add_health_routes(app, checks)
    return app


def run() -> None:
    """Start the service with uvicorn on settings.host:settings.port."""
    serve(create_app, Settings(), SERVICE_NAME)
