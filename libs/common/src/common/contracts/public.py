"""A bot's trades, grid levels and figures as clients see them: one shape for the REST reads and the live events.

The bots service answers its reads with these models and the engine publishes its `trade`, `grid_level` and
`bot_stats` events with them, so a trade on a socket is the trade of `GET /bots/:id/trades`. Field names are
API.md's (camelCase, `_id`). Money keeps every digit in both forms a model is written in:

* `model_dump()` (python mode, for the kit's JSON responses): an integer as an int, anything else as the exact
  Decimal, which `common.web.dumps` writes as a JSON number digit for digit;
* `model_dump(mode="json")` (the bus): an integer as a JSON number, anything else as exact decimal text (a
  JSON float would round it; the gateway turns it back into an exact number for the socket).

Times are ISO 8601 UTC with milliseconds (`2025-01-23T10:30:00.000Z`) in both.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, SerializationInfo, WithJsonSchema

from common.schemas import ResponseModel
from common.web import iso_utc

CENT = Decimal("0.01")
# orjson writes Python ints of 64 bits at most; larger whole numbers stay Decimals (written exactly too).
_INT_LIMIT = 2**63

Side = Literal["buy", "sell"]
LevelStatusName = Literal["available", "pending", "filled"]
StopReasonName = Literal["user", "stopAtMax", "takeProfit", "stopLoss", "credentialRemoved", "error"]


def number(value: Decimal) -> int | Decimal:
    """A JSON number, exact (common.web writes Decimals digit for digit): 160000, not 160000.0."""
    if value == value.to_integral_value() and abs(value) < _INT_LIMIT:
        return int(value)
    return value


def wire_decimal(value: Decimal) -> int | str:
    """A decimal as the bus carries it: an integer as a JSON number, anything else digit for digit as text."""
    if value == value.to_integral_value():
        return int(value)
    return format(value.normalize(), "f")


def profit_percent(profit: Decimal, investment: Decimal) -> Decimal:
    """profitPercent (API.md): profit / investment × 100 to 2 decimals, half up (0 without an investment)."""
    if investment == 0:
        return Decimal(0)
    return (profit / investment * 100).quantize(CENT, rounding=ROUND_HALF_UP)


def _money(value: Decimal, info: SerializationInfo) -> int | Decimal | str:
    return wire_decimal(value) if info.mode_is_json() else number(value)


def absent(value: object) -> bool:
    """For `Field(exclude_if=absent)`: a field left out of the JSON rather than written as null."""
    return value is None


_MONEY = PlainSerializer(_money)
# Money and quantities: an exact Decimal in, written exactly out (see the module's docstring).
Money = Annotated[Decimal, _MONEY, WithJsonSchema({"type": "number"})]
Time = Annotated[
    datetime,
    PlainSerializer(iso_utc, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2025-01-23T10:30:00.000Z"]}),
]
# Ids are UUIDs inside and text on the wire.
Id = Annotated[uuid.UUID, PlainSerializer(str, return_type=str), WithJsonSchema({"type": "string"})]


def _mentions_money(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        return _MONEY in annotation.__metadata__
    return any(_mentions_money(arg) for arg in get_args(annotation))


def money_fields(*models: type[BaseModel]) -> frozenset[str]:
    """The wire names of the Money fields of these models (optional ones too)."""
    return frozenset(
        info.alias or name
        for model in models
        for name, info in model.model_fields.items()
        if _MONEY in info.metadata or _mentions_money(info.annotation)
    )


class PublicModel(ResponseModel):
    """A shape clients see: camelCase on the wire, documented as open to new fields."""

    # A client must accept fields added later (API.md's wave 2 adds grid options to bot reads).
    model_config = ConfigDict(json_schema_extra={"additionalProperties": True})


class TradeRead(PublicModel):
    """One trade; `profit` only on sells (the round trip's realised profit net of both fees)."""

    id: Id = Field(alias="_id")
    type: Side
    price: Money = Field(examples=[51000000])
    amount: Money = Field(examples=[0.0002])
    total: Money = Field(examples=[10200])
    fee: Money = Field(examples=[5.1])
    fee_currency: str = Field(examples=["KRW"])
    order_id: str = Field(description="The exchange's order id (paper: our client order id)")
    executed_at: Time
    profit: Money | None = Field(default=None, examples=[200], exclude_if=absent)

    @classmethod
    def of(
        cls,
        *,
        trade_id: uuid.UUID,
        side: str,
        price: Decimal,
        amount: Decimal,
        total: Decimal,
        fee: Decimal,
        fee_currency: str,
        profit: Decimal | None,
        order_id: str,
        executed_at: datetime,
    ) -> TradeRead:
        """The trade of one fill; a sell always carries its profit (0 when none was recorded)."""
        return cls(
            id=trade_id,
            type=side,
            price=price,
            amount=amount,
            total=total,
            fee=fee,
            fee_currency=fee_currency,
            order_id=order_id,
            executed_at=executed_at,
            profit=(profit if profit is not None else Decimal(0)) if side == "sell" else None,
        )


class GridLevelRead(PublicModel):
    """One grid level; `orderId` and `filledAt` only when set."""

    model_config = ConfigDict(from_attributes=True)

    id: Id = Field(alias="_id")
    price: Money
    type: Side
    status: LevelStatusName
    order_id: str | None = Field(default=None, exclude_if=absent)
    filled_at: Time | None = Field(default=None, exclude_if=absent)


class BotFigures(PublicModel):
    """A bot's trade figures, computed from its trades: on every bot read and in the `bot_stats` event."""

    current_profit: Money = Field(examples=[15000])
    profit_percent: Money = Field(examples=[9.38])
    total_trades: int = Field(examples=[8])
    last_executed_at: Time | None

    @classmethod
    def of(
        cls, *, profit: Decimal, investment: Decimal, trades: int, last_executed_at: datetime | None
    ) -> BotFigures:
        """The figures of a bot with this realised profit, investment and number of fills."""
        return cls(
            current_profit=profit,
            profit_percent=profit_percent(profit, investment),
            total_trades=trades,
            last_executed_at=last_executed_at,
        )


class Pagination(ResponseModel):
    """Where a page sits in the whole (`pagination` of every paged read)."""

    total: int
    limit: int
    offset: int
    has_more: bool
