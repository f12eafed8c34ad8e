"""Transactional outbox: bus messages written in the same transaction as the change they announce.

A service adds an outbox table to its schema (`outbox_table(Base.metadata, name)`), calls `enqueue()`
inside the transaction that makes the change, and runs one `OutboxRelay` that publishes committed rows in
order (publisher confirms) and marks them published. The caller nudges the relay after a commit; the relay
also polls, so a message enqueued by a process that died before nudging still leaves.

Delivery is at least once: a crash (or a failed mark) after the broker confirmed a message but before
its row was marked publishes it again with the same `message_id`. Consumers deduplicate by message id
(e.g. an inbox table with a unique message_id written in their own transaction).

Several replicas may run relays on one table: on PostgreSQL a transaction-scoped advisory lock lets one
relay publish at a time, which keeps the order and avoids needless duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    cast,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common import metrics, tracing
from common.bus import Bus
from common.context import request_id_var
from common.contracts.envelope import new_message_id, payload_to_dict
from common.dbtypes import UtcDateTime, utc_now
from common.errortracking import background_task

log = logging.getLogger(__name__)

_PENDING_KEY = "common.outbox.pending"


def outbox_table(metadata: MetaData, name: str = "outbox") -> Table:
    """The outbox table in `metadata`'s schema.

    On SQLite (the embedded mode) every service shares one namespace, so give each service's table its
    own name (e.g. "credentials_outbox").
    """
    table = Table(
        name,
        metadata,
        Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
        Column("message_id", String(64), nullable=False, unique=True),
        Column("exchange", String(255), nullable=False),
        Column("routing_key", String(255), nullable=False),
        Column("payload", JSON(), nullable=False),
        Column("request_id", String(255), nullable=True),
        # The W3C traceparent of the span that enqueued the message: its publication continues that trace.
        Column("traceparent", String(255), nullable=True),
        Column("created_at", UtcDateTime(), nullable=False, default=utc_now),
        Column("published_at", UtcDateTime(), nullable=True),
    )
    # The relay only ever scans unpublished rows in id order: a partial index keeps that scan small
    # however many published rows are kept.
    Index(
        f"ix_{name}_unpublished",
        table.c.id,
        postgresql_where=table.c.published_at.is_(None),
        sqlite_where=table.c.published_at.is_(None),
    )
    return table


async def enqueue(
    session: AsyncSession,
    table: Table,
    exchange: str,
    routing_key: str,
    payload: BaseModel | dict[str, Any],
    *,
    message_id: str | None = None,
    request_id: str | None = None,
) -> str:
    """Add a message to the outbox in the session's transaction (flushed, not committed); its message id."""
    mid = message_id or new_message_id()
    await session.execute(
        table.insert().values(
            message_id=mid,
            exchange=exchange,
            routing_key=routing_key,
            payload=payload_to_dict(payload),
            request_id=request_id if request_id is not None else request_id_var.get(),
            traceparent=tracing.current_traceparent(),
            created_at=utc_now(),
        )
    )
    session.info[_PENDING_KEY] = True
    return mid


def take_pending(session: AsyncSession) -> bool:
    """True (once) when the session enqueued messages: call after commit to decide whether to nudge."""
    return bool(session.info.pop(_PENDING_KEY, False))


def _lock_key(table: Table) -> int:
    digest = hashlib.blake2b(f"outbox:{table.fullname}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class OutboxRelay:
    """Publishes committed outbox rows in id order and marks them published; nudged after commits."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        bus: Bus,
        table: Table,
        *,
        poll_interval: float = 5.0,
        batch_size: int = 100,
        retention: timedelta = timedelta(days=7),
        purge_interval: float = 3600.0,
    ) -> None:
        if poll_interval <= 0 or batch_size < 1:
            raise ValueError("poll_interval must be > 0 and batch_size >= 1")
        self._factory = session_factory
        self._bus = bus
        self._table = table
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._retention = retention
        self._purge_interval = purge_interval
        self._last_purge = time.monotonic()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._lock = asyncio.Lock()
        self.published = 0
        """Messages this relay published since it was created (metrics, tests)."""
        self._published_total = metrics.OUTBOX_PUBLISHED.labels(table.name)
        self._failures = metrics.OUTBOX_FAILURES.labels(table.name)
        self._backlog = metrics.OUTBOX_BACKLOG.labels(table.name)
        self._last_measure = float("-inf")

    def nudge(self) -> None:
        """Wake the relay now (call after committing a transaction that enqueued messages)."""
        self._wake.set()

    async def start(self) -> None:
        """Run the relay loop in the background (publishes whatever is pending at once)."""
        if self._task is None:
            self._stopping = False
            self._wake.set()
            self._task = background_task(self._run(), name=f"outbox-relay:{self._table.fullname}")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop the loop once its current batch is done (cancelled after `grace` seconds)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        # A batch cut short between publishing and its commit would only be published again (same
        # message ids); letting it finish avoids those duplicates on every ordinary shutdown.
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def relay_once(self) -> int:
        """Publish up to one batch of pending rows; the number published (stops at the first failure)."""
        async with self._lock:
            return await self._relay_batch()

    async def drain(self) -> int:
        """Publish until nothing is pending (or a publication fails); the number published."""
        total = 0
        while True:
            count = await self.relay_once()
            total += count
            if count < self._batch_size:
                return total

    async def pending(self) -> int:
        """How many rows are not yet published."""
        async with self._factory() as session:
            query = select(func.count()).select_from(self._table).where(self._table.c.published_at.is_(None))
            return int(await session.scalar(query) or 0)

    async def purge_published(self, older_than: timedelta) -> int:
        """Delete rows published more than `older_than` ago; the number deleted."""
        cutoff = utc_now() - older_than
        table = self._table
        async with self._factory() as session, session.begin():
            result = await session.execute(
                delete(table).where(table.c.published_at.is_not(None), table.c.published_at < cutoff)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            if self._stopping:
                return
            self._wake.clear()
            try:
                await self.drain()
                await self._measure()
                if time.monotonic() - self._last_purge >= self._purge_interval:
                    self._last_purge = time.monotonic()
                    await self.purge_published(self._retention)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Database trouble: the next poll tries again; the rows wait safely in the table.
                log.warning("outbox relay of %s failed: %s", self._table.fullname, type(exc).__name__)

    async def _measure(self) -> None:
        """Set the backlog gauge, at most once per poll interval (a count per nudge would add a query per
        commit)."""
        now = time.monotonic()
        if now - self._last_measure >= self._poll_interval:
            self._last_measure = now
            self._backlog.set(await self.pending())

    async def _pending_batch(self, session: AsyncSession) -> Sequence[Row[Any]]:
        """The next batch of unpublished rows in id order, under the table's advisory lock (PostgreSQL);
        none while another relay holds it."""
        table = self._table
        if session.get_bind().dialect.name == "postgresql":
            locked = await session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _lock_key(table)}
            )
            if not locked:
                return ()  # another replica's relay is publishing this table right now
        # The payload is read as the text it was stored as and published as is: decoding it only to encode it
        # again tripled the cost of a row's envelope (16.6 against 5.5 us for a fill's user events).
        query = (
            select(
                table.c.id,
                table.c.message_id,
                table.c.exchange,
                table.c.routing_key,
                cast(table.c.payload, Text).label("payload"),
                table.c.request_id,
                table.c.traceparent,
            )
            .where(table.c.published_at.is_(None))
            .order_by(table.c.id)
            .limit(self._batch_size)
        )
        return (await session.execute(query)).all()

    async def _publish(self, row: Row[Any]) -> None:
        """Publish one row as the message it holds (raises when the broker does not confirm it)."""
        await self._bus.publish_encoded(
            row.exchange,
            row.routing_key,
            row.payload,
            message_id=row.message_id,
            request_id=row.request_id,
            traceparent=row.traceparent,
        )

    def _failed(self, row: Row[Any], exc: BaseException) -> None:
        self._failures.inc()
        log.warning(
            "outbox publication of %s (%s) failed: %s", row.message_id, row.routing_key, type(exc).__name__
        )

    def _settled(self, count: int) -> int:
        """Count `count` rows published (and marked or removed); returns it."""
        self.published += count
        self._published_total.inc(count)
        return count

    async def _relay_batch(self) -> int:
        table = self._table
        published = 0
        async with self._factory() as session, session.begin():
            for row in await self._pending_batch(session):
                try:
                    await self._publish(row)
                except Exception as exc:
                    # Stop here so that order holds; the marks of what did go out are committed below.
                    self._failed(row, exc)
                    break
                await session.execute(
                    update(table).where(table.c.id == row.id).values(published_at=utc_now())
                )
                published += 1
        return self._settled(published)
