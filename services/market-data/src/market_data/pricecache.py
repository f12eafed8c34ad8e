"""The Redis side of market data: the latest price and 24h stats per ticker, and 1-minute candles.

Keys (under the cache namespace, e.g. `gridbot:`):

* `price:<exchange>:<ticker>` hash: `price` (decimal text), `change24h` (percent, decimal text, may be
  empty), `volume24h` (base volume, decimal text, may be empty), `timestamp` (ISO 8601 UTC of the last
  trade), `tradeTime` (its epoch ms), `tradeId`, `updatedAt` (epoch ms of the write). Written at most once
  per PRICE_TICK_MS per ticker.
* `candles:1m:<exchange>:<ticker>` list, oldest first, capped at CANDLE_CACHE_SIZE: closed minutes as
  JSON `[startMs, "open", "high", "low", "close", "volume"]`.
* `candles:1m:<exchange>:<ticker>:current` string: the forming minute, same JSON (expires after 2 min).
* `candles:<interval>:<exchange>:<ticker>:window` string: other intervals' newest window,
  `{"window": n, "rows": [...]}`, short TTL; every count up to n is a slice of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from common.cache import Cache, CacheError
from common.cache.redis import RedisCache
from common.exchanges.ids import Exchange
from common.web import iso_utc
from market_data.bars import Candle, Row, decode_row, encode_row
from market_data.conflate import Conflator, TickerBook, decimal_text

log = logging.getLogger(__name__)

CURRENT_CANDLE_TTL_SECONDS = 120


def price_key(exchange: Exchange | str, ticker: str) -> str:
    """The price hash of a ticker."""
    return f"price:{exchange}:{ticker}"


def candles_key(exchange: Exchange | str, ticker: str) -> str:
    """The capped list of closed 1-minute candles of a ticker."""
    return f"candles:1m:{exchange}:{ticker}"


def current_candle_key(exchange: Exchange | str, ticker: str) -> str:
    """The forming 1-minute candle of a ticker."""
    return f"candles:1m:{exchange}:{ticker}:current"


def interval_key(exchange: Exchange | str, ticker: str, interval: str) -> str:
    """Short-lived cache of the newest window of another interval's candles (any count is a slice of it)."""
    return f"candles:{interval}:{exchange}:{ticker}:window"


def book_fields(book: TickerBook, now_ms: int) -> dict[str, str]:
    """The price hash fields of a book."""
    fields = {"updatedAt": str(now_ms)}
    if book.newest_raw and book.last_ts is not None:
        fields["price"] = decimal_text(Decimal(book.newest_raw))
        fields["tradeTime"] = str(book.last_ts)
        fields["timestamp"] = iso_utc(datetime.fromtimestamp(book.last_ts / 1000, UTC))
        if book.last_trade_id is not None:
            fields["tradeId"] = str(book.last_trade_id)
    if book.change_pct is not None:
        fields["change24h"] = str(book.change_pct)
    if book.volume_24h is not None:
        fields["volume24h"] = decimal_text(Decimal(book.volume_24h))
    return fields


class PriceStore:
    """Reads and writes of the price cache and the candle lists (batched on Redis)."""

    def __init__(self, cache: Cache, candle_cache_size: int) -> None:
        self.cache = cache
        self.candle_cache_size = candle_cache_size

    async def write_books(self, books: list[TickerBook]) -> None:
        """Write the price hash, closed candles and forming candle of each book, in one round trip on Redis."""
        now_ms = int(time.time() * 1000)
        writes: list[tuple[str, str, Any]] = []
        # Taken now: minutes that close while the write is in flight belong to the next write.
        closed = {book: book.closed_candles for book in books}
        for book in books:
            book.closed_candles = []
            fields = book_fields(book, now_ms)
            if len(fields) > 1:
                writes.append(("hset", price_key(book.exchange, book.ticker), fields))
            for candle in closed[book]:
                writes.append(("push", candles_key(book.exchange, book.ticker), encode_row(candle.row())))
            if book.candle is not None:
                writes.append(
                    ("set", current_candle_key(book.exchange, book.ticker), encode_row(book.candle.row()))
                )
        try:
            await self._apply(writes)
        except BaseException:
            for book, candles in closed.items():
                book.closed_candles[:0] = candles
            raise

    async def _apply(self, writes: list[tuple[str, str, Any]]) -> None:
        cache = self.cache
        if isinstance(cache, RedisCache):
            try:
                async with cache.client.pipeline(transaction=False) as pipe:
                    for op, key, value in writes:
                        full = cache.full_key(key)
                        if op == "hset":
                            pipe.hset(full, mapping=value)
                        elif op == "push":
                            pipe.rpush(full, value)
                            pipe.ltrim(full, -self.candle_cache_size, -1)
                        else:
                            pipe.set(full, value, ex=CURRENT_CANDLE_TTL_SECONDS)
                    await pipe.execute()
            except Exception as exc:  # redis errors, connection refused/reset
                raise CacheError(type(exc).__name__) from exc
            return
        for op, key, value in writes:
            if op == "hset":
                await cache.hset(key, value)
            elif op == "push":
                await cache.push_capped(key, value, self.candle_cache_size)
            else:
                await cache.set(key, value, ttl_seconds=CURRENT_CANDLE_TTL_SECONDS)

    async def read_price(self, exchange: Exchange, ticker: str) -> dict[str, str]:
        """The price hash of a ticker ({} when absent)."""
        return await self.cache.hgetall(price_key(exchange, ticker))

    async def write_price(self, exchange: Exchange, ticker: str, fields: Mapping[str, str]) -> None:
        """Store a price fetched over REST (when the ticker was not streamed yet)."""
        await self.cache.hset(price_key(exchange, ticker), fields)

    async def read_candles(self, exchange: Exchange, ticker: str) -> list[Row]:
        """Cached closed 1-minute candles, oldest first."""
        items = await self.cache.list_range(candles_key(exchange, ticker))
        return [row for row in map(decode_row, items) if row is not None]

    async def read_current_candle(self, exchange: Exchange, ticker: str) -> Row | None:
        """The forming minute as last written."""
        text = await self.cache.get(current_candle_key(exchange, ticker))
        return decode_row(text) if text else None

    async def write_current_candle(self, exchange: Exchange, ticker: str, row: Row) -> None:
        """Store a forming minute fetched from the exchange."""
        await self.cache.set(
            current_candle_key(exchange, ticker), encode_row(row), CURRENT_CANDLE_TTL_SECONDS
        )

    async def replace_candles(self, exchange: Exchange, ticker: str, rows: list[Row]) -> None:
        """Replace the closed-candle list (after a backfill from the exchange)."""
        key = candles_key(exchange, ticker)
        cache = self.cache
        if isinstance(cache, RedisCache):
            try:
                async with cache.client.pipeline(transaction=True) as pipe:
                    full = cache.full_key(key)
                    pipe.delete(full)
                    if rows:
                        pipe.rpush(full, *(encode_row(row) for row in rows))
                        pipe.ltrim(full, -self.candle_cache_size, -1)
                    await pipe.execute()
            except Exception as exc:
                raise CacheError(type(exc).__name__) from exc
            return
        await cache.delete(key)
        for row in rows:
            await cache.push_capped(key, encode_row(row), self.candle_cache_size)

    async def read_interval(
        self, exchange: Exchange, ticker: str, interval: str
    ) -> tuple[int, list[Row]] | None:
        """(window asked of the exchange, its candles) of another interval, if still cached.

        The exchange may have fewer candles than the window asked for: a count up to the window is still
        answered by the slice, as the exchange would have answered it.
        """
        text = await self.cache.get(interval_key(exchange, ticker, interval))
        if not text:
            return None
        try:
            value = orjson.loads(text)
            window = int(value["window"])
            rows = [(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5])) for r in value["rows"]]
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError, IndexError):
            return None
        return window, rows

    async def write_interval(
        self, exchange: Exchange, ticker: str, interval: str, window: int, rows: list[Row], ttl: float
    ) -> None:
        """Keep the newest `window` candles of another interval for a short while."""
        text = orjson.dumps({"window": window, "rows": [list(row) for row in rows]}).decode()
        await self.cache.set(interval_key(exchange, ticker, interval), text, ttl)

    async def last_seen(self, exchange: Exchange, ticker: str) -> tuple[int | None, int, str] | None:
        """(trade id, trade time ms, price) of the last trade a previous process cached, if any."""
        fields = await self.read_price(exchange, ticker)
        try:
            ts = int(fields["tradeTime"])
            price = fields["price"]
        except (KeyError, ValueError):
            return None
        trade_id = fields.get("tradeId")
        return (int(trade_id) if trade_id and trade_id.isdigit() else None), ts, price


class PriceWriter:
    """Writes every changed book to the cache once per interval (one batch per interval)."""

    def __init__(self, store: PriceStore, conflator: Conflator, interval_ms: int) -> None:
        self.store = store
        self.conflator = conflator
        self.interval = interval_ms / 1000
        self.writes = 0
        self.failures = 0

    async def run(self) -> None:
        """Loop until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        """Write what changed since the last flush (kept for the next one when the cache is down)."""
        books = self.conflator.take_dirty()
        if not books:
            return
        try:
            await self.store.write_books(books)
            self.writes += 1
        except (CacheError, OSError, TimeoutError):
            self.failures += 1
            log.warning("price cache write failed for %d tickers; retrying next interval", len(books))
            for book in books:
                if not book.dirty:
                    book.dirty = True
                    self.conflator.dirty.append(book)


__all__ = ["Candle", "PriceStore", "PriceWriter", "book_fields", "candles_key", "price_key"]
