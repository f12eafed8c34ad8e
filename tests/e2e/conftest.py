"""Whole-system fixtures: the real processes (as `make dev` and `make run` start them), HTTP only."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.testing.infra import free_port, scratch_database
from launcher.dev import Stack
from launcher.testing import System, embedded
from launcher.topology import SERVICES

ROOT = Path(__file__).resolve().parents[2]
# The e2e client sits behind a "load balancer" on loopback so each test can be its own client IP.
TRUSTED = json.dumps(["127.0.0.1"])


@pytest.fixture(scope="session")
def dev_stack(
    postgres_admin_url: str, redis_url: str, rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Every service its own process over the real PostgreSQL, Redis and RabbitMQ, on a database of its own."""
    with scratch_database(postgres_admin_url) as database_url:
        yield from _dev_stack(database_url, redis_url, rabbitmq_url, tmp_path_factory)


def _dev_stack(
    database_url: str, redis_url: str, rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    # Its own database: the stack's engine claims every bot it finds, and must not meet other tests' bots.
    stack = Stack(
        database_url=database_url,
        redis_url=redis_url,
        rabbitmq_url=rabbitmq_url,
        ports={s.name: free_port() for s in SERVICES},
        log_dir=tmp_path_factory.mktemp("dev-logs"),
        cache_namespace=f"e2e{uuid.uuid4().hex[:8]}",
        # A fixed engine id: an engine restarted after a kill reclaims its own leases at once.
        extra_env={"gateway": {"TRUSTED_PROXIES": TRUSTED}, "engine": {"ENGINE_ID": "e2e-engine"}},
    )
    try:
        stack.migrate()
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def dev_system(dev_stack: Stack) -> System:
    """The dev topology's gateway and simulator."""
    return System(
        f"http://127.0.0.1:{dev_stack.ports['gateway']}",
        f"http://127.0.0.1:{dev_stack.ports['exchange-sim']}",
    )


@pytest.fixture(scope="session")
def embedded_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """`make run`'s one process on a scratch SQLite file."""
    with embedded(tmp_path_factory.mktemp("embedded"), ROOT, TRUSTED_PROXIES=TRUSTED) as system:
        yield system


@pytest.fixture(params=["embedded", "dev"])
def system(request: pytest.FixtureRequest) -> System:
    """The same tests against `make run` and `make dev`."""
    found = request.getfixturevalue(f"{request.param}_system")
    assert isinstance(found, System)
    return found


@pytest.fixture
def gateway_url(system: System) -> str:
    """The gateway's base URL of the system under test."""
    return system.gateway


@pytest.fixture
def client_ip() -> str:
    """A client address of its own per test (sent as X-Forwarded-For through the trusted proxy)."""
    n = uuid.uuid4().int
    return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}"
