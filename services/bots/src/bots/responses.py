"""Response shapes of the bot routes, for the OpenAPI document (handlers answer with the kit's envelope)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from common.schemas import ResponseModel, WireNumber, WireTime

Exchange = Literal["upbit", "binance"]
Status = Literal["running", "stopped", "error"]
Mode = Literal["live", "paper"]
GridType = Literal["geometric", "arithmetic"]
Side = Literal["buy", "sell"]


class _Open(ResponseModel):
    # A client must accept fields added later (API.md's wave 2 adds grid options to bot reads).
    model_config = ConfigDict(extra="allow")


class CreatedBot(_Open):
    """`data` of POST /bots."""

    bot_id: str
    exchange: Exchange
    ticker: str = Field(examples=["KRW-BTC"])
    grid_count: int = Field(examples=[16])
    investment_amount: WireNumber = Field(examples=[160000])
    status: Status
    mode: Mode
    grid_type: GridType
    created_at: WireTime


class BotRead(_Open):
    """One bot with every field of API.md."""

    id: str = Field(alias="_id")
    exchange: Exchange
    ticker: str = Field(examples=["KRW-BTC"])
    status: Status
    mode: Mode
    grid_type: GridType
    grid_count: int = Field(examples=[16])
    lower_price: WireNumber = Field(examples=[50000000])
    upper_price: WireNumber = Field(examples=[70000000])
    price_change_percent: WireNumber = Field(examples=[2])
    order_amount: WireNumber = Field(examples=[10000])
    stop_at_max: bool
    investment_amount: WireNumber = Field(examples=[160000])
    current_profit: WireNumber = Field(examples=[15000])
    profit_percent: WireNumber = Field(examples=[9.38])
    total_trades: int = Field(examples=[8])
    created_at: WireTime
    updated_at: WireTime
    last_executed_at: WireTime | None
    error_message: str | None


class BotDetail(BotRead):
    """GET /bots/:id: every field plus the latest market price (null until one is cached)."""

    current_price: WireNumber | None = Field(examples=[60000000])


class CurrencySummary(ResponseModel):
    """The summary of the bots quoted in one currency."""

    total_bots: int
    active_bots: int
    total_profit: WireNumber
    total_investment: WireNumber


class Summary(_Open):
    """`summary` of GET /bots: over the bots after filters (amounts only when they share one currency)."""

    total_bots: int = Field(examples=[5])
    active_bots: int = Field(examples=[3])
    total_profit: WireNumber | None = Field(examples=[45000])
    total_investment: WireNumber | None = Field(examples=[1000000])
    by_currency: dict[str, CurrencySummary] = Field(description="Per quote currency, e.g. KRW and USDT")


class BotList(BaseModel):
    """`data` of GET /bots."""

    bots: list[BotRead]
    summary: Summary


class BotState(ResponseModel):
    """`data` of start and stop."""

    bot_id: str
    status: Status


class Updated(_Open):
    """`data` of PUT /bots/:id: the id, the fields that changed, and the time of the change."""

    id: str = Field(alias="_id")
    updated_at: WireTime


class Level(_Open):
    """One grid level; `orderId` and `filledAt` only when set."""

    id: str = Field(alias="_id")
    price: WireNumber
    type: Side
    status: Literal["available", "pending", "filled"]
    order_id: str | None = None
    filled_at: WireTime | None = None


class Levels(ResponseModel):
    """`data` of GET /bots/:id/grid-levels (ascending by price)."""

    grid_levels: list[Level]


class TradeRead(_Open):
    """One trade; `profit` only on sells (the round trip's realised profit net of both fees)."""

    id: str = Field(alias="_id")
    type: Side
    price: WireNumber = Field(examples=[51000000])
    amount: WireNumber = Field(examples=[0.0002])
    total: WireNumber = Field(examples=[10200])
    fee: WireNumber = Field(examples=[5.1])
    fee_currency: str = Field(examples=["KRW"])
    profit: WireNumber | None = Field(default=None, examples=[200])
    order_id: str
    executed_at: WireTime


class Pagination(ResponseModel):
    """Where a page sits in the whole."""

    total: int
    limit: int
    offset: int
    has_more: bool


class Trades(ResponseModel):
    """`data` of GET /bots/:id/trades (newest first)."""

    trades: list[TradeRead]
    pagination: Pagination


class Performance(_Open):
    """`data` of GET /bots/:id/performance."""

    total_profit: WireNumber
    profit_percent: WireNumber
    total_trades: int
    buy_trades: int
    sell_trades: int
    avg_profit_per_trade: WireNumber
    investment_amount: WireNumber
    current_value: WireNumber
    running_days: int = Field(ge=1)
    daily_avg_profit: WireNumber
