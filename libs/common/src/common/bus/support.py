"""Pieces both bus adapters share: topic matching, envelopes in and out, the redelivery backoff."""

from __future__ import annotations

import logging
import sys
from functools import lru_cache

from pydantic import ValidationError

from common import errortracking, tracing
from common.bus.port import INVALID_BODY_KEY, Handler
from common.context import request_id_var
from common.contracts.envelope import Envelope, new_message_id
from common.retry import Backoff, Jitter

log = logging.getLogger(__name__)

_MAX_INVALID_BODY_CHARS = 64 * 1024


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: `*` is exactly one word, `#` zero or more words."""
    return _match(tuple(pattern.split(".")), tuple(routing_key.split(".")))


@lru_cache(maxsize=4096)
def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        # `#` swallows zero words, or one word and stays in place to try for more.
        return _match(rest, words) or (bool(words) and _match(pattern, words[1:]))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])


def decode(body: bytes) -> Envelope | None:
    """The envelope in a body, or None when the body is not one."""
    try:
        return Envelope.from_json(body)
    except (ValidationError, ValueError):
        return None


def quarantined(body: bytes, routing_key: str, message_id: str | None) -> Envelope:
    """An envelope standing for a dead-lettered body: the envelope itself, or the raw text."""
    envelope = decode(body)
    if envelope is not None:
        return envelope
    text = body.decode("utf-8", errors="replace")[:_MAX_INVALID_BODY_CHARS]
    return Envelope(
        message_id=message_id or new_message_id(),
        type=routing_key or "invalid",
        payload={INVALID_BODY_KEY: text},
    )


async def invoke(handler: Handler, envelope: Envelope, queue: str = "") -> None:
    """Run a handler with the envelope's request id as the current one (so logs carry it), in a consumer
    span continuing the publisher's trace when the envelope carries one and tracing is on."""
    token = request_id_var.set(envelope.request_id)
    try:
        if envelope.traceparent is not None and tracing.enabled():
            with tracing.consuming(envelope, queue):
                await handler(envelope)
        else:
            await handler(envelope)
    finally:
        request_id_var.reset(token)


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """The delay before redelivering after the n-th failure (n >= 1): exponential from `base`, capped, no jitter."""
    return Backoff(base, cap, Jitter.NONE).delay(max(1, failures))


def check_subscribe_args(prefetch: int, max_retries: int, max_length: int | None) -> None:
    """Refuse limits the brokers cannot express."""
    if prefetch < 1:
        raise ValueError("prefetch must be >= 1")
    if max_retries < 1:
        raise ValueError("max_retries must be >= 1 (the number of deliveries before the DLQ)")
    if max_length is not None and max_length < 1:
        raise ValueError("max_length must be >= 1")


def log_failure(queue: str, envelope: Envelope, attempt: int, max_retries: int) -> None:
    """One WARNING per failed delivery, with ids but never the payload; the last one is reported to the
    error hooks (common.errortracking) with the message's trace and request ids. Call from the except block."""
    if attempt >= max_retries:
        exc = sys.exc_info()[1]
        if exc is not None:
            traceparent = envelope.traceparent or ""
            trace_id = traceparent.split("-")[1] if traceparent.count("-") == 3 else None
            errortracking.report(
                exc,
                trace_id=trace_id,
                request_id=envelope.request_id,
                queue=queue,
                message_type=envelope.type,
            )
    log.warning(
        "handler failed on %s (type=%s message_id=%s attempt %d/%d)",
        queue,
        envelope.type,
        envelope.message_id,
        attempt,
        max_retries,
        exc_info=True,
    )
