"""Backtest test fixtures: the simulator, the API and the worker on PostgreSQL + Redis + RabbitMQ and on
SQLite + memory://, and users."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aio_pika
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from backtest.main import JOBS_QUEUE, create_app, create_worker_app
from backtest.migrate import upgrade
from backtest.settings import Settings
from backtest.testing import make_settings
from common.testing.service import Backend, User, backend_fixtures, user_factory
from exchange_sim import SimServer
from exchange_sim.testing import sim_fixtures

# The tests import their helpers by module name (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).resolve().parent))

sim, sim_http = sim_fixtures(fault_timeout_seconds=3)
migrated_postgres, migrated_sqlite, backend = backend_fixtures(upgrade, "backtest")


@pytest.fixture
def settings(request: pytest.FixtureRequest, backend: Backend, sim: SimServer, namespace: str) -> Settings:
    """Settings of the apps under test (a test overrides some with @pytest.mark.settings(...))."""
    marker = request.node.get_closest_marker("settings")
    return make_settings(backend, sim.url, namespace, **(marker.kwargs if marker else {}))


def pytest_configure(config: pytest.Config) -> None:
    """Register this package's markers."""
    config.addinivalue_line("markers", "settings(**overrides): backtest settings for the test's apps")


async def _delete_topology(url: str, namespace: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for queue in (JOBS_QUEUE, "test.sink"):
            await channel.queue_delete(f"{namespace}.{queue}")
            await channel.queue_delete(f"{namespace}.{queue}.dlq")
        for exchange in ("backtests", "events", "dlx"):
            await channel.exchange_delete(f"{namespace}.{exchange}")
    finally:
        await connection.close()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The backtest API with its lifespan running; its RabbitMQ topology is deleted afterwards."""
    application = create_app(settings)
    try:
        async with LifespanManager(application, startup_timeout=30, shutdown_timeout=20):
            yield application
    finally:
        url = settings.rabbitmq_url.get_secret_value()
        if url.startswith("amqp"):
            await _delete_topology(url, settings.bus_namespace)


@pytest.fixture
async def worker(app: FastAPI, settings: Settings) -> AsyncIterator[FastAPI]:
    """A backtest worker beside the API, on the same database and bus."""
    application = create_worker_app(settings)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=20):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the API in-process."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app, raise_app_exceptions=False), base_url="http://backtest"
    ) as c:
        yield c


@pytest.fixture
def new_user(settings: Settings) -> Callable[[], User]:
    """A fresh user id with an access token the apps accept."""
    return user_factory(settings)


@pytest.fixture
def user(new_user: Callable[[], User]) -> User:
    """The test's main user."""
    return new_user()
