"""Per-ticker index of each bot's `watch()`, so a tick visits only the bots whose prices it crosses.

For each ticker, three sorted arrays of (price, bot): the highest price a falling market acts at (the
highest open buy, a stop-loss, a trigger from above), the lowest price a rising market acts at (the lowest
open sell, stopAtMax, a take-profit, a trigger from below, the next trailing level), and the next idle level
to arm. A tick with [low, high] concerns exactly the bots with a falling price ≥ low, a rising price ≤ high
or a next arm < high: three binary searches and the matching entries, O(log n + crossings), whatever the
number of bots not crossed. Bots waiting for a price to start are kept apart and handed the next tick of
their ticker.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field
from decimal import Decimal

from gridcore import Watch

_LOW_KEY = -1
_HIGH_KEY = 1 << 130  # above every uuid's int

TickerKey = tuple[str, str]  # (exchange, ticker)
_Entry = tuple[Decimal, int]


@dataclass
class _SortedPrices:
    entries: list[_Entry] = field(default_factory=list)

    def add(self, price: Decimal, key: int) -> None:
        insort(self.entries, (price, key))

    def remove(self, price: Decimal, key: int) -> None:
        position = bisect_left(self.entries, (price, key))
        if position < len(self.entries) and self.entries[position] == (price, key):
            del self.entries[position]

    def at_or_above(self, price: Decimal) -> list[_Entry]:
        return self.entries[bisect_left(self.entries, (price, _LOW_KEY)) :]

    def at_or_below(self, price: Decimal) -> list[_Entry]:
        return self.entries[: bisect_right(self.entries, (price, _HIGH_KEY))]

    def below(self, price: Decimal) -> list[_Entry]:
        return self.entries[: bisect_left(self.entries, (price, _LOW_KEY))]


@dataclass
class _TickerIndex:
    falls: _SortedPrices = field(default_factory=_SortedPrices)  # a low at or under the price acts
    rises: _SortedPrices = field(default_factory=_SortedPrices)  # a high at or over the price acts
    arms: _SortedPrices = field(default_factory=_SortedPrices)  # a high strictly over the price arms
    waiting: set[uuid.UUID] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.falls.entries) + len(self.rises.entries) + len(self.arms.entries) + len(self.waiting)


def _highest(*prices: Decimal | None) -> Decimal | None:
    present = [price for price in prices if price is not None]
    return max(present) if present else None


def _lowest(*prices: Decimal | None) -> Decimal | None:
    present = [price for price in prices if price is not None]
    return min(present) if present else None


def _parts(watch: Watch) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """(fall, rise, arm): the one price per direction at which the bot's nearest concern lies."""
    if watch.stop_loss is None and watch.trigger_below is None:
        fall = watch.highest_buy  # the plain grid's case, without the calls
    else:
        fall = _highest(watch.highest_buy, watch.stop_loss, watch.trigger_below)
    if watch.take_profit is None and watch.trigger_above is None and watch.trail_at is None:
        rise = _lowest(watch.lowest_sell, watch.stop_price)
    else:
        rise = _lowest(
            watch.lowest_sell, watch.stop_price, watch.take_profit, watch.trigger_above, watch.trail_at
        )
    return fall, rise, watch.next_arm


class TickerIndex:
    """Every ticker's index; `update` after each committed change of a bot, `crossed` per tick."""

    def __init__(self) -> None:
        self._tickers: dict[TickerKey, _TickerIndex] = {}
        self._watches: dict[uuid.UUID, tuple[TickerKey, Watch]] = {}

    def update(
        self, bot_id: uuid.UUID, ticker: TickerKey, watch: Watch | None, *, waiting: bool = False
    ) -> None:
        """Replace what the index holds for a bot (None: nothing to watch)."""
        index = self._tickers.setdefault(ticker, _TickerIndex())
        key = bot_id.int
        previous = self._watches.pop(bot_id, None)
        if previous is not None:
            old_ticker, old = previous
            old_index = self._tickers[old_ticker]
            for prices, price in zip(self._lists(old_index), _parts(old), strict=True):
                if price is not None:
                    prices.remove(price, key)
        if waiting:
            index.waiting.add(bot_id)
        else:
            index.waiting.discard(bot_id)
        if watch is None:
            return
        for prices, price in zip(self._lists(index), _parts(watch), strict=True):
            if price is not None:
                prices.add(price, key)
        self._watches[bot_id] = (ticker, watch)

    def remove(self, bot_id: uuid.UUID, ticker: TickerKey) -> None:
        """Forget a bot."""
        self.update(bot_id, ticker, None)
        self._tickers.get(ticker, _TickerIndex()).waiting.discard(bot_id)

    @staticmethod
    def _lists(index: _TickerIndex) -> tuple[_SortedPrices, _SortedPrices, _SortedPrices]:
        return index.falls, index.rises, index.arms

    def crossed(self, ticker: TickerKey, low: Decimal, high: Decimal) -> set[int]:
        """The bots (uuid ints) a tick with this low and high concerns."""
        index = self._tickers.get(ticker)
        if index is None:
            return set()
        found = {key for _, key in index.falls.at_or_above(low)}
        found.update(key for _, key in index.rises.at_or_below(high))
        found.update(key for _, key in index.arms.below(high))
        return found

    def waiting(self, ticker: TickerKey) -> set[uuid.UUID]:
        """Bots of this ticker waiting for a price to start."""
        index = self._tickers.get(ticker)
        return set(index.waiting) if index is not None else set()

    def watched(self, bot_id: uuid.UUID) -> Watch | None:
        """What the index holds for a bot."""
        entry = self._watches.get(bot_id)
        return entry[1] if entry is not None else None

    def size(self, ticker: TickerKey) -> int:
        """Entries held for a ticker (tests, metrics)."""
        index = self._tickers.get(ticker)
        return len(index) if index is not None else 0
