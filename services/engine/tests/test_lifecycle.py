"""Lifecycle commands: stop of a live bot (cancels at the exchange, then confirms), restart with fresh ids,
a config change while running, stopAtMax, and a start heard while the engine was down."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
from engine_support import (
    BotFactory,
    BotSpec,
    CredentialsStub,
    EventSink,
    TickPublisher,
    cache_price,
    orders_of,
    publish_command,
    trades_of,
)
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_live import binance_spec, set_price, sim_account, sim_orders

from common.bus import QueueKind, RabbitBus
from common.contracts.bots import BOTS_EXCHANGE, BotEvent
from common.runtime import acquire_cache, release_cache
from common.testing.wait import eventually
from engine.runtime import EngineRuntime
from trading.commands import BOT_STOPPED
from trading.models import Bot

D = Decimal


async def test_stopping_a_live_bot_cancels_at_the_exchange_then_confirms_and_a_restart_uses_new_ids(
    engine_factory: Any,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    confirmations = EventSink()
    await bus.subscribe(
        "test.bots", BOTS_EXCHANGE, [BOT_STOPPED], confirmations.handle, kind=QueueKind.DURABLE
    )
    await set_price(sim_http, "95000")
    engine: EngineRuntime = await engine_factory()
    spec = binance_spec(uuid.uuid4())
    api_key, secret = await sim_account(sim_http)
    credentials.set(spec.user_id, "binance", api_key, secret)
    bot = await bots.create(spec)
    await publish_command(bus, bot, BotEvent.START)
    await eventually(lambda: _open_count(db, bot.id, 6), timeout=15)
    first_ids = {o.client_order_id for o in await orders_of(db, bot.id)}

    stopping = await bots.request_stop(bot.id)
    await publish_command(bus, stopping, BotEvent.STOP, "stopped")
    await eventually(lambda: len(confirmations.received) == 1, timeout=15)
    # The confirmation comes only once nothing rests at the exchange any more.
    at_sim = await sim_orders(sim_http, api_key)
    assert {o["status"] for o in at_sim} == {"CANCELED"}
    assert confirmations.received[0].payload["command_id"] == stopping.stop_command_id
    row = await bots.bot(bot.id)
    assert (row.status, row.stop_reason) == ("stopped", "user")
    assert {o.status for o in await orders_of(db, bot.id)} == {"canceled"}

    # Started again (what POST /start commits): new orders under new ids (a new epoch), none reused.
    async with db() as session:
        await session.execute(
            update(Bot).where(Bot.id == bot.id).values(status="running", stop_command_id=None)
        )
        await session.commit()
    await publish_command(bus, await bots.bot(bot.id), BotEvent.START)
    await eventually(lambda: _open_count(db, bot.id, 6), timeout=15)
    second_ids = {o.client_order_id for o in await orders_of(db, bot.id)} - first_ids
    assert len(second_ids) == 6 and not second_ids & first_ids
    cids = [o["clientOrderId"] for o in await sim_orders(sim_http, api_key)]
    assert len(cids) == len(set(cids)) == 12
    assert engine.started


async def test_a_new_order_amount_applies_to_orders_placed_from_then_on(
    engine: EngineRuntime, bus: RabbitBus, bots: BotFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    spec = BotSpec()
    bot = await bots.create(spec)
    assert engine.cache is not None
    await cache_price(engine.cache, "KRW-BTC", "53500000")
    await publish_command(bus, bot, BotEvent.START)
    await eventually(lambda: _open_count(db, bot.id, 4), timeout=10)
    async with db() as session:
        await session.execute(
            update(Bot).where(Bot.id == bot.id).values(order_amount=D(20_000), config_version=2)
        )
        await session.commit()
    await publish_command(bus, await bots.bot(bot.id), BotEvent.UPDATED)
    await eventually(lambda: _config_applied(engine, bot.id, 2), timeout=10)
    before = {o.slot: o.quantity for o in await orders_of(db, bot.id)}
    ticks = TickPublisher(bus)
    # Slot 3's buy fills; the sell it places is sized by what it bought, and after that sell fills the
    # slot buys again with the new amount.
    await ticks.send(ticks.tick(53_000_000, 53_500_000, 53_000_000))
    await eventually(lambda: _sell_open(db, bot.id, 3), timeout=10)
    await ticks.send(ticks.tick(54_500_000, 54_500_000, 53_400_000))
    await eventually(lambda: _trade_count(db, bot.id, 2), timeout=10)
    await eventually(lambda: _rebought(db, bot.id, 3, before[3]), timeout=10)
    rules = spec.rules()
    rebuy = next(
        o for o in await orders_of(db, bot.id) if o.slot == 3 and o.side == "buy" and o.status == "open"
    )
    assert rebuy.quantity == rules.buy_qty(D(20_000), rebuy.price)
    # Resting orders keep the size they were placed with.
    assert before[0] == rules.buy_qty(D(10_000), _level(bot, 0, rules))
    slot0 = next(o for o in await orders_of(db, bot.id) if o.slot == 0 and o.status == "open")
    assert slot0.quantity == before[0]


async def test_stop_at_max_cancels_everything_and_stops_the_bot(
    engine: EngineRuntime,
    bus: RabbitBus,
    bots: BotFactory,
    events: EventSink,
    db: async_sessionmaker[AsyncSession],
) -> None:
    bot = await bots.create(BotSpec(stop_at_max=True))
    assert engine.cache is not None
    await cache_price(engine.cache, "KRW-BTC", "53500000")
    await publish_command(bus, bot, BotEvent.START)
    await eventually(lambda: _open_count(db, bot.id, 4), timeout=10)
    ticks = TickPublisher(bus)
    await ticks.send(ticks.tick(70_000_000, 70_000_000, 53_500_000))
    await eventually(lambda: _status(bots, bot.id, "stopped"), timeout=10)
    assert (await bots.bot(bot.id)).stop_reason == "stopAtMax"
    assert {o.status for o in await orders_of(db, bot.id)} == {"canceled"}
    assert await trades_of(db, bot.id) == []
    await eventually(lambda: [e["status"] for e in events.of("bot_status", bot.id)][-1:] == ["stopped"])
    assert events.of("bot_status", bot.id)[-1]["stopReason"] == "stopAtMax"


async def test_a_bot_started_while_no_engine_listened_starts_when_one_comes_up(
    engine_factory: Any,
    bots: BotFactory,
    db: async_sessionmaker[AsyncSession],
    redis_url: str,
    namespace: str,
) -> None:
    # The row says running (POST /bots with autoStart committed) but no engine heard the start.
    bot = await bots.create(BotSpec())
    cache = await acquire_cache(redis_url, namespace)
    try:
        await cache_price(cache, "KRW-BTC", "53500000")  # what market-data cached
    finally:
        await release_cache(cache)
    engine: EngineRuntime = await engine_factory()
    await eventually(lambda: _open_count(db, bot.id, 4), timeout=10)
    assert sorted(o.slot for o in await orders_of(db, bot.id)) == [0, 1, 2, 3]
    assert engine.registry.handles[bot.id].core.state.status.value == "running"


def _level(bot: Bot, index: int, rules: Any) -> Decimal:
    from common.grid import plan_grid

    return plan_grid(
        bot.lower_price, bot.upper_price, bot.price_change_percent, bot.order_amount, rules
    ).levels[index]


async def _open_count(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, count: int) -> bool:
    return sum(1 for o in await orders_of(db, bot_id) if o.status == "open") == count


async def _sell_open(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, slot: int) -> bool:
    return any(
        o.slot == slot and o.side == "sell" and o.status == "open" for o in await orders_of(db, bot_id)
    )


async def _trade_count(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, count: int) -> bool:
    return len(await trades_of(db, bot_id)) == count


async def _rebought(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, slot: int, old: Decimal) -> bool:
    return any(
        o.slot == slot and o.side == "buy" and o.status == "open" and o.quantity != old
        for o in await orders_of(db, bot_id)
    )


async def _status(bots: BotFactory, bot_id: uuid.UUID, status: str) -> bool:
    return (await bots.bot(bot_id)).status == status


def _config_applied(engine: EngineRuntime, bot_id: uuid.UUID, version: int) -> bool:
    handle = engine.registry.handles.get(bot_id)
    return handle is not None and handle.config_version == version


async def test_commands_that_never_reached_the_engine_are_applied_from_the_rows(
    engine_factory: Any, bots: BotFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    # A start, new settings and a stop whose messages were lost (published while this replica's queue was
    # away): the rows say what the user asked, and the resume sweep does it.
    engine: EngineRuntime = await engine_factory(resume_interval_seconds=0.3)
    assert engine.cache is not None
    await cache_price(engine.cache, "KRW-BTC", "53500000")
    bot = await bots.create(BotSpec())  # running, as POST /bots with autoStart commits it; nothing published
    await eventually(lambda: _open_count(db, bot.id, 4), timeout=10)
    async with db() as session:  # what PATCH /bots/:id commits; its bot.updated never sent
        await session.execute(
            update(Bot).where(Bot.id == bot.id).values(order_amount=D(20_000), config_version=2)
        )
        await session.commit()
    await eventually(lambda: _config_applied(engine, bot.id, 2), timeout=10)
    assert engine.registry.handles[bot.id].row.order_amount == D(20_000)
    stop = await bots.request_stop(bot.id)  # the pending stop command; its bot.stop never sent
    await eventually(lambda: _stopped(db, bot.id, stop.stop_command_id), timeout=10)
    assert not [o for o in await orders_of(db, bot.id) if o.status in ("new", "open")]


async def _stopped(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, command_id: str | None) -> bool:
    async with db() as session:
        row = (await session.execute(select(Bot.status, Bot.stop_command_id).where(Bot.id == bot_id))).one()
    return row.status == "stopped" and row.stop_command_id == command_id
