"""The clock driving the price source: seeds history, then replays candles tick by tick."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping

from exchange_sim.marketdata import MINUTE_MS, SeededHistory
from exchange_sim.markets import Venue
from exchange_sim.matching import MatchingEngine
from exchange_sim.prices import PriceFeed, Tick
from exchange_sim.settings import ReplaySpeed

log = logging.getLogger(__name__)
TICKS_PER_CANDLE = 4
# When the loop falls this far behind (a stalled event loop), it stops trying to catch up.
_MAX_LAG_SECONDS = 1.0


class Replayer:
    """Feeds every engine the next tick of every market, on a timer or on demand."""

    def __init__(
        self,
        feed: PriceFeed,
        engines: Mapping[Venue, MatchingEngine],
        history_minutes: int,
        speed: ReplaySpeed,
        clock: Callable[[], int],
    ) -> None:
        self.feed = feed
        self.engines = engines
        self.history_minutes = history_minutes
        self.candle_index = history_minutes
        self.tick_in_candle = 0
        # The timer feeds the markets one after another, spread over each tick's interval: on a real
        # exchange no two markets trade in lockstep, and feeding all of them at one instant made every
        # market's widest leg (the second of each candle) land at the same moment, a burst of fills across
        # every market that no exchange produces. Venue by venue, so one asset's two markets are half an
        # interval apart. `markets_fed` of them have had the current tick.
        self._order = tuple((venue, symbol) for venue, engine in engines.items() for symbol in engine.markets)
        self.markets_fed = 0
        self.speed: ReplaySpeed = speed
        self.paused = False
        self.clock = clock
        self._wake = asyncio.Event()
        self._current: dict[tuple[Venue, str], tuple[Tick, ...]] = {}

    def seed_history(self) -> None:
        """Give each market history_minutes of 1-minute candles ending at the current minute.

        Each market's minutes are built from the price source only when asked for (klines, stats): the
        markets share the source's compact series, so a month of history costs no time at start-up.
        """
        now = self.clock()
        start = now - now % MINUTE_MS - self.history_minutes * MINUTE_MS
        for engine in self.engines.values():
            for symbol, market in engine.markets.items():
                history = SeededHistory(
                    start,
                    self.history_minutes,
                    functools.partial(self.feed.candle, market),
                    functools.partial(self.feed.extremes, market, 0, self.history_minutes),
                )
                engine.data[symbol].attach_history(history)

    @property
    def running(self) -> bool:
        """True when the timer is advancing prices."""
        return not self.paused and self.speed != 0

    def status(self) -> dict[str, object]:
        """Where the replay stands, for the control API."""
        return {
            "paused": self.paused,
            "speed": self.speed,
            "running": self.running,
            "candleIndex": self.candle_index,
            "tickInCandle": self.tick_in_candle,
            "marketsFed": self.markets_fed,
            "replaysFile": self.feed.replays_file,
            "historyMinutes": self.history_minutes,
        }

    def step(self) -> None:
        """Finish the current tick: every market not fed it yet (and not pinned) trades it."""
        self._feed(len(self._order))

    def feed_next(self) -> None:
        """Feed the current tick to the next market (the timer's step); the last one ends the tick."""
        self._feed(min(self.markets_fed + 1, len(self._order)))

    def _feed(self, upto: int) -> None:
        """Feed the current tick to the markets of `_order` up to index `upto`; the last one ends the tick."""
        if self.tick_in_candle == 0 and self.markets_fed == 0:
            self._current = {
                (venue, symbol): self.feed.ticks(market, self.candle_index)
                for venue, engine in self.engines.items()
                for symbol, market in engine.markets.items()
            }
        for venue, symbol in self._order[self.markets_fed : upto]:
            engine = self.engines[venue]
            if symbol in engine.pinned:
                continue
            tick = self._current[(venue, symbol)][self.tick_in_candle]
            engine.on_tick(symbol, tick.price, tick.qty)
        self.markets_fed = upto
        if upto < len(self._order):
            return
        self.markets_fed = 0
        self.tick_in_candle += 1
        if self.tick_in_candle == TICKS_PER_CANDLE:
            self.tick_in_candle = 0
            self.candle_index += 1

    def advance(self, candles: int) -> None:
        """Replay whole candles at once (finishing the current one first)."""
        for _ in range(candles):
            self.step()
            while self.tick_in_candle != 0:
                self.step()

    def pause(self) -> None:
        """Stop the timer."""
        self.paused = True
        self._wake.set()

    def resume(self, speed: ReplaySpeed | None = None) -> None:
        """Restart the timer, optionally at a new speed."""
        if speed is not None:
            self.speed = speed
        self.paused = False
        self._wake.set()

    def set_speed(self, speed: ReplaySpeed) -> None:
        """Change the speed (0 stops the timer)."""
        self.speed = speed
        self._wake.set()

    async def run(self) -> None:
        """The timer loop; cancel the task to stop it."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            if not self.running:
                self._wake.clear()
                await self._wake.wait()
                due = loop.time()
                continue
            try:
                self.feed_next()
            except Exception:
                log.exception("replay step failed")
            if self.speed == "max":
                await asyncio.sleep(0)
                continue
            due += 1.0 / (TICKS_PER_CANDLE * float(self.speed) * max(1, len(self._order)))
            now = loop.time()
            if now - due > _MAX_LAG_SECONDS:
                due = now
            # Wait for the next tick, but wake at once when the speed or pause state changes.
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, due - now))
            except TimeoutError:
                continue
            due = loop.time()
