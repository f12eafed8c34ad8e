"""What the backtest routes answer (`data` of the success envelope), as the OpenAPI document shows it.

Money is exact both ways: a stored result is `model_dump(mode="json")` (decimal text) and read back with
`model_validate`, so a figure is never a float anywhere between the kernel and the client.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, PlainSerializer, WithJsonSchema

from common.contracts.public import Id, Money, Pagination, PublicModel, Time, absent
from common.schemas import ResponseModel

Status = Literal["queued", "running", "done", "failed"]


class EquityPoint(PublicModel):
    """The run's value (quote held plus base at that minute's close) at one time."""

    timestamp: Time
    value: Money


Day = Annotated[
    date,
    PlainSerializer(date.isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date", "examples": ["2025-01-23"]}),
]


class DailyFigures(PublicModel):
    """Realised profit and trades of one UTC day."""

    date: Day
    profit: Money
    trades: int


class BacktestResult(PublicModel):
    """API.md's result of a finished backtest (each figure is defined in docs/backtest.md)."""

    grid_count: int
    investment_amount: Money
    candles: int
    first_candle_at: Time | None
    last_candle_at: Time | None
    missing_candles: int = Field(
        description="Minutes of the window the exchange had no candle for (never invented)"
    )
    buy_trades: int
    sell_trades: int
    realised_profit: Money
    fees: Money
    unrealised_profit: Money
    final_value: Money
    total_return_percent: Money
    apr: Money
    max_drawdown_percent: Money
    time_in_range_percent: Money
    equity: list[EquityPoint]
    daily: list[DailyFigures]
    stop_reason: Literal["stopAtMax", "takeProfit", "stopLoss"] | None = Field(
        default=None, description="Why the grid stopped before the window's end; null: it ran to the end"
    )
    stopped_at: Time | None = Field(default=None, description="When it stopped (the candle's trade)")


class BacktestError(ResponseModel):
    """Why a backtest failed."""

    code: str
    message: str


class Queued(PublicModel):
    """`data` of POST /backtests."""

    backtest_id: Id
    status: Status
    progress: int


class BacktestRead(PublicModel):
    """`data` of GET /backtests/:id (and each element of the list, without its result)."""

    backtest_id: Id
    status: Status
    progress: int = Field(ge=0, le=100)
    params: dict[str, Any]
    created_at: Time
    finished_at: Time | None = Field(default=None, exclude_if=absent)
    error: BacktestError | None = Field(default=None, exclude_if=absent)
    result: BacktestResult | None = Field(default=None, exclude_if=absent)


class BacktestList(PublicModel):
    """`data` of GET /backtests (newest first; results are read one at a time)."""

    backtests: list[BacktestRead]
    pagination: Pagination


class RecommendedFigures(PublicModel):
    """What a recommended configuration did over the basis window."""

    realised_profit: Money
    total_return_percent: Money
    apr: Money
    max_drawdown_percent: Money
    sell_trades: int


class Recommendation(PublicModel):
    """A configuration that `POST /bots` takes as it stands (prices on the tick grid, amount ≥ minimum)."""

    lower_price: Money
    upper_price: Money
    price_change_percent: Money
    grid_count: int
    order_amount: Money
    grid_type: Literal["geometric", "arithmetic"]
    result: RecommendedFigures


class Basis(PublicModel):
    """The candles the recommendations were computed over."""

    days: int
    candles: int
    from_: Time | None = Field(alias="from")
    to: Time | None


class Recommendations(PublicModel):
    """`data` of POST /backtests/recommend: the best configurations by realised profit."""

    recommendations: list[Recommendation]
    basis: Basis


def decimal_text(value: Decimal) -> str:
    """Plain decimal notation for stored params ("0.00000001", never "1E-8")."""
    return format(value, "f")
