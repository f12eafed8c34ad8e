"""The fast replay: only the candles where something can happen go to the core; the result is the reference's.

Why skipping is exact. Between two events the core's book is fixed, and with it four prices: the highest
open buy B, the lowest open sell S, the lowest armable idle level A (it arms when a price is strictly above
it) and, with stopAtMax, upperPrice U. A simulated trade at price p is a no-op for the paper bot — the
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
from decimal import Decimal
from typing import Protocol

import numpy as np

from gridcore.events import Start, Tick
from gridcore.machine import GridBot
from gridcore.replay.broker import PaperBroker
from gridcore.replay.candles import CandleSeries, IntArray, decimals_of, to_units
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
    """B and H (module doc) of a bot, in integer units."""

    __slots__ = ("_bot", "_units", "_upper")

    def __init__(self, bot: GridBot, units: dict[Decimal, int], upper: int) -> None:
        self._bot, self._units, self._upper = bot, units, upper

    def read(self) -> tuple[int, int]:
        """(B, H); B = -1 without open buys, H = _NEVER when no price can arm, fill a sell or stop."""
        watch = self._bot.watch()
        units = self._units
        below = -1 if watch.highest_buy is None else units[watch.highest_buy]
        above = _NEVER
        if watch.lowest_sell is not None:
            above = units[watch.lowest_sell]
        if watch.next_arm is not None:
            above = min(above, units[watch.next_arm] + 1)
        if watch.stop_price is not None:
            above = min(above, self._upper)
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
    level_units = {level: to_units(level, scale) for level in spec.levels}
    thresholds = _Thresholds(bot, level_units, to_units(spec.upper_price, scale))
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
