"""Per-market public data: last trade, tape, wall-clock 1-minute buckets and rolling stats."""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from exchange_sim.events import PublicTrade
from exchange_sim.markets import Market
from exchange_sim.series import Candle
from exchange_sim.wire import floor_to_step

MINUTE_MS = 60_000
DAY_MS = 86_400_000
ZERO = Decimal(0)
# Trade ids start high so "firstId = lastId - count + 1" stays positive over the seeded history.
FIRST_TRADE_ID = 4_000_000_001
_TAPE_SIZE = 1000
# History minutes kept built per market: a day's stats windows (today's and the rolling 24 h) fit twice over.
_HISTORY_CACHE = 4096
# Candles of longer intervals wholly in the history, kept per market (a month is 720 hours, 2,880 quarters).
_SPAN_CACHE = 4096


@dataclass(slots=True)
class Bucket:
    """OHLCV of one wall-clock interval."""

    start_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO
    quote_volume: Decimal = ZERO
    count: int = 0
    taker_buy_volume: Decimal = ZERO
    taker_buy_quote: Decimal = ZERO

    def add(self, price: Decimal, qty: Decimal, taker_buy: bool) -> None:
        """Account for one trade."""
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        quote = price * qty
        self.volume += qty
        self.quote_volume += quote
        self.count += 1
        if taker_buy:
            self.taker_buy_volume += qty
            self.taker_buy_quote += quote

    def merged(self, other: Bucket) -> Bucket:
        """This bucket extended by a later one."""
        return Bucket(
            start_ms=self.start_ms,
            open=self.open,
            high=max(self.high, other.high),
            low=min(self.low, other.low),
            close=other.close,
            volume=self.volume + other.volume,
            quote_volume=self.quote_volume + other.quote_volume,
            count=self.count + other.count,
            taker_buy_volume=self.taker_buy_volume + other.taker_buy_volume,
            taker_buy_quote=self.taker_buy_quote + other.taker_buy_quote,
        )

    def copy_at(self, start_ms: int) -> Bucket:
        """A copy starting at another time."""
        return Bucket(
            start_ms,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.quote_volume,
            self.count,
            self.taker_buy_volume,
            self.taker_buy_quote,
        )


@dataclass(frozen=True, slots=True)
class Stats:
    """Aggregate of a time window."""

    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    count: int
    open_ms: int
    prev_close: Decimal


class SeededHistory:
    """The minutes before the replay started, one per minute from `start_ms`, built from the price source only
    when asked for (and the last few thousand kept): a month of history costs nothing at start-up."""

    def __init__(
        self,
        start_ms: int,
        count: int,
        candle_at: Callable[[int], Candle],
        extremes: Callable[[], tuple[Decimal, Decimal]],
    ) -> None:
        self.start_ms = start_ms
        self.count = count
        self._candle_at = candle_at
        self._extremes = extremes
        self.bucket = functools.lru_cache(maxsize=_HISTORY_CACHE)(self._bucket)
        self.span = functools.lru_cache(maxsize=_SPAN_CACHE)(self._span)

    @property
    def end_ms(self) -> int:
        """Where the history ends (exclusive): the minute the replay started in."""
        return self.start_ms + self.count * MINUTE_MS

    def _bucket(self, index: int) -> Bucket:
        """The minute at this index (0 <= index < count); never changed by its users."""
        candle = self._candle_at(index)
        return Bucket(
            self.start_ms + index * MINUTE_MS,
            candle.open,
            candle.high,
            candle.low,
            candle.close,
            candle.volume,
            candle.quote_volume,
            candle.trades,
            candle.volume / 2,
            candle.quote_volume / 2,
        )

    def _span(self, key: int, interval_ms: int) -> Bucket:
        """The candle of [key, key + interval_ms), an interval wholly in the history: its minutes merged once
        (they never change), without pushing the minute cache's own out."""
        first = (key - self.start_ms) // MINUTE_MS
        total = self._bucket(first).copy_at(key)
        for index in range(first + 1, first + interval_ms // MINUTE_MS):
            total = total.merged(self._bucket(index))
        return total

    @functools.cached_property
    def extremes(self) -> tuple[Decimal, Decimal]:
        """Highest high and lowest low of the whole history (without building its minutes)."""
        return self._extremes()


class MarketData:
    """Everything public about one market: the seeded history, then the minutes the replay recorded."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.history: SeededHistory | None = None
        self._seeded = 0  # minutes of history
        self._live: list[Bucket] = []  # minutes recorded since the start, oldest first
        self._live_starts: list[int] = []
        self._live_high: Decimal | None = None
        self._live_low: Decimal | None = None
        self.tape: deque[PublicTrade] = deque(maxlen=_TAPE_SIZE)
        self.last_price: Decimal = ZERO
        self.last_qty: Decimal = ZERO
        self.last_time_ms = 0
        self.last_taker_buy = True
        self.next_trade_id = FIRST_TRADE_ID
        self.book_update_id = 1
        # Window start index -> (end index, the merged minutes [start, end)).
        self._cache: dict[int, tuple[int, Bucket | None]] = {}

    def attach_history(self, history: SeededHistory) -> None:
        """Show these minutes as the market's past (before the replay records anything)."""
        self.history, self._seeded = history, history.count
        self._cache.clear()
        if history.count:
            last = history.bucket(history.count - 1)
            self.last_price = last.close
            step = self.market.step_size
            self.last_qty = max(step, floor_to_step(last.volume / max(last.count, 1), step))
            self.last_time_ms = last.start_ms + MINUTE_MS - 1

    # Minutes are numbered across both: the history's, then the recorded ones.

    def _size(self) -> int:
        return self._seeded + len(self._live)

    def _at(self, index: int) -> Bucket:
        if index < self._seeded:
            assert self.history is not None
            return self.history.bucket(index)
        return self._live[index - self._seeded]

    def _start(self, index: int) -> int:
        if index < self._seeded:
            assert self.history is not None
            return self.history.start_ms + index * MINUTE_MS
        return self._live_starts[index - self._seeded]

    def _index(self, since_ms: int) -> int:
        """The index of the first minute starting at or after since_ms."""
        if self.history is not None and self._seeded and since_ms <= self._start(self._seeded - 1):
            return max(0, -(-(since_ms - self.history.start_ms) // MINUTE_MS))
        return self._seeded + bisect_left(self._live_starts, since_ms)

    def record(self, price: Decimal, qty: Decimal, time_ms: int) -> PublicTrade:
        """Put a trade on the tape and into its minute; the taker side follows the price move."""
        taker_buy = price >= self.last_price
        minute = time_ms - time_ms % MINUTE_MS
        if not self._live or self._live[-1].start_ms < minute:
            self._live.append(Bucket(minute, price, price, price, price))
            self._live_starts.append(minute)
        self._live[-1].add(price, qty, taker_buy)
        self._live_high = price if self._live_high is None else max(self._live_high, price)
        self._live_low = price if self._live_low is None else min(self._live_low, price)
        trade = PublicTrade(
            venue=self.market.venue,
            symbol=self.market.symbol,
            trade_id=self.next_trade_id,
            price=price,
            qty=qty,
            time_ms=time_ms,
            buyer_is_maker=not taker_buy,
        )
        self.next_trade_id += 1
        self.book_update_id += 1
        self.tape.append(trade)
        self.last_price, self.last_qty, self.last_time_ms, self.last_taker_buy = (
            price,
            qty,
            time_ms,
            taker_buy,
        )
        return trade

    @property
    def best_bid(self) -> Decimal:
        """Synthetic best bid: the last price when a seller took it, else one unit below."""
        if not self.last_taker_buy:
            return self.last_price
        return max(
            self.market.tick_at(self.last_price),
            self.last_price - self.market.tick_at(self.last_price),
        )

    @property
    def best_ask(self) -> Decimal:
        """Synthetic best ask: the last price when a buyer took it, else one unit above."""
        if self.last_taker_buy:
            return self.last_price
        return self.last_price + self.market.tick_at(self.last_price)

    def book_size(self, side: str) -> Decimal:
        """A plausible size resting at the synthetic best price."""
        factor = Decimal(3 + (self.book_update_id * (7 if side == "bid" else 11)) % 17)
        return max(self.market.step_size, self.last_qty * factor).quantize(self.market.step_size)

    def close_before(self, at_ms: int) -> Decimal:
        """The close of the last minute before `at_ms` (the last price when there is none): a day's previous close."""
        first = self._index(at_ms)
        return self._at(first - 1).close if first > 0 else self.last_price

    def stats(self, since_ms: int, now_ms: int) -> Stats:
        """Aggregate of the minutes starting at or after since_ms (cached per window start, and extended as
        minutes are added: a finished minute never changes, only the newest one does)."""
        del now_ms  # the window ends with the newest minute
        first = self._index(since_ms)
        prev_close = self._at(first - 1).close if first > 0 else self.last_price
        size = self._size()
        if first >= size:
            price = self.last_price
            return Stats(price, price, price, price, ZERO, ZERO, 0, since_ms, prev_close)
        last = size - 1
        end, body = self._cache.get(first, (first, None))
        for index in range(end, last):
            bucket = self._at(index)
            body = bucket if body is None else body.merged(bucket)
        if first not in self._cache and len(self._cache) > 8:
            self._cache.clear()
        self._cache[first] = (max(end, last), body)
        newest = self._at(last)
        total = newest if body is None else body.merged(newest)
        return Stats(
            total.open,
            total.high,
            total.low,
            total.close,
            total.volume,
            total.quote_volume,
            total.count,
            self._start(first),
            prev_close,
        )

    def rolling_24h(self, now_ms: int) -> Stats:
        """The last 24 hours at minute resolution, as Binance's 24hr ticker."""
        minute = now_ms - now_ms % MINUTE_MS
        return self.stats(minute - DAY_MS + MINUTE_MS, now_ms)

    def extremes(self) -> tuple[Decimal, Decimal]:
        """Highest and lowest price the simulator knows (its stand-in for 52-week highs and lows)."""
        highs = [p for p in (self._live_high,) if p is not None]
        lows = [p for p in (self._live_low,) if p is not None]
        if self.history is not None and self._seeded:
            high, low = self.history.extremes
            highs.append(high)
            lows.append(low)
        if not highs:
            return self.last_price, self.last_price
        return max(highs), min(lows)

    def candles(
        self,
        interval_ms: int,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
        fill_gaps: bool,
    ) -> list[Bucket]:
        """Candles of an interval (aligned to the epoch), oldest first.

        With start_ms, the first `limit` candles from there; else the last `limit` up to end_ms. Only the
        minutes of those candles are looked at (a page of a month's history costs a page).
        """
        size = self._size()
        if not size:
            return []
        end = end_ms if end_ms is not None else self._start(size - 1) + MINUTE_MS - 1
        if start_ms is not None:
            # As Binance: the first candle is the first to open at or after startTime (ccxt's deterministic
            # pagination steps startTime by a page minus 1 ms and relies on it).
            begin = -(-start_ms // interval_ms) * interval_ms
        else:
            begin = max(self._start(0), end - interval_ms * (limit + 1))
            begin -= begin % interval_ms
        # Longer candles wholly in the history (and not cut by end) come merged and kept: a day's candle is not
        # 1,440 minutes built again at every request.
        spans = self.history if self.history is not None and interval_ms > MINUTE_MS else None
        spans_end = min(spans.end_ms, end + 1) if spans is not None else 0
        grouped: dict[int, Bucket] = {}
        index = self._index(begin)
        while index < size:
            start = self._start(index)
            if start > end:
                break
            key = start - start % interval_ms
            if key not in grouped and start_ms is not None and len(grouped) == limit:
                break  # the page is full
            if spans is not None and key == start >= spans.start_ms and key + interval_ms <= spans_end:
                bucket = spans.span(key, interval_ms)
                index += interval_ms // MINUTE_MS
            else:
                bucket = self._at(index)
                index += 1
            grouped[key] = grouped[key].merged(bucket) if key in grouped else bucket.copy_at(key)
        keys = sorted(k for k in grouped if k <= end)
        if fill_gaps and keys:
            filled: list[Bucket] = []
            previous: Bucket | None = None
            for key in range(keys[0], keys[-1] + 1, interval_ms):
                if key in grouped:
                    previous = grouped[key]
                    filled.append(previous)
                elif previous is not None:
                    close = previous.close
                    filled.append(Bucket(key, close, close, close, close))
            result = filled
        else:
            result = [grouped[k] for k in keys]
        return result[:limit] if start_ms is not None else result[-limit:]
