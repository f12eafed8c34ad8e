"""Bots test fixtures: the simulator (market rules), the app on PostgreSQL + Redis + RabbitMQ and on SQLite +
memory://, the credentials contract in-process, the engine's part played by a fake, and users."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from bots.consumers import CREDENTIAL_EVENTS_QUEUE
from bots.main import create_app
from bots.settings import Settings
from bots.testing import BALANCE_TOKEN, Backend, CredentialsContract, FakeEngine, User, make_settings
from common.testing.service import backend_fixtures, user_factory
from exchange_sim import SimServer
from exchange_sim.testing import sim_fixtures
from trading.migrate import upgrade

SPEC_BOT: dict[str, Any] = {
    "exchange": "upbit",
    "ticker": "KRW-BTC",
    "lowerPrice": 50000000,
    "upperPrice": 70000000,
    "priceChangePercent": 2,
    "orderAmount": 10000,
    "stopAtMax": False,
    "autoStart": True,
    "mode": "paper",
}


def pytest_configure(config: pytest.Config) -> None:
    """Register this package's markers."""
    config.addinivalue_line("markers", "settings(**overrides): bots settings for the test's app")
    config.addinivalue_line("markers", "engine(confirm=bool): how the fake engine answers bot.stop")


sim, sim_http = sim_fixtures(fault_timeout_seconds=3)
migrated_postgres, migrated_sqlite, backend = backend_fixtures(upgrade, "bots")


@pytest.fixture
def settings(request: pytest.FixtureRequest, backend: Backend, sim: SimServer, namespace: str) -> Settings:
    """Settings of the app under test (a test overrides some with @pytest.mark.settings(...)).

    Tests whose subject is not the database run on PostgreSQL only:
    `pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)`.
    """
    marker = request.node.get_closest_marker("settings")
    return make_settings(backend, sim.url, namespace, **(marker.kwargs if marker else {}))


@pytest.fixture
def credentials() -> CredentialsContract:
    """The credentials service's internal API as the bots service relies on it (served in-process)."""
    return CredentialsContract(token=BALANCE_TOKEN)


async def _delete_topology(url: str, namespace: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for queue in (CREDENTIAL_EVENTS_QUEUE, FakeEngine.QUEUE, "test.sink"):
            await channel.queue_delete(f"{namespace}.{queue}")
            await channel.queue_delete(f"{namespace}.{queue}.dlq")
        for exchange in ("bots", "credentials", "dlx"):
            await channel.exchange_delete(f"{namespace}.{exchange}")
    finally:
        await connection.close()


@pytest.fixture
async def app(settings: Settings, credentials: CredentialsContract) -> AsyncIterator[FastAPI]:
    """The bots app with its lifespan running; its RabbitMQ topology is deleted afterwards."""
    application = create_app(settings, credentials_transport=credentials.transport())
    try:
        async with LifespanManager(application, startup_timeout=20, shutdown_timeout=20):
            yield application
    finally:
        url = settings.rabbitmq_url.get_secret_value()
        if url.startswith("amqp"):
            await _delete_topology(url, settings.bus_namespace)


@pytest.fixture
async def engine(request: pytest.FixtureRequest, app: FastAPI) -> AsyncIterator[FakeEngine]:
    """The engine's part: hears every command, confirms stops (unless marked engine(confirm=False))."""
    marker = request.node.get_closest_marker("engine")
    fake = FakeEngine(app.state.bus, app.state.session_factory, **(marker.kwargs if marker else {}))
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def client(app: FastAPI, engine: FakeEngine) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process (the fake engine is listening)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app, raise_app_exceptions=False), base_url="http://bots"
    ) as c:
        yield c


@pytest.fixture
def new_user(settings: Settings) -> Callable[[], User]:
    """A fresh user id with an access token the app accepts."""
    return user_factory(settings)


@pytest.fixture
def user(new_user: Callable[[], User]) -> User:
    """The test's main user."""
    return new_user()


@pytest.fixture
def create_bot(client: httpx.AsyncClient, user: User) -> Callable[..., Awaitable[dict[str, Any]]]:
    """POST /api/bots (the spec's example unless overridden); asserts 201 and returns `data`."""

    async def _create(owner: User | None = None, **overrides: Any) -> dict[str, Any]:
        body = {**SPEC_BOT, **overrides}
        response = await client.post("/api/bots", json=body, headers=(owner or user).auth)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    return _create


@pytest.fixture
def set_price(app: FastAPI) -> Callable[[str, str, str], Awaitable[None]]:
    """Write the market-data service's price cache entry for a ticker."""

    async def _set(exchange: str, ticker: str, price: str) -> None:
        await app.state.cache.hset(f"price:{exchange}:{ticker}", {"price": price})

    return _set
