"""A paper bot end to end over the bus: ticks in; orders, fills, trades, levels and user events out."""

from __future__ import annotations

from decimal import Decimal

from engine_support import (
    BotFactory,
    BotSpec,
    EventSink,
    TickPublisher,
    cache_price,
    levels_of,
    orders_of,
    performance_of,
    publish_command,
    trades_of,
)
from sqlalchemy import Table, Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.bus import QueueKind, RabbitBus
from common.contracts.bots import BOTS_EXCHANGE, BotEvent
from common.grid import plan_grid
from common.testing.wait import eventually
from engine.contracts import ORDER_FILLED, ORDERS_EXCHANGE, OrderFilledMessage
from engine.runtime import EngineRuntime
from trading.commands import BOT_STOPPED
from trading.models import ENGINE_OUTBOX, OUTBOX, InboxMessage

D = Decimal
FEE = D("0.0005")


async def _open(db: async_sessionmaker[AsyncSession], bot_id: object, side: str) -> list[int]:
    return sorted(o.slot for o in await orders_of(db, bot_id) if o.status == "open" and o.side == side)  # type: ignore[arg-type]


async def test_three_levels_down_and_back_up_books_three_round_trips_with_fees(
    engine: EngineRuntime,
    bus: RabbitBus,
    bots: BotFactory,
    events: EventSink,
    db: async_sessionmaker[AsyncSession],
) -> None:
    spec = BotSpec()
    bot = await bots.create(spec)
    levels = plan_grid(spec.lower, spec.upper, spec.percent, spec.amount, spec.rules()).levels
    assert engine.cache is not None
    await cache_price(engine.cache, "KRW-BTC", "53500000")
    await publish_command(bus, bot, BotEvent.START)
    # Started between L3 and L4: a buy rests at each of L0..L3, the levels above are idle.
    await eventually(lambda: _has(db, bot.id, "buy", [0, 1, 2, 3]), timeout=10)

    ticks = TickPublisher(bus)
    await ticks.send(ticks.tick(51_000_000, 53_500_000, 51_000_000))
    # The low passed L3, L2 and L1: three buys filled, each slot now sells one level up.
    await eventually(lambda: _has(db, bot.id, "sell", [1, 2, 3]), timeout=10)
    assert await _open(db, bot.id, "buy") == [0]
    rows = await levels_of(db, bot.id)
    assert [(r.status, r.type) for r in rows[:6]] == [
        ("pending", "buy"),
        ("filled", "buy"),
        ("pending", "sell"),
        ("pending", "sell"),
        ("pending", "sell"),
        ("available", "buy"),
    ]
    assert rows[1].filled_at is not None

    await ticks.send(ticks.tick(54_500_000, 54_500_000, 51_000_000))
    await eventually(lambda: _count_trades(db, bot.id, 6), timeout=10)
    # Each slot bought again, and slot 4 armed once the high passed L4.
    await eventually(lambda: _has(db, bot.id, "buy", [0, 1, 2, 3, 4]), timeout=10)

    trades = await trades_of(db, bot.id)
    assert [t.side for t in trades] == ["buy"] * 3 + ["sell"] * 3
    rules = spec.rules()
    expected_total = D(0)
    for trade in trades:
        slot_price = trade.price
        if trade.side == "buy":
            assert trade.fee == trade.amount * trade.price * FEE and trade.fee_currency == "KRW"
            continue
        i = levels.index(slot_price) - 1
        q = rules.buy_qty(spec.amount, levels[i])
        assert trade.amount == q
        profit = q * levels[i + 1] * (1 - FEE) - q * levels[i] * (1 + FEE)
        assert trade.profit == profit
        expected_total += profit
    assert expected_total > 0

    figures = await performance_of(db, await bots.bot(bot.id), D(54_500_000))
    assert figures["totalProfit"] == expected_total
    assert (figures["buyTrades"], figures["sellTrades"], figures["totalTrades"]) == (3, 3, 6)

    rows = await levels_of(db, bot.id)
    assert [(r.status, r.type) for r in rows[:6]] == [("pending", "buy")] * 5 + [("available", "buy")]
    assert all(r.order_id for r in rows[:5])

    # What the gateway's WebSocket will carry.
    await eventually(lambda: len(events.of("trade", bot.id)) == 6, timeout=10)
    trade_events = events.of("trade", bot.id)
    assert [e["trade"]["type"] for e in trade_events] == ["buy"] * 3 + ["sell"] * 3
    assert sum(D(str(e["trade"]["profit"])) for e in trade_events if e["trade"]["type"] == "sell") > 0
    assert all(e["userId"] == str(bot.user_id) for e in trade_events)
    await eventually(
        lambda: (
            bool(events.of("bot_stats", bot.id)) and events.of("bot_stats", bot.id)[-1]["totalTrades"] == 6
        )
    )
    stats = events.of("bot_stats", bot.id)[-1]
    assert D(stats["currentProfit"]) == expected_total  # digit for digit, no float on the way
    assert events.of("bot_status", bot.id)[0]["status"] == "running"
    assert {e["level"]["status"] for e in events.of("grid_level", bot.id)} >= {"pending", "filled"}


async def test_redelivered_tick_fill_and_command_change_nothing(
    engine: EngineRuntime,
    bus: RabbitBus,
    bots: BotFactory,
    db: async_sessionmaker[AsyncSession],
) -> None:
    bot = await bots.create(BotSpec())
    assert engine.cache is not None
    await cache_price(engine.cache, "KRW-BTC", "53500000")
    start = await publish_command(bus, bot, BotEvent.START)
    await eventually(lambda: _has(db, bot.id, "buy", [0, 1, 2, 3]), timeout=10)
    # The same start again (same message id): no second set of orders.
    await bus.publish("bots", BotEvent.START.value, start.payload, message_id=start.message_id)
    await eventually(lambda: engine.metrics.duplicates == 1, timeout=10)

    ticks = TickPublisher(bus)
    # Low passes L3 (its buy fills), high passes L4: on a redelivery the sell placed at L4 since then
    # (and the buy slot 4 armed at L4) would fill if the tick were applied again.
    tick = ticks.tick(54_500_000, 54_500_000, 53_000_000)
    first = await ticks.send(tick)
    await eventually(lambda: _count_trades(db, bot.id, 1), timeout=10)
    await eventually(lambda: _has(db, bot.id, "sell", [3]), timeout=10)
    await eventually(lambda: _has(db, bot.id, "buy", [0, 1, 2, 4]), timeout=10)
    await ticks.send(tick, message_id=first.message_id)

    # The paper fill was applied in the tick's own transaction, recorded under the inbox id its
    # `order.filled` message carries: a copy of that message arriving now is dropped like a redelivery.
    (trade,) = await trades_of(db, bot.id)
    (order,) = [o for o in await orders_of(db, bot.id) if o.id == trade.order_id]
    assert (order.status, order.filled_quantity) == ("filled", trade.amount)
    copy = OrderFilledMessage(
        bot_id=str(bot.id),
        exchange="upbit",
        mode="paper",
        client_order_id=order.client_order_id,
        fill_id=trade.fill_id,
        side="buy",
        price=trade.price,
        qty=trade.amount,
        fee=trade.fee,
        fee_currency=trade.fee_currency,
        is_final=True,
        executed_at=trade.executed_at,
    )
    assert await _inbox_count(db, copy.message_id, 1)
    await bus.publish(ORDERS_EXCHANGE, ORDER_FILLED, copy.model_dump(mode="json"), message_id=copy.message_id)
    await eventually(lambda: engine.metrics.duplicates == 2, timeout=10)
    await eventually(lambda: engine.metrics.ticks >= 2, timeout=10)
    await eventually(lambda: _settled(engine))
    assert await _inbox_count(db, copy.message_id, 1)
    orders = await orders_of(db, bot.id)
    assert len(orders) == 6  # four buys, the sell of slot 3, the buy of slot 4
    assert len(await trades_of(db, bot.id)) == 1


async def test_stop_cancels_every_order_and_confirms(
    engine: EngineRuntime,
    bus: RabbitBus,
    bots: BotFactory,
    events: EventSink,
    db: async_sessionmaker[AsyncSession],
) -> None:
    confirmations = EventSink()
    await bus.subscribe(
        "test.bots", BOTS_EXCHANGE, [BOT_STOPPED], confirmations.handle, kind=QueueKind.DURABLE
    )
    bot = await bots.create(BotSpec())
    assert engine.cache is not None
    await cache_price(engine.cache, "KRW-BTC", "53500000")
    await publish_command(bus, bot, BotEvent.START)
    await eventually(lambda: _has(db, bot.id, "buy", [0, 1, 2, 3]), timeout=10)
    stopping = await bots.request_stop(bot.id)
    await publish_command(bus, stopping, BotEvent.STOP, "stopped")
    await eventually(lambda: len(confirmations.received) == 1, timeout=10)
    confirmation = confirmations.received[0].payload
    assert confirmation["command_id"] == stopping.stop_command_id
    assert confirmation["open_orders"] == 0
    row = await bots.bot(bot.id)
    assert row.status == "stopped"
    assert {o.status for o in await orders_of(db, bot.id)} == {"canceled"}
    assert all(r.status == "available" for r in await levels_of(db, bot.id))
    await eventually(lambda: [e["status"] for e in events.of("bot_status", bot.id)] == ["running", "stopped"])
    # Every message above went through the engine's own outbox, relayed by the engine and deleted once
    # confirmed (they are live notifications: kept, they would be a row per fill for a week); none waits in
    # the bots service's table, whose relay runs in the event loop that serves the API.
    await eventually(lambda: _none_left(db, bot.id), timeout=10)
    assert await _outbox_rows(db, OUTBOX, bot.id) == (0, 0)


async def _has(db: async_sessionmaker[AsyncSession], bot_id: object, side: str, slots: list[int]) -> bool:
    return await _open(db, bot_id, side) == slots


async def _count_trades(db: async_sessionmaker[AsyncSession], bot_id: object, count: int) -> bool:
    return len(await trades_of(db, bot_id)) == count  # type: ignore[arg-type]


async def _inbox_count(db: async_sessionmaker[AsyncSession], message_id: str, count: int) -> bool:
    async with db() as session:
        seen = await session.scalar(
            select(func.count()).select_from(InboxMessage).where(InboxMessage.message_id == message_id)
        )
    return seen == count


async def _settled(engine: EngineRuntime) -> bool:
    return all(shard.backlog == 0 for shard in engine.shards) and (
        engine.relay is None or await engine.relay.pending() == 0
    )


async def _none_left(db: async_sessionmaker[AsyncSession], bot_id: object) -> bool:
    return await _outbox_rows(db, ENGINE_OUTBOX, bot_id) == (0, 0)


async def _outbox_rows(db: async_sessionmaker[AsyncSession], table: Table, bot_id: object) -> tuple[int, int]:
    """The rows of `table` about the bot, and how many of them are published."""
    about = cast(table.c.payload, Text).contains(str(bot_id))
    query = select(func.count(), func.count(table.c.published_at)).where(about)
    async with db() as session:
        total, published = (await session.execute(query)).one()
    return int(total), int(published)
