"""The engine's FastAPI app: its lifespan runs the engine runtime; /health and /health/ready only."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from common.resources import infrastructure_checks
from common.web import HealthCheck, add_health_routes, serve
from common.web import create_app as create_base_app
from engine.runtime import EngineRuntime
from engine.settings import Settings

SERVICE_NAME = "engine"
log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, *, credentials_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The engine app; the runtime starts with its lifespan (no migrations: the bots schema is the bots service's)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = EngineRuntime(settings, credentials_transport=credentials_transport)
        app.state.settings = settings
        app.state.runtime = runtime
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = create_base_app(title="gridbot engine", lifespan=lifespan, max_body_bytes=settings.max_body_bytes)

    def checks() -> Mapping[str, HealthCheck]:
        runtime: EngineRuntime = app.state.runtime

        async def engine() -> bool:
            return runtime.started

        return {**infrastructure_checks(runtime.db, runtime.cache, runtime.bus), "engine": engine}

    add_health_routes(app, checks)
    return app


def run() -> None:
    """Start the service with uvicorn on settings.host:settings.port."""
    serve(create_app, Settings(), SERVICE_NAME)
