"""Per-request context carried through logs and the bus: request id and client language."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
language_var: ContextVar[str] = ContextVar("language", default="ko")

REQUEST_ID_HEADER = "x-request-id"
_MAX_REQUEST_ID = 128


def new_request_id() -> str:
    """A fresh request id."""
    return uuid.uuid4().hex


def sanitize_request_id(value: str | None) -> str:
    """Echo a client's id when it is printable and short; otherwise mint one (ids end up in logs)."""
    if value and len(value) <= _MAX_REQUEST_ID and all(c.isalnum() or c in "-_.:" for c in value):
        return value
    return new_request_id()
