"""Notifier test fixtures: the app on PostgreSQL + Redis + RabbitMQ and on SQLite + memory://, users, and a
bus to publish the events the engine and the credentials service would."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aio_pika
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from common.bus import Bus, create_bus
from common.testing.service import Backend, User, backend_fixtures, user_factory
from notifier.consumers import CREDENTIAL_EVENTS_QUEUE, EVENTS_QUEUE
from notifier.main import create_app
from notifier.migrate import upgrade
from notifier.settings import Settings
from notifier.testing import make_settings

migrated_postgres, migrated_sqlite, backend = backend_fixtures(upgrade, "notifier")


@pytest.fixture
def settings(request: pytest.FixtureRequest, backend: Backend, namespace: str) -> Settings:
    """Settings of the app under test (a test overrides some with @pytest.mark.settings(...))."""
    marker = request.node.get_closest_marker("settings")
    return make_settings(backend, namespace, **(marker.kwargs if marker else {}))


def pytest_configure(config: pytest.Config) -> None:
    """Register this package's markers."""
    config.addinivalue_line("markers", "settings(**overrides): notifier settings for the test's app")


async def _delete_topology(url: str, namespace: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for queue in (EVENTS_QUEUE, CREDENTIAL_EVENTS_QUEUE):
            await channel.queue_delete(f"{namespace}.{queue}")
            await channel.queue_delete(f"{namespace}.{queue}.dlq")
        for exchange in ("events", "credentials", "dlx"):
            await channel.exchange_delete(f"{namespace}.{exchange}")
    finally:
        await connection.close()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The notifier with its lifespan running; its RabbitMQ topology is deleted afterwards."""
    application = create_app(settings)
    try:
        async with LifespanManager(application, startup_timeout=30, shutdown_timeout=20):
            yield application
    finally:
        url = settings.rabbitmq_url.get_secret_value()
        if url.startswith("amqp"):
            await _delete_topology(url, settings.bus_namespace)


@pytest.fixture
async def engine_bus(settings: Settings) -> AsyncIterator[Bus]:
    """A bus of its own publishing as the engine would, also while no notifier runs; the topology is deleted
    afterwards."""
    url = settings.rabbitmq_url.get_secret_value()
    bus = create_bus(url, settings.bus_namespace)
    try:
        async with bus:
            yield bus
    finally:
        if url.startswith("amqp"):
            await _delete_topology(url, settings.bus_namespace)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app, raise_app_exceptions=False), base_url="http://notifier"
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
