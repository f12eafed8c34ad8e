"""Base models for request and response bodies: camelCase on the wire, unknown fields refused."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


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
