"""The credentials service's FastAPI app: lifespan (engine, cache, bus, outbox relay, re-validation), routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, Request
from starlette.responses import Response

from common.collector import FreezeAfterStartup
from common.crypto import DecryptionError
from common.errors import ErrorCode
from common.exchanges import ExchangeBudget
from common.logging import configure_logging
from common.outbox import OutboxRelay
from common.resources import infrastructure_checks, open_resources
from common.web import HealthCheck, add_health_routes, configure_observability, error_response
from common.web import create_app as create_base_app
from credentials import endpoints, internal
from credentials.models import OUTBOX, SCHEMA
from credentials.revalidate import Revalidator
from credentials.service import CredentialService
from credentials.settings import Settings, load_settings
from credentials.validation import ExchangeValidator
from credentials.vault import CredentialVault

SERVICE_NAME = "credentials"
log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The credentials app; resources are opened by its lifespan and closed when it ends."""
    settings = settings or load_settings()
    # Built now, not in the lifespan: a malformed key refuses to create the app at all.
    vault = CredentialVault(settings.key_ring())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from credentials.migrate import upgrade

        async with AsyncExitStack() as resources:
            opened = await open_resources(resources, settings, [SCHEMA], upgrade=upgrade, bus=True)
            opened.install(app.state)
            session_factory, bus = opened.session_factory, opened.bus
            assert bus is not None
            validator = ExchangeValidator(settings, ExchangeBudget.for_settings(opened.cache, settings))
            app.state.validator = validator
            # Importing ccxt takes seconds: paid here, not by the first request (on the event loop).
            await validator.warm_up()
            relay = OutboxRelay(session_factory, bus, OUTBOX, poll_interval=settings.outbox_poll_seconds)
            revalidator = Revalidator(
                session_factory,
                vault,
                validator,
                relay,
                interval=timedelta(seconds=settings.revalidate_interval_seconds),
                concurrency=settings.revalidate_concurrency,
                batch_size=settings.revalidate_batch_size,
            )
            app.state.settings = settings
            app.state.vault = vault
            app.state.credential_service = CredentialService(vault, validator, settings.egress_ip)
            app.state.relay = relay
            app.state.revalidator = revalidator
            await relay.start()
            resources.push_async_callback(relay.stop)
            await revalidator.start()
            resources.push_async_callback(revalidator.stop)
            yield

    app = create_base_app(
        title="gridbot credentials", lifespan=lifespan, max_body_bytes=settings.max_body_bytes
    )
    app.include_router(endpoints.router)
    app.include_router(internal.router)

    async def on_undecryptable(request: Request, exc: Exception) -> Response:
        # A stored ciphertext that does not open for its row: tampering, a row copied from elsewhere, or a
        # key version missing from the ring. An operator must look; the client learns nothing more.
        log.error("a stored credential cannot be decrypted (%s)", request.url.path.split("/")[-1])
        return error_response(ErrorCode.INTERNAL_SERVER_ERROR)

    app.add_exception_handler(DecryptionError, on_undecryptable)

    def checks() -> Mapping[str, HealthCheck]:
        return infrastructure_checks(app.state.engine, app.state.cache, app.state.bus)

    add_health_routes(app, checks)
    return app


def run(settings: Settings | None = None) -> None:
    """Start the service with uvicorn on settings.host:settings.port."""
    import uvicorn

    settings = settings or load_settings()
    configure_logging(SERVICE_NAME, settings.log_level, settings.log_json)
    configure_observability(SERVICE_NAME, settings)
    uvicorn.run(
        FreezeAfterStartup(create_app(settings)),
        host=settings.host,
        port=settings.port,
        log_config=None,
        proxy_headers=True,
        server_header=False,
    )
