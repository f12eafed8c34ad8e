"""The backtest of one stored grid over stored candles: gridcore's replay kernel and its figures.

Pure and CPU-bound (the worker runs it in a thread): the grid as `POST /backtests` planned it, the candles of
the window, and the window's bounds (so minutes the exchange had no candle for are counted, not invented).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, cast

from backtest.candles import StoredCandle
from backtest.responses import BacktestResult
from common.contracts.grid import GridKind, GridRequest
from common.grid import MarketRules
from gridcore.replay import MINUTE_MS, CandleSeries, ReplaySpec, figures, replay, sweep
from gridcore.replay.figures import utc


def grid_options(body: GridRequest) -> dict[str, Any]:
    """The stored grid's keys for the request's grid options and its kind (trailing steps by it); spec_of
    reads them back."""
    options = body.options
    stored: dict[str, Any] = {
        "gridType": body.grid_type,
        "sellBaseOnStop": options.sell_base_on_stop,
        "trailingUp": options.trailing_up,
    }
    for key, value in (
        ("triggerPrice", options.trigger_price),
        ("takeProfitPrice", options.take_profit_price),
        ("stopLossPrice", options.stop_loss_price),
        ("trailingUpLimit", options.trailing_up_limit),
    ):
        if value is not None:
            stored[key] = format(value, "f")
    return stored


def _price(grid: dict[str, Any], key: str) -> Decimal | None:
    value = grid.get(key)
    return None if value is None else Decimal(value)


def spec_of(grid: dict[str, Any]) -> ReplaySpec:
    """The replay spec of a stored grid (levels, upperPrice, orderAmount, stopAtMax, rules, options).

    A grid stored before the options existed has none of their keys: every option off, geometric.
    """
    return ReplaySpec(
        levels=tuple(Decimal(p) for p in grid["levels"]),
        upper_price=Decimal(grid["upperPrice"]),
        order_amount=Decimal(grid["orderAmount"]),
        stop_at_max=bool(grid["stopAtMax"]),
        rules=MarketRules.from_dict(grid["rules"]),
        trigger_price=_price(grid, "triggerPrice"),
        take_profit_price=_price(grid, "takeProfitPrice"),
        stop_loss_price=_price(grid, "stopLossPrice"),
        sell_base_on_stop=bool(grid.get("sellBaseOnStop", False)),
        trailing_up=bool(grid.get("trailingUp", False)),
        trailing_up_limit=_price(grid, "trailingUpLimit"),
        kind=cast(GridKind, grid.get("gridType", "geometric")),
    )


def series_of(candles: Sequence[StoredCandle]) -> CandleSeries:
    """The kernel's columnar candles."""
    return CandleSeries.from_rows((c.open_time, c.open, c.high, c.low, c.close) for c in candles)


def run_grid(grid: dict[str, Any], candles: Sequence[StoredCandle], start: int, end: int) -> BacktestResult:
    """Replay the grid over the candles of [start, end) and compute API.md's result, with why and when the
    grid stopped (stopAtMax, take-profit, stop-loss) if it did."""
    spec = spec_of(grid)
    missing = (end - start) // MINUTE_MS - len(candles)
    if not candles:
        return empty_result(spec, missing)
    series = series_of(candles)
    # One spec: the replay itself (sweep gives figures only), which knows whether and when the grid stopped.
    found = replay(spec, series)
    figs = figures(spec, series, found)
    return BacktestResult.model_validate(
        {
            **figs.as_dict(),
            "missingCandles": missing,
            "stopReason": None if found.stop_reason is None else found.stop_reason.value,
            "stoppedAt": None if found.stopped_at is None else utc(found.stopped_at),
        }
    )


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
