"""The message-bus port: what services may ask of the bus, whatever carries the messages."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel

from common import tracing
from common.context import request_id_var
from common.contracts.envelope import Envelope, encoded_with, new_message_id, payload_to_dict

Handler = Callable[[Envelope], Awaitable[None]]
"""A consumer: the message is acked only after it returns; raising asks for a redelivery."""

DEFAULT_TRANSIENT_MAX_LENGTH = 1000
DLQ_SUFFIX = ".dlq"
DLX_NAME = "dlx"
INVALID_BODY_KEY = "_invalid_body"
"""`dead_letters()` puts the (decoded) body of a non-envelope message under this payload key."""


def make_envelope(
    routing_key: str,
    payload: BaseModel | dict[str, Any],
    message_id: str | None,
    request_id: str | None,
    traceparent: str | None = None,
) -> Envelope:
    """The envelope of one publication; the request id and trace context default to the current ones."""
    return Envelope(
        message_id=message_id or new_message_id(),
        type=routing_key,
        request_id=request_id if request_id is not None else request_id_var.get(),
        traceparent=traceparent if traceparent is not None else tracing.current_traceparent(),
        payload=payload_to_dict(payload),
    )


class QueueKind(StrEnum):
    """How a queue keeps its messages."""

    DURABLE = "durable"
    """Survives restarts (quorum queue); bounded retries, then the `<queue>.dlq` queue."""
    TRANSIENT = "transient"
    """Lives with its consumer, capped at `max_length` keeping the newest; no DLQ (price ticks).

    Cancelling the subscription deletes it; a lost connection does not: what arrives until the consumer is
    back is kept (RabbitMQ: until `transient_expires` passes without one).
    """


class BusError(Exception):
    """A bus operation failed."""


class PublishNotConfirmedError(BusError):
    """The broker did not confirm a publication (nacked, timed out or connection lost)."""


class TopologyMismatchError(BusError):
    """A queue already exists with other properties (kind, limits) than those asked for."""


class Subscription(ABC):
    """A running consumer of one queue."""

    queue: str
    """The full (namespaced) queue name."""

    @abstractmethod
    async def cancel(self) -> None:
        """Stop consuming; in-flight handlers finish first. A durable queue keeps collecting."""

    @abstractmethod
    async def bind(self, key: str) -> None:
        """Also take what the subscription's exchange routes with `key` (kept across reconnections)."""

    @abstractmethod
    async def unbind(self, key: str) -> None:
        """No longer take what `key` routes (messages already queued stay)."""


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """Messages ready in a queue, and dead-lettered from it."""

    messages: int
    dead_letters: int


class Bus(ABC):
    """Publish envelopes to topic exchanges; consume them from queues with ack-after-handler."""

    def __init__(self, namespace: str = "") -> None:
        self.namespace = namespace

    def full_name(self, name: str) -> str:
        """The broker-side name of an exchange or queue (namespace-prefixed)."""
        return f"{self.namespace}.{name}" if self.namespace else name

    @abstractmethod
    async def start(self) -> None:
        """Connect; must be awaited before any other call."""

    @abstractmethod
    async def close(self) -> None:
        """Cancel every subscription (letting in-flight handlers finish) and disconnect."""

    @abstractmethod
    async def ping(self) -> bool:
        """True when the bus can carry messages now (readiness probes)."""

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        payload: BaseModel | dict[str, Any],
        *,
        message_id: str | None = None,
        request_id: str | None = None,
        traceparent: str | None = None,
        persistent: bool = True,
    ) -> Envelope:
        """Wrap `payload` in an envelope and publish it; returns once the broker confirmed it.

        `request_id` defaults to the current request's id (common.context), `traceparent` to the current
        span's (common.tracing; None while tracing is off). Raises
        PublishNotConfirmedError when the broker refuses or does not answer.
        """
        envelope = make_envelope(routing_key, payload, message_id, request_id, traceparent)
        await self._send(exchange, routing_key, envelope, envelope.to_json(), persistent=persistent)
        return envelope

    async def publish_encoded(
        self,
        exchange: str,
        routing_key: str,
        payload_json: str,
        *,
        message_id: str,
        request_id: str | None = None,
        traceparent: str | None = None,
        persistent: bool = True,
    ) -> None:
        """`publish` a payload already encoded as the JSON text of an object (an outbox row's): the same
        envelope on the wire, without decoding the payload and encoding it again."""
        envelope = make_envelope(routing_key, {}, message_id, request_id, traceparent)
        body = encoded_with(envelope, payload_json)
        await self._send(exchange, routing_key, envelope, body, persistent=persistent)

    @abstractmethod
    async def _send(
        self, exchange: str, routing_key: str, envelope: Envelope, body: bytes, *, persistent: bool
    ) -> None:
        """Publish `body` (the wire form of `envelope`); returns once the broker confirmed it."""

    @abstractmethod
    async def subscribe(
        self,
        queue: str,
        exchange: str,
        binding_keys: Sequence[str],
        handler: Handler,
        *,
        kind: QueueKind = QueueKind.DURABLE,
        prefetch: int = 16,
        max_retries: int = 5,
        max_length: int | None = None,
    ) -> Subscription:
        """Declare `queue`, bind it to `exchange` with each key, and run `handler` on its messages.

        Up to `prefetch` handlers run at once (use 1 for strict order). A durable queue exists
        from this call on, so messages published while no consumer runs are kept. A message
        whose handler raised `max_retries` times goes to `dead_letters(queue)`, as does a body
        that is not an envelope. A transient queue retries `max_retries` times in place, then
        drops the message (a newer tick supersedes it).
        """

    @abstractmethod
    async def declare(
        self,
        queue: str,
        exchange: str,
        binding_keys: Sequence[str],
        *,
        max_retries: int = 5,
        max_length: int | None = None,
    ) -> None:
        """Declare a durable `queue` bound with each key, without consuming it.

        For a producer whose messages must be kept before any consumer ever ran (a job queue on a first
        deployment): what the exchange routes to the queue from now on waits there. The properties must be
        those its consumers subscribe with (TopologyMismatchError otherwise).
        """

    @abstractmethod
    async def depths(self, queues: Sequence[str]) -> dict[str, QueueDepth | None]:
        """Messages waiting in each queue and in its dead-letter queue; None for a queue that does not exist
        (operators' view: GET /admin/system)."""

    @abstractmethod
    async def dead_letters(self, queue: str) -> list[Envelope]:
        """A snapshot of the dead-letter queue of `queue`; the messages stay there."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
