"""pytest fixtures giving real infrastructure URLs, isolated per run (loaded from the root conftest)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from common.testing.infra import (
    DEFAULT_POSTGRES,
    DEFAULT_RABBITMQ,
    DEFAULT_REDIS,
    scratch_database,
    server_url,
)
from common.testing.sweep import sweep_namespaces

# Every namespace this process handed out: its RabbitMQ names are deleted when the run ends.
_NAMESPACES: set[str] = set()


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A plain postgresql:// URL of a server we may create databases on."""
    with server_url("PostgreSQL", "TEST_POSTGRES_URL", DEFAULT_POSTGRES, 5432, "postgres:15") as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh database for this test process (postgresql+asyncpg://), dropped at the end."""
    with scratch_database(postgres_admin_url) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The real Redis; tests isolate themselves with a key namespace (see `namespace`)."""
    with server_url("Redis", "TEST_REDIS_URL", DEFAULT_REDIS, 6379, "redis:7") as url:
        yield url


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """The real RabbitMQ; tests isolate themselves with a name namespace (see `namespace`)."""
    with server_url("RabbitMQ", "TEST_RABBITMQ_URL", DEFAULT_RABBITMQ, 5672, "rabbitmq:3.13") as url:
        try:
            yield url
        finally:
            sweep_namespaces(url, _NAMESPACES)


@pytest.fixture
def namespace() -> str:
    """A prefix unique to one test, for Redis keys and RabbitMQ exchange/queue names."""
    name = f"t{uuid.uuid4().hex[:12]}"
    _NAMESPACES.add(name)
    return name


@pytest.fixture
def spans() -> Iterator[Any]:
    """Tracing on for one test (common.tracing), every finished span kept in an InMemorySpanExporter.

    Ask for it before the fixtures that build apps or engines: they are instrumented only while it is on.
    """
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from common import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    try:
        yield exporter
    finally:
        tracing.disable()
