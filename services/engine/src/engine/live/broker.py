"""The live broker: live bots' orders on the exchanges, and what the exchanges say about them.

Every exchange call for one client order id runs under that id's lock, after the order row (`new`) and the
core state that made it were committed. Placing never blindly retries: after a timeout or any transient
failure the order is looked up by its client order id first, and placed again only when the exchange has
never seen it. Fills (from the private stream, or found by a status check) go through the fill consumer,
deduplicated by exchange order id + fill id; a check always folds an order's fills before telling the
core the order was canceled, so no fill can be lost behind its cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any

import httpx

from common import errortracking
from common.exchanges import (
    ErrorKind,
    Exchange,
    ExchangeBudget,
    ExchangeCallError,
    PermanentExchangeError,
    RequestWithheldError,
    TransientExchangeError,
    call,
    classify,
    create_ccxt,
)
from common.parking import Fault, park_hook
from common.retry import Backoff, Jitter
from engine.intake.messages import FillConsumer
from engine.live.authority import Authority
from engine.live.client import (
    CANCELED,
    FILLED,
    REJECTED,
    ExchangeClient,
    ExchangeFill,
    ExchangeOrder,
    public_price,
    rejection_reason,
)
from engine.live.credentials import CredentialsClient
from engine.live.fills import fill_message
from engine.live.inherited import InheritedPlacements
from engine.live.reconcile import Reconciler
from engine.live.recovery import ClientKey, Recovery, client_key, keys_refused
from engine.live.stream_events import Publish, StreamEvents
from engine.live.streams import PrivateStream
from engine.metrics import Metrics
from engine.model import BotHandle
from engine.scheduling.registry import Registry
from engine.scheduling.shard import Shard
from engine.settings import Settings
from engine.work import AckWork, OrderClosedWork, Work
from gridcore import (
    MARKET_SLOT,
    OrderCanceled,
    OrderRejected,
    PlaceOrder,
    SellMarket,
    Side,
    Tick,
)

log = logging.getLogger(__name__)

_CLOSE_POLLS = 6
# A placement with an unknown outcome looks for the order after 0.2 s, doubling, 2 s at most.
LOOKUP_AFTER_FAILURE = Backoff(base=0.2, cap=2.0, jitter=Jitter.NONE)


class LiveBroker:
    """Clients, streams, order calls and checks for every live bot of this engine."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        shard_for: Callable[[uuid.UUID], Shard],
        fills: FillConsumer,
        metrics: Metrics,
        budget: ExchangeBudget,
        *,
        credentials_transport: httpx.AsyncBaseTransport | None = None,
        publish: Publish | None = None,
    ) -> None:
        self.settings = settings
        self.budget = budget
        self.registry = registry
        self._shard_for = shard_for
        self._fills = fills
        self._metrics = metrics
        self.metrics = metrics
        self._credentials = CredentialsClient(
            settings.credentials_url,
            settings.internal_keys_token.get_secret_value(),
            settings.credentials_timeout_seconds,
            transport=credentials_transport,
        )
        self._clients: dict[ClientKey, ExchangeClient] = {}
        self._client_locks: dict[ClientKey, asyncio.Lock] = {}
        self.streams: dict[ClientKey, PrivateStream] = {}
        self._public: dict[Exchange, Any] = {}
        self._order_locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.recovery = Recovery(self)
        self.reconciler = Reconciler(self, self.recovery)
        self._stream_events = StreamEvents(self, fills, self.recovery, publish)
        # Crash tests park orders at named points of placing ("before_place"); None in production.
        self.fault: Fault | None = park_hook(settings)
        self.authority = Authority()  # bound to the replica's ownership by the runtime
        self.inherited = InheritedPlacements()

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Nothing to open up front: clients and streams come with the first live bot of each user."""

    async def close(self) -> None:
        """Stop every call in flight, every stream and client."""
        await self.recovery.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for stream in self.streams.values():
            await stream.close()
        for client in self._clients.values():
            await client.close()
        for public in self._public.values():
            await public.close()
        await self._credentials.close()

    def spawn(self, coro: Awaitable[None], name: str) -> None:
        """Run in the background, tracked so that close() can end it."""

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("%s failed", name)
                errortracking.report(exc, task=name.split(":", 1)[0])  # the name's bounded part

        task = asyncio.create_task(guarded(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self, timeout: float) -> None:  # noqa: ASYNC109 - a bound, not a deadline parameter
        """Wait (at most `timeout` seconds) for the exchange calls in flight (a partition being handed over)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def idle(self) -> None:
        """Wait until no exchange call is in flight (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- clients --------------------------------------------------------------------------------------------

    async def client(self, handle: BotHandle) -> ExchangeClient:
        """The user's client for the bot's exchange (keys fetched from the credentials service once)."""
        key = client_key(handle)
        client = self._clients.get(key)
        if client is not None:
            return client
        lock = self._client_locks.setdefault(key, asyncio.Lock())
        async with lock:
            client = self._clients.get(key)
            if client is None:
                try:
                    keys = await self._credentials.keys(key[0], key[1])
                except PermanentExchangeError as exc:
                    if exc.kind is ErrorKind.AUTHENTICATION:
                        self.recovery.refused(key, exc)  # no keys stored: nothing to call the exchange with
                    raise
                client = ExchangeClient(key[1], self.settings, keys, self.budget)
                self._clients[key] = client
                if self.settings.private_streams:
                    stream = PrivateStream(
                        key[1],
                        self.settings,
                        keys,
                        on_fill=self._stream_events.fill,
                        on_closed=self._stream_events.closed,
                        on_connected=lambda k=key: self._stream_events.connected(k),  # type: ignore[misc]
                    )
                    self.streams[key] = stream
                    stream.start()
        return client

    async def forget_client(self, handle: BotHandle) -> None:
        """Drop a user's client (its keys were refused): the next call fetches the keys again."""
        await self.drop_client(client_key(handle))

    def held_client(self, key: ClientKey) -> ExchangeClient | None:
        """The client this engine holds for a user and exchange, if any (never fetches keys)."""
        return self._clients.get(key)

    async def drop_client(self, key: ClientKey) -> None:
        """Close a user's client and private stream: the next call fetches the keys again (new client)."""
        # Under the key's lock: a client being built from keys fetched before the change is dropped too.
        async with self._client_locks.setdefault(key, asyncio.Lock()):
            client = self._clients.pop(key, None)
            stream = self.streams.pop(key, None)
            self.recovery.accepted(key)  # other keys may come: their first refusal is news again
        if stream is not None:
            await stream.close()
        if client is not None:
            await client.close()

    async def fresh_client(self, key: ClientKey) -> ExchangeClient:
        """A client on the keys the credentials service holds now (not cached; the caller closes it)."""
        keys = await self._credentials.keys(key[0], key[1])
        return ExchangeClient(key[1], self.settings, keys, self.budget)

    def stream_up(self, handle: BotHandle) -> bool:
        """True when the user's private stream is connected and the bot caught up since it (re)connected."""
        stream = self.streams.get(client_key(handle))
        return stream is not None and stream.connected and not self.recovery.owes(handle.id)

    async def public_price(self, exchange: Exchange, ticker: str) -> Decimal | None:
        """The exchange's last price (public endpoint, no keys)."""
        client = self._public.get(exchange)
        if client is None:
            client = self._public[exchange] = create_ccxt(exchange, self.settings, budget=self.budget)
        return await call(public_price, client, exchange, ticker, attempts=2, total_timeout=10)

    def lock(self, cid: str) -> asyncio.Lock:
        """The lock serialising every exchange call about one order."""
        return self._order_locks.setdefault(cid, asyncio.Lock())

    async def submit(self, work: Work) -> None:
        """Hand work to the bot's shard and wait for its commit."""
        await self._shard_for(work.bot_id).submit(work)

    # --- after a commit --------------------------------------------------------------------------------------

    def after_commit(
        self, handle: BotHandle, places: list[PlaceOrder | SellMarket], cancels: list[str]
    ) -> None:
        """Send the committed step's orders and cancels (shard callback)."""
        for command in places:
            self.spawn(self.place(handle.id, command.client_order_id), f"place:{command.client_order_id}")
        for cid in cancels:
            self.spawn(self.guarded(handle, self.cancel(handle.id, cid)), f"cancel:{cid}")

    def on_crossing(self, handle: BotHandle, tick: Tick) -> None:
        """A tick crossed the bot's order prices: without a stream covering it, ask the exchange now."""
        self.recovery.on_crossing(handle, tick)

    async def guarded(self, handle: BotHandle, coro: Awaitable[None]) -> None:
        """Run a background call; a failure owes the bot a reconciliation (or notes refused keys)."""
        try:
            await coro
        except ExchangeCallError as exc:
            log.info("bot %s: exchange call failed (%s)", handle.id, exc.source or type(exc).__name__)
            self.recovery.failed(handle, exc)

    # --- placing ---------------------------------------------------------------------------------------------

    async def place(self, bot_id: uuid.UUID, cid: str) -> None:
        """Place a committed `new` order (or find that the exchange already has it)."""
        async with self.lock(cid):
            await self._place_locked(bot_id, cid)

    async def _place_locked(self, bot_id: uuid.UUID, cid: str) -> None:
        handle = self.registry.handles.get(bot_id)
        found = handle.core.open_order(cid) if handle is not None else None
        ref = handle.orders.get(cid) if handle is not None else None
        if handle is None or found is None or ref is None or ref.status != "new":
            return
        _, order = found
        if order.cancel_requested:
            await self._check_locked(bot_id, cid, closing=True)
            return
        try:
            client = await self.client(handle)
        except PermanentExchangeError as exc:
            await self._reject(bot_id, cid, exc)
            return
        market = found[0] == MARKET_SLOT  # the market sell of a stop (sell base on stop)
        placed = await self._send(handle, client, cid, order.side, order.price, order.qty, market=market)
        if placed is None:
            return  # refused, or still `new`: the reconciliation owed looks it up before any new attempt
        self.recovery.accepted(client_key(handle))
        await self.submit(
            AckWork(bot_id=bot_id, client_order_id=cid, exchange_order_id=placed.exchange_order_id)
        )
        if placed.filled_qty > 0 or not placed.is_open:
            await self._check_locked(bot_id, cid)

    async def _send(
        self,
        handle: BotHandle,
        client: ExchangeClient,
        cid: str,
        side: Side,
        price: Decimal,
        qty: Decimal,
        *,
        market: bool = False,
    ) -> ExchangeOrder | None:
        """Place, or find after a failure; None when it is unknown whether the exchange has the order."""
        rules = handle.rules
        if (not market and not rules.is_valid_price(price)) or rules.floor_qty(qty) != qty:
            await self._reject(
                handle.id,
                cid,
                PermanentExchangeError(
                    "order off the exchange's grid", ErrorKind.INVALID_ORDER, reason="rounding"
                ),
            )
            return None
        ticker = handle.row.ticker
        self.inherited.trying(cid)
        for attempt in range(1, self.settings.exchange_attempts + 1):
            if self.fault is not None:
                await self.fault("before_place", cid)
            if not await self.authority.may_act(handle.id):
                return None  # no longer this replica's bot: its new owner reconciles the order
            try:
                self._metrics.exchange_calls += 1
                with self.authority.acting():
                    placed = await client.place(ticker, side, price, qty, cid, market=market)
                if self.fault is not None:
                    await self.fault("after_place", cid)  # tests: dies before the answer is committed
                return placed
            except RequestWithheldError:
                log.info("order %s: not sent, this replica's authority ran out meanwhile", cid)
                self.recovery.owe(handle.id)  # nothing reached the exchange: whoever owns the bot places it
                return None
            except Exception as exc:
                error = classify(exc, handle.row.exchange)
            if isinstance(error, PermanentExchangeError) and error.reason != "duplicate":
                if error.kind is ErrorKind.AUTHENTICATION and attempt == 1:
                    await self.forget_client(handle)  # keys may have been rotated: fetch them again once
                    client = await self.client(handle)
                    continue
                await self._reject(handle.id, cid, error)
                if keys_refused(error):
                    self.recovery.refused(client_key(handle), error)
                return None
            # Unknown outcome (timeout, 5xx) or "duplicate": the exchange may have the order. Look first.
            await asyncio.sleep(LOOKUP_AFTER_FAILURE.delay(attempt))
            try:
                existing = await call(client.fetch, ticker, cid, None, attempts=3)
            except TransientExchangeError:
                log.info("order %s: outcome unknown after %s; left for reconciliation", cid, error.source)
                self.recovery.owe(handle.id)
                return None
            if existing is not None:
                return existing
        self.recovery.owe(handle.id)
        return None

    async def _reject(self, bot_id: uuid.UUID, cid: str, error: PermanentExchangeError) -> None:
        log.warning("order %s refused for good: %s (%s)", cid, error.kind.value, error.reason or error.source)
        rejected = self._metrics.orders_rejected
        rejected[error.kind.value] = rejected.get(error.kind.value, 0) + 1
        await self.submit(OrderClosedWork(bot_id=bot_id, event=OrderRejected(cid, rejection_reason(error))))

    # --- canceling and checking --------------------------------------------------------------------------------

    async def cancel(self, bot_id: uuid.UUID, cid: str, *, client: ExchangeClient | None = None) -> None:
        """Cancel an order at the exchange (with `client` when given), then fold its fills and close it."""
        async with self.lock(cid):
            handle = self.registry.handles.get(bot_id)
            ref = handle.orders.get(cid) if handle is not None else None
            if handle is None or ref is None or handle.core.open_order(cid) is None:
                return
            if ref.status != "new" or ref.exchange_order_id is not None:
                if not await self.authority.may_act(bot_id):
                    return
                held = await self._cancel_call(handle, cid, ref.exchange_order_id, client)
                if held is None:
                    return  # the keys are refused (the bot's orders were abandoned), or the bot is not ours
                client = held
            await self._check_locked(bot_id, cid, closing=True, client=client)

    async def _cancel_call(
        self, handle: BotHandle, cid: str, exchange_order_id: str | None, client: ExchangeClient | None
    ) -> ExchangeClient | None:
        """Ask for the cancel (with fresh keys once if refused); the client used, None to go no further."""
        for attempt in (1, 2):
            if attempt > 1 and not await self.authority.may_act(handle.id):
                return None
            try:
                held = client or await self.client(handle)
                self._metrics.exchange_calls += 1
                with self.authority.acting():
                    await call(
                        held.cancel,
                        handle.row.ticker,
                        cid,
                        exchange_order_id,
                        attempts=self.settings.exchange_attempts,
                    )
                return held
            except RequestWithheldError:
                log.info("order %s: cancel not sent, this replica's authority ran out meanwhile", cid)
                self.recovery.owe(handle.id)
                return None
            except PermanentExchangeError as exc:
                if not keys_refused(exc):
                    raise
                if client is None:
                    await self.forget_client(handle)  # keys may have been rotated: fetch them again once
                    if attempt == 1:
                        continue
                await self.recovery.abandon(handle, exc)
        return None

    async def check(self, bot_id: uuid.UUID, cid: str, *, attempts: int | None = None) -> None:
        """Ask the exchange about one order and bring the core in line with it."""
        async with self.lock(cid):
            await self._check_locked(bot_id, cid, attempts=attempts)

    async def _check_locked(
        self,
        bot_id: uuid.UUID,
        cid: str,
        *,
        closing: bool = False,
        client: ExchangeClient | None = None,
        attempts: int | None = None,
    ) -> None:
        for poll in range(_CLOSE_POLLS if closing else 1):
            handle = self.registry.handles.get(bot_id)
            found = handle.core.open_order(cid) if handle is not None else None
            ref = handle.orders.get(cid) if handle is not None else None
            if handle is None or found is None or ref is None:
                return
            client = client or await self.client(handle)
            self._metrics.exchange_calls += 1
            ex = await call(
                client.fetch,
                handle.row.ticker,
                cid,
                ref.exchange_order_id,
                attempts=attempts or self.settings.exchange_attempts,
            )
            if ex is None:
                if ref.status == "new" and not found[1].cancel_requested:
                    if not self.inherited.may_place(handle.row.exchange, cid):
                        self.recovery.owe(bot_id)  # another process's request may still land: look again
                        return
                    await self._place_locked(bot_id, cid)  # the exchange never saw it: place it now
                    return
                # Never placed (and now canceled), or gone from the exchange: closed; a running slot re-places.
                await self.submit(OrderClosedWork(bot_id=bot_id, event=OrderCanceled(cid)))
                return
            if ref.exchange_order_id is None:
                await self.submit(
                    AckWork(bot_id=bot_id, client_order_id=cid, exchange_order_id=ex.exchange_order_id)
                )
            fills = await call(client.fills, handle.row.ticker, ex, attempts=min(3, attempts or 3))
            await self.fold(handle, cid, ex, fills)
            if ex.status in (CANCELED, REJECTED):
                await self.submit(OrderClosedWork(bot_id=bot_id, event=OrderCanceled(cid)))
                return
            if ex.status == FILLED:
                handle = self.registry.handles.get(bot_id)
                if handle is not None and handle.core.open_order(cid) is not None:
                    log.error("order %s is filled at the exchange but its fills do not complete it", cid)
                return
            if closing:
                if poll == 0 and ex.is_open and found[1].cancel_requested:
                    with contextlib.suppress(TransientExchangeError, PermanentExchangeError):
                        await call(client.cancel, handle.row.ticker, cid, ex.exchange_order_id, attempts=2)
                await asyncio.sleep(0.2 * (poll + 1))  # the exchange is still closing it

    async def fold(
        self, handle: BotHandle, cid: str, ex: ExchangeOrder, fills: tuple[ExchangeFill, ...]
    ) -> None:
        """Apply the order's fills the core has not seen (each once, whatever else reports it)."""
        found = handle.core.open_order(cid)
        if found is None:
            return
        seen = set(found[1].fill_ids)
        for fill in fills:
            if fill.fill_id in seen:
                continue
            await self._fills.apply(handle.id, fill_message(handle, cid, ex.exchange_order_id, ex.side, fill))

    async def reconcile_all(self) -> None:
        """Reconcile every live bot with its exchange (startup, then periodically)."""
        await self.reconciler.reconcile_all()

    async def reconcile_bots(self, bot_ids: Iterable[uuid.UUID]) -> None:
        """Reconcile these bots (a partition taken over)."""
        await self.reconciler.reconcile_bots(bot_ids)
