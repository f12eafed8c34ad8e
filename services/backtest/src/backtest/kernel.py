"""The backtest of one stored grid over stored candles: gridcore's replay kernel and its figures.

Pure and CPU-bound (the worker runs it in a thread): the grid as `POST /backtests` planned it, the candles of
the window, and the window's bounds (so minutes the exchange had no candle for are counted, not invented).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from backtest.candles import StoredCandle
from backtest.responses import BacktestResult
from common.grid import MarketRules
from gridcore.replay import MINUTE_MS, CandleSeries, ReplaySpec, sweep


def spec_of(grid: dict[str, Any]) -> ReplaySpec:
    """The replay spec of a stored grid (levels, upperPrice, orderAmount, stopAtMax, rules)."""
    return ReplaySpec(
        levels=tuple(Decimal(p) for p in grid["levels"]),
        upper_price=Decimal(grid["upperPrice"]),
        order_amount=Decimal(grid["orderAmount"]),
        stop_at_max=bool(grid["stopAtMax"]),
        rules=MarketRules.from_dict(grid["rules"]),
    )


def series_of(candles: Sequence[StoredCandle]) -> CandleSeries:
    """The kernel's columnar candles."""
    return CandleSeries.from_rows((c.open_time, c.open, c.high, c.low, c.close) for c in candles)


def run_grid(grid: dict[str, Any], candles: Sequence[StoredCandle], start: int, end: int) -> BacktestResult:
    """Replay the grid over the candles of [start, end) and compute API.md's result."""
    return run_many([spec_of(grid)], candles, start, end)[0]


def empty_result(spec: ReplaySpec, missing: int) -> BacktestResult:
    """The result of a window without a single candle: nothing traded, nothing held."""
    zero = Decimal(0)
    return BacktestResult(
        grid_count=spec.grid_count,
        investment_amount=spec.investment_amount,
        candles=0,
        first_candle_at=None,
        last_candle_at=None,
        missing_candles=missing,
        buy_trades=0,
        sell_trades=0,
        realised_profit=zero,
        fees=zero,
        unrealised_profit=zero,
        final_value=spec.investment_amount,
        total_return_percent=zero,
        apr=zero,
        max_drawdown_percent=zero,
        time_in_range_percent=zero,
        equity=[],
        daily=[],
    )


def run_many(
    specs: Sequence[ReplaySpec], candles: Sequence[StoredCandle], start: int, end: int
) -> list[BacktestResult]:
    """The result of each spec over the same candles (in the specs' order)."""
    missing = (end - start) // MINUTE_MS - len(candles)
    if not candles:
        return [empty_result(spec, missing) for spec in specs]
    # One process: a recommendation is a few dozen grids (about a second), and the API process (or `make
    # run`'s one process) is no place for a pool.
    found = sweep(specs, series_of(candles), workers=1)
    return [BacktestResult.model_validate({**figs.as_dict(), "missingCandles": missing}) for figs in found]
