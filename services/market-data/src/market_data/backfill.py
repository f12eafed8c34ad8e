"""Gap backfill: after a (re)connection, the trades missed while disconnected are fetched over REST.

Trades of a ticker arriving on the stream are held back (`TickerBook.buffer`) from before the subscription
until the REST trades since the last trade seen are folded, so the next tick's high/low cover the gap and
come before anything newer. Duplicates between REST and the stream are dropped by trade id. A gap longer
than the pages we fetch is covered by its 1-minute candles' extremes; a backfill that fails is retried in
the background and folded late (extremes only: the newest price stays the stream's).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from common import metrics
from common.exchanges import MarketCatalog
from common.exchanges.errors import ExchangeCallError
from common.exchanges.ids import Exchange
from common.retry import Backoff, Jitter
from market_data.conflate import BufferedTrade, Conflator, TickerBook

log = logging.getLogger(__name__)

BINANCE_PAGE = 1000
UPBIT_PAGE = 500
_HOUR_MS = 3_600_000
# A failed backfill tries again after half a second plus a full-jitter backoff (1 s doubling, 10 s at most).
RETRY = Backoff(base=1.0, cap=10.0, jitter=Jitter.FULL, pause=0.5)


def _raw(value: Any) -> str:
    return value if isinstance(value, str) else repr(float(value))


def _trade_of(exchange: Exchange, trade: dict[str, Any]) -> BufferedTrade | None:
    """A ccxt trade as (id, price float, price text, qty text, ts), from the exchange's own fields."""
    info = trade.get("info") or {}
    try:
        if exchange is Exchange.BINANCE:
            # aggTrades: one aggregate spans trades f..l at one price; l is comparable with @trade ids.
            trade_id = int(info.get("l", info.get("a", trade["id"])))
            price, qty, ts = (
                str(info.get("p", trade["price"])),
                str(info.get("q", trade["amount"])),
                int(trade["timestamp"]),
            )
        else:
            trade_id = int(info.get("sequential_id", trade["id"]))
            price = _raw(info.get("trade_price", trade["price"]))
            qty = _raw(info.get("trade_volume", trade["amount"]))
            ts = int(info.get("timestamp", trade["timestamp"]))
        return trade_id, float(price), price, qty, ts
    except (KeyError, TypeError, ValueError):
        return None


class Backfiller:
    """Runs one backfill job per ticker at a time; a reconnection during a job makes it run again."""

    def __init__(
        self, catalog: MarketCatalog, conflator: Conflator, max_pages: int = 5, max_age_seconds: float = 3600
    ) -> None:
        self.catalog = catalog
        self.conflator = conflator
        self.max_pages = max_pages
        self.max_age_ms = int(max_age_seconds * 1000)
        self._jobs: dict[TickerBook, asyncio.Task[None]] = {}
        self._rerun: set[TickerBook] = set()
        self.completed = 0
        self.failed = 0
        self.truncated = 0
        self.folded = 0

    def prepare(self, book: TickerBook) -> bool:
        """Before subscribing: hold the ticker's stream trades back; True when a backfill must then start."""
        if book.last_ts is None:
            return False
        if book in self._jobs:
            return True
        if book.buffer is None:
            book.buffer = []
        return True

    def start(self, books: list[TickerBook]) -> None:
        """After the subscription is effective: fetch what was missed since each book's last trade."""
        for book in books:
            if book in self._jobs:
                self._rerun.add(book)
                continue
            since = book.last_ts
            if since is None:
                self.conflator.drain_buffer(book)
                continue
            metrics.MARKET_BACKFILLS.labels(book.exchange.value).inc()
            task = asyncio.create_task(self._job(book, since), name=f"backfill:{book.routing_key}")
            self._jobs[book] = task

    def is_running(self, book: TickerBook) -> bool:
        """True while a job works on this book."""
        return book in self._jobs

    @property
    def running(self) -> int:
        """Jobs in progress."""
        return len(self._jobs)

    async def close(self) -> None:
        """Cancel running jobs."""
        tasks = list(self._jobs.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _job(self, book: TickerBook, since: int) -> None:
        try:
            attempt = 0
            late = False
            while True:
                try:
                    await self._fill(book, since)
                    self.completed += 1
                except ExchangeCallError as exc:
                    attempt += 1
                    self.failed += 1
                    # Never hold the live stream back for long: release it and fold the gap late.
                    self.conflator.drain_buffer(book)
                    late = True
                    if attempt >= 5 or time.time() * 1000 - since > self.max_age_ms:
                        log.error("backfill of %s gave up (%s)", book.routing_key, exc.source)
                        return
                    log.warning("backfill of %s failed (%s); retrying", book.routing_key, exc.source)
                    await asyncio.sleep(RETRY.delay(attempt))
                    continue
                self.conflator.drain_buffer(book)
                if book in self._rerun:
                    self._rerun.discard(book)
                    continue
                if late:
                    log.info("late backfill of %s folded", book.routing_key)
                return
        except asyncio.CancelledError:
            book.buffer = None
            raise
        finally:
            self._jobs.pop(book, None)
            self._rerun.discard(book)

    async def _fill(self, book: TickerBook, since: int) -> None:
        exchange, ticker = book.exchange, book.ticker
        now = int(time.time() * 1000)
        start = max(since, now - self.max_age_ms)
        trades: dict[int, BufferedTrade] = {}
        complete = False
        if exchange is Exchange.BINANCE:
            cursor = start
            for _ in range(self.max_pages):
                page = await self.catalog.fetch_trades(exchange, ticker, cursor, BINANCE_PAGE)
                parsed = [t for t in map(lambda x: _trade_of(exchange, x), page) if t is not None]
                for trade in parsed:
                    trades[trade[0]] = trade
                window_end = cursor + _HOUR_MS
                if len(parsed) < BINANCE_PAGE and window_end >= now:
                    complete = True
                    break
                cursor = max((t[4] for t in parsed), default=window_end)
        else:
            params: dict[str, Any] = {}
            for _ in range(self.max_pages):
                page = await self.catalog.fetch_trades(exchange, ticker, None, UPBIT_PAGE, params)
                parsed = [t for t in map(lambda x: _trade_of(exchange, x), page) if t is not None]
                fresh = [t for t in parsed if t[0] not in trades]
                for trade in fresh:
                    trades[trade[0]] = trade
                oldest = min(parsed, key=lambda t: t[4], default=None)
                if oldest is None or oldest[4] <= start or len(parsed) < UPBIT_PAGE:
                    complete = True
                    break
                if not fresh:
                    break  # the exchange ignored the cursor: no older page to be had
                params = {"cursor": str(oldest[0])}
        ordered = sorted((t for t in trades.values() if t[4] >= start), key=lambda t: (t[4], t[0]))
        for trade_id, price_f, price_raw, qty_raw, ts in ordered:
            self.conflator.add_trade(book, trade_id, price_f, price_raw, qty_raw, ts)
        self.folded += len(ordered)
        if not complete or start > since:
            self.truncated += 1
            await self._fold_candles(book, since, ordered[0][4] if ordered else now)

    async def _fold_candles(self, book: TickerBook, since: int, until: int) -> None:
        """Cover the part of a gap the trade pages did not reach by its minutes' highs and lows."""
        minutes = min(1000, max(1, (until - since) // 60_000 + 1))
        candles = await self.catalog.fetch_ohlcv(book.exchange, book.ticker, "1m", int(minutes) + 1)
        inside = [c for c in candles if since - since % 60_000 <= int(c[0]) <= until]
        if not inside:
            return
        high = max(inside, key=lambda c: float(c[2]))[2]
        low = min(inside, key=lambda c: float(c[3]))[3]
        self.conflator.fold_extremes(book, _raw(high), _raw(low), since, until)
        log.warning(
            "backfill of %s truncated; folded %d minutes of candle extremes", book.routing_key, len(inside)
        )
