"""Response shapes of the bot routes: what the handlers answer with, and what the OpenAPI document shows.

A trade, a grid level and a bot's figures are the shapes the engine's live events carry too
(common.contracts.public); the rest is the bots service's own.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from common.contracts.public import (
    BotFigures,
    GridLevelRead,
    Id,
    Money,
    Pagination,
    PublicModel,
    StopReasonName,
    Time,
    TradeRead,
)
from common.schemas import ResponseModel

Exchange = Literal["upbit", "binance"]
Status = Literal["running", "stopped", "error"]
Mode = Literal["live", "paper"]
GridType = Literal["geometric", "arithmetic"]


class CreatedBot(PublicModel):
    """`data` of POST /bots."""

    bot_id: Id
    exchange: Exchange
    ticker: str = Field(examples=["KRW-BTC"])
    grid_count: int = Field(examples=[16])
    investment_amount: Money = Field(examples=[160000])
    status: Status
    mode: Mode
    grid_type: GridType
    created_at: Time


class BotSettings(PublicModel):
    """A bot's identity and configuration, as every bot read starts."""

    id: Id = Field(alias="_id")
    exchange: Exchange
    ticker: str = Field(examples=["KRW-BTC"])
    status: Status
    mode: Mode
    grid_type: GridType
    grid_count: int = Field(examples=[16])
    lower_price: Money = Field(examples=[50000000])
    upper_price: Money = Field(examples=[70000000])
    price_change_percent: Money = Field(examples=[2])
    order_amount: Money = Field(examples=[10000])
    stop_at_max: bool
    investment_amount: Money = Field(examples=[160000])
    # The grid options (API.md "Grid options"): null / false when off.
    trigger_price: Money | None = Field(examples=[52000000], description="null: no trigger")
    take_profit_price: Money | None = Field(examples=[75000000], description="null: none")
    stop_loss_price: Money | None = Field(examples=[45000000], description="null: none")
    sell_base_on_stop: bool
    trailing_up: bool
    trailing_up_limit: Money | None = Field(examples=[90000000], description="null: no limit")


class BotRead(BotFigures, BotSettings):
    """One bot with every field of API.md: its settings, its figures (from the trades table), then the rest."""

    triggered: bool = Field(
        description="False while a triggerPrice holds the bot (nothing is placed until the market trades "
        "through it); true once it did, and for a bot without a trigger"
    )
    created_at: Time
    updated_at: Time
    error_message: str | None
    # Why it is not running (API.md Wave 2); null while it runs, and for a bot never started.
    stop_reason: StopReasonName | None


class BotDetail(BotRead):
    """GET /bots/:id: every field plus the latest market price (null until one is cached)."""

    current_price: Money | None = Field(examples=[60000000])
    held_base: Money = Field(
        examples=[0.0004], description="Base the bot holds: bought (net of fees in base) and not sold yet"
    )


class CurrencySummary(ResponseModel):
    """The summary of the bots quoted in one currency."""

    total_bots: int
    active_bots: int
    total_profit: Money
    total_investment: Money


class Summary(PublicModel):
    """`summary` of GET /bots: over the bots after filters (amounts only when they share one currency)."""

    total_bots: int = Field(examples=[5])
    active_bots: int = Field(examples=[3])
    total_profit: Money | None = Field(examples=[45000])
    total_investment: Money | None = Field(examples=[1000000])
    by_currency: dict[str, CurrencySummary] = Field(description="Per quote currency, e.g. KRW and USDT")


class BotList(ResponseModel):
    """`data` of GET /bots."""

    bots: list[BotRead]
    summary: Summary


class BotState(ResponseModel):
    """`data` of start and stop."""

    bot_id: Id
    status: Status


class Updated(PublicModel):
    """`data` of PUT /bots/:id: the id, the fields that changed, and the time of the change.

    Written with `exclude_unset`: a field is there only when it changed, so a cleared option shows as null.
    """

    id: Id = Field(alias="_id")
    order_amount: Money | None = None
    stop_at_max: bool | None = None
    lower_price: Money | None = None
    upper_price: Money | None = None
    price_change_percent: Money | None = None
    grid_type: GridType | None = None
    grid_count: int | None = None
    investment_amount: Money | None = None
    trigger_price: Money | None = Field(default=None, examples=[52000000])
    take_profit_price: Money | None = Field(default=None, examples=[80000000])
    stop_loss_price: Money | None = Field(default=None, examples=[None])
    sell_base_on_stop: bool | None = None
    trailing_up: bool | None = None
    trailing_up_limit: Money | None = Field(default=None, examples=[90000000])
    triggered: bool | None = Field(default=None, description="With a triggerPrice change")
    updated_at: Time


class Levels(ResponseModel):
    """`data` of GET /bots/:id/grid-levels (ascending by price)."""

    grid_levels: list[GridLevelRead]


class Trades(ResponseModel):
    """`data` of GET /bots/:id/trades (newest first)."""

    trades: list[TradeRead]
    pagination: Pagination


class Performance(PublicModel):
    """`data` of GET /bots/:id/performance."""

    total_profit: Money
    profit_percent: Money
    total_trades: int
    buy_trades: int
    sell_trades: int
    avg_profit_per_trade: Money
    investment_amount: Money
    current_value: Money
    running_days: int = Field(ge=1)
    daily_avg_profit: Money


class DayPerformance(PublicModel):
    """One UTC day with trades: realised profit, fills and fees, from the trades executed that day."""

    date: str = Field(json_schema_extra={"format": "date"}, examples=["2025-01-23"])
    profit: Money = Field(examples=[189.9], description="Σ profit of the day's sells (net of both fees)")
    trades: int = Field(examples=[3])
    buy_trades: int = Field(examples=[2])
    sell_trades: int = Field(examples=[1])
    fees: Money = Field(
        examples=[15.2],
        description="In the quote currency: fees charged in quote, plus fees charged in base (Binance buys) "
        "valued at their fill's price; a fee in a third asset (BNB) is not included",
    )


class DailyPerformance(ResponseModel):
    """`data` of GET /bots/:id/performance/daily (oldest day first; days without trades left out)."""

    days: list[DayPerformance]


class SignalUrl(ResponseModel):
    """`data` of POST /bots/:id/signal-token: the URL to give TradingView, and its token (shown once)."""

    url: str = Field(examples=["https://api.example.com/api/signals/tradingview/3q2-7wPu…"])
    token: str = Field(description="43 URL-safe characters (32 random bytes); stored only as its SHA-256")


class SignalRead(PublicModel):
    """One signal received: what it asked, what came of it (`ok` or the error code answered), from where."""

    id: Id = Field(alias="_id")
    action: Literal["start", "stop"] | None = Field(description="null: the body named neither")
    outcome: str = Field(examples=["ok", "RATE_LIMIT_EXCEEDED"])
    client_ip: str | None = Field(examples=["52.89.214.238"])
    received_at: Time


class Signals(ResponseModel):
    """`data` of GET /bots/:id/signals (newest first)."""

    signals: list[SignalRead]
    pagination: Pagination
