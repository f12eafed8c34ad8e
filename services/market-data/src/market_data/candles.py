"""1-minute candles built from trades (cached in Redis), and other intervals through ccxt.

The forming candle of a streamed ticker lives in its TickerBook and is updated on every trade; closed
minutes are appended to a capped Redis list by the price-cache writer. A request needing history the
cache does not hold (the first request for a ticker, or after a gap in streaming) backfills the list
from the exchange's 1m OHLCV once.

Whatever `count` asks for, the exchange is asked for a whole window (one full page, or MAX_COUNT when
more than a page is wanted), which is cached and sliced: a client walking `count=1..1000` costs the
exchange one or two requests, not a thousand.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from common.errors import AppError, ErrorCode
from common.exchanges.ids import Exchange
from common.web import iso_utc
from market_data.bars import Row
from market_data.conflate import Conflator, ms_to_datetime

if TYPE_CHECKING:
    from common.exchanges import MarketCatalog
    from market_data.pricecache import PriceStore

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
INTERVALS: dict[str, int] = {
    "1m": 1,
    "3m": 3,
    "5m": 5,
    "15m": 15,
    "30m": 30,
    "1h": 60,
    "4h": 240,
    "1d": 1440,
}
MAX_COUNT = 1000


def _num(value: Any) -> str:
    # ccxt hands OHLCV as floats; repr keeps every digit the exchange sent (up to 15 significant ones).
    return repr(float(value)) if not isinstance(value, str) else value


def ohlcv_row(candle: list[Any]) -> Row:
    """A ccxt OHLCV entry as a row."""
    return (
        int(candle[0]),
        _num(candle[1]),
        _num(candle[2]),
        _num(candle[3]),
        _num(candle[4]),
        _num(candle[5]),
    )


def candle_json(row: Row) -> dict[str, Any]:
    """A row as the API serves it (Decimals become JSON numbers at the edge)."""
    return {
        "timestamp": iso_utc(ms_to_datetime(row[0])),
        "open": Decimal(row[1]),
        "high": Decimal(row[2]),
        "low": Decimal(row[3]),
        "close": Decimal(row[4]),
        "volume": Decimal(row[5]),
    }


def check_query(interval: str, count: int) -> None:
    """VALIDATION_ERROR for an unknown interval or a count outside 1..1000."""
    fields = []
    if interval not in INTERVALS:
        fields.append({"field": "interval", "reason": f"one of {', '.join(INTERVALS)}"})
    if not 1 <= count <= MAX_COUNT:
        fields.append({"field": "count", "reason": f"between 1 and {MAX_COUNT}"})
    if fields:
        raise AppError(ErrorCode.VALIDATION_ERROR, {"fields": fields})


class CandleService:
    """Answers candle requests: 1m from the cache (backfilled when needed), others from the exchange."""

    def __init__(
        self,
        store: PriceStore,
        catalog: MarketCatalog,
        conflator: Conflator,
        cache_size: int,
        other_ttl_seconds: float = 10.0,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.conflator = conflator
        self.cache_size = cache_size
        self.other_ttl_seconds = other_ttl_seconds
        # The oldest minute from which the cached list is known to hold every minute (per process).
        self._complete_from: dict[tuple[Exchange, str], int] = {}
        # One exchange fetch at a time per (exchange, ticker, interval): a burst waits for it and slices.
        self._fetching: dict[tuple[Exchange, str, str], asyncio.Lock] = {}

    def window(self, exchange: Exchange, count: int) -> int:
        """How many candles to fetch for `count`: one full page, or MAX_COUNT when a page is not enough."""
        page = self.catalog.ohlcv_page(exchange)
        return min(page, MAX_COUNT) if count <= page else MAX_COUNT

    def mark_gap(self, exchange: Exchange, ticker: str) -> None:
        """Streaming of this ticker stopped or missed trades: the next request backfills."""
        self._complete_from.pop((exchange, ticker), None)

    async def candles(self, exchange: Exchange, ticker: str, interval: str, count: int) -> list[Row]:
        """Up to `count` candles, oldest first."""
        if interval != "1m":
            return await self._other(exchange, ticker, interval, count)
        if count > self.cache_size:
            # More history than the cache keeps: the exchange's, with our own forming minute on top.
            rows = await self._other(exchange, ticker, interval, count)
            current = self._current(exchange, ticker)
            if current is not None and rows and rows[-1][0] <= current[0]:
                rows = [row for row in rows if row[0] < current[0]] + [current]
            return rows[-count:]
        now = int(time.time() * 1000)
        current_minute = now - now % MINUTE_MS
        first_needed = current_minute - (min(count, self.cache_size) - 1) * MINUTE_MS
        complete_from = self._complete_from.get((exchange, ticker))
        if complete_from is None or complete_from > first_needed:
            await self._backfill(exchange, ticker, count, current_minute, first_needed)
        rows = await self.store.read_candles(exchange, ticker)
        by_start = {row[0]: row for row in rows}
        current = self._current(exchange, ticker)
        if current is None:
            current = await self.store.read_current_candle(exchange, ticker)
        if current is not None:
            by_start[current[0]] = current
        return [by_start[start] for start in sorted(by_start)][-count:]

    def _current(self, exchange: Exchange, ticker: str) -> Row | None:
        book = self.conflator.books.get((exchange, ticker))
        if book is None or book.candle is None:
            return None
        return book.candle.row()

    async def _backfill(
        self, exchange: Exchange, ticker: str, count: int, current_minute: int, first_needed: int
    ) -> None:
        limit = min(max(self.window(exchange, count), 2), self.cache_size)
        fetched = await self.catalog.fetch_ohlcv(exchange, ticker, "1m", limit)
        closed = [ohlcv_row(c) for c in fetched if int(c[0]) < current_minute]
        book = self.conflator.books.get((exchange, ticker))
        forming = next((ohlcv_row(c) for c in fetched if int(c[0]) == current_minute), None)
        if book is not None and book.candle is not None and forming is not None:
            # Streaming may have started mid-minute: the exchange saw the whole minute so far.
            if book.candle.start == current_minute:
                candle = book.candle
                candle.open = forming[1]
                if float(forming[2]) > candle.high_f:
                    candle.high, candle.high_f = forming[2], float(forming[2])
                if float(forming[3]) < candle.low_f:
                    candle.low, candle.low_f = forming[3], float(forming[3])
                candle.volume = max(candle.volume, Decimal(forming[5]))
        elif forming is not None:
            await self.store.write_current_candle(exchange, ticker, forming)
        # Minutes our own stream closed meanwhile are newer than what the exchange just told us.
        own = {
            row[0]: row for row in await self.store.read_candles(exchange, ticker) if row[0] >= current_minute
        }
        merged = {row[0]: row for row in closed}
        merged.update(own)
        rows = [merged[start] for start in sorted(merged)][-self.cache_size :]
        await self.store.replace_candles(exchange, ticker, rows)
        # The exchange told us all it has for the window (Upbit leaves out minutes without trades).
        self._complete_from[(exchange, ticker)] = min(rows[0][0], first_needed) if rows else first_needed

    async def _other(self, exchange: Exchange, ticker: str, interval: str, count: int) -> list[Row]:
        cached = await self.store.read_interval(exchange, ticker, interval)
        if cached is not None and cached[0] >= count:
            return cached[1][-count:]
        lock = self._fetching.setdefault((exchange, ticker, interval), asyncio.Lock())
        async with lock:
            cached = await self.store.read_interval(exchange, ticker, interval)
            if cached is not None and cached[0] >= count:  # fetched while this request waited
                return cached[1][-count:]
            window = max(self.window(exchange, count), cached[0] if cached is not None else 0)
            fetched = await self.catalog.fetch_ohlcv(exchange, ticker, interval, window)
            rows = [ohlcv_row(c) for c in fetched][-window:]
            await self.store.write_interval(exchange, ticker, interval, window, rows, self.other_ttl_seconds)
        return rows[-count:]
