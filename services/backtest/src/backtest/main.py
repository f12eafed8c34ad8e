"""The backtest service's two apps: the API (routes, outbox relay) and the worker (job consumer).

Both open the same resources; the worker's app serves only /health (and /health/ready) beside its consumer,
so a supervisor checks it like any service.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from backtest.candles import CandleStore
from backtest.endpoints import router
from backtest.models import OUTBOX, SCHEMA
from backtest.recommendations import Recommender
from backtest.runner import JobRunner
from backtest.service import BacktestService
from backtest.settings import Settings
from common.bus import QueueKind
from common.contracts import queues
from common.contracts.backtests import BACKTESTS_EXCHANGE, JOB_REQUESTED
from common.exchanges import ExchangeBudget, MarketCatalog
from common.outbox import OutboxRelay
from common.parking import park_hook
from common.resources import Resources, infrastructure_checks, open_resources
from common.web import HealthCheck, add_health_routes, serve
from common.web import create_app as create_base_app

SERVICE_NAME = "backtest"
JOBS_QUEUE = queues.BACKTEST_JOBS


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _open(
    resources: AsyncExitStack, settings: Settings, app: FastAPI
) -> tuple[Resources, MarketCatalog, OutboxRelay]:
    from backtest.migrate import upgrade

    opened = await open_resources(resources, settings, [SCHEMA], upgrade=upgrade, bus=True)
    opened.install(app.state)
    assert opened.bus is not None
    budget = ExchangeBudget.for_settings(opened.cache, settings)
    catalog = MarketCatalog(settings, settings.market_rules_ttl_seconds, budget, attempts=3)
    resources.push_async_callback(catalog.close)
    await catalog.start()
    relay = OutboxRelay(
        opened.session_factory, opened.bus, OUTBOX, poll_interval=settings.outbox_poll_seconds
    )
    await relay.start()
    resources.push_async_callback(relay.stop)
    app.state.settings = settings
    app.state.catalog = catalog
    app.state.relay = relay
    return opened, catalog, relay


def _health(app: FastAPI) -> None:
    def checks() -> Mapping[str, HealthCheck]:
        return infrastructure_checks(app.state.engine, app.state.cache, app.state.bus)

    add_health_routes(app, checks)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The backtest API: requests are validated and stored here, and their jobs queued through the outbox."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as resources:
            opened, catalog, relay = await _open(resources, settings, app)
            assert opened.bus is not None
            # The jobs' queue exists before the first job is queued, whether or not a worker ever ran yet.
            await opened.bus.declare(JOBS_QUEUE, BACKTESTS_EXCHANGE, [JOB_REQUESTED])
            store = CandleStore(opened.session_factory, catalog, _now_ms)
            app.state.backtest_service = BacktestService(
                session_factory=opened.session_factory,
                catalog=catalog,
                relay=relay,
                max_days=settings.max_days,
            )
            app.state.recommender = Recommender(catalog, store, settings.recommendations)
            yield

    app = create_base_app(title="gridbot backtest", lifespan=lifespan, max_body_bytes=settings.max_body_bytes)
    app.include_router(router)
    _health(app)
    return app


def create_worker_app(settings: Settings | None = None) -> FastAPI:
    """The backtest worker: consumes jobs (durable queue, acked after the job is settled) and runs them."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as resources:
            opened, catalog, relay = await _open(resources, settings, app)
            assert opened.bus is not None
            runner = JobRunner(
                session_factory=opened.session_factory,
                store=CandleStore(opened.session_factory, catalog, _now_ms),
                bus=opened.bus,
                relay=relay,
                worker_id=settings.worker_id,
                max_attempts=settings.max_attempts,
                progress_step=settings.progress_step_percent,
                fault=park_hook(settings),
            )
            subscription = await opened.bus.subscribe(
                JOBS_QUEUE,
                BACKTESTS_EXCHANGE,
                [JOB_REQUESTED],
                runner.handle,
                kind=QueueKind.DURABLE,
                prefetch=settings.worker_concurrency,
            )
            # Cancelled first on the way out: a job in flight finishes (or is redelivered) before the rest closes.
            resources.push_async_callback(subscription.cancel)
            app.state.runner = runner
            yield

    app = create_base_app(
        title="gridbot backtest worker",
        lifespan=lifespan,
        openapi_url=None,
        max_body_bytes=settings.max_body_bytes,
    )
    _health(app)
    return app


def run() -> None:
    """Start the API with uvicorn on settings.host:settings.port."""
    serve(create_app, Settings(), SERVICE_NAME)


def run_worker() -> None:
    """Start the worker (its /health on settings.host:settings.port)."""
    serve(create_worker_app, Settings(), f"{SERVICE_NAME}-worker")
