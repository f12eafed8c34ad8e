"""Bus metrics, on both adapters: published, consumed, redelivered and dead-lettered, by exchange."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from common import metrics
from common.bus import Envelope, InMemoryBus, RabbitBus
from common.testing.wait import eventually

AnyBus = InMemoryBus | RabbitBus


@pytest.fixture(params=["memory", "rabbitmq"])
async def bus(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[AnyBus]:
    if request.param == "memory":
        memory = InMemoryBus(namespace, retry_backoff=0.01, cancel_grace=2.0)
        await memory.start()
        yield memory
        await memory.close()
        return
    rabbit = RabbitBus(
        request.getfixturevalue("rabbitmq_url"), namespace, retry_backoff=0.01, cancel_grace=2.0
    )
    await rabbit.start()
    try:
        yield rabbit
    finally:
        await rabbit.delete_topology()
        await rabbit.close()


def value(what: str, exchange: str) -> float:
    sample = metrics.REGISTRY.get_sample_value(f"gridbot_bus_messages_{what}_total", {"exchange": exchange})
    return sample or 0.0


async def test_failures_count_redeliveries_then_one_dead_letter(bus: AnyBus) -> None:
    # The exchange label is the name the code uses, without the (per-test) namespace.
    exchange = f"metrics-{type(bus).__name__.lower()}"
    kinds = ("published", "consumed", "redelivered", "dead_lettered")
    before = {what: value(what, exchange) for what in kinds}
    seen: list[str] = []

    async def handler(envelope: Envelope) -> None:
        seen.append(envelope.message_id)
        if envelope.payload.get("fail"):
            raise RuntimeError("handler failure (test)")

    await bus.subscribe("metrics.q", exchange, ["k"], handler, max_retries=3)
    await bus.publish(exchange, "k", {"fail": False})
    bad = await bus.publish(exchange, "k", {"fail": True})

    async def dead_lettered() -> bool:
        return [e.message_id for e in await bus.dead_letters("metrics.q")] == [bad.message_id]

    await eventually(dead_lettered, timeout=15)
    delta = {what: value(what, exchange) - before[what] for what in kinds}
    # One good delivery, three of the bad message (the first and two redeliveries), one dead letter.
    assert seen.count(bad.message_id) == 3
    assert delta == {"published": 2, "consumed": 4, "redelivered": 2, "dead_lettered": 1}
    assert not any(namespace_label.startswith(bus.namespace) for namespace_label in _exchange_labels())


def _exchange_labels() -> set[str]:
    return {
        s.labels["exchange"]
        for family in metrics.BUS_CONSUMED.collect()
        for s in family.samples
        if "exchange" in s.labels
    }
