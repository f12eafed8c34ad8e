"""The fast replay: only the candles where something can happen go to the core; the result is the reference's.

Why skipping is exact. Between two events the core's book is fixed, and with it four prices: the highest
open buy B, the lowest open sell S, the lowest armable idle level A (it arms when a price is strictly above
it) and, with stopAtMax, upperPrice U. The grid options add prices of the same two kinds (`Watch`): a
stop-loss and a trigger from above act at or under their price (they join B, the highest of them counts),
a take-profit, a trigger from below and the next trailing level at or over theirs (they join U). A simulated trade at price p is a no-op for the paper bot — the
broker fills nothing (no buy at or above p, no sell at or below p) and the core is not even sent the Tick
(nothing to arm, no stop) — exactly when B < p < min(S, A⁺, U), A⁺ being the next price above A. A
candle's four trades lie within [low, high], so a candle with B < low and high < min(S, A⁺, U) changes
nothing at all, and the next candle sees the same book. In integer price units (every price · 10^scale,
exact) the next candle that can act is the first j with low_j ≤ B or high_j ≥ H, H = min(S, A + 1, U).

That search runs on per-threshold byte masks: `(low <= B)` as one byte per candle, built once per distinct
threshold (a grid has a few dozen) by numpy, then `bytes.find` (memchr) from the current candle. The
visited candle's four trades go through the very `PaperBroker` the reference uses, each trade checked
against the thresholds first (the core's book changes only there, so B and H are read again after every
trade that acted). After a stop nothing can act any more, so the walk ends.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Protocol

import numpy as np

from gridcore.events import Start, Tick
from gridcore.machine import GridBot
from gridcore.replay.broker import PaperBroker
from gridcore.replay.candles import CandleSeries, IntArray, decimals_of
from gridcore.replay.reference import Progress, ProgressMeter, finish, new_bot
from gridcore.replay.types import TICK_OFFSETS_MS, Replay, ReplaySpec
from gridcore.state import Phase

_NEVER = 2**62  # a threshold no price reaches
_INT64_LIMIT = 2**63 - 1


class Search(Protocol):
    """Finds the next candle that can act (`MaskSearch`; bench/backtest_kernel.py compares others)."""

    def first(self, start: int, below: int, above: int) -> int:
        """The first index >= start with low <= below or high >= above, or -1."""
        ...


SearchFactory = Callable[[IntArray, IntArray], Search]


class MaskSearch:
    """First candle at or after i with low ≤ B or high ≥ H, through cached byte masks and memchr."""

    __slots__ = ("_high", "_highs", "_low", "_lows", "_n")

    def __init__(self, low: IntArray, high: IntArray) -> None:
        self._low, self._high, self._n = low, high, len(low)
        self._lows: dict[int, bytes] = {}
        self._highs: dict[int, bytes] = {}

    def first(self, start: int, below: int, above: int) -> int:
        """The index, or -1 when no candle from `start` on reaches either threshold."""
        found = self._n
        if below >= 0:
            mask = self._lows.get(below)
            if mask is None:
                mask = self._lows[below] = (self._low <= below).tobytes()
            at = mask.find(1, start)
            if at >= 0:
                found = at
        if above < _NEVER:
            mask = self._highs.get(above)
            if mask is None:
                mask = self._highs[above] = (self._high >= above).tobytes()
            at = mask.find(1, start, found)
            if at >= 0:
                found = at
        return found if found < self._n else -1


def common_scale(spec: ReplaySpec, candles: CandleSeries) -> int:
    """Decimals enough for every candle price, level and upperPrice to be an integer."""
    return max(candles.scale, decimals_of(spec.upper_price), *(decimals_of(level) for level in spec.levels))


def scaled_units(candles: CandleSeries, scale: int) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """The candles' integer prices at a scale at least theirs (checked against int64 overflow)."""
    columns = candles.units()
    factor = 10 ** (scale - candles.scale)
    if factor == 1:
        return columns
    if max(int(c.max()) for c in columns) > _INT64_LIMIT // factor:
        raise ValueError(f"prices at {scale} decimals overflow 64-bit integers")
    open_, high, low, close = (c * np.int64(factor) for c in columns)
    return open_, high, low, close


class _Thresholds:
    """B and H (module doc) of a bot, in integer units.

    A price p (an integer of units) acts at or under a price x exactly when p ≤ floor(x · 10^scale), at or
    over it when p ≥ ceil(x · 10^scale), strictly over it when p ≥ floor(x · 10^scale) + 1: so any price
    (a trailing level, a take-profit with more decimals than the candles) gives an exact threshold.
    """

    __slots__ = ("_bot", "_ceil", "_floor", "_scale")

    def __init__(self, bot: GridBot, scale: int) -> None:
        self._bot, self._scale = bot, scale
        self._floor: dict[Decimal, int] = {}
        self._ceil: dict[Decimal, int] = {}

    def _down(self, price: Decimal) -> int:
        units = self._floor.get(price)
        if units is None:
            units = self._floor[price] = int(price.scaleb(self._scale).to_integral_value(ROUND_FLOOR))
        return units

    def _up(self, price: Decimal) -> int:
        units = self._ceil.get(price)
        if units is None:
            units = self._ceil[price] = int(price.scaleb(self._scale).to_integral_value(ROUND_CEILING))
        return units

    def read(self) -> tuple[int, int]:
        """(B, H); B = -1 when no price can fill a buy, stop low or trigger, H = _NEVER when none can arm,
        fill a sell, stop high, trigger or trail."""
        watch = self._bot.watch()
        below = -1
        for low in (watch.highest_buy, watch.stop_loss, watch.trigger_below):
            if low is not None:
                below = max(below, self._down(low))
        above = _NEVER
        for high in (
            watch.lowest_sell,
            watch.stop_price,
            watch.take_profit,
            watch.trigger_above,
            watch.trail_at,
        ):
            if high is not None:
                above = min(above, self._up(high))
        if watch.next_arm is not None:
            above = min(above, self._down(watch.next_arm) + 1)
        return below, above


def replay(
    spec: ReplaySpec,
    candles: CandleSeries,
    progress: Progress | None = None,
    *,
    search: SearchFactory = MaskSearch,
) -> Replay:
    """Replay the candles as `replay_reference` does, visiting only the candles where something can happen.

    `progress(percent)` is called at most once per whole percent of the candles passed, ending with 100.
    """
    bot = new_bot(spec)
    broker = PaperBroker(bot)
    meter = ProgressMeter(progress, len(candles))
    scale = common_scale(spec, candles)
    open_, high, low, close = scaled_units(candles, scale)
    raw = candles.units()  # Decimals are made from the candles' own integers: the reference's digits
    exponent = -candles.scale
    thresholds = _Thresholds(bot, scale)
    finder = search(low, high)
    stamps = candles.timestamps

    broker.now = int(stamps[0])
    broker.feed(Start(Decimal(int(raw[0][0])).scaleb(exponent)))
    stopped_at = broker.now if bot.state.phase is not Phase.RUNNING else None
    visited, index, count = 0, 0, len(candles)
    while stopped_at is None and index < count:
        below, above = thresholds.read()
        index = finder.first(index, below, above)
        if index < 0:
            break
        meter.passed(index)
        visited += 1
        o, h, lo, c = int(open_[index]), int(high[index]), int(low[index]), int(close[index])
        if c >= o:
            path, columns = (o, lo, h, c), (0, 2, 1, 3)
        else:
            path, columns = (o, h, lo, c), (0, 1, 2, 3)
        previous = int(close[index - 1]) if index else o
        stamp = int(stamps[index])
        for position, units in enumerate(path):
            if below < units < above:
                previous = units
                continue
            price = Decimal(int(raw[columns[position]][index])).scaleb(exponent)
            now = stamp + TICK_OFFSETS_MS[position]
            broker.tick(Tick(last=price, high=price, low=price, closed_up=units > previous), now)
            previous = units
            if bot.state.phase is not Phase.RUNNING:
                stopped_at = now
                break
            below, above = thresholds.read()
        index += 1
    meter.done()
    return finish(broker, stopped_at, visited)
