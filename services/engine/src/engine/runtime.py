"""One engine replica: database, bus, relay, shards, consumers, brokers, and its share of the partitions.

Order matters for money: a partition this replica takes (at start, from a dead replica, or handed over)
has its bots loaded, their live orders reconciled with the exchanges and their rows' requests resumed
before any tick, command or fill of theirs is applied here (`Ownership` marks it ready only then); the
relay runs from the start so that fills written before a crash leave at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
import orjson
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from common import collector
from common.bus import Bus, Handler, QueueKind, Subscription
from common.cache import Cache
from common.contracts.bots import BOTS_EXCHANGE
from common.contracts.credentials import CREDENTIALS_EXCHANGE
from common.contracts.market import MARKET_EXCHANGE
from common.contracts.queues import ENGINE_TICKS, engine_replica_queue
from common.db import create_engine, create_session_factory, is_sqlite
from common.dbtypes import utc_now
from common.errortracking import background_task
from common.exchanges import Exchange, ExchangeBudget
from common.outbox import OutboxRelay
from common.runtime import acquire_bus, acquire_cache, release_bus, release_cache
from engine.applying import handlers
from engine.contracts import FILLS_QUEUE, ORDER_FILLED, ORDERS_EXCHANGE, OrderFilledMessage
from engine.intake import markets
from engine.intake.markets import MarketBindings
from engine.intake.messages import COMMAND_KEYS, COMMANDS_QUEUE, CommandConsumer, FillConsumer
from engine.intake.prices import PriceSource
from engine.intake.ticks import TickRouter
from engine.live.broker import LiveBroker
from engine.live.keychange import CREDENTIAL_EVENT_KEYS, CREDENTIAL_EVENTS_QUEUE, CredentialEventConsumer
from engine.metrics import Metrics
from engine.model import BotHandle, BotRow
from engine.ownership import Ownership, Partitions
from engine.persistence import reads
from engine.persistence.batch import KEYED_PLANS
from engine.persistence.relay import PipelinedRelay
from engine.scheduling.index import TickerKey
from engine.scheduling.registry import Registry, ticker_key
from engine.scheduling.shard import Shard
from engine.settings import Settings
from engine.work import ResumeWork
from trading.models import ENGINE_OUTBOX, SCHEMA, InboxMessage
from trading.partitions import partition_of

log = logging.getLogger(__name__)

INBOX_RETENTION = timedelta(days=7)
_IDLE_IN_TRANSACTION_MS = "5000"
_RESUME_LOOKBACK = timedelta(seconds=60)
_HOUSEKEEPING_SECONDS = 3600.0
# Partitions of a takeover loaded at once (see _gained).
_LOADS_AT_ONCE = 2


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
        self.markets = MarketBindings()
        self.registry = Registry(on_load=lambda market: self.markets.ensure([market]))
        self.shards: list[Shard] = []
        self.db: AsyncEngine | None = None
        self.factory: async_sessionmaker[AsyncSession] | None = None
        self.bus: Bus | None = None
        self.cache: Cache | None = None
        self.relay: OutboxRelay | None = None
        self.live: LiveBroker | None = None
        self.ticks: TickRouter | None = None
        self.ownership: Ownership | None = None
        self.prices: PriceSource | None = None
        self._superseded_by_other = False
        self._stopping = False
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
        # A replica paused inside a transaction (GC, SIGSTOP) would hold its partitions' rows and stall a
        # takeover: the server ends such a session after a few seconds.
        self.db = create_engine(
            url,
            schemas=[SCHEMA],
            pool_size=settings.database_pool_size,
            server_settings={"idle_in_transaction_session_timeout": _IDLE_IN_TRANSACTION_MS, **KEYED_PLANS},
            # A takeover reads every taken bot's state (JSON): orjson decodes it several times faster.
            json_deserializer=orjson.loads,
        )
        stack.push_async_callback(self.db.dispose)
        self.factory = factory = create_session_factory(self.db)
        self.cache = await acquire_cache(settings.redis_url.get_secret_value(), settings.cache_namespace)
        stack.push_async_callback(release_cache, self.cache)
        self.bus = bus = await acquire_bus(settings.rabbitmq_url.get_secret_value(), settings.bus_namespace)
        stack.push_async_callback(release_bus, bus)
        self.relay = relay = PipelinedRelay(
            factory, bus, ENGINE_OUTBOX, poll_interval=settings.outbox_poll_seconds, batch_size=500
        )
        await relay.start()
        stack.push_async_callback(relay.stop)
        self.ownership = ownership = Ownership(
            factory,
            settings.engine_id,
            heartbeat_seconds=settings.engine_heartbeat_seconds,
            ttl_seconds=settings.engine_replica_ttl_seconds,
            on_gained=self._gained,
            on_lost=self._lost,
            on_superseded=self._superseded,
            weigh=lambda: self.registry.per_partition,
        )
        self.fills = FillConsumer(self.shard_for, self.metrics, ownership.ready)
        self.live = live = LiveBroker(
            settings,
            self.registry,
            self.shard_for,
            self.fills,
            self.metrics,
            ExchangeBudget.for_settings(self.cache, settings),
            credentials_transport=self._credentials_transport,
            publish=self._publish_fill,
        )
        live.authority.bind(ownership.authority, ownership.acting_until)
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
                ownership=ownership,
                live=live,
                on_commit=relay.nudge,
                clock=self._clock,
            )
            for n in range(count)
        ]
        for shard in self.shards:
            await shard.start()
            stack.push_async_callback(shard.stop)
        await live.start()
        self.prices = prices = PriceSource(self.cache, live.public_price)
        # Consumers first: a message for a partition being taken over waits for its load; one for a bot of
        # another replica is acked unapplied (its owner has it, or resumes it from the bot's row).
        commands = CommandConsumer(self.shard_for, prices.price, ownership.ready)
        self.ticks = TickRouter(self.registry, self.shard_for, self.metrics, live, ownership.owns)

        def own(queue: str) -> str:
            return engine_replica_queue(queue, settings.engine_id, ownership.incarnation)

        # Bound to no market yet: each is bound as the first of its bots is loaded here (intake.markets).
        ticks = await self._subscribe(
            own(ENGINE_TICKS), MARKET_EXCHANGE, [], self.ticks.handle, 256, ticks=True
        )
        await self.markets.attach(ticks)
        await self._subscribe(own(COMMANDS_QUEUE), BOTS_EXCHANGE, list(COMMAND_KEYS), commands.handle, 64)
        await self._subscribe(own(FILLS_QUEUE), ORDERS_EXCHANGE, [ORDER_FILLED], self.fills.handle, 256)
        # One at a time: a user's key change is applied whole (halt, cancels, drop) before the next one.
        keys = CredentialEventConsumer(
            factory, live, self.shard_for, owns=ownership.ready, replica=settings.engine_id
        )
        await self._subscribe(
            own(CREDENTIAL_EVENTS_QUEUE),
            CREDENTIALS_EXCHANGE,
            list(CREDENTIAL_EVENT_KEYS),
            keys.handle,
            1,
        )
        began = time.monotonic()
        stack.push_async_callback(ownership.close)
        await ownership.join()  # takes this replica's share: loads, reconciles and resumes those bots
        # The bots just loaded live as long as the process: take them out of the collector's full passes,
        # which otherwise walk every one of their objects (~0.6 s with the loop stalled at 10,000 bots),
        # and make full passes rarer (almost everything the engine allocates dies by reference count;
        # garbage held in a cycle waits longer for a full pass, not forever).
        collector.freeze()
        self._tasks.append(background_task(self._reconcile_loop(), name="engine-reconcile"))
        self._tasks.append(background_task(self._resume_loop(), name="engine-resume"))
        self._tasks.append(background_task(self._housekeeping(), name="engine-housekeeping"))
        self._tasks.append(background_task(self._markets_loop(), name="engine-markets"))
        self.started = True
        log.info(
            "engine replica %s started with %d partition(s), %d bots (%.2fs)",
            settings.engine_id,
            len(ownership.held),
            len(self.registry.handles),
            time.monotonic() - began,
        )

    async def _publish_fill(self, message: OrderFilledMessage) -> None:
        """A live fill from a private stream onto `orders` (its id is the fill's, so copies dedupe)."""
        assert self.bus is not None
        await self.bus.publish(
            ORDERS_EXCHANGE, ORDER_FILLED, message.model_dump(mode="json"), message_id=message.message_id
        )

    async def _subscribe(
        self,
        queue: str,
        exchange: str,
        keys: list[str],
        handler: Handler,
        prefetch: int,
        *,
        ticks: bool = False,
    ) -> Subscription:
        """A queue of this replica's own: it outlives a lost connection (up to 2 minutes unused) and goes with its
        cancel; see the consumers' module doc."""
        assert self.bus is not None
        subscription: Subscription = await self.bus.subscribe(
            queue,
            exchange,
            keys,
            handler,
            kind=QueueKind.TRANSIENT,
            prefetch=prefetch,
            max_retries=3 if ticks else 10,
            # Ticks are folded per ticker as they arrive; a deeper buffer rides out a slow batch without
            # the broker dropping ticks (a dropped tick is a crossing a paper bot never sees). Commands
            # and fills are few: their cap is only a bound on a replica that stopped consuming.
            max_length=5000 if ticks else 100_000,
        )
        # Consumers stop before the shards do (the stack unwinds in reverse).
        self._stack.push_async_callback(subscription.cancel)
        return subscription

    async def _gained(self, partitions: Partitions, ready: Callable[[int], None]) -> None:
        """Partitions taken (at start, from a dead replica, or handed over): load their bots, reconcile the
        live ones with their exchanges, then do what their rows ask that their cores have not done.

        Partition by partition, each `ready` as soon as it is done, so the first partitions trade again long
        before the last is loaded. Two loads at a time: one restores its cores (CPU) while the other waits
        for its rows, and the loop (the heartbeat, the bots already driven) gets a turn in between. A
        partition's reconciliation (exchange calls) and resume run beside the next loads."""
        assert self.factory is not None
        began = time.monotonic()
        async with self.factory() as session:
            ids = await reads.active_bot_ids(session)
        groups: dict[int, list[uuid.UUID]] = {p: [] for p in partitions}
        for bot_id in ids:
            if (partition := partition_of(bot_id)) in groups:
                groups[partition].append(bot_id)
        limit = asyncio.Semaphore(_LOADS_AT_ONCE)

        async def take(partition: int, group: list[uuid.UUID]) -> int:
            if not group:
                ready(partition)
                return 0
            async with limit:
                assert self.factory is not None
                async with self.factory() as session:
                    # Paper bots dormant: indexed from their stored state, loaded whole at their first event.
                    handles = await reads.load_handles(session, group, dormant=True)
                await self.markets.ensure(ticker_key(handle) for handle in handles)
                self.registry.add_all(handles)
                if self.started:
                    # The bots just taken over live as long as they are driven here: out of the full
                    # collections' walk, as the ones loaded at start are (see _start); a partition at a time,
                    # so a full pass during a long takeover does not walk the partitions loaded before.
                    gc.collect(1)
                    gc.freeze()
            await self._finish(partition, group, handles, ready)
            return len(handles)

        # Gathered whole: a partition that failed is claimed and loaded again, the others stay driven.
        results = await asyncio.gather(
            *(take(partition, groups[partition]) for partition in sorted(groups)), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        loaded = sum(r for r in results if isinstance(r, int))
        self.metrics.takeovers.append(time.monotonic() - began)
        log.info(
            "engine replica %s drives %d more bot(s) (%d partition(s), %.2fs)",
            self.settings.engine_id,
            loaded,
            len(partitions),
            time.monotonic() - began,
        )

    async def _finish(
        self, partition: int, ids: list[uuid.UUID], handles: list[BotHandle], ready: Callable[[int], None]
    ) -> None:
        """Reconcile a loaded partition's live bots, resume what its rows ask, then mark it driven."""
        assert self.live is not None
        try:
            await self.live.reconcile_bots(ids)
            await self._resume((handle.row, handle) for handle in handles)
        finally:
            self._forget_unowned(handles)
        ready(partition)

    def _forget_unowned(self, handles: Iterable[BotHandle]) -> set[TickerKey]:
        """Drop loaded bots whose partition this replica lost while it was taking it over; their markets."""
        assert self.ownership is not None
        markets = set()
        for handle in handles:
            if self.ownership.epoch(handle.id) is None and self.registry.handles.get(handle.id) is handle:
                self.registry.drop(handle)
                markets.add(ticker_key(handle))
        return markets

    async def _lost(self, partitions: Partitions) -> None:
        """Partitions handed over or taken by another replica: stop driving their bots, let work in flight end,
        and stop taking the ticks of markets none of the bots left here uses."""
        left = set()
        for handle in list(self.registry.handles.values()):
            if partition_of(handle.id) in partitions:
                self.registry.drop(handle)
                left.add(ticker_key(handle))
        await asyncio.gather(*(shard.barrier() for shard in self.shards), return_exceptions=True)
        if self.live is not None:
            await self.live.settle(timeout=self.settings.engine_replica_ttl_seconds)
        try:
            await self.markets.release(left, self.registry.markets)
        except Exception as exc:  # the sweep unbinds them later
            log.warning("unbinding handed-over markets failed: %s", type(exc).__name__)

    async def _superseded(self) -> None:
        """Another process took this replica's name: stop everything (the supervisor decides what follows)."""
        self._superseded_by_other = True
        asyncio.create_task(self.stop(), name="engine-superseded-stop")  # noqa: RUF006 - stop() ends everything

    async def _resume(self, bots: Iterable[tuple[BotRow, BotHandle | None]]) -> None:
        """Resume the bots whose rows ask for something their cores have not done (`needs_resume`; a bot
        not loaded is loaded by its shard, which decides under the row's lock)."""
        assert self.prices is not None
        known: dict[tuple[str, str], Decimal | None] = {}
        futures = []
        for row, handle in bots:
            if handle is not None and not handlers.needs_resume(handle, row):
                continue
            price = None
            if row.wants_running and (handle is None or handle.halted):
                key = (row.exchange, row.ticker)
                if key not in known:
                    known[key] = await self.prices.price(Exchange(key[0]), key[1])
                price = known[key]
            futures.append(self.shard_for(row.id).submit(ResumeWork(bot_id=row.id, price=price)))
        results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.warning("resuming a bot failed: %r", result)

    async def _resume_loop(self) -> None:
        """Catch commands no replica applied (sent while the bus or this replica's queue was away)."""
        assert self.factory is not None and self.ownership is not None
        ownership = self.ownership
        while True:
            await asyncio.sleep(self.settings.resume_interval_seconds)
            # Only rows changed lately: every command changes its bot's row, a row is looked at for a while
            # after each change (commits land after their timestamps), and a takeover reads every row anyway.
            # Reading all of them every few seconds made garbage enough for full collections to stall the loop.
            # Only what each row asks is read for all of them (a thousand bots created in a minute made every
            # sweep parse a thousand full rows); the full row only where the core differs or is not loaded.
            since = self._clock() - _RESUME_LOOKBACK
            try:
                handles = self.registry.handles
                async with self.factory() as session:
                    differ = [
                        asks.id
                        for asks in await reads.changed_asks(session, since)
                        if ownership.owns(asks.id)
                        and ((handle := handles.get(asks.id)) is None or handlers.needs_resume(handle, asks))
                    ]
                    rows = await reads.load_rows(session, differ) if differ else []
                await self._resume((row, handles.get(row.id)) for row in rows)
            except Exception as exc:
                log.warning("resume sweep failed: %s", type(exc).__name__)

    async def _reconcile_loop(self) -> None:
        assert self.live is not None
        while True:
            await asyncio.sleep(self.settings.reconcile_interval_seconds)
            try:
                await self.live.reconcile_all()
            except Exception:
                log.exception("periodic reconciliation failed")

    async def _markets_loop(self) -> None:
        """Forget bots of partitions not held; retry refused market bindings; unbind unused markets."""
        while True:
            await asyncio.sleep(markets.SWEEP_SECONDS)
            try:
                # A bot loaded by a shard while its partition was being lost stays behind (harmless, its
                # writes are fenced and its ticks ignored, but held and counted): let it go here.
                # Its market was bound again for it: unbound now unless a bot driven here uses it (a start
                # command queued before a hand-over leaves such a bot, and with it the market's ticks).
                strays = self._forget_unowned(list(self.registry.handles.values()))
                await self.markets.release(strays, self.registry.markets)
                await self.markets.sweep(self.registry.markets)
            except Exception:
                log.exception("market bindings sweep failed")

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
        """Hand this replica's partitions over (drained), stop consuming, close everything."""
        if self._stopping:
            return
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.ownership is not None and self.started and not self._superseded_by_other:
            await self.ownership.handover()
        await self._stack.aclose()
        self.started = False
        self._stopping = False

    async def __aenter__(self) -> EngineRuntime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
