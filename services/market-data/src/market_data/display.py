"""The display stream: the published price ticks folded again, to at most one per ticker per display interval.

The engine needs every tick (each one's high and low may cross a grid level); a price shown on a screen
does not, and the gateway's sockets send at most one price a second. Receiving a tick costs the gateway more
than sending it (the broker's frames, the envelope, validation), so it listens to this coarser stream
instead of the full one. A display tick is a `PriceTick` like any other: its `high`/`low`/`trades` cover
every tick folded into it, its `published_at` is its own, and its own `seq` counts display ticks per ticker
within the publisher's epoch.

Leading edge, then trailing edge: a tick arriving after a quiet interval goes out at once; ticks within the
interval are folded and leave when it ends, so a screen is never more than one interval behind the market.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from common.contracts.market import PriceTick, display_routing_key
from common.exchanges.ids import Exchange

log = logging.getLogger(__name__)

PublishDisplay = Callable[[str, PriceTick], Awaitable[None]]


def fold(older: PriceTick, newer: PriceTick) -> PriceTick:
    """One tick covering both (the newer one's price; extremes, counts and times of both)."""
    return newer.model_copy(
        update={
            "high": max(older.high, newer.high),
            "low": min(older.low, newer.low),
            "trades": older.trades + newer.trades,
            "first_trade_at": min(older.first_trade_at, newer.first_trade_at),
            "last_trade_at": max(older.last_trade_at, newer.last_trade_at),
        }
    )


class _Ticker:
    __slots__ = ("inflight", "last_sent", "pending", "routing_key", "seq", "timer")

    def __init__(self, routing_key: str) -> None:
        self.routing_key = routing_key
        self.seq = 0
        self.last_sent = -1e18
        self.pending: PriceTick | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.inflight = False


class DisplayStream:
    """Folds every published tick of a ticker into at most one display tick per interval."""

    def __init__(self, interval_ms: int, publish: PublishDisplay) -> None:
        self.interval = interval_ms / 1000
        self._publish_fn = publish
        self._tickers: dict[tuple[Exchange, str], _Ticker] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.published = 0
        self.publish_failures = 0

    def offer(self, tick: PriceTick) -> None:
        """Fold one tick the full stream carried (synchronous: called from the publisher's task)."""
        key = (tick.exchange, tick.ticker)
        state = self._tickers.get(key)
        if state is None:
            state = self._tickers[key] = _Ticker(display_routing_key(tick.exchange, tick.ticker))
        state.pending = tick if state.pending is None else fold(state.pending, tick)
        self._arm(state)

    def _arm(self, state: _Ticker) -> None:
        if state.timer is not None or state.inflight or state.pending is None or self._closed:
            return
        loop = asyncio.get_running_loop()
        due = state.last_sent + self.interval
        if due <= loop.time():
            self._send(state)
        else:
            state.timer = loop.call_at(due, self._due, state)

    def _due(self, state: _Ticker) -> None:
        state.timer = None
        self._send(state)

    def _send(self, state: _Ticker) -> None:
        tick, state.pending = state.pending, None
        if tick is None:
            return
        state.seq += 1
        tick = tick.model_copy(update={"seq": state.seq, "published_at": datetime.now(UTC)})
        # The loop's clock, as call_at's (uvloop's is not time.monotonic()'s to the millisecond).
        state.last_sent = asyncio.get_running_loop().time()
        state.inflight = True
        task = asyncio.create_task(self._publish(state, tick))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, state: _Ticker, tick: PriceTick) -> None:
        try:
            await self._publish_fn(state.routing_key, tick)
            self.published += 1
        except Exception:
            self.publish_failures += 1
            log.warning(
                "display tick %s seq %d not published; folding it into the next", state.routing_key, tick.seq
            )
            # Older than anything pending: it goes underneath, so the newest price still wins.
            state.pending = tick if state.pending is None else fold(tick, state.pending)
        finally:
            state.inflight = False
            self._arm(state)

    async def close(self) -> None:
        """Cancel the timers and the publishes under way."""
        self._closed = True
        for state in self._tickers.values():
            if state.timer is not None:
                state.timer.cancel()
                state.timer = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
