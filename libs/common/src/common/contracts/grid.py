"""The grid fields of a request, one shape for `POST /bots` and `POST /backtests` (API.md), and their checks.

Numbers are exact JSON numbers (never through a float) within the digits of a `Money` column; the checks that
need no exchange rules come first (`precheck`), then `common.grid.plan_grid` builds the grid on the
exchange's rules, so both routes answer a bad grid with the same codes.
"""

from __future__ import annotations

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
    "ExchangeName",
    "GridKind",
    "GridRequest",
    "JsonNumber",
    "OptionalNumber",
    "Ticker",
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
ExchangeName = Annotated[str, Field(min_length=1, max_length=32), WithJsonSchema(one_of(*EXCHANGE_IDS))]
Ticker = Annotated[str, Field(min_length=1, max_length=TICKER_MAX)]


class GridRequest(RequestModel):
    """The grid of a bot: market, range, step, amount per grid, and what to do at the top."""

    exchange: ExchangeName
    ticker: Ticker
    lower_price: JsonNumber
    upper_price: JsonNumber
    price_change_percent: JsonNumber
    order_amount: JsonNumber
    stop_at_max: bool = False
    grid_type: GridKind = "geometric"

    @property
    def market_ticker(self) -> str:
        """The ticker as stored and routed (upper case, no spaces)."""
        return self.ticker.strip().upper()


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
