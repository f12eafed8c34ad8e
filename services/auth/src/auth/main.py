"""The auth service's FastAPI app: lifespan (engine, cache, tokens), routes, health checks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI

from auth.admin import AdminService, keep_disabled_marked, mark_disabled, promote_admins
from auth.endpoints import admin_router, router
from auth.models import SCHEMA
from auth.passwords import PasswordHasher
from auth.service import AuthService
from auth.settings import Settings
from common.errortracking import background_task
from common.resources import infrastructure_checks, open_resources
from common.web import HealthCheck, add_health_routes, serve
from common.web import create_app as create_base_app

SERVICE_NAME = "auth"
log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, *, bots_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The auth app; resources are opened by its lifespan and closed when it ends (`bots_transport`: an
    in-process bots service, in embedded mode)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from auth.migrate import upgrade

        async with AsyncExitStack() as stack:
            resources = await open_resources(stack, settings, [SCHEMA], upgrade=upgrade)
            resources.install(app.state)
            hasher = await PasswordHasher.create(settings.bcrypt_rounds)
            app.state.settings = settings
            revocations = resources.auth.revocations
            app.state.auth_service = AuthService(
                resources.auth.tokens, revocations, hasher, admin_emails=frozenset(settings.admin_emails)
            )
            bots = httpx.AsyncClient(
                base_url=settings.bots_url,
                transport=bots_transport,
                timeout=settings.bots_timeout_seconds,
                trust_env=False,
            )
            stack.push_async_callback(bots.aclose)
            sessions = app.state.session_factory
            app.state.admin_service = AdminService(sessions, revocations, bots)
            await promote_admins(sessions, settings.admin_emails)
            await mark_disabled(sessions, revocations)  # the cache may have lost them (a Redis restart)
            marking = background_task(
                keep_disabled_marked(sessions, revocations, settings.disabled_refresh_seconds),
                name="auth-disabled-marking",
            )
            stack.push_async_callback(_cancel, marking)
            yield

    app = create_base_app(title="gridbot auth", lifespan=lifespan, max_body_bytes=settings.max_body_bytes)
    app.include_router(router)
    app.include_router(admin_router)

    def checks() -> Mapping[str, HealthCheck]:
        return infrastructure_checks(app.state.engine, app.state.cache, None)

    add_health_routes(app, checks)
    return app


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def run() -> None:
    """Start the service with uvicorn on settings.host:settings.port."""
    serve(create_app, Settings(), SERVICE_NAME)
