"""Per-ticker conflation: every trade is folded; at most one price tick per interval leaves per ticker.

The hot path (`Conflator.add_trade`) is synchronous and allocation-light: prices stay as the exchange's
text plus a float for comparisons, and become Decimals only when a tick is built. A trade arriving when
its ticker's previous tick is older than the interval is published at once (leading edge); later trades
within the interval are folded and flushed when the window ends. A flusher task publishes, so ingestion
never waits for the broker; a tick the broker did not confirm is folded back into the next one, so its
extremes are never lost.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal

from common.contracts.market import PriceTick, price_routing_key
from common.exchanges.ids import Exchange
from market_data.bars import Candle

log = logging.getLogger(__name__)

# Trade ids remembered per ticker to drop duplicates across reconnections, rotations and REST backfills.
SEEN_IDS = 4096

Publish = Callable[[PriceTick], Awaitable[None]]
# (trade id, price as float, price as text, quantity as text, exchange time in ms)
BufferedTrade = tuple[int, float, str, str, int]


def plain(value: Decimal) -> Decimal:
    """A Decimal without trailing zeros or exponent notation (96466.11000000 -> 96466.11, 1E+2 -> 100)."""
    normalized = value.normalize()
    return normalized.quantize(Decimal(1)) if normalized == normalized.to_integral_value() else normalized


def decimal_text(value: Decimal) -> str:
    """Fixed-point text of a Decimal without trailing zeros ("0.0000001", never "1E-7")."""
    return format(plain(value), "f")


def ms_to_datetime(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, UTC)


class TickerBook:
    """Everything kept per ticker: the open conflation window, dedupe memory, the forming candle, 24h stats."""

    __slots__ = (
        "buffer",
        "candle",
        "change_pct",
        "closed_candles",
        "dirty",
        "exchange",
        "first_ts",
        "floor_ts",
        "high_f",
        "high_raw",
        "inflight",
        "last_f",
        "last_pub",
        "last_raw",
        "last_trade_id",
        "last_ts",
        "low_f",
        "low_raw",
        "newest_f",
        "newest_raw",
        "pending",
        "restore_checked",
        "routing_key",
        "scheduled",
        "seen",
        "seen_order",
        "seen_ts",
        "seq",
        "stats_ts",
        "ticker",
        "trades",
        "volume_24h",
        "window_last_ts",
    )

    def __init__(self, exchange: Exchange, ticker: str) -> None:
        self.exchange = exchange
        self.ticker = ticker
        self.routing_key = price_routing_key(exchange, ticker)
        self.seq = 0
        self.last_pub = -1e18
        self.pending = False
        self.scheduled = False
        self.inflight = False
        # The open window.
        self.last_f = self.high_f = self.low_f = 0.0
        self.last_raw = self.high_raw = self.low_raw = ""
        self.trades = 0
        self.first_ts = self.window_last_ts = 0
        # The newest trade ever folded (by exchange time): the price cache and the backfill start.
        self.newest_f = 0.0
        self.newest_raw = ""
        self.last_ts: int | None = None
        self.last_trade_id: int | None = None
        self.seen: set[int] = set()
        self.seen_order: deque[int] = deque()
        self.seen_ts: deque[int] = deque()
        self.floor_ts = 0
        # Trades held back while a REST backfill runs, so the gap is folded before them.
        self.buffer: list[BufferedTrade] | None = None
        self.candle: Candle | None = None
        self.closed_candles: list[Candle] = []
        # 24h statistics from the exchange's ticker stream (kept as text until written).
        self.change_pct: str | None = None
        self.volume_24h: str | None = None
        self.stats_ts = 0
        self.dirty = False
        # Whether the price cache was asked for a previous process's last trade (once per process).
        self.restore_checked = False

    def forget_position(self) -> None:
        """No longer streamed: a later re-subscription starts afresh instead of backfilling the pause."""
        self.last_ts = None
        self.last_trade_id = None

    def restore_last_seen(self, trade_id: int | None, ts: int, price: str) -> None:
        """Resume after a restart from the last trade a previous process saw (from the price cache)."""
        if self.last_ts is not None:
            return
        self.last_ts = self.floor_ts = ts
        self.newest_raw, self.newest_f = price, float(price)
        if trade_id is not None:
            self.last_trade_id = trade_id
            self.seen.add(trade_id)
            self.seen_order.append(trade_id)
            self.seen_ts.append(ts)


class Conflator:
    """Folds trades into per-ticker windows and publishes one PriceTick per window from a flusher task."""

    def __init__(self, interval_ms: int, publish: Publish, epoch: str) -> None:
        self.interval = interval_ms / 1000
        self.publish_fn = publish
        self.epoch = epoch
        self.books: dict[tuple[Exchange, str], TickerBook] = {}
        self.by_exchange: dict[Exchange, dict[str, TickerBook]] = {ex: {} for ex in Exchange}
        self.dirty: list[TickerBook] = []
        self._ready: list[TickerBook] = []
        self._heap: list[tuple[float, int, TickerBook]] = []
        self._counter = itertools.count()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.trades = 0
        self.duplicates = 0
        self.published = 0
        self.publish_failures = 0

    def book(self, exchange: Exchange, ticker: str) -> TickerBook:
        """The book of a ticker, created on first use."""
        book = self.books.get((exchange, ticker))
        if book is None:
            book = TickerBook(exchange, ticker)
            self.books[(exchange, ticker)] = book
            self.by_exchange[exchange][ticker] = book
        return book

    # ---- ingestion (hot path: synchronous, never awaits) -------------------------------------------

    def add_trade(
        self, book: TickerBook, trade_id: int, price_f: float, price_raw: str, qty_raw: str, ts: int
    ) -> None:
        """Fold one trade (duplicates and trades older than the dedupe memory are dropped)."""
        if trade_id in book.seen or ts < book.floor_ts:
            self.duplicates += 1
            return
        seen_order = book.seen_order
        if len(seen_order) >= SEEN_IDS:
            book.seen.discard(seen_order.popleft())
            # Anything older than what we can still recognise is treated as seen.
            evicted_ts = book.seen_ts.popleft()
            if evicted_ts > book.floor_ts:
                book.floor_ts = evicted_ts
        seen_order.append(trade_id)
        book.seen_ts.append(ts)
        book.seen.add(trade_id)
        self.trades += 1
        newest = book.last_ts is None or ts >= book.last_ts
        if newest:
            book.last_ts = ts
            book.last_trade_id = trade_id
            book.newest_f = price_f
            book.newest_raw = price_raw
        if not book.pending:
            book.pending = True
            book.trades = 1
            book.first_ts = book.window_last_ts = ts
            book.high_f = book.low_f = price_f
            book.high_raw = book.low_raw = price_raw
            if newest:
                book.last_f, book.last_raw = price_f, price_raw
            else:
                # A late (backfilled) trade: `last` stays the newest known price, inside [low, high].
                book.last_f, book.last_raw = book.newest_f, book.newest_raw
                self._widen(book, book.newest_f, book.newest_raw)
                self._widen(book, price_f, price_raw)
        else:
            book.trades += 1
            if price_f > book.high_f:
                book.high_f, book.high_raw = price_f, price_raw
            elif price_f < book.low_f:
                book.low_f, book.low_raw = price_f, price_raw
            if ts >= book.window_last_ts:
                book.window_last_ts = ts
                if newest:
                    book.last_f, book.last_raw = price_f, price_raw
            elif ts < book.first_ts:
                book.first_ts = ts
        candle = book.candle
        minute = ts - ts % 60_000
        if candle is not None and candle.start == minute:
            candle.add(price_f, price_raw, qty_raw)
        elif candle is None or minute > candle.start:
            if candle is not None:
                book.closed_candles.append(candle)
            book.candle = Candle.first(minute, price_f, price_raw, qty_raw)
        if not book.dirty:
            book.dirty = True
            self.dirty.append(book)
        if not book.scheduled and not book.inflight:
            self._schedule(book, time.monotonic())

    def fold_extremes(self, book: TickerBook, high: str, low: str, first_ts: int, last_ts: int) -> None:
        """Fold a range known only by its extremes (candles of a gap too long to replay trade by trade)."""
        high_f, low_f = float(high), float(low)
        if not book.pending:
            if not book.newest_raw:
                return
            book.pending = True
            book.trades = 0
            book.first_ts, book.window_last_ts = first_ts, max(last_ts, book.last_ts or 0)
            book.last_f, book.last_raw = book.newest_f, book.newest_raw
            book.high_f = book.low_f = book.newest_f
            book.high_raw = book.low_raw = book.newest_raw
        self._widen(book, high_f, high)
        self._widen(book, low_f, low)
        if not book.scheduled and not book.inflight:
            self._schedule(book, time.monotonic())

    @staticmethod
    def _widen(book: TickerBook, price_f: float, price_raw: str) -> None:
        if price_f > book.high_f:
            book.high_f, book.high_raw = price_f, price_raw
        if price_f < book.low_f:
            book.low_f, book.low_raw = price_f, price_raw

    def set_stats(self, book: TickerBook, change_pct: str | None, volume_24h: str, ts: int) -> None:
        """Record the exchange's 24h change (percent) and base volume."""
        book.change_pct = change_pct
        book.volume_24h = volume_24h
        book.stats_ts = ts
        if not book.dirty:
            book.dirty = True
            self.dirty.append(book)

    def take_dirty(self) -> list[TickerBook]:
        """Books changed since the last call (the price-cache writer drains them once per interval)."""
        dirty, self.dirty = self.dirty, []
        for book in dirty:
            book.dirty = False
        return dirty

    def _schedule(self, book: TickerBook, now: float) -> None:
        book.scheduled = True
        due = book.last_pub + self.interval
        if due <= now:
            self._ready.append(book)
        else:
            heapq.heappush(self._heap, (due, next(self._counter), book))
        self._wake.set()

    # ---- flushing ------------------------------------------------------------------------------------

    async def run(self) -> None:
        """The flusher: publish each due window; cancel the task to stop it."""
        try:
            while True:
                self._wake.clear()
                now = time.monotonic()
                due, self._ready = self._ready, []
                heap = self._heap
                while heap and heap[0][0] <= now:
                    due.append(heapq.heappop(heap)[2])
                for book in due:
                    self._flush(book, now)
                if due:
                    continue
                timeout = heap[0][0] - now if heap else None
                try:
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _flush(self, book: TickerBook, now: float) -> None:
        book.scheduled = False
        if not book.pending or book.inflight:
            return
        book.seq += 1
        tick = PriceTick(
            exchange=book.exchange,
            ticker=book.ticker,
            last=plain(Decimal(book.last_raw)),
            high=plain(Decimal(book.high_raw)),
            low=plain(Decimal(book.low_raw)),
            seq=book.seq,
            epoch=self.epoch,
            trades=book.trades,
            first_trade_at=ms_to_datetime(book.first_ts),
            last_trade_at=ms_to_datetime(book.window_last_ts),
            published_at=datetime.now(UTC),
        )
        book.pending = False
        book.last_pub = now
        book.inflight = True
        task = asyncio.create_task(self._publish(book, tick))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, book: TickerBook, tick: PriceTick) -> None:
        try:
            await self.publish_fn(tick)
            self.published += 1
        except Exception:
            self.publish_failures += 1
            log.warning(
                "price tick %s seq %d not published; folding it into the next", book.routing_key, tick.seq
            )
            self._fold_back(book, tick)
        finally:
            book.inflight = False
            if book.pending and not book.scheduled:
                self._schedule(book, time.monotonic())

    def _fold_back(self, book: TickerBook, tick: PriceTick) -> None:
        # The seq is not reused: a consumer sees a gap (and reconciles) rather than two different seq N.
        high, low, last = str(tick.high), str(tick.low), str(tick.last)
        first_ms = int(tick.first_trade_at.timestamp() * 1000)
        last_ms = int(tick.last_trade_at.timestamp() * 1000)
        if not book.pending:
            book.pending = True
            book.trades = tick.trades
            book.first_ts, book.window_last_ts = first_ms, last_ms
            book.last_f, book.last_raw = float(last), last
            book.high_f, book.high_raw = float(high), high
            book.low_f, book.low_raw = float(low), low
            return
        book.trades += tick.trades
        book.first_ts = min(book.first_ts, first_ms)
        self._widen(book, float(high), high)
        self._widen(book, float(low), low)

    def drain_buffer(self, book: TickerBook) -> None:
        """Fold the trades held back during a backfill and stop holding them back."""
        buffered, book.buffer = book.buffer, None
        for trade_id, price_f, price_raw, qty_raw, ts in buffered or ():
            self.add_trade(book, trade_id, price_f, price_raw, qty_raw, ts)
