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


class MarketBindings:
    """Binds and unbinds the tick subscription's routing keys (a robust queue restores them on reconnection)."""

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
        missing = set()
        for market in markets:
            self._wanted[market] = now
            if market not in self.bound:
                missing.add(market)
        if missing:
            await self._bind(missing)

    async def sweep(self, in_use: set[TickerKey]) -> None:
        """Retry refused bindings; unbind the markets no bot here has used for KEEP_SECONDS."""
        now = self._clock()
        for market in in_use:
            self._wanted[market] = now
        await self._bind(set(self._pending))
        idle = {m for m in self.bound if now - self._wanted.get(m, 0.0) > KEEP_SECONDS}
        if not idle or self._subscription is None:
            return
        async with self._lock:
            for market in idle:
                # Asked for again while waiting for the lock: keep it.
                if self._clock() - self._wanted.get(market, 0.0) <= KEEP_SECONDS:
                    continue
                try:
                    await self._subscription.unbind(price_routing_key(*market))
                except Exception as exc:
                    log.warning("unbinding %s failed: %s", market, type(exc).__name__)
                    continue
                self.bound.discard(market)
                self._wanted.pop(market, None)

    async def release(self, markets: Iterable[TickerKey], in_use: set[TickerKey]) -> None:
        """Unbind now the markets whose bots were handed over or lost (those still in use stay): their new
        owner takes their ticks, and a minute of paying for them here halves what a rebalance gains."""
        gone = {m for m in markets if m not in in_use}
        if not gone or self._subscription is None:
            return
        async with self._lock:
            for market in gone & self.bound:
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
