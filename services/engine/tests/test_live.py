"""A live bot against the exchange simulator with keys it minted: orders, fills, errors, faults."""

from __future__ import annotations

import uuid
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import httpx
import pytest
from engine_support import (
    BotFactory,
    BotSpec,
    CredentialsStub,
    EventSink,
    TickPublisher,
    orders_of,
    performance_of,
    publish_command,
    trades_of,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.bus import RabbitBus
from common.contracts.bots import BotEvent
from common.exchanges import TransientExchangeError
from common.grid import plan_grid
from common.testing.wait import eventually
from engine.runtime import EngineRuntime
from trading.models import Bot, Order, Trade

D = Decimal
FEE = D("0.001")
SYMBOL = "BTCUSDT"


def binance_spec(user_id: uuid.UUID) -> BotSpec:
    """BTCUSDT 90,000–110,000 at 1 % (20 slots), 20 USDT per order."""
    return BotSpec(
        exchange="binance",
        ticker=SYMBOL,
        lower=D(90_000),
        upper=D(110_000),
        percent=D(1),
        amount=D(20),
        mode="live",
        user_id=user_id,
    )


async def sim_account(http: httpx.AsyncClient, usdt: str = "10000") -> tuple[str, str]:
    """A fresh simulator account; its keys."""
    body = (await http.post("/_sim/accounts", json={"balances": {"USDT": usdt, "KRW": "0"}})).json()
    return body["apiKey"], body["secretKey"]


async def set_price(http: httpx.AsyncClient, price: Decimal | str) -> None:
    """A trade at this price on the simulator's BTCUSDT (resting orders it reaches fill)."""
    response = await http.put(f"/_sim/prices/binance/{SYMBOL}", json={"price": str(price)})
    assert response.status_code == 200, response.text


async def sim_orders(http: httpx.AsyncClient, api_key: str) -> list[dict[str, Any]]:
    """Every order of the account at the simulator."""
    response = await http.get("/_sim/orders", params={"apiKey": api_key, "exchange": "binance"})
    body = response.json()
    return body["orders"] if isinstance(body, dict) else body


async def recorded_fills(
    db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID
) -> set[tuple[str, str, Decimal, Decimal, Decimal]]:
    """(client order id, fill id, price, qty, fee) of every trade the engine recorded."""
    async with db() as session:
        rows = await session.execute(
            select(Order.client_order_id, Trade.fill_id, Trade.price, Trade.amount, Trade.fee)
            .join(Order, Order.id == Trade.order_id)
            .where(Trade.bot_id == bot_id)
        )
        return {(c, f, p.normalize(), a.normalize(), fee.normalize()) for c, f, p, a, fee in rows}


def sim_fills(orders: list[dict[str, Any]]) -> set[tuple[str, str, Decimal, Decimal, Decimal]]:
    """The same tuples from the simulator's own record."""
    return {
        (
            o["clientOrderId"],
            str(f["tradeId"]),
            D(f["price"]).normalize(),
            D(f["quantity"]).normalize(),
            D(f["fee"]).normalize(),
        )
        for o in orders
        for f in o["fills"]
    }


async def open_sides(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, side: str) -> list[int]:
    """Slots with an open order on that side."""
    return sorted(o.slot for o in await orders_of(db, bot_id) if o.status == "open" and o.side == side)


@pytest.fixture
def levels() -> tuple[Decimal, ...]:
    """The levels of the Binance test grid."""
    spec = binance_spec(uuid.uuid4())
    return plan_grid(spec.lower, spec.upper, spec.percent, spec.amount, spec.rules()).levels


async def _start(
    engine: EngineRuntime,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    http: httpx.AsyncClient,
    usdt: str = "10000",
) -> tuple[Bot, str]:
    api_key, secret = await sim_account(http, usdt)
    user = uuid.uuid4()
    credentials.set(user, "binance", api_key, secret)
    bot = await bots.create(binance_spec(user))
    await publish_command(bus, bot, BotEvent.START)
    return bot, api_key


async def test_live_round_trips_agree_one_for_one_with_the_exchange(
    engine_factory: Any,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    events: EventSink,
    db: async_sessionmaker[AsyncSession],
    levels: tuple[Decimal, ...],
) -> None:
    await set_price(sim_http, "95000")  # between L5 and L6: the engine starts from the exchange's price
    engine: EngineRuntime = await engine_factory()
    bot, api_key = await _start(engine, bus, bots, credentials, sim_http)
    await eventually(lambda: _open_is(db, bot.id, "buy", [0, 1, 2, 3, 4, 5]), timeout=15)
    at_sim = await sim_orders(sim_http, api_key)
    ours = {o.client_order_id: o for o in await orders_of(db, bot.id)}
    # Placed with our client order ids, each exactly once, and their exchange ids recorded.
    assert sorted(o["clientOrderId"] for o in at_sim) == sorted(ours)
    assert {o["orderId"] for o in at_sim} == {o.exchange_order_id for o in ours.values()}
    assert all(D(o["price"]) == levels[ours[o["clientOrderId"]].slot] for o in at_sim)
    assert engine.live is not None
    await eventually(lambda: any(s.connected for s in engine.live.streams.values()), timeout=10)

    # Down through L5, L4, L3: three buys fill (found by the private stream), sells go up one level.
    await set_price(sim_http, levels[3] - D("0.01"))
    await eventually(lambda: _open_is(db, bot.id, "sell", [3, 4, 5]), timeout=15)
    await set_price(sim_http, levels[6] + D("0.01"))
    await eventually(lambda: _trades_are(db, bot.id, 6), timeout=15)
    await eventually(lambda: _open_is(db, bot.id, "buy", [0, 1, 2, 3, 4, 5]), timeout=15)

    trades = await trades_of(db, bot.id)
    assert [t.side for t in trades] == ["buy"] * 3 + ["sell"] * 3
    total = D(0)
    rules = binance_spec(bot.user_id).rules()
    for trade in (t for t in trades if t.side == "sell"):
        i = levels.index(trade.price) - 1
        q = rules.buy_qty(D(20), levels[i])
        held = q - q * FEE  # Binance takes a buy's fee in BTC
        sold = (held / rules.lot_step).to_integral_value(ROUND_FLOOR) * rules.lot_step
        assert trade.amount == sold
        # The exchange's own fee, to its 8 decimals, is what the engine books.
        assert trade.fee == (sold * trade.price * FEE).quantize(D("1e-8")) and trade.fee_currency == "USDT"
        expected = sold * levels[i + 1] - trade.fee - q * levels[i] * sold / held
        assert abs(trade.profit - expected) < D("1e-15")
        total += trade.profit
    figures = await performance_of(db, await bots.bot(bot.id), levels[6])
    assert figures["totalProfit"] == total and figures["sellTrades"] == 3
    # One for one with the simulator's own record of its fills.
    at_sim = await sim_orders(sim_http, api_key)
    assert await recorded_fills(db, bot.id) == sim_fills(at_sim)
    assert len({o["clientOrderId"] for o in at_sim}) == len(at_sim)
    await eventually(lambda: len(events.of("trade", bot.id)) == 6)


async def test_fills_found_by_status_checks_that_crossing_ticks_trigger(
    engine_factory: Any,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    levels: tuple[Decimal, ...],
) -> None:
    await set_price(sim_http, "95000")
    engine: EngineRuntime = await engine_factory(private_streams=False)
    bot, api_key = await _start(engine, bus, bots, credentials, sim_http)
    await eventually(lambda: _open_is(db, bot.id, "buy", [0, 1, 2, 3, 4, 5]), timeout=15)
    low = levels[4] - D("0.01")
    await set_price(sim_http, low)  # the exchange fills L5 and L4; without a stream nobody tells us
    assert engine.live is not None and not engine.live.streams
    ticks = TickPublisher(bus, "binance", SYMBOL)
    await ticks.send(ticks.tick(low, D(95_000), low))
    await eventually(lambda: _open_is(db, bot.id, "sell", [4, 5]), timeout=15)
    at_sim = await sim_orders(sim_http, api_key)
    assert await recorded_fills(db, bot.id) == sim_fills(at_sim)
    assert len(sim_fills(at_sim)) == 2


async def test_insufficient_balance_puts_the_bot_in_error_and_cancels_its_orders(
    engine_factory: Any,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    events: EventSink,
    db: async_sessionmaker[AsyncSession],
) -> None:
    await set_price(sim_http, "95000")
    engine: EngineRuntime = await engine_factory()
    # 50 USDT covers two 20-USDT buys; the third is refused by the exchange.
    bot, api_key = await _start(engine, bus, bots, credentials, sim_http, usdt="50")
    await eventually(lambda: _status_is(bots, bot.id, "error"), timeout=15)
    row = await bots.bot(bot.id)
    assert row.error_message is not None and "INSUFFICIENT_BALANCE" in row.error_message
    assert row.stop_reason == "error"
    # Every order the exchange accepted is canceled there; none stays open in our rows either.
    await eventually(lambda: _sim_open(sim_http, api_key, 0), timeout=15)
    await eventually(lambda: _no_live_orders(db, bot.id), timeout=15)
    await eventually(lambda: [e["status"] for e in events.of("bot_status", bot.id)][-1:] == ["error"])
    last = events.of("bot_status", bot.id)[-1]
    assert "INSUFFICIENT_BALANCE" in last["errorMessage"]
    # Exported as gridbot_engine_orders_rejected_total{reason="insufficient_funds"} (every buy placed at once
    # beyond the balance is refused); the two buys it had placed were canceled.
    rejected = engine.metrics.rejected_totals()
    assert set(rejected) == {"insufficient_funds"} and rejected["insufficient_funds"] >= 1
    assert engine.metrics.orders_cancelled >= 2


async def test_transient_faults_are_retried_without_placing_anything_twice(
    engine_factory: Any,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    await set_price(sim_http, "95000")
    engine: EngineRuntime = await engine_factory()
    assert engine.live is not None
    lost: list[str] = []

    async def lose_first_answer(point: str, cid: str) -> None:
        # The exchange placed it, but the answer never reached us: the engine must find it, not re-place it.
        if point == "after_place" and not lost:
            lost.append(cid)
            raise TransientExchangeError("answer lost")

    engine.live.fault = lose_first_answer
    await sim_http.post(
        "/_sim/faults",
        json={"kind": "http_500", "count": 3, "exchange": "binance", "path_prefix": "/api/v3/order"},
    )
    await sim_http.post(
        "/_sim/faults",
        json={"kind": "http_429", "count": 2, "exchange": "binance", "path_prefix": "/api/v3/order"},
    )
    bot, api_key = await _start(engine, bus, bots, credentials, sim_http)
    await eventually(lambda: _open_is(db, bot.id, "buy", [0, 1, 2, 3, 4, 5]), timeout=20)
    at_sim = await sim_orders(sim_http, api_key)
    cids = [o["clientOrderId"] for o in at_sim]
    assert len(cids) == len(set(cids)) == 6
    assert lost and lost[0] in cids
    assert (await sim_http.get("/_sim/faults")).json() in ([], {"faults": []})
    assert (await bots.bot(bot.id)).status == "running"


async def _open_is(
    db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, side: str, slots: list[int]
) -> bool:
    return await open_sides(db, bot_id, side) == slots


async def _trades_are(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, count: int) -> bool:
    return len(await trades_of(db, bot_id)) == count


async def _status_is(bots: BotFactory, bot_id: uuid.UUID, status: str) -> bool:
    return (await bots.bot(bot_id)).status == status


async def _sim_open(http: httpx.AsyncClient, api_key: str, count: int) -> bool:
    return (
        sum(1 for o in await sim_orders(http, api_key) if o["status"] in ("NEW", "PARTIALLY_FILLED")) == count
    )


async def _no_live_orders(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID) -> bool:
    return not [o for o in await orders_of(db, bot_id) if o.status in ("new", "open")]
