"""Base models for request and response bodies: camelCase on the wire, unknown fields refused."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, WithJsonSchema
from pydantic.alias_generators import to_camel

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
    """A response body: camelCase aliases (serialise with by_alias=True)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Success(BaseModel, Generic[DataT]):
    """The success envelope, for the OpenAPI document (handlers answer with common.web.ok)."""

    success: Annotated[bool, WithJsonSchema({"type": "boolean", "const": True})] = True
    message: str | None = None
    data: DataT


class MessageOnly(BaseModel):
    """A success envelope without data (logout, delete)."""

    success: Annotated[bool, WithJsonSchema({"type": "boolean", "const": True})] = True
    message: str
