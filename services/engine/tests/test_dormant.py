"""Paper bots taken over are held dormant (indexed from their stored state, not restored) until something
reaches them: a tick that crosses their watch, or a command; then their shard loads them whole first."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal

from engine_support import (
    BotFactory,
    BotSpec,
    EventSink,
    TickPublisher,
    cache_price,
    orders_of,
    publish_command,
    trades_of,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.bus import QueueKind, RabbitBus
from common.contracts.bots import BOTS_EXCHANGE, BotEvent
from common.testing.wait import eventually
from engine.model import BotHandle
from engine.runtime import EngineRuntime
from gridcore import GridBot
from trading.commands import BOT_STOPPED
from trading.models import Bot

RuntimeFactory = Callable[..., Awaitable[EngineRuntime]]

D = Decimal


async def _buying(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID) -> bool:
    return sorted(o.slot for o in await orders_of(db, bot_id) if o.status == "open") == [0, 1, 2, 3]


async def _taken_over(
    engine_factory: RuntimeFactory, bus: RabbitBus, bots: BotFactory, db: async_sessionmaker[AsyncSession]
) -> tuple[EngineRuntime, Bot, BotHandle]:
    """A paper bot started and trading on one engine, then that engine stopped and another taking it over."""
    first = await engine_factory()
    bot = await bots.create(BotSpec())
    assert first.cache is not None
    await cache_price(first.cache, "KRW-BTC", "53500000")
    await publish_command(bus, bot, BotEvent.START)
    await eventually(lambda: _buying(db, bot.id), timeout=10)
    await first.stop()
    second = await engine_factory()
    handle = second.registry.handles[bot.id]
    return second, bot, handle


async def test_a_paper_bot_taken_over_stays_dormant_until_a_tick_crosses_its_watch(
    engine_factory: RuntimeFactory, bus: RabbitBus, bots: BotFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    engine, bot, handle = await _taken_over(engine_factory, bus, bots, db)
    assert handle.dormant is not None and handle.loaded_core is None and handle.stale
    # Indexed by the watch read off the stored state: the one its restored core gives.
    assert handle.watch is not None
    assert handle.watch == GridBot.restore(handle.dormant.snapshot).watch()
    watch = handle.watch
    assert watch.highest_buy is not None and watch.next_arm is not None

    ticks = TickPublisher(bus)
    before = engine.metrics.ticks
    # Between its highest buy and the level it arms at: nothing to do, and nothing restored.
    inside = ticks.tick(watch.highest_buy + 1000, watch.next_arm - 1000, watch.highest_buy + 1000)
    await ticks.send(inside)
    await eventually(lambda: engine.metrics.ticks > before, timeout=10)
    assert engine.registry.handles[bot.id] is handle and handle.loaded_core is None

    # Through its highest buy: loaded whole, the buy fills, the slot sells one level up.
    await ticks.send(ticks.tick(watch.highest_buy, watch.highest_buy + 1000, watch.highest_buy - 1000))
    await eventually(lambda: _traded(db, bot.id), timeout=10)
    woken = engine.registry.handles[bot.id]
    assert woken is not handle and woken.dormant is None and not woken.stale
    assert woken.levels and woken.orders
    sells = [o for o in await orders_of(db, bot.id) if o.side == "sell" and o.status == "open"]
    assert [o.slot for o in sells] == [3]
    # One order per slot, each placed once: nothing of the first engine's was placed again.
    ids = [o.client_order_id for o in await orders_of(db, bot.id)]
    assert len(ids) == len(set(ids)) == 5


async def test_a_dormant_bot_stops_on_its_command_and_confirms(
    engine_factory: RuntimeFactory,
    bus: RabbitBus,
    bots: BotFactory,
    db: async_sessionmaker[AsyncSession],
) -> None:
    confirmations = EventSink()
    await bus.subscribe(
        "test.dormant", BOTS_EXCHANGE, [BOT_STOPPED], confirmations.handle, kind=QueueKind.DURABLE
    )
    _, bot, handle = await _taken_over(engine_factory, bus, bots, db)
    assert handle.dormant is not None
    stopping = await bots.request_stop(bot.id)
    await publish_command(bus, stopping, BotEvent.STOP, "stopped")
    await eventually(lambda: len(confirmations.received) == 1, timeout=10)
    assert confirmations.received[0].payload["command_id"] == stopping.stop_command_id
    assert confirmations.received[0].payload["open_orders"] == 0
    assert (await bots.bot(bot.id)).status == "stopped"
    assert {o.status for o in await orders_of(db, bot.id)} == {"canceled"}


async def _traded(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID) -> bool:
    return len(await trades_of(db, bot_id)) == 1
