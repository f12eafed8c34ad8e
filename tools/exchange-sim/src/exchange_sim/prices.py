"""The price source: pure, deterministic candles per market (no clock, no I/O after loading)."""

from __future__ import annotations

import csv
import functools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Protocol

from exchange_sim.markets import ASSET_BY_CODE, Asset, Market, Venue
from exchange_sim.wire import floor_to_step

CENT = Decimal("0.01")
_VOLUME_PLACES = Decimal("0.00000001")


@dataclass(frozen=True, slots=True)
class Candle:
    """One minute of trading: OHLC, base and quote volume, number of trades."""

    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int


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


def load_candles_csv(path: Path) -> tuple[Candle, ...]:
    """Rows of open,high,low,close,volume,quote_volume,trades,close_datetime (cached per file)."""
    resolved = path.resolve()
    return _load_csv(resolved, resolved.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load_csv(path: Path, mtime_ns: int) -> tuple[Candle, ...]:
    del mtime_ns  # part of the cache key only: a changed file is read again
    rows: list[Candle] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows.append(
                Candle(
                    open=Decimal(row["open"]),
                    high=Decimal(row["high"]),
                    low=Decimal(row["low"]),
                    close=Decimal(row["close"]),
                    volume=Decimal(row["volume"]),
                    quote_volume=Decimal(row["quote_volume"]),
                    trades=int(row["trades"]),
                )
            )
    if not rows:
        raise ValueError(f"no candles in {path}")
    return tuple(rows)


class CsvCandles:
    """Replays recorded candles; past the end it restarts, rescaled so the path stays continuous."""

    def __init__(self, rows: Sequence[Candle], tick: Decimal = CENT) -> None:
        if not rows:
            raise ValueError("CsvCandles needs at least one candle")
        self._rows = rows
        self._tick = tick
        self._loop_factor = rows[-1].close / rows[0].open

    def candle(self, index: int) -> Candle:
        """The candle at this index, looping over the file."""
        loop, position = divmod(index, len(self._rows))
        row = self._rows[position]
        if loop == 0:
            return row
        factor = self._loop_factor**loop

        def scale(price: Decimal) -> Decimal:
            return max(self._tick, (price * factor).quantize(self._tick))

        return Candle(
            open=scale(row.open),
            high=scale(row.high),
            low=scale(row.low),
            close=scale(row.close),
            volume=row.volume,
            quote_volume=(row.quote_volume * factor).quantize(_VOLUME_PLACES),
            trades=row.trades,
        )


class RandomWalkCandles:
    """A seeded geometric random walk; the same seed and asset always give the same candles."""

    def __init__(self, asset: Asset, seed: int, tick: Decimal) -> None:
        self._asset = asset
        self._tick = tick
        # random.seed hashes a str seed with SHA-512: stable across runs and platforms.
        self._rng = random.Random(f"exchange-sim:{seed}:{asset.code}")  # noqa: S311 - not crypto
        self._candles: list[Candle] = []
        self._price = asset.start_usdt.quantize(tick)

    def _step(self, price: Decimal) -> Decimal:
        move = Decimal(repr(round(math.exp(self._rng.gauss(0.0, self._asset.sigma / 2)), 10)))
        return max(self._tick, (price * move).quantize(self._tick))

    def _next(self) -> Candle:
        open_ = self._price
        points = [open_]
        for _ in range(3):
            points.append(self._step(points[-1]))
        close = points[-1]
        self._price = close
        volume = (self._asset.minute_volume * Decimal(repr(round(0.4 + self._rng.random(), 6)))).quantize(
            _VOLUME_PLACES, rounding=ROUND_DOWN
        )
        average = sum(points, Decimal(0)) / len(points)
        return Candle(
            open=open_,
            high=max(points),
            low=min(points),
            close=close,
            volume=volume,
            quote_volume=(volume * average).quantize(_VOLUME_PLACES),
            trades=50 + self._rng.randrange(950),
        )

    def candle(self, index: int) -> Candle:
        """The candle at this index (generated in order and kept)."""
        while len(self._candles) <= index:
            self._candles.append(self._next())
        return self._candles[index]


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
            quote_volume = (raw.quote_volume * rate).quantize(_VOLUME_PLACES)
        open_, high, low, close = prices
        return Candle(open_, high, low, close, raw.volume, quote_volume, raw.trades)

    def ticks(self, market: Market, index: int) -> tuple[Tick, ...]:
        """The candle's four trades along its path, the candle volume split evenly between them."""
        candle = self.candle(market, index)
        qty = max(market.step_size, floor_to_step(candle.volume / 4, market.step_size))
        return tuple(Tick(price, qty) for price in candle_path(candle))
