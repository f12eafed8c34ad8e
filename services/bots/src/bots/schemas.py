"""Request bodies and query parameters of the bot routes (camelCase on the wire, strict, no extras)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from common.contracts.grid import OPTION_DOCS, GridKind, GridRequest, OptionalNumber, PriceOption, not_null
from common.openapi import one_of
from common.schemas import RequestModel, is_bare_date, parse_date, validation_error

__all__ = ["CreateBotRequest", "UpdateBotRequest", "is_bare_date", "parse_date", "validation_error"]

Mode = Literal["live", "paper"]
Status = Literal["running", "stopped", "error"]
LevelStatusName = Literal["available", "pending", "filled"]
OptionalBool = Annotated[bool | None, BeforeValidator(not_null), WithJsonSchema({"type": "boolean"})]

GEOMETRY = frozenset({"lower_price", "upper_price", "price_change_percent", "grid_type"})
# The options a running bot may change: the engine applies new stops to the running grid.
RUNNING_OPTIONS = frozenset({"take_profit_price", "stop_loss_price"})
OPTIONS = frozenset(OPTION_DOCS)


class CreateBotRequest(GridRequest):
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
                },
                {
                    "exchange": "upbit",
                    "ticker": "KRW-BTC",
                    "lowerPrice": 50000000,
                    "upperPrice": 70000000,
                    "priceChangePercent": 2,
                    "orderAmount": 10000,
                    "autoStart": True,
                    "triggerPrice": 52000000,
                    "takeProfitPrice": 75000000,
                    "stopLossPrice": 45000000,
                    "sellBaseOnStop": True,
                    "trailingUp": True,
                    "trailingUpLimit": 90000000,
                },
            ]
        }
    )

    auto_start: bool = False
    mode: Mode | None = None


class UpdateBotRequest(RequestModel):
    """PUT /bots/:id: any of these, at least one. Only the option prices may be null (null clears one)."""

    model_config = ConfigDict(
        json_schema_extra={
            "minProperties": 1,
            "description": "Any time: orderAmount, stopAtMax, takeProfitPrice, stopLossPrice. Only while the "
            "bot is stopped (else 409 BOT_RUNNING): lowerPrice, upperPrice, priceChangePercent, gridType "
            "(the grid is rebuilt), triggerPrice (a new price waits again: `triggered` false), "
            "sellBaseOnStop, trailingUp, trailingUpLimit. null clears an option price; trailingUp false "
            "clears trailingUpLimit too. The options are checked against the bot's range as it will be.",
            "examples": [
                {"orderAmount": 20000, "stopAtMax": True},
                {"takeProfitPrice": 80000000, "stopLossPrice": None},
                {"triggerPrice": 52000000, "trailingUp": True, "trailingUpLimit": 90000000},
            ],
        }
    )

    order_amount: OptionalNumber = None
    stop_at_max: OptionalBool = None
    lower_price: OptionalNumber = None
    upper_price: OptionalNumber = None
    price_change_percent: OptionalNumber = None
    grid_type: Annotated[
        GridKind | None, BeforeValidator(not_null), WithJsonSchema(one_of("geometric", "arithmetic"))
    ] = None
    trigger_price: PriceOption = Field(None, **OPTION_DOCS["trigger_price"])
    take_profit_price: PriceOption = Field(None, **OPTION_DOCS["take_profit_price"])
    stop_loss_price: PriceOption = Field(None, **OPTION_DOCS["stop_loss_price"])
    sell_base_on_stop: OptionalBool = Field(None, **OPTION_DOCS["sell_base_on_stop"])
    trailing_up: OptionalBool = Field(None, **OPTION_DOCS["trailing_up"])
    trailing_up_limit: PriceOption = Field(None, **OPTION_DOCS["trailing_up_limit"])

    @model_validator(mode="after")
    def _something(self) -> UpdateBotRequest:
        if not self.model_fields_set:
            raise ValueError("at least one field is required")
        return self

    @property
    def changes_geometry(self) -> bool:
        """True when the grid must be rebuilt (only allowed while stopped)."""
        return bool(self.model_fields_set & GEOMETRY)

    @property
    def changes_options(self) -> frozenset[str]:
        """The grid options the body sets or clears (column names)."""
        return frozenset(self.model_fields_set & OPTIONS)

    @property
    def needs_stopped_bot(self) -> bool:
        """True when the body changes anything a running bot cannot take (else 409 BOT_RUNNING)."""
        return self.changes_geometry or bool(self.changes_options - RUNNING_OPTIONS)


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
