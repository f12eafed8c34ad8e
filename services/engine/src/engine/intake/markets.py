"""The markets whose price ticks this replica takes: those of the bots it drives.

A replica's tick queue starts with no binding; a market is bound before the first of its bots is driven
here (taken over, started or loaded again), so that bot misses no tick, and unbound once none of its bots
has been here for a while. Bots get ids in their market's partition (`trading.partitions`), so the
replicas' sets of markets barely overlap and each takes only its share of the tick stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from common.bus import Subscription
from common.contracts.market import price_routing_key
from engine.scheduling.index import TickerKey

log = logging.getLogger(__name__)

SWEEP_SECONDS = 5.0
KEEP_SECONDS = 60.0
"""A market with no bot here stays bound this long: a bot stopped and started again finds it bound."""

InUse = Callable[[], set[TickerKey]]
"""The markets of the bots held here now (`Registry.markets`)."""


class MarketBindings:
    """Binds and unbinds the tick subscription's routing keys (a robust queue restores them on reconnection).

    Every bind and unbind runs under one lock, and an unbind decides under it, from the bots held at that
    moment, whether the market is still unused: a market asked for while its unbind is on its way to the
    broker waits for that unbind and is bound again, so a driven bot's market is never left unbound.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._subscription: Subscription | None = None
        self.bound: set[TickerKey] = set()
        self._pending: set[TickerKey] = set()
        self._wanted: dict[TickerKey, float] = {}
        self._lock = asyncio.Lock()

    async def attach(self, subscription: Subscription) -> None:
        """The tick subscription; markets asked for before it existed are bound now."""
        self._subscription = subscription
        await self._bind(set(self._pending))

    async def ensure(self, markets: Iterable[TickerKey]) -> None:
        """Take these markets' ticks from now on (before their bots are driven).

        A binding the broker refuses now (the bus is down) is retried every few seconds; until then the
        bus delivers nothing anyway, and a bot starts from the price cache.
        """
        now = self._clock()
        wanted = set(markets)
        for market in wanted:
            self._wanted[market] = now
        # Bound and no unbind under way: nothing to wait for (the common case, once per bot loaded).
        if wanted <= self.bound and not self._lock.locked():
            return
        await self._bind(wanted)

    async def sweep(self, in_use: InUse) -> None:
        """Retry refused bindings; unbind the markets no bot here has used for KEEP_SECONDS."""
        now = self._clock()
        for market in in_use():
            self._wanted[market] = now
        await self._bind(set(self._pending))
        idle = {m for m in self.bound if now - self._wanted.get(m, 0.0) > KEEP_SECONDS}
        if idle:
            await self._unbind(idle, in_use, keep_wanted=True)

    async def release(self, markets: Iterable[TickerKey], in_use: InUse) -> None:
        """Unbind now the markets whose bots were handed over or lost (those still in use stay): their new
        owner takes their ticks, and a minute of paying for them here halves what a rebalance gains.

        `in_use` (the markets of the bots held) is read under the lock, just before the unbinds: a bot
        loaded again meanwhile keeps its market."""
        await self._unbind(set(markets), in_use, keep_wanted=False)

    async def _unbind(self, markets: set[TickerKey], in_use: InUse, *, keep_wanted: bool) -> None:
        if not markets or self._subscription is None:
            return
        async with self._lock:
            # Read now, not when the caller decided: a partition taken again since holds the market's bots.
            used = in_use()
            for market in markets & self.bound:
                if market in used:
                    continue
                # The sweep's idle market, asked for again while the sweep waited for the lock: keep it.
                if keep_wanted and self._clock() - self._wanted.get(market, 0.0) <= KEEP_SECONDS:
                    continue
                try:
                    await self._subscription.unbind(price_routing_key(*market))
                except Exception as exc:  # left to the sweep
                    log.warning("unbinding %s failed: %s", market, type(exc).__name__)
                    continue
                self.bound.discard(market)
                self._wanted.pop(market, None)

    async def _bind(self, markets: set[TickerKey]) -> None:
        if not markets:
            return
        async with self._lock:
            for market in markets:
                if market in self.bound:
                    self._pending.discard(market)
                    continue
                if self._subscription is None:
                    self._pending.add(market)
                    continue
                try:
                    await self._subscription.bind(price_routing_key(*market))
                except Exception as exc:
                    log.warning("binding %s failed (retried): %s", market, type(exc).__name__)
                    self._pending.add(market)
                    continue
                self.bound.add(market)
                self._pending.discard(market)
