"""The 1-minute candle: the forming one of a ticker (`Candle`) and a row as cached and served (`Row`).

Shared by the conflator (which forms candles from trades), the price cache (which stores rows) and the
candle service (which serves them); it imports none of them.
"""

from __future__ import annotations

from decimal import Decimal

import orjson

# A candle row as cached and served: (start ms, open, high, low, close, volume) with decimal text.
Row = tuple[int, str, str, str, str, str]


class Candle:
    """The forming 1-minute candle of a ticker (prices as exchange text, volume as a Decimal)."""

    __slots__ = ("close", "high", "high_f", "low", "low_f", "open", "start", "volume")

    def __init__(self, start: int, price_f: float, price: str, volume: Decimal) -> None:
        self.start = start
        self.open = self.high = self.low = self.close = price
        self.high_f = self.low_f = price_f
        self.volume = volume

    @classmethod
    def first(cls, start: int, price_f: float, price: str, qty: str) -> Candle:
        """A candle opened by one trade."""
        return cls(start, price_f, price, Decimal(qty))

    def add(self, price_f: float, price: str, qty: str) -> None:
        """Fold one more trade of this minute."""
        if price_f > self.high_f:
            self.high_f, self.high = price_f, price
        elif price_f < self.low_f:
            self.low_f, self.low = price_f, price
        self.close = price
        self.volume += Decimal(qty)

    def row(self) -> Row:
        """The candle as a cache row."""
        return (self.start, self.open, self.high, self.low, self.close, str(self.volume))


def encode_row(row: Row) -> str:
    """A row as the JSON text kept in Redis: [start, "o", "h", "l", "c", "v"]."""
    return orjson.dumps(list(row)).decode()


def decode_row(text: str) -> Row | None:
    """A cached row, or None when it is not one."""
    try:
        value = orjson.loads(text)
        return (int(value[0]), str(value[1]), str(value[2]), str(value[3]), str(value[4]), str(value[5]))
    except (orjson.JSONDecodeError, TypeError, ValueError, IndexError):
        return None
