"""RabbitMQ-only behaviour: wire properties, nacked publications, surviving a dropped connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika import DeliveryMode, ExchangeType
from aio_pika.abc import AbstractRobustConnection
from aio_pika.exceptions import ChannelNotFoundEntity

from common.bus import Envelope, PublishNotConfirmedError, QueueKind, RabbitBus
from common.testing.infra import host_tool
from common.testing.rabbit import close_connection
from common.testing.wait import eventually

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def bus(rabbitmq_url: str, namespace: str) -> AsyncIterator[RabbitBus]:
    rabbit = RabbitBus(
        rabbitmq_url,
        namespace,
        retry_backoff=0.01,
        reconnect_interval=0.2,
        cancel_grace=2.0,
        connection_name=f"gridbot-test:{namespace}",
    )
    await rabbit.start()
    try:
        yield rabbit
    finally:
        await rabbit.delete_topology()
        await rabbit.close()


@pytest.fixture
async def raw(rabbitmq_url: str) -> AsyncIterator[AbstractRobustConnection]:
    """A plain aio-pika connection for looking at what the bus put on the broker."""
    connection = await aio_pika.connect_robust(rabbitmq_url)
    yield connection
    await connection.close()


async def test_publish_sets_the_amqp_properties(
    bus: RabbitBus, raw: AbstractRobustConnection, namespace: str
) -> None:
    channel = await raw.channel()
    exchange = await channel.declare_exchange(f"{namespace}.bots", ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(f"{namespace}.probe", durable=True)
    await queue.bind(exchange, "bot.#")
    try:
        sent = await bus.publish("bots", "bot.start", {"bot_id": 1}, request_id="req-1")
        await bus.publish("bots", "bot.tick", {}, persistent=False)
        first = await queue.get(no_ack=True)
        second = await queue.get(no_ack=True)
    finally:
        await queue.delete(if_unused=False, if_empty=False)

    assert first.message_id == sent.message_id
    assert first.content_type == "application/json"
    assert first.headers.get("x-request-id") == "req-1"
    assert first.type == "bot.start"
    assert first.delivery_mode == DeliveryMode.PERSISTENT
    assert Envelope.from_json(first.body) == sent
    assert json.loads(first.body)["payload"] == {"bot_id": 1}
    assert second.delivery_mode == DeliveryMode.NOT_PERSISTENT
    assert "x-request-id" not in (second.headers or {})


async def test_a_nacked_publication_raises(
    bus: RabbitBus, raw: AbstractRobustConnection, namespace: str
) -> None:
    # A full queue with overflow=reject-publish makes the broker answer basic.nack.
    channel = await raw.channel()
    exchange = await channel.declare_exchange(f"{namespace}.x", ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(
        f"{namespace}.full",
        durable=True,
        arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
    )
    await queue.bind(exchange, "k")
    try:
        await bus.publish("x", "k", {"n": 1})
        with pytest.raises(PublishNotConfirmedError):
            await bus.publish("x", "k", {"n": 2})
        await bus.publish("x", "other", {"n": 3})  # the bus still publishes afterwards
    finally:
        await queue.delete(if_unused=False, if_empty=False)


async def test_publish_before_start_is_refused(rabbitmq_url: str) -> None:
    with pytest.raises(Exception, match="start"):
        await RabbitBus(rabbitmq_url).publish("x", "k", {})


async def test_subscriptions_survive_a_connection_closed_by_the_broker(bus: RabbitBus) -> None:
    # The broker's own CLI closes the connection; without it the test fails under CI, never skips there.
    rabbitmqctl = host_tool("rabbitmqctl")
    durable: list[str] = []
    transient: list[str] = []

    async def on_fill(envelope: Envelope) -> None:
        durable.append(envelope.message_id)

    async def on_tick(envelope: Envelope) -> None:
        transient.append(envelope.message_id)

    await bus.subscribe("fills", "orders", ["order.filled"], on_fill)
    ticks = await bus.subscribe("ticks", "market", [], on_tick, kind=QueueKind.TRANSIENT)
    # Bound after the subscription (as the engine binds its markets): restored with the queue.
    await ticks.bind("price.upbit.*")
    await bus.publish("orders", "order.filled", {}, message_id="before")
    await eventually(lambda: durable == ["before"])

    await close_connection(rabbitmqctl, bus.connection_name, "contract test: forced close")
    await eventually(lambda: bus.reconnects >= 1, timeout=20, message="no reconnection")

    await bus.publish("orders", "order.filled", {}, message_id="after")
    await bus.publish("market", "price.upbit.BTC", {}, message_id="tick-after", persistent=False)
    await eventually(lambda: durable == ["before", "after"], timeout=10)
    await eventually(lambda: transient == ["tick-after"], timeout=10)
    assert await bus.ping()


async def test_a_transient_queue_keeps_what_is_published_while_its_consumer_reconnects(
    bus: RabbitBus, rabbitmq_url: str, namespace: str
) -> None:
    rabbitmqctl = host_tool("rabbitmqctl")
    received: list[str] = []

    async def on_tick(envelope: Envelope) -> None:
        received.append(envelope.message_id)

    await bus.subscribe("ticks", "market", ["price.#"], on_tick, kind=QueueKind.TRANSIENT, max_length=100_000)
    publisher = RabbitBus(rabbitmq_url, namespace, connection_name=f"gridbot-test-publisher:{namespace}")
    await publisher.start()
    sent: list[str] = []
    stop = asyncio.Event()

    async def market() -> None:
        # Ticks at a steady pace from another connection, across the consumer's reconnection.
        while not stop.is_set():
            message_id = f"tick-{len(sent)}"
            await publisher.publish("market", "price.upbit.BTC", {}, message_id=message_id, persistent=False)
            sent.append(message_id)
            await asyncio.sleep(0.002)

    ticking = asyncio.create_task(market())
    try:
        await eventually(lambda: len(received) >= 20, timeout=10)
        await close_connection(rabbitmqctl, bus.connection_name, "contract test: forced close")
        await eventually(lambda: bus.reconnects >= 1, timeout=20, message="no reconnection")
        after = len(sent)
        await eventually(lambda: len(sent) >= after + 50, timeout=10)
    finally:
        stop.set()
        await ticking
        await publisher.close()
    await eventually(lambda: set(sent) <= set(received), timeout=10, message="ticks were lost")


async def test_a_cancelled_transient_subscription_takes_its_queue_away(
    bus: RabbitBus, raw: AbstractRobustConnection, namespace: str
) -> None:
    async def ignore(envelope: Envelope) -> None:
        return None

    subscription = await bus.subscribe("feed", "market", ["price.#"], ignore, kind=QueueKind.TRANSIENT)
    channel = await raw.channel()
    await channel.declare_queue(f"{namespace}.feed", passive=True)  # there while subscribed
    await subscription.cancel()
    channel = await raw.channel()
    with pytest.raises(ChannelNotFoundEntity):
        await channel.declare_queue(f"{namespace}.feed", passive=True)
