"""Candles kept by column as scaled integers: a month of 1-minute candles in a few MB instead of a few dozen.

A `CandleTable` is what the price sources keep (the candle file, each random walk); every market built on
the same asset shares it, and a `Candle` is made only when one is asked for.
"""

from __future__ import annotations

import csv
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import overload

COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume", "trades")


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


class CandleTable(Sequence[Candle]):
    """Candles as seven arrays of 64-bit integers: prices × 10**price_places, volumes × 10**volume_places,
    quote volumes × 10**quote_places, and the number of trades."""

    def __init__(self, price_places: int, volume_places: int, quote_places: int) -> None:
        self.price_places = price_places
        self.volume_places = volume_places
        self.quote_places = quote_places
        self._columns = tuple(array("q") for _ in COLUMNS)

    def append(self, *values: int) -> None:
        """Add a candle given as scaled integers, in COLUMNS order (OverflowError past 64 bits)."""
        for column, value in zip(self._columns, values, strict=True):
            column.append(value)

    def extend_columns(self, *columns: array[int]) -> None:
        """Add whole columns of scaled integers at once, in COLUMNS order (all of one length)."""
        if len({len(column) for column in columns}) != 1:
            raise ValueError("columns of different lengths")
        for mine, more in zip(self._columns, columns, strict=True):
            mine.extend(more)

    def __len__(self) -> int:
        return len(self._columns[0])

    @overload
    def __getitem__(self, index: int) -> Candle: ...

    @overload
    def __getitem__(self, index: slice) -> list[Candle]: ...

    def __getitem__(self, index: int | slice) -> Candle | list[Candle]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        o, h, low, c, v, q, n = (column[index] for column in self._columns)
        places = -self.price_places
        return Candle(
            open=Decimal(o).scaleb(places),
            high=Decimal(h).scaleb(places),
            low=Decimal(low).scaleb(places),
            close=Decimal(c).scaleb(places),
            volume=Decimal(v).scaleb(-self.volume_places),
            quote_volume=Decimal(q).scaleb(-self.quote_places),
            trades=n,
        )

    def extremes(self, start: int, stop: int) -> tuple[Decimal, Decimal]:
        """The highest high and lowest low of the candles [start, stop) (a non-empty range)."""
        high, low = self._columns[1][start:stop], self._columns[2][start:stop]
        if not high:
            raise IndexError("extremes of an empty range")
        return Decimal(max(high)).scaleb(-self.price_places), Decimal(min(low)).scaleb(-self.price_places)


def _parts(text: str) -> tuple[int, int]:
    """(n, places) such that the value is n / 10**places: plain decimals on a fast path, others via Decimal."""
    whole, _, fraction = text.partition(".")
    if (fraction.isdigit() or not fraction) and whole.lstrip("+-").isdigit():
        return int(whole + fraction), len(fraction)
    sign, digits, exponent = Decimal(text).as_tuple()
    if not isinstance(exponent, int):  # NaN or infinity
        raise ValueError(f"not a number: {text!r}")
    if exponent > 18:  # past any 64-bit column (and never a huge power of ten to compute)
        raise OverflowError(f"{text!r} is too large")
    number = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    return (number * 10**exponent, 0) if exponent > 0 else (number, -exponent)


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, the row's values in COLUMNS order) of every non-empty row."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        missing = [name for name in COLUMNS if name not in header]
        if missing:
            raise ValueError(f"{path}: no column {', '.join(missing)} (needs {', '.join(COLUMNS)})")
        positions = [header.index(name) for name in COLUMNS]
        for row in reader:
            if not row:
                continue
            if len(row) < len(header):
                raise ValueError(f"{path}: line {reader.line_num} has {len(row)} of {len(header)} columns")
            yield reader.line_num, [row[i] for i in positions]


def _column(numbers: list[int], places: array[int], scale: int) -> array[int]:
    """The numbers brought to `scale` decimal places (each has at most that many)."""
    if all(own == scale for own in places):
        return array("q", numbers)
    return array("q", [n * 10 ** (scale - own) for n, own in zip(numbers, places, strict=True)])


def read_candle_table(path: Path) -> CandleTable:
    """Every row of a candle CSV (columns open,high,low,close,volume,quote_volume,trades, any others
    ignored), oldest first; prices keep as many decimal places as the longest one has, each volume column
    as many as its own longest value."""
    numbers: list[list[int]] = [[] for _ in range(6)]
    places = [array("b") for _ in range(6)]
    trades: list[int] = []
    for line, row in _rows(path):
        try:
            for column, text in enumerate(row[:6]):
                number, own = _parts(text)
                numbers[column].append(number)
                places[column].append(own)
            trades.append(int(row[6]))
        except (
            ArithmeticError,
            ValueError,
        ) as exc:  # InvalidOperation and OverflowError are ArithmeticErrors
            raise ValueError(f"{path}: line {line} is not a candle of numbers ({exc})") from exc
    if not trades:
        raise ValueError(f"no candles in {path}")
    price_places = max(max(column) for column in places[:4])
    table = CandleTable(price_places, max(places[4]), max(places[5]))
    scales = (price_places,) * 4 + (table.volume_places, table.quote_places)
    try:
        columns = [_column(numbers[i], places[i], scales[i]) for i in range(6)]
    except OverflowError as exc:
        raise ValueError(f"{path}: a value has too many digits for a 64-bit column ({exc})") from exc
    table.extend_columns(*columns, array("q", trades))
    return table
