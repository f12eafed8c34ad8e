"""Market-data test fixtures: the exchange simulator, the app on real Redis + RabbitMQ, a tick consumer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import httpx
import pytest
import redis.asyncio as redis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from common.bus import Bus, QueueKind, create_bus
from common.contracts.market import DISPLAY_ROUTING_PREFIX, MARKET_EXCHANGE
from common.security import TokenService, TokenType
from exchange_sim import SimServer
from exchange_sim.testing import sim_fixtures
from market_data.main import Runtime, create_app
from market_data.settings import Settings
from market_data.testing import PriceMover, TickSink, Wire, make_settings


def pytest_configure(config: pytest.Config) -> None:
    """Register this package's marker."""
    config.addinivalue_line("markers", "settings(**overrides): market-data settings for the test's app")


@pytest.fixture(scope="session")
def wire() -> Wire:
    """Access to shared/wire."""
    return Wire()


sim, _sim_client = sim_fixtures("_sim_client", ticker_interval_ms=0, fault_timeout_seconds=10)


@pytest.fixture
async def sim_http(_sim_client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator's control API; no fault outlives the test that set it."""
    yield _sim_client
    await _sim_client.delete("/_sim/faults")


@pytest.fixture
def settings(
    request: pytest.FixtureRequest, sim: SimServer, redis_url: str, rabbitmq_url: str, namespace: str
) -> Settings:
    """Settings on the real Redis and RabbitMQ (a test changes some with @pytest.mark.settings(...))."""
    overrides: dict[str, Any] = {}
    for marker in request.node.iter_markers("settings"):  # closest first: a test's own marker wins
        overrides = {**marker.kwargs, **overrides}
    redis = overrides.pop("redis_url", redis_url)
    rabbitmq = overrides.pop("rabbitmq_url", rabbitmq_url)
    return make_settings(sim.url, redis, rabbitmq, namespace, **overrides)


async def _delete_topology(rabbitmq_url: str, namespace: str) -> None:
    connection = await aio_pika.connect(rabbitmq_url)
    try:
        channel = await connection.channel()
        for queue in ("market-data.bot-lifecycle", "market-data.bot-lifecycle.dlq"):
            await channel.queue_delete(f"{namespace}.{queue}")
        for exchange in ("market", "bots", "dlx"):
            await channel.exchange_delete(f"{namespace}.{exchange}")
    finally:
        await connection.close()


@pytest.fixture
async def app(settings: Settings, rabbitmq_url: str) -> AsyncIterator[FastAPI]:
    """The market-data app with its lifespan running; its RabbitMQ topology is deleted afterwards."""
    application = create_app(settings)
    try:
        async with LifespanManager(application, startup_timeout=20, shutdown_timeout=20):
            yield application
    finally:
        if settings.rabbitmq_url.get_secret_value().startswith("amqp"):
            await _delete_topology(rabbitmq_url, settings.bus_namespace)
        if settings.redis_url.get_secret_value().startswith("redis"):
            await _delete_keys(settings.redis_url.get_secret_value(), settings.cache_namespace)


async def _delete_keys(redis_url: str, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(f"{namespace}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def runtime(app: FastAPI) -> Runtime:
    """The app's streams, conflator and registry."""
    value: Runtime = app.state.runtime
    return value


@pytest.fixture
def token(settings: Settings) -> str:
    """An access token the app accepts."""
    issued = TokenService.from_settings(settings).issue(
        TokenType.ACCESS, user_id="u-1", email="u1@example.com"
    )
    return issued.token


@pytest.fixture
async def client(app: FastAPI, token: str) -> AsyncIterator[httpx.AsyncClient]:
    """An authenticated client of the app (in-process)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app),
        base_url="http://market-data",
        headers={"Authorization": f"Bearer {token}"},
    ) as c:
        yield c


@pytest.fixture
async def consumer_bus(settings: Settings) -> AsyncIterator[Bus]:
    """A bus client of the test itself, in the app's namespace."""
    bus = create_bus(settings.rabbitmq_url.get_secret_value(), settings.bus_namespace)
    await bus.start()
    yield bus
    await bus.close()


@pytest.fixture
async def ticks(consumer_bus: Bus, app: FastAPI) -> TickSink:
    """Every price tick on the app's `market` exchange (a transient queue bound to price.#)."""
    sink = TickSink()
    await consumer_bus.subscribe(
        "test.ticks", MARKET_EXCHANGE, ["price.#"], sink.handle, kind=QueueKind.TRANSIENT
    )
    return sink


@pytest.fixture
async def display_ticks(consumer_bus: Bus, app: FastAPI) -> TickSink:
    """Every display tick on the app's `market` exchange (bound to display.price.#)."""
    sink = TickSink()
    await consumer_bus.subscribe(
        "test.display",
        MARKET_EXCHANGE,
        [f"{DISPLAY_ROUTING_PREFIX}.#"],
        sink.handle,
        kind=QueueKind.TRANSIENT,
    )
    return sink


@pytest.fixture
def set_price(sim_http: httpx.AsyncClient) -> PriceMover:
    """A trade at a price on the simulator (the market stays pinned there)."""

    async def move(exchange: str, symbol: str, price: str) -> None:
        response = await sim_http.put(f"/_sim/prices/{exchange}/{symbol}", json={"price": price})
        assert response.status_code == 200, response.text

    return move
