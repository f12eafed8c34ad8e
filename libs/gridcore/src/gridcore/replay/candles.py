"""1-minute candles as columns: exact Decimals for the core, integer and float arrays for the search.

Every price of a series is held at one decimal exponent (`-scale`, the most decimals any input price had),
so a price's Decimal and its integer (`price · 10^scale`) say the same thing and a series rebuilt from its
integers (as a sweep's worker does) gives Decimals identical to the original's, digit for digit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

MINUTE_MS = 60_000
Price = Decimal | str | int
IntArray = npt.NDArray[np.int64]


def _decimal(value: Price, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int):
        raise TypeError(f"{name} must be a Decimal, str or int (never a float), not {type(value).__name__}")
    result = value if isinstance(value, Decimal) else Decimal(value)
    if not result.is_finite() or result <= 0:
        raise ValueError(f"{name} must be a positive price, not {value}")
    return result


def decimals_of(value: Decimal) -> int:
    """How many decimal places a Decimal's representation carries (0 for integers)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def to_units(value: Decimal, scale: int) -> int:
    """`value · 10^scale` as an exact int; ValueError when that leaves a fraction."""
    scaled = value.scaleb(scale)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {scale} decimals")
    return int(scaled)


class CandleSeries:
    """Consecutive 1-minute candles, oldest first: open time (ms since the epoch, UTC) and OHLC prices.

    Gaps (minutes the exchange has no candle for) are allowed; timestamps must rise and fall on minutes.
    """

    def __init__(self, timestamps: IntArray, ohlc: Sequence[IntArray], scale: int) -> None:
        """From integer columns (prices · 10^scale); `from_rows` is the usual way in."""
        open_, high, low, close = (np.ascontiguousarray(c, dtype=np.int64) for c in ohlc)
        stamps = np.ascontiguousarray(timestamps, dtype=np.int64)
        n = len(stamps)
        if n == 0:
            raise ValueError("a candle series needs at least one candle")
        if any(len(c) != n for c in (open_, high, low, close)):
            raise ValueError("every column needs one value per candle")
        if scale < 0:
            raise ValueError("scale cannot be negative")
        if np.any(stamps % MINUTE_MS != 0) or np.any(np.diff(stamps) <= 0):
            raise ValueError("timestamps must be whole minutes, strictly increasing")
        if (
            np.any(low <= 0)
            or np.any(low > np.minimum(open_, close))
            or np.any(high < np.maximum(open_, close))
        ):
            raise ValueError("every candle needs 0 < low <= open, close <= high")
        for column in (stamps, open_, high, low, close):
            column.setflags(write=False)
        self.timestamps: IntArray = stamps
        self._open, self._high, self._low, self._close = open_, high, low, close
        self.scale = scale

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, Price, Price, Price, Price]]) -> CandleSeries:
        """From (open time ms, open, high, low, close) rows, oldest first; prices as Decimal, str or int."""
        stamps: list[int] = []
        prices: list[tuple[Decimal, Decimal, Decimal, Decimal]] = []
        scale = 0
        for stamp, *ohlc in rows:
            values = tuple(
                _decimal(v, name) for v, name in zip(ohlc, ("open", "high", "low", "close"), strict=True)
            )
            scale = max(scale, *(decimals_of(v) for v in values))
            stamps.append(int(stamp))
            prices.append(values)  # type: ignore[arg-type]
        if not prices:
            raise ValueError("a candle series needs at least one candle")
        columns = [np.array([to_units(row[k], scale) for row in prices], dtype=np.int64) for k in range(4)]
        return cls(np.array(stamps, dtype=np.int64), columns, scale)

    @classmethod
    def from_csv_rows(cls, rows: Iterable[Mapping[str, str]]) -> CandleSeries:
        """From dict rows of the shared candle file's format (open,high,low,close,…,close_datetime).

        The open time is the close time (`…:59.999`, any UTC offset) less 59,999 ms.
        """
        return cls.from_rows(
            (
                int(datetime.fromisoformat(row["close_datetime"]).timestamp() * 1000) - (MINUTE_MS - 1),
                row["open"],
                row["high"],
                row["low"],
                row["close"],
            )
            for row in rows
        )

    def __len__(self) -> int:
        return len(self.timestamps)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as its integer columns only: a process pool ships a month in a few hundred kilobytes.
        return (CandleSeries, (self.timestamps, (self._open, self._high, self._low, self._close), self.scale))

    def window(self, start: int, stop: int) -> CandleSeries:
        """Candles [start, stop) as a series of their own (same scale)."""
        if not 0 <= start < stop <= len(self):
            raise ValueError(f"window [{start}, {stop}) is outside 0..{len(self)}")
        columns = (c[start:stop] for c in (self._open, self._high, self._low, self._close))
        return CandleSeries(self.timestamps[start:stop], list(columns), self.scale)

    # --- columns ---------------------------------------------------------------------------------------

    def units(self) -> tuple[IntArray, IntArray, IntArray, IntArray]:
        """open, high, low, close as integers (price · 10^scale)."""
        return self._open, self._high, self._low, self._close

    def _decimals(self, column: IntArray) -> tuple[Decimal, ...]:
        exponent = -self.scale
        return tuple(Decimal(v).scaleb(exponent) for v in column.tolist())

    @cached_property
    def open(self) -> tuple[Decimal, ...]:
        """Open prices (exact)."""
        return self._decimals(self._open)

    @cached_property
    def high(self) -> tuple[Decimal, ...]:
        """High prices (exact)."""
        return self._decimals(self._high)

    @cached_property
    def low(self) -> tuple[Decimal, ...]:
        """Low prices (exact)."""
        return self._decimals(self._low)

    @cached_property
    def close(self) -> tuple[Decimal, ...]:
        """Close prices (exact)."""
        return self._decimals(self._close)

    def price(self, units: int) -> Decimal:
        """The Decimal of one integer price of this series."""
        return Decimal(units).scaleb(-self.scale)
