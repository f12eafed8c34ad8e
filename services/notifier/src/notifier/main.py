"""The notifier app: its routes, its two consumers (user events, credential invalidations) and the delivery
worker, in one process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime

from fastapi import FastAPI

from common.dbtypes import utc_now
from common.resources import infrastructure_checks, open_resources
from common.web import HealthCheck, add_health_routes, serve
from common.web import create_app as create_base_app
from notifier.consumers import EventConsumer
from notifier.deliveries import DeliveryWorker
from notifier.endpoints import router
from notifier.models import SCHEMA
from notifier.senders import WebhookSender
from notifier.service import NotificationService
from notifier.settings import Settings

SERVICE_NAME = "notifier"


def _now() -> datetime:
    return utc_now()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The notifier: settings routes, deliveries from the `events` and `credentials` exchanges, retries."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from notifier.migrate import upgrade

        async with AsyncExitStack() as resources:
            opened = await open_resources(resources, settings, [SCHEMA], upgrade=upgrade, bus=True)
            opened.install(app.state)
            assert opened.bus is not None
            ring = settings.key_ring()
            webhooks = WebhookSender(
                settings.delivery_timeout_seconds, allow_private=settings.allows_private_targets
            )
            resources.push_async_callback(webhooks.close)
            worker = DeliveryWorker(
                opened.session_factory,
                ring,
                webhooks,
                max_attempts=settings.delivery_max_attempts,
                backoff=DeliveryWorker.backoff_for(
                    settings.delivery_retry_base_seconds, settings.delivery_retry_cap_seconds
                ),
                timeout=settings.delivery_timeout_seconds,
                poll=settings.delivery_poll_seconds,
                concurrency=settings.delivery_concurrency,
                clock=_now,
            )
            worker.start()
            resources.push_async_callback(worker.stop)
            consumer = EventConsumer(opened.session_factory, worker.wake, _now)
            for subscription in await consumer.subscribe(opened.bus):
                # Cancelled first on the way out: a message in flight is stored (or redelivered) before the rest closes.
                resources.push_async_callback(subscription.cancel)
            app.state.settings = settings
            app.state.delivery_worker = worker
            app.state.notification_service = NotificationService(
                opened.session_factory,
                ring,
                allow_private=settings.allows_private_targets,
                woken=worker.wake,
                clock=_now,
                route=consumer.route,
            )
            yield

    app = create_base_app(title="gridbot notifier", lifespan=lifespan, max_body_bytes=settings.max_body_bytes)
    app.include_router(router)

    def checks() -> Mapping[str, HealthCheck]:
        return infrastructure_checks(app.state.engine, app.state.cache, app.state.bus)

    add_health_routes(app, checks)
    return app


def run() -> None:
    """Start the notifier with uvicorn on settings.host:settings.port."""
    serve(create_app, Settings(), SERVICE_NAME)
