"""The price source: pure, deterministic candles per market (no clock, no I/O after loading)."""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from pathlib import Path
from typing import Protocol

from exchange_sim.markets import ASSET_BY_CODE, Asset, Market, Venue
from exchange_sim.series import Candle, CandleTable, read_candle_table
from exchange_sim.wire import floor_to_step

__all__ = ["CENT", "Candle", "CandleSource", "CsvCandles", "PriceFeed", "RandomWalkCandles", "Tick"]

CENT = Decimal("0.01")
_VOLUME_PLACES = Decimal("0.00000001")
_MOVE_SCALE = 10**10  # a walk's step factor has 10 decimal places
_SHARE_SCALE = 10**6  # a walk's volume share has 6
# Prices are computed in this context, never the thread's: ccxt's number formatting switches the thread's
# decimal context to ROUND_HALF_UP for good, and a simulator sharing a process with ccxt (make run, tests)
# would otherwise give other candles after its first ccxt call.
_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class Tick:
    """One simulated trade on the tape."""

    price: Decimal
    qty: Decimal


def candle_path(candle: Candle) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """Prices in visiting order: open→low→high→close if rising, open→high→low→close if falling."""
    if candle.close >= candle.open:
        return candle.open, candle.low, candle.high, candle.close
    return candle.open, candle.high, candle.low, candle.close


class CandleSource(Protocol):
    """Candles of one asset in USDT, by minute index from the start of the data."""

    def candle(self, index: int) -> Candle:
        """The candle at this index (index >= 0)."""
        ...

    def extremes(self, start: int, stop: int) -> tuple[Decimal, Decimal]:
        """Highest high and lowest low of the candles [start, stop) (a non-empty range)."""
        ...


def load_candles_csv(path: Path) -> CandleTable:
    """Rows of open,high,low,close,volume,quote_volume,trades[,…] (cached per file and modification time)."""
    resolved = path.resolve()
    return _load_csv(resolved, resolved.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load_csv(path: Path, mtime_ns: int) -> CandleTable:
    del mtime_ns  # part of the cache key only: a changed file is read again
    return read_candle_table(path)


def _half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half to even, as Decimal.quantize rounds in _CONTEXT."""
    quotient, remainder = divmod(numerator, denominator)
    if 2 * remainder > denominator or (2 * remainder == denominator and quotient % 2):
        quotient += 1
    return quotient


class CsvCandles:
    """Replays recorded candles; past the end it restarts, rescaled so the path stays continuous."""

    def __init__(self, rows: Sequence[Candle], tick: Decimal = CENT) -> None:
        if not rows:
            raise ValueError("CsvCandles needs at least one candle")
        self._rows = rows
        self._tick = tick
        self._loop_factor = _CONTEXT.divide(rows[-1].close, rows[0].open)

    def _factor(self, loop: int) -> Decimal:
        return _CONTEXT.power(self._loop_factor, loop)

    def _scale(self, price: Decimal, loop: int) -> Decimal:
        scaled = _CONTEXT.multiply(price, self._factor(loop))
        return max(self._tick, scaled.quantize(self._tick, context=_CONTEXT))

    def candle(self, index: int) -> Candle:
        """The candle at this index, looping over the file."""
        loop, position = divmod(index, len(self._rows))
        row = self._rows[position]
        if loop == 0:
            return row
        quote_volume = _CONTEXT.multiply(row.quote_volume, self._factor(loop))
        return Candle(
            open=self._scale(row.open, loop),
            high=self._scale(row.high, loop),
            low=self._scale(row.low, loop),
            close=self._scale(row.close, loop),
            volume=row.volume,
            quote_volume=quote_volume.quantize(_VOLUME_PLACES, context=_CONTEXT),
            trades=row.trades,
        )

    def extremes(self, start: int, stop: int) -> tuple[Decimal, Decimal]:
        """Highest high and lowest low over [start, stop), one pass of the file (or a slice) per loop."""
        size = len(self._rows)
        highs: list[Decimal] = []
        lows: list[Decimal] = []
        for loop in range(start // size, (stop - 1) // size + 1):
            begin, end = max(start, loop * size) - loop * size, min(stop, (loop + 1) * size) - loop * size
            if isinstance(self._rows, CandleTable):
                high, low = self._rows.extremes(begin, end)
            else:
                rows = self._rows[begin:end]
                high, low = max(r.high for r in rows), min(r.low for r in rows)
            # Scaling is monotonic: the extremes of the scaled loop are the scaled extremes.
            highs.append(self._scale(high, loop) if loop else high)
            lows.append(self._scale(low, loop) if loop else low)
        return max(highs), min(lows)


class RandomWalkCandles:
    """A seeded geometric random walk; the same seed and asset always give the same candles.

    Computed in whole price ticks and 1e-8 volume units (the same numbers the Decimal arithmetic of each step
    gives, a few times faster) and kept compactly: a month of minutes costs a few MB and well under a second.
    """

    def __init__(self, asset: Asset, seed: int, tick: Decimal) -> None:
        exponent = tick.normalize().as_tuple().exponent
        if not isinstance(exponent, int) or exponent > 0 or tick != Decimal(1).scaleb(exponent):
            raise ValueError(f"a random walk's tick must be 1 or a power of ten below it, not {tick}")
        places = -exponent
        self._sigma = asset.sigma / 2
        self._tick_scale = 10**places
        # random.seed hashes a str seed with SHA-512: stable across runs and platforms.
        self._rng = random.Random(f"exchange-sim:{seed}:{asset.code}")  # noqa: S311 - not crypto
        self._minute_volume = int(asset.minute_volume.scaleb(8))
        self._table = CandleTable(places, 8, 8)
        self._price = max(1, int(asset.start_usdt.quantize(tick).scaleb(places)))

    def _extend(self, size: int) -> None:
        """Generate candles up to `size` (a tight loop: a month of minutes takes a few tenths of a second)."""
        rng, exp, sigma = self._rng, math.exp, self._sigma
        gauss, uniform, randrange = rng.gauss, rng.random, rng.randrange
        table, price, minute_volume, quote_divisor = (
            self._table,
            self._price,
            self._minute_volume,
            4 * self._tick_scale,
        )
        while len(table) < size:
            points = [price]
            for _ in range(3):
                # round(exp(...), 10) is the float nearest a 10-place decimal; ×1e10 gives exactly its digits.
                move = round(round(exp(gauss(0.0, sigma)), 10) * _MOVE_SCALE)
                price = max(1, _half_even(price * move, _MOVE_SCALE))
                points.append(price)
            share = round(round(0.4 + uniform(), 6) * _SHARE_SCALE)
            volume = minute_volume * share // _SHARE_SCALE  # rounded down
            # volume × the average of the four prices, in 1e-8 units, half even.
            quote_volume = _half_even(volume * sum(points), quote_divisor)
            table.append(
                points[0], max(points), min(points), price, volume, quote_volume, 50 + randrange(950)
            )
        self._price = price

    def candle(self, index: int) -> Candle:
        """The candle at this index (generated in order and kept)."""
        self._extend(index + 1)
        return self._table[index]

    def extremes(self, start: int, stop: int) -> tuple[Decimal, Decimal]:
        """Highest high and lowest low over [start, stop)."""
        self._extend(stop)
        return self._table.extremes(start, stop)


class PriceFeed:
    """Candles and ticks of every market: BTC from the file (else a walk), others seeded walks.

    KRW markets are the USDT path times ``krw_rate``, rounded to Upbit's KRW price unit.
    """

    def __init__(
        self,
        markets: Mapping[Venue, Mapping[str, Market]],
        seed: int,
        krw_rate: Decimal,
        btc_candles: Sequence[Candle] | None = None,
    ) -> None:
        self._krw_rate = krw_rate
        usdt_ticks = {m.base: m.tick_at(Decimal(1)) for m in markets.get("binance", {}).values()}
        self._sources: dict[str, CandleSource] = {}
        for code, asset in ASSET_BY_CODE.items():
            tick = usdt_ticks.get(code, CENT)
            if code == "BTC" and btc_candles:
                self._sources[code] = CsvCandles(btc_candles, tick)
            else:
                self._sources[code] = RandomWalkCandles(asset, seed, tick)
        self.replays_file = bool(btc_candles)

    def candle(self, market: Market, index: int) -> Candle:
        """The candle at this index in the market's own quote currency and price grid."""
        raw = self._sources[market.base].candle(index)
        rate = self._krw_rate if market.quote == "KRW" else Decimal(1)
        if rate == 1:
            prices = [market.round_price(p) for p in (raw.open, raw.high, raw.low, raw.close)]
            quote_volume = raw.quote_volume
        else:
            prices = [market.round_price(p * rate) for p in (raw.open, raw.high, raw.low, raw.close)]
            quote_volume = _CONTEXT.multiply(raw.quote_volume, rate).quantize(
                _VOLUME_PLACES, context=_CONTEXT
            )
        open_, high, low, close = prices
        return Candle(open_, high, low, close, raw.volume, quote_volume, raw.trades)

    def extremes(self, market: Market, start: int, stop: int) -> tuple[Decimal, Decimal]:
        """Highest high and lowest low of the market's candles [start, stop), without building them."""
        high, low = self._sources[market.base].extremes(start, stop)
        rate = self._krw_rate if market.quote == "KRW" else Decimal(1)
        # Rounding to the price grid is monotonic: the extremes of the rounded candles are the rounded extremes.
        return market.round_price(high * rate), market.round_price(low * rate)

    def ticks(self, market: Market, index: int) -> tuple[Tick, ...]:
        """The candle's four trades along its path, the candle volume split evenly between them."""
        candle = self.candle(market, index)
        qty = max(market.step_size, floor_to_step(candle.volume / 4, market.step_size))
        return tuple(Tick(price, qty) for price in candle_path(candle))
