"""The transactional outbox on PostgreSQL and SQLite, relayed to RabbitMQ and to the in-process bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import MetaData, Table, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from common.bus import Bus, Envelope, InMemoryBus, PublishNotConfirmedError, RabbitBus
from common.db import create_engine, create_session_factory
from common.outbox import OutboxRelay, enqueue, outbox_table, take_pending
from common.testing.wait import eventually

EXCHANGE = "outbox-test"


class Thing(BaseModel):
    n: int


class Recorder:
    def __init__(self) -> None:
        self.received: list[Envelope] = []

    async def __call__(self, envelope: Envelope) -> None:
        self.received.append(envelope)

    @property
    def ids(self) -> list[str]:
        return [e.message_id for e in self.received]


class CrashAfterPublish(Bus):
    """A bus whose next `crashes` publications reach the broker and then 'crash' before returning."""

    def __init__(self, inner: Bus, crashes: int = 0, refusals: int = 0) -> None:
        super().__init__(inner.namespace)
        self.inner, self.crashes, self.refusals = inner, crashes, refusals

    async def _send(
        self, exchange: str, routing_key: str, envelope: Envelope, body: bytes, *, persistent: bool
    ) -> None:
        if self.refusals:
            self.refusals -= 1
            raise PublishNotConfirmedError("refused (test)")
        await self.inner._send(exchange, routing_key, envelope, body, persistent=persistent)
        if self.crashes:
            self.crashes -= 1
            raise ConnectionResetError("died after the broker confirmed (test)")

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> bool:
        return True

    async def subscribe(self, *args: Any, **kw: Any) -> Any:
        return await self.inner.subscribe(*args, **kw)

    async def declare(self, *args: Any, **kw: Any) -> None:
        await self.inner.declare(*args, **kw)

    async def dead_letters(self, queue: str) -> list[Envelope]:
        return []

    async def depths(self, queues: Any) -> Any:
        return await self.inner.depths(queues)


class Db:
    def __init__(self, engine: AsyncEngine, table: Table) -> None:
        self.engine, self.table = engine, table
        self.factory: async_sessionmaker[AsyncSession] = create_session_factory(engine)

    async def enqueue(self, *numbers: int, commit: bool = True) -> list[str]:
        async with self.factory() as session:
            ids = [await enqueue(session, self.table, EXCHANGE, f"thing.{n}", Thing(n=n)) for n in numbers]
            assert take_pending(session) is True and take_pending(session) is False
            await (session.commit() if commit else session.rollback())
        return ids

    async def published(self) -> list[bool]:
        async with self.factory() as session:
            rows = await session.execute(select(self.table.c.published_at).order_by(self.table.c.id))
            return [value is not None for value in rows.scalars()]


@pytest.fixture(params=["postgres", "sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL (resolved outside the event loop: the PostgreSQL fixture runs its own)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}"


@pytest.fixture
async def db(db_url: str, namespace: str) -> AsyncIterator[Db]:
    """An outbox table in a schema of its own."""
    schema = f"outbox_{namespace}"
    metadata = MetaData(schema=schema)
    table = outbox_table(metadata, "test_outbox")
    engine = create_engine(db_url, schemas=[schema], pool_size=8)
    postgres = engine.dialect.name == "postgresql"
    async with engine.begin() as conn:
        if postgres:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await conn.run_sync(metadata.create_all)
    yield Db(engine, table)
    if postgres:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    await engine.dispose()


@pytest.fixture(params=["memory", "rabbitmq"])
async def bus(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[InMemoryBus | RabbitBus]:
    if request.param == "memory":
        memory = InMemoryBus(namespace)
        await memory.start()
        yield memory
        await memory.close()
        return
    rabbit = RabbitBus(request.getfixturevalue("rabbitmq_url"), namespace)
    await rabbit.start()
    try:
        yield rabbit
    finally:
        await rabbit.delete_topology()
        await rabbit.close()


@pytest.fixture
async def recorder(bus: Bus) -> Recorder:
    sink = Recorder()
    await bus.subscribe("outbox-consumer", EXCHANGE, ["thing.*"], sink, prefetch=1)
    return sink


async def _received(recorder: Recorder, count: int) -> None:
    await eventually(
        lambda: len(recorder.received) >= count, timeout=10, message=f"{count} messages not seen"
    )


def _numbers(envelopes: Sequence[Envelope]) -> list[int]:
    return [e.payload_as(Thing).n for e in envelopes]


async def test_committed_messages_leave_in_order_once(db: Db, bus: Bus, recorder: Recorder) -> None:
    ids = await db.enqueue(1, 2, 3) + await db.enqueue(4)
    relay = OutboxRelay(db.factory, bus, db.table, batch_size=3)
    assert await relay.pending() == 4
    assert await relay.drain() == 4
    await _received(recorder, 4)
    assert recorder.ids == ids
    assert _numbers(recorder.received) == [1, 2, 3, 4]
    assert [e.type for e in recorder.received] == ["thing.1", "thing.2", "thing.3", "thing.4"]
    assert await db.published() == [True] * 4
    assert await relay.pending() == 0
    assert await relay.drain() == 0


async def test_rolled_back_messages_never_leave(db: Db, bus: Bus, recorder: Recorder) -> None:
    await db.enqueue(1, commit=False)
    relay = OutboxRelay(db.factory, bus, db.table)
    assert await relay.drain() == 0
    assert await relay.pending() == 0
    [kept] = await db.enqueue(2)
    assert await relay.drain() == 1
    await _received(recorder, 1)
    assert recorder.ids == [kept]


async def test_a_crash_between_publish_and_mark_republishes_the_same_id(
    db: Db, bus: Bus, recorder: Recorder
) -> None:
    first, second = await db.enqueue(1, 2)
    flaky = CrashAfterPublish(bus, crashes=1)
    relay = OutboxRelay(db.factory, flaky, db.table)
    # The broker got message 1, but the relay died before marking it: nothing is marked, and message 2
    # waits behind it (order holds).
    assert await relay.relay_once() == 0
    await _received(recorder, 1)
    assert recorder.ids == [first]
    assert await db.published() == [False, False]
    # The next pass sends message 1 again under the same id: consumers deduplicate by it.
    assert await relay.drain() == 2
    await _received(recorder, 3)
    assert recorder.ids == [first, first, second]
    assert await db.published() == [True, True]


async def test_a_refused_publication_keeps_the_row_and_the_order(
    db: Db, bus: Bus, recorder: Recorder
) -> None:
    first, second, third = await db.enqueue(1, 2, 3)
    flaky = CrashAfterPublish(bus)
    relay = OutboxRelay(db.factory, flaky, db.table)
    assert await relay.drain() == 3
    await db.enqueue(4)
    flaky.refusals = 1
    assert await relay.drain() == 0
    assert await relay.pending() == 1
    assert await relay.drain() == 1
    await _received(recorder, 4)
    assert _numbers(recorder.received) == [1, 2, 3, 4]
    assert recorder.ids[:3] == [first, second, third]


async def test_the_background_relay_is_nudged_and_also_polls(db: Db, bus: Bus, recorder: Recorder) -> None:
    nudged = OutboxRelay(db.factory, bus, db.table, poll_interval=3600)
    await nudged.start()
    try:
        [one] = await db.enqueue(1)
        nudged.nudge()
        await _received(recorder, 1)
    finally:
        await nudged.stop()
    polling = OutboxRelay(db.factory, bus, db.table, poll_interval=0.05)
    await polling.start()
    try:
        [two] = await db.enqueue(2)  # nobody nudges: a process that died right after its commit
        await _received(recorder, 2)
    finally:
        await polling.stop()
    assert recorder.ids == [one, two]


async def test_published_rows_are_purged_after_retention(db: Db, bus: Bus) -> None:
    await db.enqueue(1, 2)
    relay = OutboxRelay(db.factory, bus, db.table)
    await relay.drain()
    await db.enqueue(3)
    assert await relay.purge_published(timedelta(days=1)) == 0
    async with db.factory() as session, session.begin():
        # Back-date the publications: beyond the retention they go; unpublished rows always stay.
        await session.execute(
            update(db.table)
            .where(db.table.c.published_at.is_not(None))
            .values(published_at=datetime.now(UTC) - timedelta(days=2))
        )
    assert await relay.purge_published(timedelta(days=1)) == 2
    assert await relay.pending() == 1


# PostgreSQL only: replicas share a PostgreSQL database; SQLite is the one-process mode, with no replicas.
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_two_replicas_publish_each_message_once(db: Db, bus: Bus, recorder: Recorder) -> None:
    ids = await db.enqueue(*range(20))
    relays = [OutboxRelay(db.factory, bus, db.table, batch_size=5) for _ in range(2)]
    counts = await asyncio.gather(*(relay.drain() for relay in relays))
    # A relay that found the other publishing stops; whatever is left the next drain takes.
    rest = await relays[0].drain()
    assert sum(counts) + rest == 20
    await _received(recorder, 20)
    assert recorder.ids == ids


async def test_the_relay_exports_its_backlog_publications_and_failures(
    db: Db, bus: Bus, recorder: Recorder
) -> None:
    from common import metrics

    labels = {"table": db.table.name}

    def figure(name: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    published, failures = (
        figure("gridbot_outbox_published_total"),
        figure("gridbot_outbox_publish_failures_total"),
    )
    refusing = CrashAfterPublish(bus, refusals=1_000_000)
    blocked = OutboxRelay(db.factory, refusing, db.table, poll_interval=0.05)
    await db.enqueue(1, 2, 3)
    await blocked.start()
    try:
        # The broker refuses everything: the rows wait, and the gauge says how many.
        await eventually(lambda: figure("gridbot_outbox_backlog") == 3, timeout=10)
        assert figure("gridbot_outbox_publish_failures_total") > failures
    finally:
        await blocked.stop()
    relay = OutboxRelay(db.factory, bus, db.table, poll_interval=0.05)
    await relay.start()
    try:
        await _received(recorder, 3)
        await eventually(lambda: figure("gridbot_outbox_backlog") == 0, timeout=10)
    finally:
        await relay.stop()
    assert figure("gridbot_outbox_published_total") - published == 3
