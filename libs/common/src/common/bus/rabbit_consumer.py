"""RabbitMQ consumers: ack after the handler, nack for a redelivery, reject to the DLQ."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, Protocol

from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
)
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from common import errortracking, metrics
from common.bus.port import BusError, Handler, QueueKind, Subscription
from common.bus.support import decode, invoke, log_failure
from common.contracts.envelope import Envelope

log = logging.getLogger(__name__)

# How long a bind or unbind may wait for the broker's answer.
BINDING_TIMEOUT_SECONDS = 10.0


class SubscriptionOwner(Protocol):
    """What a subscription needs of the bus that made it (`RabbitBus`; a protocol keeps the import one-way)."""

    @property
    def cancel_grace(self) -> float:
        """Seconds in-flight handlers may take to finish on a cancel."""

    def backoff(self, failures: int) -> float:
        """The delay before handing a message back after its n-th failure."""

    def forget(self, subscription: RabbitSubscription) -> None:
        """Drop a cancelled subscription from those the bus cancels on close."""


class RabbitSubscription(Subscription):
    """A consumer on its own channel; the message is settled after the handler returns."""

    def __init__(
        self,
        bus: SubscriptionOwner,
        channel: AbstractRobustChannel,
        queue: AbstractQueue,
        exchange: AbstractExchange,
        kind: QueueKind,
        handler: Handler,
        max_retries: int,
        *,
        label: str = "",
    ) -> None:
        self.queue = queue.name
        # The exchange's name without the namespace: one metrics child per subscription, resolved once.
        self._consumed = metrics.BUS_CONSUMED.labels(label)
        self._redelivered = metrics.BUS_REDELIVERED.labels(label)
        self._dead_lettered = metrics.BUS_DEAD_LETTERED.labels(label)
        self._dropped = metrics.BUS_DROPPED.labels(label)
        self._bus = bus
        self._channel = channel
        self._queue = queue
        self._exchange = exchange
        self._kind = kind
        self._handler = handler
        self._max_retries = max_retries
        self._tasks: set[asyncio.Task[Any]] = set()
        self.consumer_tag: str | None = None
        self._cancelled = False

    async def cancel(self) -> None:
        if self._cancelled:
            return
        self._cancelled = True
        try:
            if self.consumer_tag is not None and not self._channel.is_closed:
                await self._queue.cancel(self.consumer_tag)
        except (AMQPError, ChannelInvalidStateError, ConnectionError):
            log.debug("cancel of %s: channel already gone", self.queue, exc_info=True)
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self._bus.cancel_grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._kind is QueueKind.TRANSIENT:
            # It lives with its consumer: not auto-delete (it must outlive a lost connection), so deleted here.
            try:
                if not self._channel.is_closed:
                    await self._queue.delete(if_unused=False, if_empty=False)
            except (AMQPError, ChannelInvalidStateError, ConnectionError):
                log.debug("deleting %s failed; it expires by itself", self.queue, exc_info=True)
        # Closing the channel hands every still-unacked message back to the broker.
        if not self._channel.is_closed:
            await self._channel.close()
        self._bus.forget(self)

    async def bind(self, key: str) -> None:
        # A robust queue records its bindings and declares them again after a reconnection.
        await self._change_binding(self._queue.bind(self._exchange, key), "bind", key)

    async def unbind(self, key: str) -> None:
        await self._change_binding(self._queue.unbind(self._exchange, key), "unbind", key)

    async def _change_binding(self, call: Awaitable[Any], what: str, key: str) -> None:
        # Shielded: an AMQP call cancelled half-way makes aiormq close the whole channel, and the consumer
        # with it. Its failures leave as the port's BusError (callers must not know aio-pika's exceptions).
        try:
            async with asyncio.timeout(BINDING_TIMEOUT_SECONDS):
                await asyncio.shield(call)
        except (AMQPError, ChannelInvalidStateError, ConnectionError, TimeoutError) as exc:
            raise BusError(f"{what} {key} on {self.queue} failed: {type(exc).__name__}") from exc

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        """aio-pika consumer callback: one task per delivered message."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._handle(message)
        except (AMQPError, ChannelInvalidStateError, ConnectionError):
            # The ack/nack could not reach the broker; it redelivers the message on its own.
            log.warning("settling a message from %s failed", self.queue, exc_info=True)
        except Exception as exc:  # not the handler's (retried, dead-lettered): the consumer's own
            log.exception("consumer of %s failed", self.queue)
            errortracking.report(exc, queue=self.queue)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        self._consumed.inc()
        if message.redelivered:
            self._redelivered.inc()
        envelope = decode(message.body)
        if envelope is None:
            log.warning(
                "not an envelope on %s (routing_key=%s message_id=%s)",
                self.queue,
                message.routing_key,
                message.message_id,
            )
            # Durable queues dead-letter a rejection through their DLX; transient ones drop it.
            (self._dropped if self._kind is QueueKind.TRANSIENT else self._dead_lettered).inc()
            await message.reject(requeue=False)
            return
        if self._kind is QueueKind.TRANSIENT:
            await self._handle_transient(message, envelope)
            return
        try:
            await invoke(self._handler, envelope, self.queue)
        except Exception:
            attempt = _delivery_count(message) + 1
            log_failure(self.queue, envelope, attempt, self._max_retries)
            if attempt < self._max_retries:
                await asyncio.sleep(self._bus.backoff(attempt))
            else:
                self._dead_lettered.inc()
            # The queue's x-delivery-limit moves it to the DLQ once max_retries deliveries failed.
            await message.nack(requeue=True)
            return
        await message.ack()

    async def _handle_transient(self, message: AbstractIncomingMessage, envelope: Envelope) -> None:
        # Classic queues count no deliveries, so a transient message is retried in place.
        for attempt in range(1, self._max_retries + 1):
            try:
                await invoke(self._handler, envelope, self.queue)
            except Exception:
                log_failure(self.queue, envelope, attempt, self._max_retries)
                if attempt < self._max_retries:
                    await asyncio.sleep(self._bus.backoff(attempt))
            else:
                await message.ack()
                return
        self._dropped.inc()
        await message.reject(requeue=False)


def _delivery_count(message: AbstractIncomingMessage) -> int:
    """Failed earlier deliveries, as the quorum queue counts them (absent on the first)."""
    value = (message.headers or {}).get("x-delivery-count")
    return value if isinstance(value, int) else 0


def original_routing_key(message: AbstractIncomingMessage) -> str:
    """The routing key a dead-lettered message was first published with."""
    deaths = (message.headers or {}).get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[-1], dict):
        keys = deaths[-1].get("routing-keys")
        if isinstance(keys, list) and keys:
            return str(keys[0])
    return message.routing_key or ""
