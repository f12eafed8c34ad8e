"""Engine test fixtures: the bots schema on PostgreSQL, the simulator, a bus per test, the runtime."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.bus import QueueKind, RabbitBus
from common.contracts.events import EVENTS_EXCHANGE
from common.db import create_engine, create_session_factory
from common.testing.infra import scratch_database
from common.testing.wait import eventually
from engine.runtime import EngineRuntime
from engine.settings import Settings
from exchange_sim import SimServer, SimSettings
from trading.migrate import upgrade
from trading.models import SCHEMA, EngineReplica

# The tests import their helpers by module name (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_process import REPLICA_TTL_SECONDS, EngineSupervisor, engine_env, serving
from engine_support import BotFactory, CredentialsStub, EventSink, make_settings

ENGINE_QUEUES = ("test.events", "test.bots")
EXCHANGES = ("bots", "orders", "events", "market", "credentials", "dlx")


@pytest.fixture(scope="session")
def migrated_postgres(postgres_admin_url: str) -> Iterator[str]:
    """A database of the engine tests' own with the bots schema (trading.migrate).

    Not the process-wide test database: an engine drives every running bot it finds, and other packages'
    tests leave running bots there.
    """
    with scratch_database(postgres_admin_url) as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
async def db(migrated_postgres: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the test database, for the tests' own reads and writes."""
    engine = create_engine(migrated_postgres, schemas=[SCHEMA], pool_size=10)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
async def sim() -> AsyncIterator[SimServer]:
    """The exchange simulator, paused: prices move only through its control API."""
    server = SimServer(
        SimSettings(
            port=0, replay_speed=0, log_level="WARNING", fault_timeout_seconds=3, history_minutes=1440
        )
    )
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def sim_http(sim: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator's control API."""
    async with httpx.AsyncClient(base_url=sim.url, timeout=10) as client:
        yield client


@pytest.fixture
async def bots(db: async_sessionmaker[AsyncSession]) -> AsyncIterator[BotFactory]:
    """Bots created like the bots service creates them; out of later tests' way afterwards."""
    factory = BotFactory(db)
    yield factory
    await factory.cleanup()


async def _delete_topology(url: str, namespace: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for queue in ENGINE_QUEUES:
            await channel.queue_delete(f"{namespace}.{queue}")
            await channel.queue_delete(f"{namespace}.{queue}.dlq")
        for exchange in EXCHANGES:
            await channel.exchange_delete(f"{namespace}.{exchange}")
    finally:
        await connection.close()


@pytest.fixture
async def bus(rabbitmq_url: str, namespace: str) -> AsyncIterator[RabbitBus]:
    """The test's own connection to the bus (publishing commands and ticks, sinks); topology deleted after."""
    test_bus = RabbitBus(rabbitmq_url, namespace)
    await test_bus.start()
    yield test_bus
    await test_bus.close()
    await _delete_topology(rabbitmq_url, namespace)


@pytest.fixture
async def events(bus: RabbitBus) -> EventSink:
    """Every user event the engine publishes."""
    sink = EventSink()
    await bus.subscribe("test.events", EVENTS_EXCHANGE, ["user.#"], sink.handle, kind=QueueKind.DURABLE)
    return sink


@pytest.fixture
def credentials() -> CredentialsStub:
    """The credentials service's internal route, in-process."""
    return CredentialsStub()


@pytest.fixture
def settings_for(
    migrated_postgres: str, redis_url: str, rabbitmq_url: str, namespace: str, sim: SimServer
) -> Callable[..., Settings]:
    """Settings of an engine under test (overrides as keyword arguments)."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": migrated_postgres,
            "redis_url": redis_url,
            "rabbitmq_url": rabbitmq_url,
            **overrides,
        }
        return make_settings(
            values.pop("database_url"),
            values.pop("redis_url"),
            values.pop("rabbitmq_url"),
            namespace,
            sim.url,
            **values,
        )

    return build


RuntimeFactory = Callable[..., Awaitable[EngineRuntime]]


@pytest.fixture
async def engine_factory(
    settings_for: Callable[..., Settings],
    credentials: CredentialsStub,
    bots: BotFactory,  # set up first, so that its cleanup runs once no engine runs any more
) -> AsyncIterator[RuntimeFactory]:
    """Starts engine runtimes (stopped at the end of the test unless the test stopped them)."""
    started: list[EngineRuntime] = []

    async def start(**overrides: Any) -> EngineRuntime:
        runtime = EngineRuntime(settings_for(**overrides), credentials_transport=credentials.transport())
        await runtime.start()
        started.append(runtime)
        return runtime

    yield start
    for runtime in reversed(started):
        if runtime.started:
            await runtime.stop()


@pytest.fixture
async def engine(engine_factory: RuntimeFactory) -> EngineRuntime:
    """One running engine."""
    return await engine_factory()


@pytest.fixture
async def cluster(
    migrated_postgres: str,
    redis_url: str,
    rabbitmq_url: str,
    namespace: str,
    sim: SimServer,
    credentials: CredentialsStub,
    db: async_sessionmaker[AsyncSession],
    bots: BotFactory,  # set up first, so that its cleanup runs once no engine runs any more
    tmp_path: Path,
) -> AsyncIterator[Callable[[str], EngineSupervisor]]:
    """Supervisors of engine replicas by name (`cluster("engine-a")`), on the test's infrastructure."""
    supervisors: list[EngineSupervisor] = []
    async with serving(credentials.app()) as credentials_url:
        env = engine_env(
            database_url=migrated_postgres,
            redis_url=redis_url,
            rabbitmq_url=rabbitmq_url,
            namespace=namespace,
            sim_url=sim.url,
            credentials_url=credentials_url,
        )

        def replica(name: str) -> EngineSupervisor:
            supervisor = EngineSupervisor(env, tmp_path, replica=name)
            supervisors.append(supervisor)
            return supervisor

        try:
            yield replica
        finally:
            for supervisor in supervisors:
                with contextlib.suppress(ProcessLookupError):
                    await supervisor.close()
    # The last processes were killed holding partitions: later tests' engines find them claimable once their
    # heartbeats went stale, as a replica started after a crash would.
    await eventually(lambda: _no_live_replica(db), timeout=REPLICA_TTL_SECONDS + 10, interval=0.2)


@pytest.fixture
def supervisor(cluster: Callable[[str], EngineSupervisor]) -> EngineSupervisor:
    """One replica's engine processes on the test's infrastructure (see `cluster`)."""
    return cluster("engine-a")


async def _no_live_replica(db: async_sessionmaker[AsyncSession]) -> bool:
    async with db() as session:
        live = await session.scalar(
            select(func.count())
            .select_from(EngineReplica)
            .where(EngineReplica.heartbeat_at > func.now() - timedelta(seconds=REPLICA_TTL_SECONDS))
        )
    return live == 0
