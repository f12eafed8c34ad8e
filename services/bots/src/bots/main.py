"""The bots service's FastAPI app: lifespan (database, cache, bus, relay, consumers), routes, health checks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI

from bots.confirmations import StopConfirmations
from bots.consumers import CredentialEventConsumer
from bots.credentials_client import CredentialsClient
from bots.endpoints import router
from bots.internal import admin_router as internal_admin_router
from bots.internal import router as internal_router
from bots.queries import BotQueries
from bots.service import BotService
from bots.settings import Settings
from bots.signal_routes import public_router as signal_public_router
from bots.signal_routes import router as signal_router
from bots.signals import SignalService
from common.errortracking import background_task
from common.exchanges import ExchangeBudget, MarketCatalog
from common.outbox import OutboxRelay
from common.resources import infrastructure_checks, open_resources
from common.web import HealthCheck, add_health_routes, serve
from common.web import create_app as create_base_app
from trading.models import OUTBOX, SCHEMA

SERVICE_NAME = "bots"
log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, *, credentials_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The bots app; resources are opened by its lifespan and closed when it ends.

    `credentials_transport` replaces the network under the credentials client (tests serve the
    credentials contract in-process with it).
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from trading.migrate import upgrade

        async with AsyncExitStack() as resources:
            opened = await open_resources(resources, settings, [SCHEMA], upgrade=upgrade, bus=True)
            opened.install(app.state)
            factory, cache, bus = opened.session_factory, opened.cache, opened.bus
            assert bus is not None
            budget = ExchangeBudget.for_settings(cache, settings)
            # Two tries within the exchange timeout: a request answers soon even when the exchange is slow.
            catalog = MarketCatalog(settings, settings.market_rules_ttl_seconds, budget, attempts=2)
            resources.push_async_callback(catalog.close)
            await catalog.start()
            credentials = CredentialsClient(
                settings.credentials_url,
                settings.internal_balance_token.get_secret_value(),
                settings.credentials_timeout_seconds,
                transport=credentials_transport,
            )
            resources.push_async_callback(credentials.close)
            relay = OutboxRelay(factory, bus, OUTBOX, poll_interval=settings.outbox_poll_seconds)
            confirmations = StopConfirmations(bus, factory)
            await confirmations.start()
            resources.push_async_callback(confirmations.stop)
            service = BotService(
                session_factory=factory,
                catalog=catalog,
                cache=cache,
                credentials=credentials,
                relay=relay,
                confirmations=confirmations,
                default_mode=settings.default_bot_mode,
                stop_timeout=settings.stop_confirm_timeout_seconds,
            )
            consumer = CredentialEventConsumer(factory, service)
            subscription = await consumer.subscribe(bus)
            resources.push_async_callback(subscription.cancel)
            await relay.start()
            resources.push_async_callback(relay.stop)
            sweeper = background_task(
                service.run_sweeper(max(5.0, settings.stop_confirm_timeout_seconds)), name="bots-stop-sweeper"
            )
            resources.push_async_callback(_cancel, sweeper)
            app.state.settings = settings
            app.state.relay = relay
            app.state.confirmations = confirmations
            app.state.catalog = catalog
            app.state.bot_service = service
            app.state.credential_consumer = consumer
            app.state.signal_service = SignalService(
                session_factory=factory,
                bots=service,
                cache=cache,
                revocations=opened.auth.revocations,
                public_api_url=settings.public_api_url,
                per_minute=settings.signal_rate_limit_per_minute,
            )
            # Reads need no transaction (READ COMMITTED gave each statement its own snapshot anyway): no BEGIN
            # and ROLLBACK round trips, and no connection left idle in a transaction while the loop is busy.
            app.state.bot_queries = BotQueries(
                engine=opened.engine.execution_options(isolation_level="AUTOCOMMIT"),
                catalog=catalog,
                cache=cache,
            )
            yield

    app = create_base_app(title="gridbot bots", lifespan=lifespan, max_body_bytes=settings.max_body_bytes)
    app.include_router(router)
    app.include_router(signal_router)
    app.include_router(signal_public_router)
    app.include_router(internal_router)
    app.include_router(internal_admin_router)

    def checks() -> Mapping[str, HealthCheck]:
        return infrastructure_checks(app.state.engine, app.state.cache, app.state.bus)

    add_health_routes(app, checks)
    return app


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def run() -> None:
    """Start the service with uvicorn on settings.host:settings.port."""
    serve(create_app, Settings(), SERVICE_NAME)
