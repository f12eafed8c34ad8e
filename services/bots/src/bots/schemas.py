"""Request bodies and query parameters of the bot routes (camelCase on the wire, strict, no extras)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from common.dbtypes import MONEY_PRECISION, MONEY_SCALE
from common.errors import AppError, ErrorCode
from common.grid import MAX_GRID_COUNT
from common.openapi import EXCHANGE_IDS, one_of
from common.schemas import ExactNumber, RequestModel

TICKER_MAX = 40
# Every number of a bot is stored in a `Money` column (NUMERIC(38, 18)): no more digits than that are taken,
# and investmentAmount = gridCount × orderAmount must fit the same column (10^20 / 200 = 5 × 10^17).
MONEY = ExactNumber(MONEY_PRECISION, MONEY_SCALE)
NUMBER_MAX = Decimal(10) ** (MONEY_PRECISION - MONEY_SCALE) / MAX_GRID_COUNT


def validation_error(field: str, reason: str) -> AppError:
    """VALIDATION_ERROR naming one bad field, shaped like the kit's request-validation answer."""
    return AppError(ErrorCode.VALIDATION_ERROR, {"fields": [{"field": field, "reason": reason}]})


def _json_number(value: Any) -> Decimal:
    """A JSON number as an exact Decimal within the column's digits, below NUMBER_MAX."""
    result = MONEY.validate(value)
    if abs(result) >= NUMBER_MAX:
        raise PydanticCustomError("number_range", f"must be below {NUMBER_MAX:f}")
    return result


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may not be null")
    return value


_NUMBER_SCHEMA = {
    "type": "number",
    "exclusiveMinimum": -float(NUMBER_MAX),
    "exclusiveMaximum": float(NUMBER_MAX),
}
JsonNumber = Annotated[Decimal, PlainValidator(_json_number), WithJsonSchema(_NUMBER_SCHEMA)]
OptionalNumber = Annotated[
    Decimal | None, PlainValidator(lambda v: _json_number(_not_null(v))), WithJsonSchema(_NUMBER_SCHEMA)
]
Mode = Literal["live", "paper"]
GridKind = Literal["geometric", "arithmetic"]
Status = Literal["running", "stopped", "error"]
LevelStatusName = Literal["available", "pending", "filled"]


class CreateBotRequest(RequestModel):
    """POST /bots."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "exchange": "upbit",
                    "ticker": "KRW-BTC",
                    "lowerPrice": 50000000,
                    "upperPrice": 70000000,
                    "priceChangePercent": 2,
                    "orderAmount": 10000,
                    "stopAtMax": False,
                    "autoStart": True,
                    "mode": "paper",
                }
            ]
        }
    )

    exchange: Annotated[str, Field(min_length=1, max_length=32), WithJsonSchema(one_of(*EXCHANGE_IDS))]
    ticker: Annotated[str, Field(min_length=1, max_length=TICKER_MAX)]
    lower_price: JsonNumber
    upper_price: JsonNumber
    price_change_percent: JsonNumber
    order_amount: JsonNumber
    stop_at_max: bool = False
    auto_start: bool = False
    mode: Mode | None = None
    grid_type: GridKind = "geometric"


class UpdateBotRequest(RequestModel):
    """PUT /bots/:id: any of these, at least one; none may be null."""

    model_config = ConfigDict(
        json_schema_extra={"minProperties": 1, "examples": [{"orderAmount": 20000, "stopAtMax": True}]}
    )

    order_amount: OptionalNumber = None
    stop_at_max: Annotated[bool | None, BeforeValidator(_not_null), WithJsonSchema({"type": "boolean"})] = (
        None
    )
    lower_price: OptionalNumber = None
    upper_price: OptionalNumber = None
    price_change_percent: OptionalNumber = None
    grid_type: Annotated[
        GridKind | None, BeforeValidator(_not_null), WithJsonSchema(one_of("geometric", "arithmetic"))
    ] = None

    @model_validator(mode="after")
    def _something(self) -> UpdateBotRequest:
        if not self.model_fields_set:
            raise ValueError("at least one field is required")
        return self

    @property
    def changes_geometry(self) -> bool:
        """True when the grid must be rebuilt (only allowed while stopped)."""
        return bool(
            self.model_fields_set & {"lower_price", "upper_price", "price_change_percent", "grid_type"}
        )


def parse_bot_id(value: str) -> uuid.UUID | None:
    """The bot id of a path, or None when it cannot be one (answered like any unknown id: 404)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def parse_choice(field: str, value: str | None, choices: tuple[str, ...]) -> str | None:
    """An optional enum query parameter: empty means absent; anything else must be one of `choices`."""
    if value is None or value == "":
        return None
    if value not in choices:
        raise validation_error(field, f"must be one of {', '.join(choices)}")
    return value


def parse_date(field: str, value: str | None, *, end: bool) -> datetime | None:
    """An ISO 8601 date or date-time (UTC when no offset); a bare end date covers that whole day.

    A date whose UTC instant (or the day after a bare end date) falls outside years 1..9999 is a
    VALIDATION_ERROR, not an OverflowError deep inside datetime.
    """
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day, time.min, UTC)
            # The end of a bare date is exclusive midnight of the next day (see `end_exclusive`).
            return start + timedelta(days=1) if end else start
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        raise validation_error(field, "out of range (years 1 to 9999, in UTC)") from None
    except ValueError:
        raise validation_error(field, "must be an ISO 8601 date or date-time") from None


def is_bare_date(value: str | None) -> bool:
    """True for a date without a time (its end bound is exclusive)."""
    return value is not None and len(value.strip()) == 10


_MILLISECOND = timedelta(milliseconds=1)


def _to_millisecond(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def trade_window(start_date: str | None, end_date: str | None) -> tuple[datetime | None, datetime | None]:
    """[since, until) of a trades query, compared at the millisecond the API shows times at.

    A trade is recorded to the microsecond but shown to the millisecond, so a client filtering with a time it
    was shown must get that trade: both bounds are cut to their millisecond and the end covers it whole. A
    bare endDate covers its whole day. VALIDATION_ERROR when the window is empty by construction.
    """
    since = parse_date("startDate", start_date, end=False)
    until = parse_date("endDate", end_date, end=True)
    if since is not None:
        since = _to_millisecond(since)
    if until is not None and not is_bare_date(end_date):
        try:
            until = _to_millisecond(until) + _MILLISECOND
        except OverflowError:
            until = None  # the calendar's last millisecond: nothing comes after it to exclude
    if since is not None and until is not None and since >= until:
        raise validation_error("startDate", "must not be after endDate")
    return since, until
