"""The envelope every bus message travels in: id, type (routing key), time, request id, trace, payload."""

from __future__ import annotations

import builtins
import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import to_jsonable_python

ModelT = TypeVar("ModelT", bound=BaseModel)


def new_message_id() -> str:
    """A fresh message id (uuid4 hex)."""
    return uuid.uuid4().hex


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Envelope(BaseModel):
    """One bus message as it is on the wire (the AMQP body is this model's JSON)."""

    # Unknown fields are ignored so that a newer publisher never poisons an older consumer.
    model_config = ConfigDict(extra="ignore")

    message_id: str = Field(default_factory=new_message_id, min_length=1, max_length=255)
    type: str = Field(min_length=1, max_length=255)
    occurred_at: datetime = Field(default_factory=utc_now)
    request_id: str | None = Field(default=None, max_length=255)
    # The W3C traceparent of the span that caused the message (common.tracing); None when tracing is off.
    traceparent: str | None = Field(default=None, max_length=255)
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("occurred_at")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        # A naive time from a foreign publisher is taken as UTC rather than local time.
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def to_json(self) -> bytes:
        """The wire form: UTF-8 JSON."""
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Envelope:
        """Parse the wire form; raises pydantic.ValidationError when it is not an envelope."""
        return cls.model_validate_json(data)

    def payload_as(self, model: builtins.type[ModelT]) -> ModelT:
        """Validate the payload as a typed message contract."""
        return model.model_validate(self.payload)


def encoded_with(envelope: Envelope, payload_json: str) -> bytes:
    """The wire form of `envelope` carrying `payload_json` (the JSON text of an object, as an outbox row holds
    it) as its payload, spliced in rather than decoded and encoded again."""
    head = envelope.model_dump_json(exclude={"payload"})
    return f'{head[:-1]},"payload":{payload_json}}}'.encode()


def payload_to_dict(payload: BaseModel | dict[str, Any]) -> dict[str, Any]:
    """The payload as JSON types, so a publisher's envelope equals what its consumers get."""
    if isinstance(payload, BaseModel):
        return payload.model_dump(mode="json")
    # Raises (pydantic_core.PydanticSerializationError) before anything is sent.
    jsonable: dict[str, Any] = to_jsonable_python(payload)
    return jsonable
