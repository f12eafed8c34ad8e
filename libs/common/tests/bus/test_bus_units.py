"""Adapter-independent pieces of the bus: topic matching, the envelope, the factory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import BaseModel, ValidationError

from common.bus import Envelope, InMemoryBus, RabbitBus, create_bus, topic_matches
from common.bus.support import backoff_delay


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("price.*.BTC", "price.upbit.BTC", True),
        ("price.*.BTC", "price.upbit.ETH", False),
        ("price.*.BTC", "price.BTC", False),
        ("price.*.BTC", "price.a.b.BTC", False),
        ("bot.#", "bot", True),
        ("bot.#", "bot.start", True),
        ("bot.#", "bot.a.b.c", True),
        ("bot.#", "bots.start", False),
        ("#", "", True),
        ("#", "anything.at.all", True),
        ("#.filled", "order.filled", True),
        ("#.filled", "filled", True),
        ("#.filled", "order.filled.late", False),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c", False),
        ("*", "one", True),
        ("*", "one.two", False),
        ("*.#", "one", True),
        ("exact.key", "exact.key", True),
        ("exact.key", "exact.keys", False),
    ],
)
def test_topic_matching_follows_amqp(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


class Fill(BaseModel):
    order_id: str
    qty: str


def test_envelope_json_roundtrip() -> None:
    envelope = Envelope(type="order.filled", request_id="r", payload={"order_id": "o1", "qty": "1"})
    again = Envelope.from_json(envelope.to_json())
    assert again == envelope
    assert again.payload_as(Fill) == Fill(order_id="o1", qty="1")


def test_envelope_times_are_utc() -> None:
    naive = Envelope.model_validate({"type": "t", "occurred_at": "2024-01-01T09:00:00"})
    seoul = Envelope(type="t", occurred_at=datetime(2024, 1, 1, 18, tzinfo=timezone(timedelta(hours=9))))
    assert naive.occurred_at == datetime(2024, 1, 1, 9, tzinfo=UTC)
    assert seoul.occurred_at.tzinfo is UTC
    assert seoul.occurred_at.hour == 9


def test_envelope_ignores_unknown_fields_and_rejects_garbage() -> None:
    newer = Envelope.from_json(b'{"type": "t", "payload": {}, "schema": 2}')
    assert newer.type == "t"
    with pytest.raises(ValidationError):
        Envelope.from_json(b'{"payload": {}}')  # no type
    with pytest.raises(ValidationError):
        Envelope.from_json(b"not json")


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_delay(n, 0.1, 0.5) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.5]


def test_factory_picks_the_adapter() -> None:
    assert isinstance(create_bus("memory://", "ns"), InMemoryBus)
    rabbit = create_bus("amqp://guest:guest@127.0.0.1:5672/", "ns", retry_backoff=0.05)
    assert isinstance(rabbit, RabbitBus)
    assert rabbit.retry_backoff == 0.05
    assert rabbit.full_name("bots") == "ns.bots"
    assert isinstance(create_bus("amqps://h/"), RabbitBus)
    with pytest.raises(ValueError):
        create_bus("kafka://h")
