"""Request bodies and query parameters of the bot routes (camelCase on the wire, strict, no extras)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BeforeValidator, ConfigDict, WithJsonSchema, model_validator

from common.contracts.grid import GridKind, GridRequest, OptionalNumber, not_null
from common.openapi import one_of
from common.schemas import RequestModel, is_bare_date, parse_date, validation_error

__all__ = ["CreateBotRequest", "UpdateBotRequest", "is_bare_date", "parse_date", "validation_error"]

Mode = Literal["live", "paper"]
Status = Literal["running", "stopped", "error"]
LevelStatusName = Literal["available", "pending", "filled"]


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
                }
            ]
        }
    )

    auto_start: bool = False
    mode: Mode | None = None


class UpdateBotRequest(RequestModel):
    """PUT /bots/:id: any of these, at least one; none may be null."""

    model_config = ConfigDict(
        json_schema_extra={"minProperties": 1, "examples": [{"orderAmount": 20000, "stopAtMax": True}]}
    )

    order_amount: OptionalNumber = None
    stop_at_max: Annotated[bool | None, BeforeValidator(not_null), WithJsonSchema({"type": "boolean"})] = None
    lower_price: OptionalNumber = None
    upper_price: OptionalNumber = None
    price_change_percent: OptionalNumber = None
    grid_type: Annotated[
        GridKind | None, BeforeValidator(not_null), WithJsonSchema(one_of("geometric", "arithmetic"))
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
