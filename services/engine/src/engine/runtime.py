"""The engine process: database, bus, relay, shards, consumers, brokers and the startup reconciliation.

Start order matters for money: the bots this engine drives are loaded (and indexed) before any consumer
runs, the live broker reconciles their orders with the exchanges before new ticks can place more, and the
relay runs from the start so that fills written before a crash leave at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from common.bus import Bus, Handler, QueueKind, Subscription
from common.cache import Cache
from common.contracts.bots import BOTS_EXCHANGE
from common.contracts.credentials import CREDENTIALS_EXCHANGE
from common.contracts.market import MARKET_EXCHANGE, price_binding_key
from common.db import create_engine, create_session_factory, is_sqlite
from common.dbtypes import utc_now
from common.exchanges import Exchange, ExchangeBudget
from common.outbox import OutboxRelay
from common.runtime import acquire_bus, acquire_cache, release_bus, release_cache
from common.trading.models import OUTBOX, SCHEMA, InboxMessage
from engine import store
from engine.consumers import COMMAND_KEYS, COMMANDS_QUEUE, CommandConsumer, FillConsumer
from engine.contracts import FILLS_QUEUE, ORDER_FILLED, ORDERS_EXCHANGE, OrderFilledMessage
from engine.lease import Lease
from engine.live.broker import LiveBroker
from engine.live.keychange import CREDENTIAL_EVENT_KEYS, CREDENTIAL_EVENTS_QUEUE, CredentialEventConsumer
from engine.metrics import Metrics
from engine.prices import PriceSource
from engine.registry import Registry
from engine.relay import PipelinedRelay
from engine.settings import Settings
from engine.shard import Shard
from engine.ticks import TickRouter
from engine.work import StartWork

log = logging.getLogger(__name__)

INBOX_RETENTION = timedelta(days=7)
_HOUSEKEEPING_SECONDS = 3600.0
# Young generations as CPython's default (short passes); a full pass after 100 middle ones, not 10.
_GC_THRESHOLDS = (700, 10, 100)


class EngineRuntime:
    """Everything one engine process runs; `start()` then `stop()` (or `async with`)."""

    def __init__(
        self,
        settings: Settings,
        *,
        credentials_transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self._credentials_transport = credentials_transport
        self._clock = clock
        self.metrics = Metrics()
        self.registry = Registry()
        self.shards: list[Shard] = []
        self.db: AsyncEngine | None = None
        self.factory: async_sessionmaker[AsyncSession] | None = None
        self.bus: Bus | None = None
        self.cache: Cache | None = None
        self.relay: OutboxRelay | None = None
        self.live: LiveBroker | None = None
        self.ticks: TickRouter | None = None
        self.lease: Lease | None = None
        self._fenced_out = False
        self.fills: FillConsumer | None = None
        self._stack = AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []
        self.started = False

    def shard_for(self, bot_id: uuid.UUID) -> Shard:
        """The one shard that writes this bot."""
        return self.shards[bot_id.int % len(self.shards)]

    async def start(self) -> None:
        """Open resources, load the bots, reconcile live orders, then consume (all undone if a step fails)."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        settings, stack = self.settings, self._stack
        url = settings.database_url.get_secret_value()
        self.db = create_engine(url, schemas=[SCHEMA], pool_size=settings.database_pool_size)
        stack.push_async_callback(self.db.dispose)
        self.factory = factory = create_session_factory(self.db)
        self.cache = await acquire_cache(settings.redis_url.get_secret_value(), settings.cache_namespace)
        stack.push_async_callback(release_cache, self.cache)
        self.bus = bus = await acquire_bus(settings.rabbitmq_url.get_secret_value(), settings.bus_namespace)
        stack.push_async_callback(release_bus, bus)
        self.relay = relay = PipelinedRelay(
            factory, bus, OUTBOX, poll_interval=settings.outbox_poll_seconds, batch_size=500
        )
        await relay.start()
        stack.push_async_callback(relay.stop)
        self.fills = FillConsumer(self.shard_for, self.metrics)
        self.live = live = LiveBroker(
            settings,
            self.registry,
            self.shard_for,
            self.fills,
            self.metrics,
            ExchangeBudget.for_settings(self.cache, settings),
            credentials_transport=self._credentials_transport,
        )
        live.publish = self._publish_fill
        stack.push_async_callback(live.close)
        # SQLite has one writer at a time: more shards would only queue on its lock.
        count = 1 if is_sqlite(url) else settings.engine_shards
        self.shards = [
            Shard(
                n,
                factory,
                self.registry,
                self.metrics,
                batch_size=settings.engine_batch_size,
                owner=settings.engine_id,
                lease=timedelta(seconds=settings.lease_seconds),
                live=live,
                on_commit=relay.nudge,
                clock=self._clock,
            )
            for n in range(count)
        ]
        self.lease = Lease(factory, settings.engine_id, settings.lease_seconds, self._fenced)
        await self.lease.acquire()  # refuses to run beside another live engine
        self.lease.start()
        # Unwound after the shards stopped: the leases are given up once nothing writes any more.
        stack.push_async_callback(self._release_lease)
        stack.push_async_callback(self.lease.stop)
        began = time.monotonic()
        await self._load()
        loaded = time.monotonic()
        for shard in self.shards:
            await shard.start()
            stack.push_async_callback(shard.stop)
        await live.start()
        await live.reconcile_all()
        reconciled = time.monotonic()
        prices = PriceSource(self.cache, live.public_price)
        await self._resume_starts(prices)
        # The bots just loaded live as long as the process: take them out of the collector's full passes,
        # which otherwise walk every one of their objects (~0.6 s with the loop stalled at 10,000 bots),
        # and make full passes rarer (almost everything the engine allocates dies by reference count;
        # garbage held in a cycle waits longer for a full pass, not forever).
        gc.collect()
        gc.freeze()
        gc.set_threshold(*_GC_THRESHOLDS)
        commands = CommandConsumer(self.shard_for, prices.price)
        self.ticks = TickRouter(self.registry, self.shard_for, self.metrics, live)
        await self._subscribe(
            COMMANDS_QUEUE, BOTS_EXCHANGE, list(COMMAND_KEYS), commands.handle, QueueKind.DURABLE, 64
        )
        await self._subscribe(
            FILLS_QUEUE, ORDERS_EXCHANGE, [ORDER_FILLED], self.fills.handle, QueueKind.DURABLE, 256
        )
        # One at a time: a user's key change is applied whole (halt, cancels, drop) before the next one.
        keys = CredentialEventConsumer(factory, live, self.shard_for)
        await self._subscribe(
            CREDENTIAL_EVENTS_QUEUE,
            CREDENTIALS_EXCHANGE,
            list(CREDENTIAL_EVENT_KEYS),
            keys.handle,
            QueueKind.DURABLE,
            1,
        )
        await self._subscribe(
            f"engine.ticks.{settings.engine_id}.{uuid.uuid4().hex[:8]}",
            MARKET_EXCHANGE,
            [price_binding_key()],
            self.ticks.handle,
            QueueKind.TRANSIENT,
            256,
        )
        self._tasks.append(asyncio.create_task(self._reconcile_loop(), name="engine-reconcile"))
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="engine-housekeeping"))
        self.started = True
        log.info(
            "engine %s started with %d bots (load %.2fs, reconciliation %.2fs, total %.2fs)",
            settings.engine_id,
            len(self.registry.handles),
            loaded - began,
            reconciled - loaded,
            time.monotonic() - began,
        )

    async def _publish_fill(self, message: OrderFilledMessage) -> None:
        """A live fill from a private stream onto `orders` (its id is the fill's, so copies dedupe)."""
        assert self.bus is not None
        await self.bus.publish(
            ORDERS_EXCHANGE, ORDER_FILLED, message.model_dump(mode="json"), message_id=message.message_id
        )

    async def _subscribe(
        self, queue: str, exchange: str, keys: list[str], handler: Handler, kind: QueueKind, prefetch: int
    ) -> None:
        assert self.bus is not None
        transient = kind is QueueKind.TRANSIENT
        subscription: Subscription = await self.bus.subscribe(
            queue,
            exchange,
            keys,
            handler,
            kind=kind,
            prefetch=prefetch,
            max_retries=3 if transient else 10,
            # Ticks are folded per ticker as they arrive; a deeper buffer rides out a slow batch without
            # the broker dropping ticks (a dropped tick is a crossing a paper bot never sees).
            max_length=5000 if transient else None,
        )
        # Consumers stop before the shards do (the stack unwinds in reverse).
        self._stack.push_async_callback(subscription.cancel)

    async def _load(self) -> None:
        """Load every bot this engine must drive and index it."""
        assert self.factory is not None
        async with self.factory() as session:
            ids = await store.active_bot_ids(session)
            handles = await store.load_handles(session, ids)
        self.registry.add_all(handles)

    async def _release_lease(self) -> None:
        if self.lease is not None and not self._fenced_out:
            try:
                await self.lease.release()
            except Exception as exc:  # it expires by itself
                log.warning("releasing the lease failed: %s", type(exc).__name__)

    async def _fenced(self) -> None:
        """Another engine took bots over (this one stalled past its lease): stop driving anything."""
        self._fenced_out = True
        asyncio.create_task(self.stop(), name="engine-fenced-stop")  # noqa: RUF006 - stop() ends everything

    async def _resume_starts(self, prices: PriceSource) -> None:
        """Start the bots whose rows say running but whose cores are at rest (a start nobody heard)."""
        known: dict[tuple[str, str], Decimal | None] = {}
        futures = []
        for handle in list(self.registry.handles.values()):
            if not (handle.row.wants_running and handle.halted and not handle.pending_start):
                continue
            key = (handle.row.exchange, handle.row.ticker)
            if key not in known:
                known[key] = await prices.price(Exchange(key[0]), key[1])
            futures.append(self.shard_for(handle.id).submit(StartWork(bot_id=handle.id, price=known[key])))
        results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.warning("starting a bot at startup failed: %r", result)

    async def _reconcile_loop(self) -> None:
        assert self.live is not None
        while True:
            await asyncio.sleep(self.settings.reconcile_interval_seconds)
            try:
                await self.live.reconcile_all()
            except Exception:
                log.exception("periodic reconciliation failed")

    async def _housekeeping(self) -> None:
        """Forget inbox ids old enough that no redelivery can still carry them."""
        assert self.factory is not None
        while True:
            await asyncio.sleep(_HOUSEKEEPING_SECONDS)
            try:
                async with self.factory() as session, session.begin():
                    cutoff = self._clock() - INBOX_RETENTION
                    await session.execute(delete(InboxMessage).where(InboxMessage.processed_at < cutoff))
            except Exception as exc:
                log.warning("inbox purge failed: %s", type(exc).__name__)

    async def stop(self) -> None:
        """Stop consuming, finish the batches in progress, close everything."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self._stack.aclose()
        self.started = False

    async def __aenter__(self) -> EngineRuntime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
