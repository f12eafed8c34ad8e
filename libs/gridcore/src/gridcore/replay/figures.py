"""A backtest's result figures (API.md "Backtests" `result`), computed from a Replay alone.

Money is exact (Decimal; any rounding raises). Percentages are rounded the way API.md's profitPercent is:
to 2 decimals, half up, from the exact quotient (`percent`). docs/backtest.md defines each figure.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from fractions import Fraction
from math import floor
from typing import Any

import numpy as np

from gridcore.replay.candles import MINUTE_MS, CandleSeries
from gridcore.replay.reference import EXACT
from gridcore.replay.types import Replay, ReplaySpec, Trade
from gridcore.state import ZERO, Side

MAX_EQUITY_POINTS = 500
MINUTES_PER_YEAR = 365 * 24 * 60
DAY_MS = 86_400_000
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class EquityPoint:
    """The value of the investment at a candle's close, stamped with the candle's open time."""

    timestamp: datetime
    value: Decimal


@dataclass(frozen=True, slots=True)
class DailyFigure:
    """One UTC day: the realised profit of its sells and how many trades it had."""

    date: date
    profit: Decimal
    trades: int


@dataclass(frozen=True, slots=True)
class BacktestFigures:
    """API.md's backtest `result`, field for field (`as_dict` gives the camelCase names)."""

    grid_count: int
    investment_amount: Decimal
    candles: int
    first_candle_at: datetime
    last_candle_at: datetime
    buy_trades: int
    sell_trades: int
    realised_profit: Decimal
    fees: Decimal
    unrealised_profit: Decimal
    final_value: Decimal
    total_return_percent: Decimal
    apr: Decimal
    max_drawdown_percent: Decimal
    time_in_range_percent: Decimal
    equity: tuple[EquityPoint, ...]
    daily: tuple[DailyFigure, ...]

    def as_dict(self) -> dict[str, Any]:
        """API.md's names; Decimals, datetimes and dates left for the response model to write exactly."""
        return {
            "gridCount": self.grid_count,
            "investmentAmount": self.investment_amount,
            "candles": self.candles,
            "firstCandleAt": self.first_candle_at,
            "lastCandleAt": self.last_candle_at,
            "buyTrades": self.buy_trades,
            "sellTrades": self.sell_trades,
            "realisedProfit": self.realised_profit,
            "fees": self.fees,
            "unrealisedProfit": self.unrealised_profit,
            "finalValue": self.final_value,
            "totalReturnPercent": self.total_return_percent,
            "apr": self.apr,
            "maxDrawdownPercent": self.max_drawdown_percent,
            "timeInRangePercent": self.time_in_range_percent,
            "equity": [{"timestamp": p.timestamp, "value": p.value} for p in self.equity],
            "daily": [{"date": d.date, "profit": d.profit, "trades": d.trades} for d in self.daily],
        }


def percent(numerator: Decimal | int, denominator: Decimal | int) -> Decimal:
    """numerator / denominator × 100, to 2 decimals, half up (API.md's rule for profitPercent).

    Rounded once, from the exact quotient (rational arithmetic: no intermediate rounding to misplace a tie).
    """
    if denominator == 0:
        return Decimal(0).quantize(CENT)
    cents = Fraction(numerator) * 10_000 / Fraction(denominator)
    rounded = floor(abs(cents) + Fraction(1, 2))
    return Decimal(rounded if cents >= 0 else -rounded).scaleb(-2)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return EPOCH + timedelta(milliseconds=ms)


def equity_sample(count: int, points: int = MAX_EQUITY_POINTS) -> list[int]:
    """Candle indices of the equity curve: all of them up to `points`, else evenly spread, first and last in."""
    if count <= points:
        return list(range(count))
    return [i * (count - 1) // (points - 1) for i in range(points)]


def quote_fee(trade: Trade, quote: str) -> Decimal:
    """The trade's fee in quote: a fee charged in base is valued at the trade's price."""
    return trade.fee if trade.fee_currency.upper() == quote.upper() else trade.fee * trade.price


class _Books:
    """Cash (relative to the investment) and base held after each trade, exact and as floats."""

    def __init__(self, trades: Sequence[Trade], base: str, quote: str, candle_of: list[int]) -> None:
        self.candle_of = candle_of  # the candle index of each trade (non-decreasing)
        self.cash: list[Decimal] = []
        self.qty: list[Decimal] = []
        cash, qty = ZERO, ZERO
        base, quote = base.upper(), quote.upper()
        with localcontext(EXACT):
            for trade in trades:
                currency = trade.fee_currency.upper()
                base_fee = trade.fee if currency == base else ZERO
                quote_fee = trade.fee if currency == quote else ZERO
                gross = trade.qty * trade.price
                if trade.side is Side.BUY:
                    cash -= gross + quote_fee
                    qty += trade.qty - base_fee
                else:
                    cash += gross - quote_fee
                    qty -= trade.qty + base_fee
                self.cash.append(cash)
                self.qty.append(qty)

    def at(self, candle: int) -> tuple[Decimal, Decimal]:
        """(cash, qty) after every trade of candles up to and including `candle`."""
        k = bisect_right(self.candle_of, candle)
        return (self.cash[k - 1], self.qty[k - 1]) if k else (ZERO, ZERO)

    def float_columns(self, count: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Cash and qty at each candle's close, as float64 (for locating the drawdown only)."""
        done = np.searchsorted(np.asarray(self.candle_of, dtype=np.int64), np.arange(count), side="right")
        cash = np.asarray([0.0, *(float(v) for v in self.cash)])
        qty = np.asarray([0.0, *(float(v) for v in self.qty)])
        return cash[done], qty[done]


def _max_drawdown(
    books: _Books, investment: Decimal, candles: CandleSeries, closes: np.ndarray[Any, Any]
) -> Decimal:
    """The largest fall of the equity from an earlier peak (the investment at the start counts as one), as
    a percent of that peak. The peak and trough are located on float64 values; the figure is computed
    exactly at them."""
    cash, qty = books.float_columns(len(candles))
    start = float(investment)
    values = start + cash + qty * closes
    peaks = np.maximum.accumulate(np.maximum(values, start))
    falls = (peaks - values) / peaks
    trough = int(np.argmax(falls))
    if not falls[trough] > 0:
        return Decimal(0).quantize(CENT)
    if peaks[trough] <= start:
        peak = investment
    else:
        peak = _value(books, investment, candles, int(np.argmax(values[: trough + 1])))
    with localcontext(EXACT):
        fall = peak - _value(books, investment, candles, trough)
    return percent(fall, peak) if fall > 0 else Decimal(0).quantize(CENT)


def _value(books: _Books, investment: Decimal, candles: CandleSeries, index: int) -> Decimal:
    cash, qty = books.at(index)
    close = candles.price(int(candles.units()[3][index]))
    with localcontext(EXACT):
        return investment + cash + qty * close


def _equity(
    books: _Books, investment: Decimal, candles: CandleSeries, sample: list[int]
) -> tuple[EquityPoint, ...]:
    """The value at the close of each sampled candle (`_value`, walking the trades once)."""
    at = np.asarray(sample, dtype=np.int64)
    closes, stamps = candles.units()[3][at].tolist(), candles.timestamps[at].tolist()
    exponent, candle_of, trades = -candles.scale, books.candle_of, len(books.candle_of)
    points: list[EquityPoint] = []
    done, cash, qty = 0, ZERO, ZERO
    with localcontext(EXACT):
        for index, close, stamp in zip(sample, closes, stamps, strict=True):
            while done < trades and candle_of[done] <= index:
                done += 1
            if done:
                cash, qty = books.cash[done - 1], books.qty[done - 1]
            value = investment + cash + qty * Decimal(close).scaleb(exponent)
            points.append(EquityPoint(EPOCH + timedelta(milliseconds=stamp), value))
    return tuple(points)


def figures(spec: ReplaySpec, candles: CandleSeries, replay: Replay) -> BacktestFigures:
    """Every result figure of a replay of `spec` over `candles` (docs/backtest.md defines them)."""
    rules = spec.rules
    trades = replay.trades
    investment = spec.investment_amount
    stamps = candles.timestamps
    count = len(candles)
    closes_units = candles.units()[3]
    last_close = candles.price(int(closes_units[-1]))
    candle_of = (
        (np.searchsorted(stamps, [t.timestamp for t in trades], side="right") - 1).tolist() if trades else []
    )
    books = _Books(trades, rules.base, rules.quote, candle_of)
    first_ms, last_ms = int(stamps[0]), int(stamps[-1])
    span_minutes = (last_ms - first_ms) // MINUTE_MS + 1
    with localcontext(EXACT):
        fees = sum((quote_fee(t, rules.quote) for t in trades), ZERO)
        unrealised = replay.held_qty * last_close - replay.held_cost
        final_value = investment + replay.realized_profit + unrealised
        gain = final_value - investment
        annual_gain, spanned = gain * MINUTES_PER_YEAR, investment * span_minutes

    closes = closes_units.astype(np.float64) / 10**candles.scale
    # Exact in integer units: close >= L0 is close >= ceil(L0 · 10^scale), close <= Ln is close <= floor(…).
    lowest = int(spec.levels[0].scaleb(candles.scale).to_integral_value(rounding=ROUND_CEILING))
    highest = int(spec.levels[-1].scaleb(candles.scale).to_integral_value(rounding=ROUND_FLOOR))
    in_range = int(np.count_nonzero((closes_units >= lowest) & (closes_units <= highest)))

    equity = _equity(books, investment, candles, equity_sample(count))

    return BacktestFigures(
        grid_count=spec.grid_count,
        investment_amount=investment,
        candles=count,
        first_candle_at=utc(first_ms),
        last_candle_at=utc(last_ms),
        buy_trades=sum(1 for t in trades if t.side is Side.BUY),
        sell_trades=sum(1 for t in trades if t.side is Side.SELL),
        realised_profit=replay.realized_profit,
        fees=fees,
        unrealised_profit=unrealised,
        final_value=final_value,
        total_return_percent=percent(gain, investment),
        apr=percent(annual_gain, spanned),
        max_drawdown_percent=_max_drawdown(books, investment, candles, closes),
        time_in_range_percent=percent(in_range, count),
        equity=equity,
        daily=_daily(trades, first_ms, last_ms),
    )


def _daily(trades: Sequence[Trade], first_ms: int, last_ms: int) -> tuple[DailyFigure, ...]:
    first_day = first_ms // DAY_MS
    days = last_ms // DAY_MS - first_day + 1
    profit = [ZERO] * days
    counts = [0] * days
    with localcontext(EXACT):
        for trade in trades:
            day = trade.timestamp // DAY_MS - first_day
            counts[day] += 1
            if trade.profit is not None:
                profit[day] += trade.profit
    start = utc(first_day * DAY_MS).date()
    return tuple(DailyFigure(start + timedelta(days=i), profit[i], counts[i]) for i in range(days))
