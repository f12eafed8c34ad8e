"""Restart reconciliation adopts an open order of ours that the engine's own records lost."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
from engine_support import BotFactory, CredentialsStub, orders_of, publish_command, trades_of
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_live import binance_spec, set_price, sim_account, sim_orders

from common.bus import RabbitBus
from common.contracts.bots import BotEvent
from common.grid import plan_grid
from common.testing.wait import eventually
from engine.runtime import EngineRuntime
from gridcore import parse_client_order_id
from trading.models import EngineState, Order

D = Decimal


async def test_an_open_order_with_our_prefix_that_the_engine_forgot_is_adopted_not_placed_again(
    engine_factory: Any,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    await set_price(sim_http, "95000")  # between L5 and L6
    spec = binance_spec(uuid.uuid4())
    levels = plan_grid(spec.lower, spec.upper, spec.percent, spec.amount, spec.rules()).levels
    api_key, secret = await sim_account(sim_http)
    credentials.set(spec.user_id, "binance", api_key, secret)
    first: EngineRuntime = await engine_factory()
    bot = await bots.create(spec)
    await publish_command(bus, bot, BotEvent.START)
    await eventually(lambda: _open_buys(db, bot.id, 6), timeout=15)
    await first.stop()

    # The engine's records lose slot 5's buy (a restored backup, say): the core thinks the slot idle, and
    # no order row names it. The exchange still has the order open.
    (lost,) = [o for o in await orders_of(db, bot.id) if o.slot == 5]
    async with db() as session, session.begin():
        state = await session.scalar(select(EngineState.state).where(EngineState.bot_id == bot.id))
        assert state is not None
        slot = state["core"]["slots"][5]
        assert slot["order"]["client_order_id"] == lost.client_order_id
        slot["order"], slot["state"] = None, "idle"
        await session.execute(update(EngineState).where(EngineState.bot_id == bot.id).values(state=state))
        await session.execute(delete(Order).where(Order.id == lost.id))

    second: EngineRuntime = await engine_factory()
    # Adopted into slot 5 under its own id, with the exchange's order id: not placed a second time.
    await eventually(lambda: _open_buys(db, bot.id, 6), timeout=15)
    await eventually(lambda: second.metrics.adoptions == 1, timeout=15)  # the figure /metrics exports
    assert second.metrics.reconciliations >= 1
    (adopted,) = [o for o in await orders_of(db, bot.id) if o.slot == 5]
    assert adopted.client_order_id == lost.client_order_id
    assert adopted.exchange_order_id == lost.exchange_order_id
    at_sim = await sim_orders(sim_http, api_key)
    assert len(at_sim) == 6 and len({o["clientOrderId"] for o in at_sim}) == 6
    parsed = [parse_client_order_id(o["clientOrderId"]) for o in at_sim]
    assert sorted(p.slot for p in parsed if p is not None) == [0, 1, 2, 3, 4, 5]

    # And it trades like any order of the slot: its fill puts the sell one level up.
    await set_price(sim_http, levels[5] - D("0.01"))
    await eventually(lambda: _sell_open_at(db, bot.id, 5), timeout=15)
    (trade,) = await trades_of(db, bot.id)
    assert (trade.side, trade.price) == ("buy", levels[5])


async def _open_buys(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, count: int) -> bool:
    rows = await orders_of(db, bot_id)
    return sum(1 for o in rows if o.side == "buy" and o.status == "open") == count


async def _sell_open_at(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, slot: int) -> bool:
    rows = await orders_of(db, bot_id)
    return any(o.side == "sell" and o.status == "open" and o.slot == slot for o in rows)
