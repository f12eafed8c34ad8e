"""Per-market public data: last trade, tape, wall-clock 1-minute buckets and rolling stats."""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from exchange_sim.events import PublicTrade
from exchange_sim.markets import Market
from exchange_sim.prices import Candle
from exchange_sim.wire import floor_to_step

MINUTE_MS = 60_000
DAY_MS = 86_400_000
ZERO = Decimal(0)
# Trade ids start high so "firstId = lastId - count + 1" stays positive over the seeded history.
FIRST_TRADE_ID = 4_000_000_001
_TAPE_SIZE = 1000


@dataclass
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


class MarketData:
    """Everything public about one market."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.buckets: list[Bucket] = []
        self._starts: list[int] = []
        self.tape: deque[PublicTrade] = deque(maxlen=_TAPE_SIZE)
        self.last_price: Decimal = ZERO
        self.last_qty: Decimal = ZERO
        self.last_time_ms = 0
        self.last_taker_buy = True
        self.next_trade_id = FIRST_TRADE_ID
        self.book_update_id = 1
        self._cache: dict[int, tuple[int, Bucket]] = {}

    def seed(self, start_ms: int, candle: Candle) -> None:
        """Add a historical minute (before the replay started)."""
        bucket = Bucket(
            start_ms,
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
        self._append(bucket)
        self.last_price = candle.close
        step = self.market.step_size
        self.last_qty = max(step, floor_to_step(candle.volume / max(candle.trades, 1), step))
        self.last_time_ms = start_ms + MINUTE_MS - 1

    def _append(self, bucket: Bucket) -> None:
        self.buckets.append(bucket)
        self._starts.append(bucket.start_ms)

    def record(self, price: Decimal, qty: Decimal, time_ms: int) -> PublicTrade:
        """Put a trade on the tape and into its minute; the taker side follows the price move."""
        taker_buy = price >= self.last_price
        minute = time_ms - time_ms % MINUTE_MS
        if not self.buckets or self.buckets[-1].start_ms < minute:
            self._append(Bucket(minute, price, price, price, price))
        self.buckets[-1].add(price, qty, taker_buy)
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

    def stats(self, since_ms: int, now_ms: int) -> Stats:
        """Aggregate of the buckets starting at or after since_ms (cached per window start)."""
        del now_ms  # the window ends with the newest bucket
        first = bisect_left(self._starts, since_ms)
        prev_close = self.buckets[first - 1].close if first > 0 else self.last_price
        if first >= len(self.buckets):
            price = self.last_price
            return Stats(price, price, price, price, ZERO, ZERO, 0, since_ms, prev_close)
        last = len(self.buckets) - 1
        cached = self._cache.get(first)
        if first == last:
            total = self.buckets[last]
        else:
            if cached is None or cached[0] != last:
                body = self.buckets[first]
                for bucket in self.buckets[first + 1 : last]:
                    body = body.merged(bucket)
                if len(self._cache) > 8:
                    self._cache.clear()
                self._cache[first] = (last, body)
                cached = self._cache[first]
            total = cached[1].merged(self.buckets[last])
        return Stats(
            total.open,
            total.high,
            total.low,
            total.close,
            total.volume,
            total.quote_volume,
            total.count,
            self.buckets[first].start_ms,
            prev_close,
        )

    def rolling_24h(self, now_ms: int) -> Stats:
        """The last 24 hours at minute resolution, as Binance's 24hr ticker."""
        minute = now_ms - now_ms % MINUTE_MS
        return self.stats(minute - DAY_MS + MINUTE_MS, now_ms)

    def all_time(self) -> Stats:
        """Everything the simulator knows (its stand-in for 52-week highs and lows)."""
        return self.stats(0, 0)

    def candles(
        self,
        interval_ms: int,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
        fill_gaps: bool,
    ) -> list[Bucket]:
        """Candles of an interval (aligned to the epoch), oldest first.

        With start_ms, the first `limit` candles from there; else the last `limit` up to end_ms.
        """
        if not self.buckets:
            return []
        end = end_ms if end_ms is not None else self.buckets[-1].start_ms + MINUTE_MS - 1
        first_start = self.buckets[0].start_ms
        begin = start_ms if start_ms is not None else max(first_start, end - interval_ms * (limit + 1))
        grouped: dict[int, Bucket] = {}
        for index in range(bisect_left(self._starts, begin - begin % interval_ms), len(self.buckets)):
            bucket = self.buckets[index]
            if bucket.start_ms > end:
                break
            key = bucket.start_ms - bucket.start_ms % interval_ms
            grouped[key] = grouped[key].merged(bucket) if key in grouped else bucket.copy_at(key)
        keys = sorted(k for k in grouped if k + interval_ms > begin and k <= end)
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
