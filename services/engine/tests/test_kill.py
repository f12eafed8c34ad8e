"""`kill -9` of the engine process at random moments of a live run, restarted each time as a supervisor
would (default identity, so refused while the dead process's lease runs): nothing is lost, nothing is
placed twice, every exchange fill is recorded exactly once, and the profit adds up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from engine_process import EngineSupervisor
from engine_support import (
    BotFactory,
    CredentialsStub,
    TickPublisher,
    market_pause,
    orders_of,
    publish_command,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_live import binance_spec, recorded_fills, set_price, sim_account, sim_fills, sim_orders

from common.bus import RabbitBus
from common.contracts.bots import BotEvent
from common.grid import plan_grid
from common.testing.wait import eventually
from gridcore import Side
from trading.models import EngineState, Order, Trade

D = Decimal
KILLS = 4


def replayed_profit(trades: list[tuple[int, str, Decimal, Decimal, Decimal, str]], base: str) -> Decimal:
    """Σ round trips recomputed from the trades alone: per slot, a sell's profit is its net proceeds minus
    the cost of the share of the slot's holdings it sold (buy fees in base reduce what was bought)."""
    holding: dict[int, tuple[Decimal, Decimal]] = {}
    total = D(0)
    for slot, side, price, qty, fee, currency in trades:
        qty_held, cost = holding.get(slot, (D(0), D(0)))
        if side == Side.BUY.value:
            got = qty - (fee if currency == base else D(0))
            holding[slot] = (qty_held + got, cost + qty * price + (fee if currency != base else D(0)))
            continue
        share = cost if qty >= qty_held else cost * qty / qty_held
        total += qty * price - fee - share
        holding[slot] = (max(qty_held - qty, D(0)), cost - share)
    return total


@pytest.mark.timeout(180)
async def test_kill_9_at_random_moments_loses_nothing_and_places_nothing_twice(
    supervisor: EngineSupervisor,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    rng = random.Random(int(os.environ.get("ENGINE_KILL_SEED", "20241201")))
    spec = binance_spec(uuid.uuid4())
    levels = plan_grid(spec.lower, spec.upper, spec.percent, spec.amount, spec.rules()).levels
    await set_price(sim_http, "95000")
    api_key, secret = await sim_account(sim_http)
    credentials.set(spec.user_id, "binance", api_key, secret)
    bot = await bots.create(spec)
    await publish_command(bus, bot, BotEvent.START)
    ticks = TickPublisher(bus, "binance", "BTCUSDT")
    price = D(95_000)

    async def market() -> None:
        # A random walk over levels 1..8: trades at the simulator, ticks on the bus.
        nonlocal price
        while True:
            target = levels[rng.randint(1, 8)] + D(rng.choice((-1, 1))) * D("0.01")
            low, high = min(price, target), max(price, target)
            price = target
            await set_price(sim_http, price)
            await ticks.send(ticks.tick(price, high, low))
            await market_pause(rng)

    # Frequent reconciliation: what a kill left unsettled is found again soon.
    supervisor.env["RECONCILE_INTERVAL_SECONDS"] = "5"
    await supervisor.run_until_ready()
    walk = asyncio.create_task(market())
    try:
        for _ in range(KILLS):
            if rng.random() < 0.3:
                # While it starts (taking its partitions back under a new epoch) and reconciles.
                await supervisor.spawn()
                kill_at = time.monotonic() + rng.uniform(0.1, 1.5)
            else:
                await supervisor.run_until_ready()
                kill_at = time.monotonic() + rng.uniform(0.3, 3.0)  # while it trades
            await eventually(
                lambda at=kill_at: time.monotonic() >= at or walk.done(), timeout=5, interval=0.05
            )
            await supervisor.kill()
    finally:
        walk.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await walk
    # The market rests; the engine, restarted as a supervisor would, reconciles and catches up.
    await supervisor.run_until_ready()
    try:
        await eventually(lambda: _settled(db, bot.id, sim_http, api_key), timeout=45)
    except AssertionError as exc:
        raise AssertionError(await _explain(db, bot.id, sim_http, api_key)) from exc
    await supervisor.kill()

    assert supervisor.kills >= 3
    fills, _ = await check_books(db, sim_http, bot.id, api_key)
    assert fills >= 10, "the run produced too few fills to mean anything"


async def check_books(
    db: async_sessionmaker[AsyncSession], sim_http: httpx.AsyncClient, bot_id: uuid.UUID, api_key: str
) -> tuple[int, dict[str, Any]]:
    """Nothing placed twice, every exchange fill recorded once and none it did not make, profit = Σ round
    trips; the number of fills and the bot's engine state."""
    at_sim = await sim_orders(sim_http, api_key)
    cids = [o["clientOrderId"] for o in at_sim]
    assert len(cids) == len(set(cids)), f"bot {bot_id}: a client order id was placed twice"
    exchange_fills = sim_fills(at_sim)
    assert await recorded_fills(db, bot_id) == exchange_fills
    async with db() as session:
        rows = (
            await session.execute(
                select(
                    Order.slot,
                    Trade.side,
                    Trade.price,
                    Trade.amount,
                    Trade.fee,
                    Trade.fee_currency,
                    Trade.profit,
                )
                .join(Order, Order.id == Trade.order_id)
                .where(Trade.bot_id == bot_id)
                .order_by(Trade.executed_at, Trade.created_at)
            )
        ).all()
        state: dict[str, Any] = (
            await session.execute(select(EngineState.state).where(EngineState.bot_id == bot_id))
        ).scalar_one()
    assert len(rows) == len(exchange_fills)  # each exactly once
    booked = sum((r.profit for r in rows if r.profit is not None), D(0))
    replayed = replayed_profit(
        [(r.slot, r.side, r.price, r.amount, r.fee, r.fee_currency) for r in rows], "BTC"
    )
    assert abs(booked - replayed) < D("1e-12")
    assert D(state["core"]["realized_profit"]) == booked
    return len(exchange_fills), state


async def _settled(
    db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, http: httpx.AsyncClient, api_key: str
) -> bool:
    """The engine agrees with the exchange: every fill recorded, the same orders open, nothing unsent."""
    at_sim = await sim_orders(http, api_key)
    if await recorded_fills(db, bot_id) != sim_fills(at_sim):
        return False
    rows = await orders_of(db, bot_id)
    if any(r.status == "new" for r in rows):
        return False
    open_here = {r.client_order_id for r in rows if r.status == "open"}
    open_there = {o["clientOrderId"] for o in at_sim if o["status"] in ("NEW", "PARTIALLY_FILLED")}
    return open_here == open_there and bool(open_here)


async def _explain(
    db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, http: httpx.AsyncClient, api_key: str
) -> str:
    """Where the engine and the exchange disagree (the failure message of the settle wait)."""
    at_sim = await sim_orders(http, api_key)
    mine, theirs = await recorded_fills(db, bot_id), sim_fills(at_sim)
    rows = await orders_of(db, bot_id)
    here = {r.client_order_id: r.status for r in rows}
    there = {o["clientOrderId"]: o["status"] for o in at_sim}
    words = {"NEW": "open", "PARTIALLY_FILLED": "open", "FILLED": "filled", "CANCELED": "canceled"}
    differs = {
        cid: (status, here.get(cid)) for cid, status in there.items() if words.get(status) != here.get(cid)
    }
    missing = {cid: status for cid, status in here.items() if cid not in there}
    return (
        f"not settled: fills only recorded here {mine - theirs}, only at the exchange {theirs - mine}; "
        f"orders whose status differs {differs}; orders the exchange never saw {missing}"
    )
