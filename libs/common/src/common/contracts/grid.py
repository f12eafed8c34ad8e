"""The grid fields of a request, one shape for `POST /bots` and `POST /backtests` (API.md), and their checks.

Numbers are exact JSON numbers (never through a float) within the digits of a `Money` column; the checks that
need no exchange rules come first (`precheck`, then `check_options` for the grid options), then
`common.grid.plan_grid` builds the grid on the exchange's rules, so both routes answer a bad grid with the
same codes. `PUT /bots/:id` takes the same option fields (`PriceOption`) and runs the same `check_options` on
its body merged with the stored bot.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from common.dbtypes import MONEY_PRECISION, MONEY_SCALE
from common.errors import AppError, ErrorCode
from common.grid import MAX_GRID_COUNT
from common.openapi import EXCHANGE_IDS, one_of
from common.schemas import ExactNumber, RequestModel, validation_error

__all__ = [
    "OPTION_DOCS",
    "ExchangeName",
    "GridKind",
    "GridOptionSettings",
    "GridRequest",
    "JsonNumber",
    "OptionalNumber",
    "PriceOption",
    "Ticker",
    "check_options",
    "json_number",
    "not_null",
    "precheck",
    "validation_error",
]

TICKER_MAX = 40
# Every number of a bot is stored in a `Money` column (NUMERIC(38, 18)): no more digits than that are taken,
# and investmentAmount = gridCount × orderAmount must fit the same column (10^20 / 200 = 5 × 10^17).
MONEY = ExactNumber(MONEY_PRECISION, MONEY_SCALE)
NUMBER_MAX = Decimal(10) ** (MONEY_PRECISION - MONEY_SCALE) / MAX_GRID_COUNT

GridKind = Literal["geometric", "arithmetic"]


def json_number(value: Any) -> Decimal:
    """A JSON number as an exact Decimal within the column's digits, below NUMBER_MAX."""
    result = MONEY.validate(value)
    if abs(result) >= NUMBER_MAX:
        raise PydanticCustomError("number_range", f"must be below {NUMBER_MAX:f}")
    return result


def not_null(value: Any) -> Any:
    """Refuse an explicit null (an optional field may be left out, not nulled)."""
    if value is None:
        raise ValueError("may not be null")
    return value


NUMBER_SCHEMA = {
    "type": "number",
    "exclusiveMinimum": -float(NUMBER_MAX),
    "exclusiveMaximum": float(NUMBER_MAX),
}
JsonNumber = Annotated[Decimal, PlainValidator(json_number), WithJsonSchema(NUMBER_SCHEMA)]
OptionalNumber = Annotated[
    Decimal | None, PlainValidator(lambda v: json_number(not_null(v))), WithJsonSchema(NUMBER_SCHEMA)
]


def _price_option(value: Any) -> Decimal | None:
    # null is "off" (POST) or "clear it" (PUT); the sign is check_options' (INVALID_PRICE_RANGE, like lowerPrice).
    return None if value is None else json_number(value)


PRICE_OPTION_SCHEMA = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": float(NUMBER_MAX)},
        {"type": "null"},
    ]
}
# A grid option's price: an exact JSON number > 0, or null for none.
PriceOption = Annotated[Decimal | None, PlainValidator(_price_option), WithJsonSchema(PRICE_OPTION_SCHEMA)]
ExchangeName = Annotated[str, Field(min_length=1, max_length=32), WithJsonSchema(one_of(*EXCHANGE_IDS))]
Ticker = Annotated[str, Field(min_length=1, max_length=TICKER_MAX)]


# The grid options' documentation (API.md "Grid options"), shared by POST /bots, PUT /bots/:id, POST /backtests.
OPTION_DOCS: dict[str, dict[str, Any]] = {
    "trigger_price": {
        "description": "Place nothing until the market trades at or through this price (from whichever side "
        "it starts); `triggered` is false until then. Any price > 0; null or absent: no trigger.",
        "examples": [48000000],
    },
    "take_profit_price": {
        "description": "Cancel the orders and stop (`stopReason: takeProfit`) when the market reaches it. "
        "Must be above upperPrice (else INVALID_PRICE_RANGE); null or absent: none.",
        "examples": [75000000],
    },
    "stop_loss_price": {
        "description": "Cancel the orders and stop (`stopReason: stopLoss`) when the market falls to it. "
        "Must be below lowerPrice (else INVALID_PRICE_RANGE); null or absent: none.",
        "examples": [45000000],
    },
    "sell_base_on_stop": {
        "description": "On any stop (user, stopAtMax, take-profit, stop-loss) sell the base the grid holds "
        "at market; the sale is recorded as trades with their profit.",
        "examples": [True],
    },
    "trailing_up": {
        "description": "When the market rises a step above the top level, move the grid up one step (the "
        "lowest buy is cancelled, a new top slot added), up to trailingUpLimit.",
        "examples": [True],
    },
    "trailing_up_limit": {
        "description": "The price trailing up stops at: above upperPrice (else INVALID_PRICE_RANGE), and only "
        "with trailingUp true (else VALIDATION_ERROR `requires trailingUp: true`); null or absent: no limit.",
        "examples": [90000000],
    },
}


class GridRequest(RequestModel):
    """The grid of a bot: market, range, step, amount per grid, what to do at the top, and its options."""

    exchange: ExchangeName
    ticker: Ticker
    lower_price: JsonNumber
    upper_price: JsonNumber
    price_change_percent: JsonNumber
    order_amount: JsonNumber
    stop_at_max: bool = False
    grid_type: GridKind = "geometric"
    trigger_price: PriceOption = Field(None, **OPTION_DOCS["trigger_price"])
    take_profit_price: PriceOption = Field(None, **OPTION_DOCS["take_profit_price"])
    stop_loss_price: PriceOption = Field(None, **OPTION_DOCS["stop_loss_price"])
    sell_base_on_stop: bool = Field(False, **OPTION_DOCS["sell_base_on_stop"])
    trailing_up: bool = Field(False, **OPTION_DOCS["trailing_up"])
    trailing_up_limit: PriceOption = Field(None, **OPTION_DOCS["trailing_up_limit"])

    @property
    def market_ticker(self) -> str:
        """The ticker as stored and routed (upper case, no spaces)."""
        return self.ticker.strip().upper()

    @property
    def options(self) -> GridOptionSettings:
        """The grid options of the request."""
        return GridOptionSettings(
            trigger_price=self.trigger_price,
            take_profit_price=self.take_profit_price,
            stop_loss_price=self.stop_loss_price,
            sell_base_on_stop=self.sell_base_on_stop,
            trailing_up=self.trailing_up,
            trailing_up_limit=self.trailing_up_limit,
        )


@dataclass(frozen=True, slots=True)
class GridOptionSettings:
    """A grid's options (API.md "Grid options"), every one off by default; field names are the columns'."""

    trigger_price: Decimal | None = None
    take_profit_price: Decimal | None = None
    stop_loss_price: Decimal | None = None
    sell_base_on_stop: bool = False
    trailing_up: bool = False
    trailing_up_limit: Decimal | None = None


def _price_range(field: str, reason: str, **bounds: Decimal) -> AppError:
    return AppError(ErrorCode.INVALID_PRICE_RANGE, {"field": field, "reason": reason, **bounds})


def precheck(
    lower: Decimal | None, upper: Decimal | None, pct: Decimal | None, order_amount: Decimal | None
) -> None:
    """The checks that need no exchange rules (the same codes common.grid uses)."""
    if lower is not None and upper is not None and not 0 < lower < upper:
        raise AppError(ErrorCode.INVALID_PRICE_RANGE, {"reason": "0 < lowerPrice < upperPrice is required"})
    if pct is not None and not pct > 0:
        raise AppError(ErrorCode.INVALID_PRICE_RANGE, {"reason": "priceChangePercent must be positive"})
    if order_amount is not None and not order_amount > 0:
        raise AppError(ErrorCode.INVALID_ORDER_AMOUNT, {"reason": "orderAmount must be positive"})


def check_options(lower: Decimal, upper: Decimal, options: GridOptionSettings) -> None:
    """The grid options against the grid's range (a valid one: precheck first); no exchange rules needed.

    trailingUpLimit without trailingUp is VALIDATION_ERROR (a limit on nothing: a client's mistake, not a
    price); every price problem is INVALID_PRICE_RANGE with `details.field` naming the option.
    """
    if options.trailing_up_limit is not None and not options.trailing_up:
        raise validation_error("trailingUpLimit", "requires trailingUp: true")
    prices = {
        "triggerPrice": options.trigger_price,
        "takeProfitPrice": options.take_profit_price,
        "stopLossPrice": options.stop_loss_price,
        "trailingUpLimit": options.trailing_up_limit,
    }
    for name, price in prices.items():
        if price is not None and not price > 0:
            raise _price_range(name, f"{name} must be positive")
    if options.stop_loss_price is not None and not options.stop_loss_price < lower:
        raise _price_range(
            "stopLossPrice",
            "stopLossPrice must be below lowerPrice",
            stopLossPrice=options.stop_loss_price,
            lowerPrice=lower,
        )
    if options.take_profit_price is not None and not options.take_profit_price > upper:
        raise _price_range(
            "takeProfitPrice",
            "takeProfitPrice must be above upperPrice",
            takeProfitPrice=options.take_profit_price,
            upperPrice=upper,
        )
    if options.trailing_up_limit is not None and not options.trailing_up_limit > upper:
        raise _price_range(
            "trailingUpLimit",
            "trailingUpLimit must be above upperPrice",
            trailingUpLimit=options.trailing_up_limit,
            upperPrice=upper,
        )
