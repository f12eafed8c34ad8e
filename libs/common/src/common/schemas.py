"""Base models for request and response bodies: camelCase on the wire, unknown fields refused; exact numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, GetJsonSchemaHandler, WithJsonSchema
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from common.dbtypes import MONEY_PRECISION, MONEY_SCALE
from common.errors import AppError, ErrorCode

DataT = TypeVar("DataT")

# Money and quantities in a response: an exact Decimal written as a JSON number (see common.web.dumps),
# documented as one (pydantic alone would document a Decimal as a string).
WireNumber = Annotated[Decimal, WithJsonSchema({"type": "number"})]
WireTime = Annotated[
    str,
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2025-01-23T10:30:00.000Z"]}),
]


class RequestModel(BaseModel):
    """A request body: camelCase aliases, extra fields are a validation error, strict types."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
        str_strip_whitespace=False,
        frozen=True,
    )


class ResponseModel(BaseModel):
    """A response body: camelCase aliases, which it is written with."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)


class Success(BaseModel, Generic[DataT]):
    """The success envelope, for the OpenAPI document (handlers answer with common.web.ok)."""

    success: Annotated[bool, WithJsonSchema({"type": "boolean", "const": True})] = True
    message: str | None = None
    data: DataT


class MessageOnly(BaseModel):
    """A success envelope without data (logout, delete)."""

    success: Annotated[bool, WithJsonSchema({"type": "boolean", "const": True})] = True
    message: str


def _invalid(reason: str) -> PydanticCustomError:
    # A custom error keeps the reason as written (a ValueError would read "Value error, ...").
    return PydanticCustomError("exact_number", reason)


@dataclass(frozen=True, slots=True)
class ExactNumber:
    """Field metadata: a JSON number taken digit for digit, refused (never rounded) beyond the column's digits.

    `Annotated[Decimal, ExactNumber(precision=38, scale=18)]` accepts at most `scale` decimals and
    `precision - scale` digits before the point, as NUMERIC(precision, scale) stores them. Request bodies
    reach it as Decimals (the kit parses JSON with exact decimals); a Python float is read through its
    shortest repr, the decimal a JSON writer would have sent.
    """

    precision: int = MONEY_PRECISION
    scale: int = MONEY_SCALE

    def validate(self, value: Any) -> Decimal:
        """The exact Decimal of `value`, or a validation error whose message a client can act on."""
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise _invalid("must be a number")
        if isinstance(value, float):
            if not math.isfinite(value):
                raise _invalid("must be a finite number")
            value = repr(value)
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise _invalid("must be a number") from None
        if not result.is_finite():
            raise _invalid("must be a finite number")
        if result == 0:
            return result
        _, digits, exponent = result.normalize().as_tuple()
        assert isinstance(exponent, int)
        if -exponent > self.scale:
            raise _invalid(f"at most {self.scale} decimal places")
        if len(digits) + exponent > self.precision - self.scale:
            raise _invalid(f"at most {self.precision - self.scale} digits before the decimal point")
        return result

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        """A plain validator: no coercion from strings or booleans, whatever the model's mode."""
        return core_schema.no_info_plain_validator_function(self.validate)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Documented as a JSON number."""
        return {"type": "number"}


# A money or quantity field of the shared `Money` column type (NUMERIC(38, 18)).
ExactDecimal = Annotated[Decimal, ExactNumber()]


def validation_error(field: str, reason: str) -> AppError:
    """VALIDATION_ERROR naming one bad field, shaped like the kit's request-validation answer."""
    return AppError(ErrorCode.VALIDATION_ERROR, {"fields": [{"field": field, "reason": reason}]})


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
