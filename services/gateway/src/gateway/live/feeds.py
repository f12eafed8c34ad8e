"""Price subscriptions of one gateway replica: one small transient queue per ticker some socket needs.

Sockets show prices, so they listen to the display stream (`display.price.<exchange>.<ticker>`, at most one
tick per ticker per second) rather than the engine's full one: receiving a tick costs more than sending it.
Each needed ticker gets a queue of its own, capped at the newest few ticks (so one busy
market cannot push another's price out), subscribed when the first socket needs the ticker and
cancelled when the last one stops needing it. One task reconciles the wanted set with the subscriptions, so
a burst of connects and disconnects never races two subscribes of one ticker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from common.bus import Bus, BusError, QueueKind, Subscription
from common.contracts.envelope import Envelope
from common.contracts.market import MARKET_EXCHANGE, PriceTick, display_routing_key
from common.errortracking import background_task
from common.exchanges.ids import Exchange

log = logging.getLogger(__name__)

Pair = tuple[Exchange, str]

# A price queue keeps only the newest ticks: an older one is superseded anyway.
PRICE_QUEUE_MAX_LENGTH = 16
RETRY_SECONDS = 1.0


class PriceFeeds:
    """Keeps one price subscription per wanted ticker."""

    def __init__(self, bus: Bus, queue_prefix: str, on_tick: Callable[[PriceTick], None]) -> None:
        self._bus = bus
        self._prefix = queue_prefix
        self._on_tick = on_tick
        self._wanted: set[Pair] = set()
        self._active: dict[Pair, Subscription] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> frozenset[Pair]:
        """Tickers subscribed right now."""
        return frozenset(self._active)

    def start(self) -> None:
        """Start the reconciling task."""
        self._task = background_task(self._reconcile_forever(), name="ws-price-feeds")

    def want(self, pairs: set[Pair]) -> None:
        """The tickers some socket needs now (replaces the previous set)."""
        if pairs != self._wanted:
            self._wanted = set(pairs)
            self._changed.set()

    async def close(self) -> None:
        """Stop reconciling and cancel every subscription."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        active, self._active = self._active, {}
        await asyncio.gather(*(sub.cancel() for sub in active.values()), return_exceptions=True)

    async def _reconcile_forever(self) -> None:
        while True:
            self._changed.clear()
            try:
                await self._reconcile()
            except (BusError, OSError, RuntimeError) as exc:
                log.warning("price subscriptions not reconciled (%r); retrying", exc)
                self._changed.set()
                await asyncio.sleep(RETRY_SECONDS)  # backoff between attempts, not a wait for an event
                continue
            await self._changed.wait()

    async def _reconcile(self) -> None:
        for pair in [p for p in self._active if p not in self._wanted]:
            await self._active.pop(pair).cancel()
        for pair in [p for p in self._wanted if p not in self._active]:
            self._active[pair] = await self._subscribe(pair)

    async def _subscribe(self, pair: Pair) -> Subscription:
        key = display_routing_key(*pair)

        async def handle(envelope: Envelope) -> None:
            try:
                tick = envelope.payload_as(PriceTick)
            except ValueError:
                log.warning("unusable price tick on %s", key)
                return
            self._on_tick(tick)

        return await self._bus.subscribe(
            f"{self._prefix}.{key}",
            MARKET_EXCHANGE,
            [key],
            handle,
            kind=QueueKind.TRANSIENT,
            prefetch=1,
            max_retries=1,
            max_length=PRICE_QUEUE_MAX_LENGTH,
        )
