"""Client order ids, and the JSON forms of events, commands and state (what the persistence layer stores)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from gridcore import (
    MARKET_SLOT,
    Abandon,
    CancelOrder,
    ConfigChanged,
    GridBot,
    GridConfig,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    RecordTrade,
    SellMarket,
    SetStatus,
    Side,
    SlotChanged,
    SlotState,
    Start,
    Status,
    Stop,
    StopReason,
    Tick,
    bot_prefix,
    client_order_id,
    command_from_dict,
    command_to_dict,
    event_from_dict,
    event_to_dict,
    market_order_id,
    parse_client_order_id,
    simulate_tick,
)
from gridcore.ids import CLIENT_ORDER_ID_PATTERN

D = Decimal


def test_prefix_is_short_stable_and_depends_on_the_bot() -> None:
    prefix = bot_prefix("6f1c2b9e-0d7a-4f5e-9a43-3c1e2d4b5a69")
    assert prefix == bot_prefix("6f1c2b9e-0d7a-4f5e-9a43-3c1e2d4b5a69")
    assert len(prefix) == 12 and prefix.isalnum() and prefix == prefix.lower()
    assert bot_prefix("another bot") != prefix


def test_client_order_ids_round_trip_and_fit_binance() -> None:
    prefix = bot_prefix("bot")
    cid = client_order_id(prefix, 3, 199, Side.SELL, 123_456_789)
    assert CLIENT_ORDER_ID_PATTERN.match(cid) and len(cid) <= 36
    parsed = parse_client_order_id(cid)
    assert parsed is not None
    assert (parsed.prefix, parsed.epoch, parsed.slot, parsed.side, parsed.seq) == (
        prefix,
        3,
        199,
        Side.SELL,
        123_456_789,
    )
    assert parse_client_order_id("x-AKJDHFK123") is None
    with pytest.raises(ValueError, match="36"):
        client_order_id(prefix, 10**9, 199, Side.BUY, 10**12)
    with pytest.raises(ValueError):
        client_order_id(prefix, -1, 0, Side.BUY, 1)


def test_market_sell_ids_parse_as_no_slot_of_the_grid() -> None:
    prefix = bot_prefix("bot")
    cid = market_order_id(prefix, 4, 2)
    parsed = parse_client_order_id(cid)
    assert parsed is not None
    assert (parsed.prefix, parsed.epoch, parsed.slot, parsed.side, parsed.seq) == (
        prefix,
        4,
        MARKET_SLOT,
        Side.SELL,
        2,
    )
    assert parse_client_order_id(f"{prefix}-4-m") is None
    assert parse_client_order_id(f"{prefix}-4-2m1") is None


EVENTS = [
    Start(D("51500000")),
    Tick(D("51000000"), D("51500000"), D("50900000"), False),
    Tick(D("96466.11"), D("96466.11"), D("96466.11")),
    OrderFilled("abc-1-0b1", D("0.00019990"), D("50000000"), D("4.99750"), "KRW", "f-1", True),
    OrderCanceled("abc-1-0b1"),
    OrderRejected("abc-1-0b1", "insufficient_funds_bid"),
    Stop(),
    Stop("keys revoked"),
    Stop(reason=StopReason.CREDENTIAL_REMOVED),
    Abandon(),
    ConfigChanged(order_amount=D("20000")),
    ConfigChanged(stop_at_max=True),
    ConfigChanged(stops=(D("70000000"), None)),
    ConfigChanged(stops=(None, D("40000000.5"))),
]
COMMANDS = [
    PlaceOrder("abc-1-0b1", 0, Side.BUY, D("50000000"), D("0.00019990")),
    CancelOrder("abc-1-0b1"),
    RecordTrade(0, Side.SELL, D("51063000"), D("0.0002"), D("5.1063"), "KRW", D("197.25"), "abc-1-0s2", "f"),
    RecordTrade(0, Side.BUY, D("50000000"), D("0.0002"), D("5"), "KRW", None, "abc-1-0b1", "f"),
    SetStatus(Status.ERROR, "boom"),
    SlotChanged(3, SlotState.IDLE, reason="below the minimum"),
    SellMarket("abc-1-m1", D("0.0012"), D("96466.11")),
]


@pytest.mark.parametrize("event", EVENTS)
def test_events_round_trip_through_json(event: object) -> None:
    data = json.loads(json.dumps(event_to_dict(event)))  # type: ignore[arg-type]
    assert event_from_dict(data) == event


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_round_trip_through_json(command: object) -> None:
    data = json.loads(json.dumps(command_to_dict(command)))  # type: ignore[arg-type]
    assert command_from_dict(data) == command


def test_unknown_types_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown"):
        event_from_dict({"type": "PlaceOrder"})


def test_state_round_trips_through_json(upbit_config: GridConfig) -> None:
    bot = GridBot.new(upbit_config, D(10_000), True)
    bot.handle(Start(D(53_500_000)))
    simulate_tick(bot, Tick(D(51_000_000), D(53_500_000), D(51_000_000), False))
    bot.handle(OrderFilled(bot.state.slots[0].order.client_order_id, D("0.0001"), D(50_000_000), D(0), "KRW", "p", False))  # type: ignore[union-attr]  # fmt: skip
    text = json.dumps(bot.snapshot())
    assert "E-" not in text  # plain decimals only
    restored = GridBot.restore(json.loads(text))
    assert restored.state == bot.state
    assert restored.watch() == bot.watch()
    with pytest.raises(ValueError, match="version"):
        GridBot.restore({**bot.snapshot(), "version": 99})
