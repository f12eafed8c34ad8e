"""Credentials test fixtures: the simulator, the app on PostgreSQL + Redis + RabbitMQ and on SQLite +
memory://, users, simulator keys, a consumer of credential events, and a log watch over every module."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aio_pika
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from common.bus import Bus
from common.contracts.credentials import CREDENTIALS_EXCHANGE
from common.testing.service import backend_fixtures, user_factory
from credentials.main import create_app
from credentials.migrate import upgrade
from credentials.settings import Settings
from credentials.testing import (
    BALANCE_TOKEN,
    ENCRYPTION_KEY_V1,
    ENCRYPTION_KEY_V2,
    JWT_SECRET,
    KEYS_TOKEN,
    Backend,
    EventSink,
    LogRecorder,
    SimKeys,
    User,
    make_settings,
)
from exchange_sim import SimServer
from exchange_sim.testing import sim_fixtures

EVENTS_QUEUE = "test.credential-events"

# Every key and secret the simulator minted in this process: no log line may ever contain one.
MINTED: set[str] = set()
FIXED_SECRETS = (ENCRYPTION_KEY_V1, ENCRYPTION_KEY_V2, KEYS_TOKEN, BALANCE_TOKEN, JWT_SECRET)


@pytest.fixture(scope="module", autouse=True)
def _no_secret_in_any_log() -> Iterator[LogRecorder]:
    """Capture every record of the module at DEBUG; fail the module if any contains a key or secret."""
    recorder = LogRecorder()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(recorder)
    root.setLevel(logging.DEBUG)
    try:
        yield recorder
    finally:
        root.removeHandler(recorder)
        root.setLevel(previous)
    leaks = recorder.leaks([*MINTED, *FIXED_SECRETS])
    assert not leaks, f"{len(leaks)} log line(s) contain a key or secret, e.g. {leaks[0][:300]!r}"


sim, sim_http = sim_fixtures(fault_timeout_seconds=3)
migrated_postgres, migrated_sqlite, backend = backend_fixtures(upgrade, "credentials")


@pytest.fixture(autouse=True)
async def _clear_faults(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if "sim_http" in request.fixturenames:
        client: httpx.AsyncClient = request.getfixturevalue("sim_http")
        await client.delete("/_sim/faults")


@pytest.fixture
def mint(sim_http: httpx.AsyncClient) -> Callable[..., Awaitable[SimKeys]]:
    """A new simulator account (1,000,000 KRW and 1,000 USDT by default) and its keys."""

    async def _mint(krw: str = "1000000", usdt: str = "1000") -> SimKeys:
        response = await sim_http.post("/_sim/accounts", json={"balances": {"KRW": krw, "USDT": usdt}})
        assert response.status_code == 201, response.text
        body = response.json()
        MINTED.update((body["apiKey"], body["secretKey"]))
        return SimKeys(body["apiKey"], body["secretKey"])

    return _mint


@pytest.fixture
def settings(request: pytest.FixtureRequest, backend: Backend, sim: SimServer, namespace: str) -> Settings:
    """Settings of the app under test (a test overrides some with @pytest.mark.settings(...))."""
    marker = request.node.get_closest_marker("settings")
    return make_settings(backend, sim.url, namespace, **(marker.kwargs if marker else {}))


def pytest_configure(config: pytest.Config) -> None:
    """Register this package's marker."""
    config.addinivalue_line("markers", "settings(**overrides): credentials settings for the test's app")


async def _delete_topology(url: str, namespace: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for queue in (EVENTS_QUEUE, f"{EVENTS_QUEUE}.dlq"):
            await channel.queue_delete(f"{namespace}.{queue}")
        for exchange in (CREDENTIALS_EXCHANGE, "dlx"):
            await channel.exchange_delete(f"{namespace}.{exchange}")
    finally:
        await connection.close()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The credentials app with its lifespan running; its RabbitMQ topology is deleted afterwards."""
    application = create_app(settings)
    try:
        async with LifespanManager(application, startup_timeout=20, shutdown_timeout=20):
            yield application
    finally:
        url = settings.rabbitmq_url.get_secret_value()
        if url.startswith("amqp"):
            await _delete_topology(url, settings.bus_namespace)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://credentials") as c:
        yield c


@pytest.fixture
def new_user(settings: Settings) -> Callable[[], User]:
    """A fresh user id with an access token the app accepts."""
    return user_factory(settings)


@pytest.fixture
async def events(app: FastAPI) -> EventSink:
    """Every message on the app's `credentials` exchange (a durable queue bound to credential.*)."""
    sink = EventSink()
    bus: Bus = app.state.bus
    await bus.subscribe(EVENTS_QUEUE, CREDENTIALS_EXCHANGE, ["credential.*"], sink.handle, prefetch=1)
    return sink


@pytest.fixture
def internal() -> dict[str, str]:
    """The Authorization header of the engine, the one caller of the keys route."""
    return {"Authorization": f"Bearer {KEYS_TOKEN}"}


@pytest.fixture
def balance_caller() -> dict[str, str]:
    """The Authorization header of the bots service, the one caller of the balance route."""
    return {"Authorization": f"Bearer {BALANCE_TOKEN}"}
