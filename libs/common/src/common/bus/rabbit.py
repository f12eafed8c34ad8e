"""RabbitMQ bus on aio-pika: confirmed publishing, ack-after-handler, quorum queues with a DLQ."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Sequence
from typing import Any

import aio_pika
import aiormq
from aio_pika import DeliveryMode, ExchangeType
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import (
    AMQPError,
    ChannelInvalidStateError,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
    DeliveryError,
)
from aiormq.exceptions import ChannelAccessRefused, ChannelLockedResource

from common import metrics
from common.bus.port import (
    DEFAULT_TRANSIENT_MAX_LENGTH,
    DLQ_SUFFIX,
    DLX_NAME,
    Bus,
    BusError,
    Handler,
    PublishNotConfirmedError,
    QueueDepth,
    QueueKind,
    Subscription,
    TopologyMismatchError,
)
from common.bus.rabbit_consumer import RabbitSubscription, original_routing_key
from common.bus.support import (
    backoff_delay,
    check_subscribe_args,
    quarantined,
)
from common.contracts.envelope import Envelope

log = logging.getLogger(__name__)

_BUS_NUMBERS = itertools.count(1)
_TOPOLOGY_CONFLICTS = (ChannelPreconditionFailed, ChannelLockedResource, ChannelAccessRefused)


class RabbitBus(Bus):
    """The production bus: durable topic exchanges, quorum queues, publisher confirms."""

    def __init__(
        self,
        url: str,
        namespace: str = "",
        *,
        retry_backoff: float = 0.2,
        max_backoff: float = 5.0,
        transient_max_length: int = DEFAULT_TRANSIENT_MAX_LENGTH,
        publish_timeout: float = 10.0,
        reconnect_interval: float = 1.0,
        cancel_grace: float = 10.0,
        connection_name: str | None = None,
        transient_expires: float = 120.0,
    ) -> None:
        super().__init__(namespace)
        self.url = url
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self.transient_max_length = transient_max_length
        self.publish_timeout = publish_timeout
        self.reconnect_interval = reconnect_interval
        self.cancel_grace = cancel_grace
        self.transient_expires = transient_expires
        """How long a transient queue outlives a lost connection (seconds), keeping what arrives meanwhile."""
        # Unique per bus (a process may hold several): the broker's CLI can then close exactly this one.
        self.connection_name = connection_name or (
            f"gridbot:{namespace or '-'}:{os.getpid()}:{next(_BUS_NUMBERS)}"
        )
        self.reconnects = 0
        """How many times the connection came back after a drop."""
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._subscriptions: set[RabbitSubscription] = set()
        self._declared_queues: set[str] = set()
        self._declared_exchanges: set[str] = set()

    def backoff(self, failures: int) -> float:
        """Delay before handing a failed message back after its n-th failure."""
        return backoff_delay(failures, self.retry_backoff, self.max_backoff)

    async def start(self) -> None:
        """Connect (robustly: it reconnects and restores topology and consumers by itself)."""
        if self._connection is not None:
            return
        connection = await aio_pika.connect_robust(
            self.url,
            reconnect_interval=self.reconnect_interval,
            client_properties={"connection_name": self.connection_name},
        )
        connection.reconnect_callbacks.add(self._on_reconnect)
        self._connection = connection
        self._publish_channel = await connection.channel(publisher_confirms=True)

    def _on_reconnect(self, _connection: object) -> None:
        self.reconnects += 1
        log.info("bus connection %s restored (%d)", self.connection_name, self.reconnects)

    async def close(self) -> None:
        """Cancel subscriptions (in-flight handlers finish), then close the connection."""
        await asyncio.gather(*(sub.cancel() for sub in list(self._subscriptions)))
        connection, self._connection = self._connection, None
        self._publish_channel = None
        self._exchanges.clear()
        if connection is not None:
            await connection.close()

    async def ping(self) -> bool:
        """A broker round trip on the publishing channel."""
        channel = self._publish_channel
        if self._connection is None or channel is None or self._connection.is_closed:
            return False
        try:
            async with asyncio.timeout(2.0):
                await channel.declare_exchange("amq.topic", passive=True, robust=False)
        except (TimeoutError, AMQPError, ChannelInvalidStateError, ConnectionError):
            return False
        return True

    async def _send(
        self, exchange: str, routing_key: str, envelope: Envelope, body: bytes, *, persistent: bool
    ) -> None:
        """Publish with a publisher confirm; raises PublishNotConfirmedError without one."""
        headers: dict[str, Any] = {}
        if envelope.request_id is not None:
            headers["x-request-id"] = envelope.request_id
        if envelope.traceparent is not None:
            headers["traceparent"] = envelope.traceparent  # for tools that read AMQP headers
        message = aio_pika.Message(
            body,
            content_type="application/json",
            message_id=envelope.message_id,
            type=envelope.type,
            timestamp=envelope.occurred_at,
            headers=headers,
            delivery_mode=DeliveryMode.PERSISTENT if persistent else DeliveryMode.NOT_PERSISTENT,
        )
        await self._publish(exchange, routing_key, message)

    async def publish_raw(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        message_id: str | None = None,
        *,
        persistent: bool = True,
    ) -> None:
        """Publish a body as is (tests and bridges; consumers dead-letter non-envelopes)."""
        mode = DeliveryMode.PERSISTENT if persistent else DeliveryMode.NOT_PERSISTENT
        await self._publish(
            exchange, routing_key, aio_pika.Message(body, message_id=message_id, delivery_mode=mode)
        )

    async def _publish(self, exchange: str, routing_key: str, message: aio_pika.Message) -> None:
        channel = self._publish_channel
        if channel is None:
            raise BusError("RabbitBus.start() was not awaited")
        name = self.full_name(exchange)
        try:
            async with asyncio.timeout(self.publish_timeout):
                await channel.ready()  # waits out a reconnection
                target = await self._exchange(channel, name)
                confirmation = await target.publish(message, routing_key, mandatory=False)
        except DeliveryError as exc:
            raise PublishNotConfirmedError(f"broker refused a message to {name}") from exc
        except TimeoutError as exc:
            raise PublishNotConfirmedError(f"no confirm for a message to {name}") from exc
        except (AMQPError, ChannelInvalidStateError, ConnectionError) as exc:
            raise PublishNotConfirmedError(f"lost the channel publishing to {name}") from exc
        if not isinstance(confirmation, aiormq.spec.Basic.Ack):
            raise PublishNotConfirmedError(f"broker did not ack a message to {name}")
        metrics.bus_published(exchange).inc()

    async def _exchange(self, channel: AbstractRobustChannel, name: str) -> AbstractExchange:
        exchange = self._exchanges.get(name)
        if exchange is None:
            exchange = await channel.declare_exchange(name, ExchangeType.TOPIC, durable=True)
            self._exchanges[name] = exchange
            self._declared_exchanges.add(name)
        return exchange

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
        """Declare the queue (and its DLQ), bind it, and consume on a channel of its own."""
        check_subscribe_args(prefetch, max_retries, max_length)
        connection = self._require_connection()
        name = self.full_name(queue)
        exchange_name = self.full_name(exchange)
        # A channel per subscription, so that its prefetch survives a reconnection intact.
        channel = await connection.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=prefetch)
            target = await channel.declare_exchange(exchange_name, ExchangeType.TOPIC, durable=True)
            self._declared_exchanges.add(exchange_name)
            declared = await self._declare_queue(channel, name, kind, max_retries, max_length)
            for key in binding_keys:
                await declared.bind(target, key)
            subscription = RabbitSubscription(
                self, channel, declared, target, kind, handler, max_retries, label=exchange
            )
            subscription.consumer_tag = await declared.consume(subscription.on_message)
        except _TOPOLOGY_CONFLICTS as exc:
            await _close_quietly(channel)
            raise TopologyMismatchError(f"queue {name} exists with other properties") from exc
        except BaseException:
            await _close_quietly(channel)
            raise
        self._subscriptions.add(subscription)
        return subscription

    async def declare(
        self,
        queue: str,
        exchange: str,
        binding_keys: Sequence[str],
        *,
        max_retries: int = 5,
        max_length: int | None = None,
    ) -> None:
        """Declare and bind a durable queue on a channel of its own, then close that channel."""
        check_subscribe_args(1, max_retries, max_length)
        channel = await self._require_connection().channel(publisher_confirms=False)
        name = self.full_name(queue)
        try:
            target = await channel.declare_exchange(
                self.full_name(exchange), ExchangeType.TOPIC, durable=True
            )
            self._declared_exchanges.add(self.full_name(exchange))
            declared = await self._declare_queue(channel, name, QueueKind.DURABLE, max_retries, max_length)
            for key in binding_keys:
                await declared.bind(target, key)
        except _TOPOLOGY_CONFLICTS as exc:
            raise TopologyMismatchError(f"queue {name} exists with other properties") from exc
        finally:
            await _close_quietly(channel)

    async def depths(self, queues: Sequence[str]) -> dict[str, QueueDepth | None]:
        """Passive declarations (a channel each: a missing queue closes the channel that asked)."""
        connection = self._require_connection()

        async def count(name: str) -> int | None:
            channel = await connection.channel(publisher_confirms=False)
            try:
                declared = await channel.declare_queue(self.full_name(name), passive=True)
                return int(declared.declaration_result.message_count or 0)
            except ChannelNotFoundEntity:
                return None
            finally:
                await _close_quietly(channel)

        found: dict[str, QueueDepth | None] = {}
        for queue in queues:
            ready, dead = await asyncio.gather(count(queue), count(queue + DLQ_SUFFIX))
            found[queue] = None if ready is None else QueueDepth(ready, dead or 0)
        return found

    async def _declare_queue(
        self,
        channel: AbstractRobustChannel,
        name: str,
        kind: QueueKind,
        max_retries: int,
        max_length: int | None,
    ) -> AbstractQueue:
        self._declared_queues.add(name)
        if kind is QueueKind.TRANSIENT:
            # Not exclusive nor auto-delete, which would take the queue and its binding away with a lost
            # connection: whatever was published until the consumer is back (aio-pika declares and consumes
            # again on reconnection) would be routed nowhere. Durable, so that a broker restart keeps it bound
            # too. Its names are unique per process; a cancel deletes it, and x-expires a crashed owner's.
            return await channel.declare_queue(
                name,
                durable=True,
                arguments={
                    "x-max-length": max_length or self.transient_max_length,
                    "x-overflow": "drop-head",
                    "x-expires": max(1, round(self.transient_expires * 1000)),
                },
            )
        dlx_name = self.full_name(DLX_NAME)
        dlx = await channel.declare_exchange(dlx_name, ExchangeType.DIRECT, durable=True)
        self._declared_exchanges.add(dlx_name)
        # A classic queue: inspecting it requeues messages, which must never count
        # towards a delivery limit (quorum queues have one by default from RabbitMQ 4).
        dlq = await channel.declare_queue(name + DLQ_SUFFIX, durable=True)
        self._declared_queues.add(dlq.name)
        await dlq.bind(dlx, routing_key=name)
        arguments: dict[str, Any] = {
            "x-queue-type": "quorum",
            # The broker dead-letters on the (limit + 1)-th failed delivery.
            "x-delivery-limit": max_retries - 1,
            "x-dead-letter-exchange": dlx_name,
            "x-dead-letter-routing-key": name,
        }
        if max_length is not None:
            arguments["x-max-length"] = max_length
            arguments["x-overflow"] = "drop-head"
        return await channel.declare_queue(name, durable=True, arguments=arguments)

    async def dead_letters(self, queue: str, *, limit: int = 1000) -> list[Envelope]:
        """Snapshot the DLQ with basic.get, then nack(requeue) all, so nothing leaves it."""
        connection = self._require_connection()
        channel = await connection.channel(publisher_confirms=False)
        held: list[AbstractIncomingMessage] = []
        try:
            try:
                dlq = await channel.declare_queue(
                    self.full_name(queue) + DLQ_SUFFIX,
                    passive=True,
                    robust=False,
                )
            except ChannelNotFoundEntity:
                return []
            while len(held) < limit:
                message = await dlq.get(no_ack=False, fail=False)
                if message is None:
                    break
                held.append(message)
            return [quarantined(m.body, original_routing_key(m), m.message_id) for m in held]
        finally:
            try:
                for message in held:
                    await message.nack(requeue=True)
            except (AMQPError, ChannelInvalidStateError, ConnectionError):
                # Closing the channel below hands unsettled messages back all the same.
                log.debug("requeueing inspected dead letters failed", exc_info=True)
            await _close_quietly(channel)

    async def delete_topology(self) -> None:
        """Delete every queue and exchange this bus declared (tests; tearing a namespace down)."""
        await asyncio.gather(*(sub.cancel() for sub in list(self._subscriptions)))
        channel = await self._require_connection().channel(publisher_confirms=False)
        try:
            for name in sorted(self._declared_queues):
                await channel.queue_delete(name)
            for name in sorted(self._declared_exchanges):
                await channel.exchange_delete(name)
        finally:
            await _close_quietly(channel)
        self._declared_queues.clear()
        self._declared_exchanges.clear()
        self._exchanges.clear()

    def forget(self, subscription: RabbitSubscription) -> None:
        """Drop a cancelled subscription from those close() cancels."""
        self._subscriptions.discard(subscription)

    def _require_connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise BusError("RabbitBus.start() was not awaited")
        return self._connection


async def _close_quietly(channel: AbstractRobustChannel) -> None:
    try:
        if not channel.is_closed:
            await channel.close()
    except (AMQPError, ChannelInvalidStateError, ConnectionError):
        log.debug("closing a channel failed", exc_info=True)
