"""Request bodies of the backtest routes (camelCase on the wire, strict, no extras) and their windows."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from common.contracts.grid import (
    ExchangeName,
    GridKind,
    GridRequest,
    JsonNumber,
    Ticker,
    json_number,
    not_null,
)
from common.schemas import RequestModel, is_bare_date, parse_date, validation_error

# A fee rate above this is no exchange's.
MAX_FEE_RATE = Decimal("0.1")
IsoDate = Annotated[
    str,
    Field(min_length=1, max_length=64),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}],
            "maxLength": 64,
        }
    ),
]


def _fee_rate(value: Any) -> Decimal:
    rate = json_number(value)
    if not 0 <= rate <= MAX_FEE_RATE:
        raise PydanticCustomError("fee_rate", f"must be between 0 and {MAX_FEE_RATE}")
    return rate


# The exchange's maker fee unless given: a rate in [0, 0.1] (0.001 = 0.1 %).
FeeRate = Annotated[
    Decimal | None,
    PlainValidator(lambda v: _fee_rate(not_null(v))),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": float(MAX_FEE_RATE), "examples": [0.001]}),
]


class CreateBacktestRequest(GridRequest):
    """POST /backtests: a bot's grid fields, the window of past candles, and optionally the fee rate."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "exchange": "binance",
                    "ticker": "BTCUSDT",
                    "lowerPrice": 90000,
                    "upperPrice": 100000,
                    "priceChangePercent": 0.5,
                    "orderAmount": 100,
                    "stopAtMax": False,
                    "startDate": "2024-12-01",
                    "endDate": "2024-12-30",
                }
            ]
        }
    )

    start_date: IsoDate
    end_date: IsoDate
    fee_rate: FeeRate = None


class RecommendRequest(RequestModel):
    """POST /backtests/recommend."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"exchange": "binance", "ticker": "BTCUSDT", "investment": 1000, "days": 30}]
        }
    )

    exchange: ExchangeName
    ticker: Ticker
    investment: JsonNumber
    days: Annotated[int, Field(ge=7, le=90)] = 30
    grid_type: GridKind = "geometric"


def window(start_date: str, end_date: str, now: datetime, max_days: int) -> tuple[datetime, datetime]:
    """[start, end) of a backtest, on whole minutes: dates as the trade filters read them, never in the future.

    A bare endDate covers its whole day, cut at the last closed minute when that day is today; a bare date
    after today, or a date-time after now, is in the future.
    """
    start = parse_date("startDate", start_date, end=False)
    end = parse_date("endDate", end_date, end=True)
    assert start is not None and end is not None  # both are required, non-empty strings
    closed = now.replace(second=0, microsecond=0)
    if start >= closed:
        raise validation_error("startDate", "must be in the past")
    if is_bare_date(end_date) and end - timedelta(days=1) <= now < end:
        end = closed  # today: up to the last closed minute
    if end > closed + timedelta(minutes=1):
        raise validation_error("endDate", "must not be in the future")
    start = _ceil_minute(start)
    end = min(end.replace(second=0, microsecond=0), closed)
    if start >= end:
        raise validation_error("startDate", "must be before endDate")
    if end - start > timedelta(days=max_days):
        raise validation_error("endDate", f"must be at most {max_days} days after startDate")
    return start, end


def _ceil_minute(moment: datetime) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=1)


Status = Literal["queued", "running", "done", "failed"]
