"""The bus contract: every test runs against the in-process adapter and against real RabbitMQ."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import BaseModel

from common.bus import (
    INVALID_BODY_KEY,
    Envelope,
    InMemoryBus,
    QueueDepth,
    QueueKind,
    RabbitBus,
    TopologyMismatchError,
)
from common.context import request_id_var
from common.testing.wait import eventually

AnyBus = InMemoryBus | RabbitBus
BACKOFF = 0.01  # seconds; keeps retry tests fast


class BotStarted(BaseModel):
    bot_id: int
    ticker: str


class Recorder:
    """A handler that records what it receives, optionally failing for chosen message ids."""

    def __init__(self, fail_times: dict[str, int] | None = None) -> None:
        self.received: list[Envelope] = []
        self.attempts: Counter[str] = Counter()
        self.request_ids_seen: list[str | None] = []
        self._fail_times = fail_times or {}

    async def __call__(self, envelope: Envelope) -> None:
        self.attempts[envelope.message_id] += 1
        self.request_ids_seen.append(request_id_var.get())
        if self.attempts[envelope.message_id] <= self._fail_times.get(envelope.message_id, 0):
            raise RuntimeError("handler failure (test)")
        self.received.append(envelope)

    @property
    def ids(self) -> list[str]:
        return [e.message_id for e in self.received]

    async def wait_for(self, message_id: str, within: float = 5.0) -> None:
        await eventually(lambda: message_id in self.ids, within, message=f"{message_id} not seen")


@pytest.fixture(params=["memory", "rabbitmq"])
async def bus(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[AnyBus]:
    if request.param == "memory":
        memory = InMemoryBus(namespace, retry_backoff=BACKOFF, cancel_grace=2.0)
        await memory.start()
        yield memory
        await memory.close()
        return
    url: str = request.getfixturevalue("rabbitmq_url")
    rabbit = RabbitBus(url, namespace, retry_backoff=BACKOFF, cancel_grace=2.0)
    await rabbit.start()
    try:
        yield rabbit
    finally:
        await rabbit.delete_topology()
        await rabbit.close()


async def test_roundtrip_preserves_envelope(bus: AnyBus) -> None:
    rec = Recorder()
    await bus.subscribe("engine.commands", "bots", ["bot.start"], rec)

    sent = await bus.publish(
        "bots",
        "bot.start",
        BotStarted(bot_id=7, ticker="KRW-BTC"),
        message_id="m-1",
        request_id="r-1",
    )
    await rec.wait_for("m-1")

    got = rec.received[0]
    assert got == sent
    assert (got.message_id, got.request_id, got.type) == ("m-1", "r-1", "bot.start")
    assert got.payload == {"bot_id": 7, "ticker": "KRW-BTC"}
    assert got.payload_as(BotStarted) == BotStarted(bot_id=7, ticker="KRW-BTC")
    assert rec.request_ids_seen == ["r-1"]  # the handler runs with the message's request id


async def test_an_encoded_payload_arrives_as_the_same_envelope(bus: AnyBus) -> None:
    # An outbox row's payload, published as the text it was stored as: its consumers cannot tell.
    rec = Recorder()
    await bus.subscribe("engine.commands", "bots", ["bot.start"], rec)
    text = '{"bot_id": 7, "ticker": "KRW-BTC", "price": "101.50", "nested": {"a": [1, "\\u00e9"]}}'
    await bus.publish_encoded(
        "bots", "bot.start", text, message_id="m-enc", request_id="r-enc", traceparent=None
    )
    await rec.wait_for("m-enc")
    got = rec.received[0]
    assert (got.message_id, got.request_id, got.type) == ("m-enc", "r-enc", "bot.start")
    assert got.payload == {
        "bot_id": 7,
        "ticker": "KRW-BTC",
        "price": "101.50",
        "nested": {"a": [1, "\u00e9"]},
    }
    assert got.occurred_at.utcoffset() == timedelta(0)
    assert rec.request_ids_seen == ["r-enc"]


async def test_request_id_defaults_to_current_request(bus: AnyBus) -> None:
    rec = Recorder()
    await bus.subscribe("q", "bots", ["bot.#"], rec)
    token = request_id_var.set("req-from-http")
    try:
        sent = await bus.publish("bots", "bot.stop", {"bot_id": 1})
    finally:
        request_id_var.reset(token)
    await rec.wait_for(sent.message_id)
    assert rec.received[0].request_id == "req-from-http"


async def test_publish_returns_the_confirmed_envelope(bus: AnyBus) -> None:
    # Nothing is bound: an unroutable message is still confirmed (mandatory=False).
    sent = await bus.publish("events", "trade.created", {"price": "101.5"}, persistent=False)
    assert isinstance(sent, Envelope)
    assert sent.type == "trade.created"
    assert len(sent.message_id) == 32
    assert int(sent.message_id, 16) >= 0  # hex
    assert sent.occurred_at.utcoffset() == timedelta(0)
    assert sent.payload == {"price": "101.5"}
    assert sent.request_id is None


async def test_dict_payloads_travel_as_json_types(bus: AnyBus) -> None:
    rec = Recorder()
    await bus.subscribe("q", "x", ["k"], rec)
    sent = await bus.publish("x", "k", {"price": Decimal("101.50"), "at": datetime(2024, 1, 2)})
    await rec.wait_for(sent.message_id)
    assert sent.payload == {"price": "101.50", "at": "2024-01-02T00:00:00"}
    assert rec.received[0] == sent


async def test_dead_letters_of_an_unknown_queue_is_empty(bus: AnyBus) -> None:
    assert await bus.dead_letters("never-declared") == []
    assert await bus.ping() is True  # the failed lookup left the bus usable


async def test_topic_routing(bus: AnyBus) -> None:
    prices, bots = Recorder(), Recorder()
    await bus.subscribe("prices", "x", ["price.*.BTC"], prices)
    await bus.subscribe("bots", "x", ["bot.#"], bots)
    for key in (
        "price.upbit.BTC",
        "price.upbit.ETH",
        "price.upbit.spot.BTC",
        "price.BTC",
        "bot",
        "bot.start",
        "bot.a.b",
        "bots.start",
        "other.bot",
    ):
        await bus.publish("x", key, {}, message_id=key)
    # A message that matches last: once it is in, anything routed before it would be too.
    await bus.publish("x", "price.end.BTC", {}, message_id="price-sentinel")
    await bus.publish("x", "bot.end", {}, message_id="bot-sentinel")
    await prices.wait_for("price-sentinel")
    await bots.wait_for("bot-sentinel")

    assert sorted(prices.ids) == ["price-sentinel", "price.upbit.BTC"]
    assert sorted(bots.ids) == ["bot", "bot-sentinel", "bot.a.b", "bot.start"]


async def test_bindings_added_and_removed_while_consuming(bus: AnyBus) -> None:
    rec = Recorder()
    subscription = await bus.subscribe("ticks", "market", [], rec, kind=QueueKind.TRANSIENT)
    await subscription.bind("price.upbit.BTC")
    await subscription.bind("price.end.X")
    await bus.publish("market", "price.upbit.ETH", {}, message_id="eth-unbound", persistent=False)
    await bus.publish("market", "price.upbit.BTC", {}, message_id="btc-bound", persistent=False)
    await bus.publish("market", "price.end.X", {}, message_id="sentinel-1", persistent=False)
    await rec.wait_for("sentinel-1")
    await subscription.unbind("price.upbit.BTC")
    await subscription.bind("price.upbit.ETH")
    await bus.publish("market", "price.upbit.BTC", {}, message_id="btc-unbound", persistent=False)
    await bus.publish("market", "price.upbit.ETH", {}, message_id="eth-bound", persistent=False)
    await bus.publish("market", "price.end.X", {}, message_id="sentinel-2", persistent=False)
    await rec.wait_for("sentinel-2")
    assert rec.ids == ["btc-bound", "sentinel-1", "eth-bound", "sentinel-2"]


async def test_a_queue_gets_one_copy_when_several_bindings_match(bus: AnyBus) -> None:
    rec = Recorder()
    await bus.subscribe("q", "x", ["bot.start", "bot.*", "#"], rec)
    await bus.publish("x", "bot.start", {}, message_id="once")
    await bus.publish("x", "zzz", {}, message_id="sentinel")
    await rec.wait_for("sentinel")
    assert sorted(rec.ids) == ["once", "sentinel"]


async def test_fan_out_to_every_bound_queue(bus: AnyBus) -> None:
    gateway, engine = Recorder(), Recorder()
    await bus.subscribe("gateway.events", "events", ["level.changed"], gateway)
    await bus.subscribe("engine.events", "events", ["level.*"], engine)
    ids = [(await bus.publish("events", "level.changed", {"n": n})).message_id for n in range(3)]
    await gateway.wait_for(ids[-1])
    await engine.wait_for(ids[-1])
    assert sorted(gateway.ids) == sorted(ids)
    assert sorted(engine.ids) == sorted(ids)


async def test_competing_consumers_get_each_message_once(bus: AnyBus) -> None:
    first, second = Recorder(), Recorder()
    await bus.subscribe("work", "x", ["job"], first, prefetch=1)
    await bus.subscribe("work", "x", ["job"], second, prefetch=1)
    ids = [(await bus.publish("x", "job", {"n": n})).message_id for n in range(20)]

    await eventually(lambda: len(first.received) + len(second.received) >= 20)
    await bus.publish("x", "job", {}, message_id="sentinel")
    await eventually(lambda: "sentinel" in first.ids + second.ids)

    delivered = first.ids + second.ids
    assert sorted(delivered) == sorted([*ids, "sentinel"])  # no loss, no duplicate
    assert first.received, "the first consumer got no share"
    assert second.received, "the second consumer got no share"


async def test_failed_handler_gets_a_redelivery_then_the_message_is_acked(bus: AnyBus) -> None:
    rec = Recorder(fail_times={"flaky": 1})
    await bus.subscribe("q", "x", ["k"], rec, max_retries=3)
    await bus.publish("x", "k", {"v": 1}, message_id="flaky")
    await rec.wait_for("flaky")
    await bus.publish("x", "k", {}, message_id="sentinel")
    await rec.wait_for("sentinel")

    assert rec.attempts["flaky"] == 2
    assert rec.ids == ["flaky", "sentinel"]
    assert await bus.dead_letters("q") == []


async def test_always_failing_message_is_dead_lettered_after_max_retries(bus: AnyBus) -> None:
    rec = Recorder(fail_times={"poison": 1_000})
    await bus.subscribe("q", "x", ["k"], rec, max_retries=3)
    sent = await bus.publish("x", "k", {"v": 1}, message_id="poison", request_id="r-9")

    async def dead_lettered() -> bool:
        return [e.message_id for e in await bus.dead_letters("q")] == ["poison"]

    await eventually(dead_lettered)
    await bus.publish("x", "k", {}, message_id="sentinel")
    await rec.wait_for("sentinel")

    assert rec.attempts["poison"] == 3  # delivered max_retries times, then never again
    dead = await bus.dead_letters("q")
    assert dead == [sent]  # the whole envelope is kept for the operator
    assert await bus.dead_letters("q") == [sent]  # inspecting does not consume
    # The operators' count of it (GET /admin/system); a queue never declared is None.
    assert await bus.depths(["q", "never-declared"]) == {"q": QueueDepth(0, 1), "never-declared": None}


async def test_invalid_bodies_go_to_the_dlq_without_stopping_the_consumer(bus: AnyBus) -> None:
    rec = Recorder()
    await bus.subscribe("q", "x", ["k.#"], rec)
    await bus.publish_raw("x", "k.raw", b"not json at all", "raw-1")
    await bus.publish_raw("x", "k.json", b'{"hello": "world"}', "raw-2")
    await bus.publish("x", "k.ok", {}, message_id="valid")
    await rec.wait_for("valid")

    async def both_dead() -> bool:
        return len(await bus.dead_letters("q")) == 2

    await eventually(both_dead)
    dead = {e.message_id: e for e in await bus.dead_letters("q")}
    assert dead["raw-1"].payload == {INVALID_BODY_KEY: "not json at all"}
    assert dead["raw-1"].type == "k.raw"
    assert dead["raw-2"].payload == {INVALID_BODY_KEY: '{"hello": "world"}'}
    assert rec.ids == ["valid"]


async def test_durable_queue_keeps_messages_while_no_consumer_runs(bus: AnyBus) -> None:
    early = Recorder()
    subscription = await bus.subscribe("fills", "orders", ["order.filled"], early)
    await subscription.cancel()
    ids = [(await bus.publish("orders", "order.filled", {"n": n})).message_id for n in range(3)]

    late = Recorder()
    await bus.subscribe("fills", "orders", ["order.filled"], late, prefetch=1)
    await late.wait_for(ids[-1])
    assert late.ids == ids  # all of them, in order
    assert early.received == []


async def test_cancel_lets_the_in_flight_handler_finish_and_acks_it(bus: AnyBus) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    seen: list[str] = []

    async def slow(envelope: Envelope) -> None:
        seen.append(envelope.message_id)
        entered.set()
        await release.wait()

    subscription = await bus.subscribe("q", "x", ["k"], slow, prefetch=1)
    await bus.publish("x", "k", {}, message_id="in-flight")
    await asyncio.wait_for(entered.wait(), 5)
    cancelling = asyncio.create_task(subscription.cancel())
    release.set()
    await asyncio.wait_for(cancelling, 5)

    rec = Recorder()
    await bus.subscribe("q", "x", ["k"], rec)
    await bus.publish("x", "k", {}, message_id="sentinel")
    await rec.wait_for("sentinel")
    assert seen == ["in-flight"]
    assert rec.ids == ["sentinel"]  # the finished message was acked, not redelivered


async def test_transient_queue_keeps_the_newest_under_a_burst(bus: AnyBus) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    rec = Recorder()

    async def blocked_first(envelope: Envelope) -> None:
        if envelope.message_id == "blocker":
            entered.set()
            await release.wait()
        await rec(envelope)

    await bus.subscribe(
        "engine.ticks", "market", ["price.#"], blocked_first,
        kind=QueueKind.TRANSIENT, prefetch=1, max_length=3,
    )  # fmt: skip
    await bus.publish("market", "price.upbit.BTC", {}, message_id="blocker", persistent=False)
    await asyncio.wait_for(entered.wait(), 5)
    for n in range(10):
        await bus.publish("market", "price.upbit.BTC", {"n": n}, message_id=f"t{n}", persistent=False)
    release.set()
    await rec.wait_for("t9")
    await bus.publish("market", "price.upbit.BTC", {}, message_id="sentinel", persistent=False)
    await rec.wait_for("sentinel")

    assert rec.ids == ["blocker", "t7", "t8", "t9", "sentinel"]


async def test_transient_queue_retries_in_place_then_drops(bus: AnyBus) -> None:
    rec = Recorder(fail_times={"flaky": 1, "poison": 1_000})
    await bus.subscribe("ticks", "market", ["price.#"], rec, kind=QueueKind.TRANSIENT, max_retries=2)
    await bus.publish("market", "price.a", {}, message_id="flaky", persistent=False)
    await bus.publish("market", "price.b", {}, message_id="poison", persistent=False)
    await bus.publish("market", "price.c", {}, message_id="sentinel", persistent=False)
    await rec.wait_for("sentinel")
    await eventually(lambda: rec.attempts["poison"] == 2)

    assert rec.attempts["flaky"] == 2
    assert "poison" not in rec.ids
    assert await bus.dead_letters("ticks") == []  # ticks are superseded, never dead-lettered


async def test_durable_overflow_is_dead_lettered_not_lost(bus: AnyBus) -> None:
    subscription = await bus.subscribe("capped", "x", ["k"], Recorder(), max_length=2)
    await subscription.cancel()
    for n in range(3):
        await bus.publish("x", "k", {"n": n}, message_id=f"m{n}")

    async def oldest_dead() -> bool:
        return [e.message_id for e in await bus.dead_letters("capped")] == ["m0"]

    await eventually(oldest_dead)
    rec = Recorder()
    await bus.subscribe("capped", "x", ["k"], rec, max_length=2)
    await rec.wait_for("m2")
    assert rec.ids == ["m1", "m2"]


async def test_redeclaring_a_queue_with_other_properties_is_refused(bus: AnyBus) -> None:
    first = Recorder()
    await bus.subscribe("q", "x", ["k"], first)
    with pytest.raises(TopologyMismatchError):
        await bus.subscribe("q", "x", ["k"], Recorder(), kind=QueueKind.TRANSIENT)
    with pytest.raises(TopologyMismatchError):
        await bus.subscribe("q", "x", ["k"], Recorder(), max_retries=2)
    second = Recorder()
    await bus.subscribe("q", "x", ["k"], second)  # the same properties are fine
    await bus.publish("x", "k", {}, message_id="still-works")
    await eventually(lambda: first.ids + second.ids == ["still-works"])


async def test_subscribe_refuses_meaningless_limits(bus: AnyBus) -> None:
    with pytest.raises(ValueError, match="max_retries"):
        await bus.subscribe("q", "x", ["k"], Recorder(), max_retries=0)
    with pytest.raises(ValueError, match="prefetch"):
        await bus.subscribe("q", "x", ["k"], Recorder(), prefetch=0)


async def test_ping_reflects_the_connection(bus: AnyBus) -> None:
    assert await bus.ping() is True
    await bus.close()
    assert await bus.ping() is False
    await bus.start()  # the fixture tears down a started bus
    assert await bus.ping() is True


async def test_messages_published_before_the_queue_exists_are_not_kept(bus: AnyBus) -> None:
    # Documented: subscribe() declares the queue; until then nothing is bound to keep a message.
    await bus.publish("x", "k", {}, message_id="too-early")
    rec = Recorder()
    await bus.subscribe("q", "x", ["k"], rec)
    await bus.publish("x", "k", {}, message_id="sentinel")
    await rec.wait_for("sentinel")
    assert rec.ids == ["sentinel"]


async def test_a_declared_queue_keeps_what_is_published_before_its_first_consumer(bus: AnyBus) -> None:
    await bus.declare("jobs", "work", ["job.#"])
    await bus.declare("jobs", "work", ["job.#"])  # idempotent
    first = await bus.publish("work", "job.one", {"n": 1})
    await bus.publish("work", "other.key", {"n": 2})

    async def waiting() -> bool:
        return await bus.depths(["jobs"]) == {"jobs": QueueDepth(1, 0)}

    await eventually(waiting)
    recorder = Recorder()
    await bus.subscribe("jobs", "work", ["job.#"], recorder)
    await recorder.wait_for(first.message_id)
    assert recorder.ids == [first.message_id]
    with pytest.raises(TopologyMismatchError):
        await bus.declare("jobs", "work", ["job.#"], max_retries=2)


async def test_close_lets_in_flight_handlers_finish_and_stops_consumers(bus: AnyBus) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def slow(envelope: Envelope) -> None:
        entered.set()
        await release.wait()
        finished.append(envelope.message_id)

    await bus.subscribe("q", "x", ["k"], slow, prefetch=4)
    await bus.publish("x", "k", {}, message_id="in-flight")
    await asyncio.wait_for(entered.wait(), 5)
    closing = asyncio.create_task(bus.close())
    release.set()
    await asyncio.wait_for(closing, 5)

    assert finished == ["in-flight"]
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("bus-consumer")]
    assert await bus.ping() is False
    await bus.start()  # the fixture tears down a started bus
