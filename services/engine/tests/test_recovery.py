"""Recovery of a live bot from the exchange's faults: streams away, errors answered, keys refused."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from engine_support import (
    BotFactory,
    BotSpec,
    CredentialsStub,
    TickPublisher,
    cache_price,
    orders_of,
    publish_command,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_live import binance_spec, recorded_fills, set_price, sim_account, sim_fills, sim_orders

from common.bus import RabbitBus
from common.contracts.bots import BotEvent
from common.grid import plan_grid
from common.testing.infra import host_tool
from common.testing.rabbit import close_connection, connection_pids
from common.testing.wait import eventually
from engine.live.broker import client_key
from engine.runtime import EngineRuntime
from trading.models import Bot

D = Decimal
SYMBOL = "BTCUSDT"
# The aim after any fault: the bot's next fill recorded within this long of the fault's end.
RECOVERED_WITHIN = 5.0

pytestmark = pytest.mark.timeout(120)


def _levels() -> tuple[Decimal, ...]:
    spec = binance_spec(uuid.uuid4())
    return plan_grid(spec.lower, spec.upper, spec.percent, spec.amount, spec.rules()).levels


async def _running_bot(
    engine: EngineRuntime,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> tuple[Bot, str]:
    """A live Binance bot resting its six buys, its private stream connected; the bot and its API key."""
    api_key, secret = await sim_account(http)
    user = uuid.uuid4()
    credentials.set(user, "binance", api_key, secret)
    bot = await bots.create(binance_spec(user))
    await publish_command(bus, bot, BotEvent.START)
    await eventually(lambda: _open_buys(db, bot.id, 6), timeout=15)
    assert engine.live is not None
    live = engine.live
    await eventually(lambda: any(s.connected for s in live.streams.values()), timeout=10)
    await eventually(lambda: not live.recovery.owes(bot.id), timeout=10)  # caught up since it connected
    await live.idle()
    return bot, api_key


async def _open_buys(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, count: int) -> bool:
    return sum(1 for o in await orders_of(db, bot_id) if o.status == "open" and o.side == "buy") == count


async def _filled(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, cid: str) -> bool:
    return any(fill[0] == cid for fill in await recorded_fills(db, bot_id))


async def _cid_at(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, slot: int) -> str:
    """The client order id of the bot's open order in that slot."""
    return next(
        o.client_order_id for o in await orders_of(db, bot_id) if o.slot == slot and o.status == "open"
    )


async def _faults_drained(http: httpx.AsyncClient) -> bool:
    return (await http.get("/_sim/faults")).json() == []


async def test_a_fill_made_while_the_stream_was_down_is_recorded_at_once_after_the_faults(
    engine_factory: Any,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    levels = _levels()
    await set_price(sim_http, "95000")
    # No periodic reconciliation within the test: whatever finds the fill, it is not that.
    engine: EngineRuntime = await engine_factory(order_check_min_interval_seconds=1.0)
    bot, api_key = await _running_bot(engine, bus, bots, credentials, sim_http, db)
    cid = await _cid_at(db, bot.id, 5)

    # The exchange drops its WebSockets for a while and answers its next ten REST requests with errors.
    held = 3.0
    began = time.monotonic()
    await sim_http.post(
        "/_sim/faults", json={"kind": "drop_websockets", "exchange": "binance", "seconds": held}
    )
    for kind in ("http_500", "http_429"):
        await sim_http.post("/_sim/faults", json={"kind": kind, "count": 5, "exchange": "binance"})
    # Meanwhile the price crosses L5: the exchange fills that buy with no stream to tell.
    low = levels[5] - D("0.01")
    await set_price(sim_http, low)
    ticks = TickPublisher(bus, "binance", SYMBOL)
    await ticks.send(ticks.tick(low, D(95_000), low))

    # The fault ends once the streams are let in again and the last error has been answered.
    await eventually(lambda: time.monotonic() - began >= held, timeout=held + 1)
    await eventually(lambda: _faults_drained(sim_http), timeout=30, message="the engine stopped calling")
    await eventually(
        lambda: _filled(db, bot.id, cid),
        timeout=RECOVERED_WITHIN,
        message=f"the fill of {cid} was not recorded within {RECOVERED_WITHIN}s of the fault's end",
    )
    at_sim = await sim_orders(sim_http, api_key)
    cids = [o["clientOrderId"] for o in at_sim]
    assert len(cids) == len(set(cids)), "an order was placed twice"
    await eventually(lambda: _fills_agree(db, bot.id, sim_http, api_key), timeout=10)
    assert engine.live is not None
    stream = engine.live.streams[client_key(engine.registry.handles[bot.id])]
    await eventually(lambda: stream.connected, timeout=10)


async def _fills_agree(
    db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, http: httpx.AsyncClient, api_key: str
) -> bool:
    return await recorded_fills(db, bot_id) == sim_fills(await sim_orders(http, api_key))


@pytest.fixture
async def no_faults_left(sim_http: httpx.AsyncClient) -> AsyncIterator[None]:
    """No fault of the test outlives it (the simulator serves the whole session)."""
    yield
    await sim_http.delete("/_sim/faults")


async def test_after_a_fault_the_next_crossing_tick_checks_at_once(
    engine_factory: Any,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    no_faults_left: None,
) -> None:
    levels = _levels()
    await set_price(sim_http, "95000")
    # No stream: crossing checks are how fills are found. A long throttle, which failed checks must not use up.
    engine: EngineRuntime = await engine_factory(private_streams=False, order_check_min_interval_seconds=60.0)
    api_key, secret = await sim_account(sim_http)
    user = uuid.uuid4()
    credentials.set(user, "binance", api_key, secret)
    bot = await bots.create(binance_spec(user))
    await publish_command(bus, bot, BotEvent.START)
    await eventually(lambda: _open_buys(db, bot.id, 6), timeout=15)
    assert engine.live is not None
    await engine.live.idle()
    cid = await _cid_at(db, bot.id, 5)

    # Order lookups fail four times; listing open orders fails throughout, so no reconciliation gets through
    # and only a crossing check can find the fill.
    await sim_http.post(
        "/_sim/faults",
        json={
            "kind": "http_500",
            "count": 10_000,
            "exchange": "binance",
            "path_prefix": "/api/v3/openOrders",
        },
    )
    await sim_http.post(
        "/_sim/faults",
        json={"kind": "http_500", "count": 4, "exchange": "binance", "path_prefix": "/api/v3/order"},
    )
    low = levels[5] - D("0.01")
    await set_price(sim_http, low)  # the exchange fills L5; no stream tells
    ticks = TickPublisher(bus, "binance", SYMBOL)
    done = asyncio.Event()

    async def market() -> None:
        # The market trades on below L5: a crossing tick at the market's pace.
        while not done.is_set():
            await ticks.send(ticks.tick(low, low, low))
            await asyncio.sleep(0.2)

    trading = asyncio.create_task(market())
    try:
        await eventually(lambda: _lookups_failing(sim_http), timeout=30, message="no check ever failed")
        await eventually(lambda: _lookups_answered(sim_http), timeout=30, message="checks stopped")
        await eventually(
            lambda: _filled(db, bot.id, cid),
            timeout=3,
            message="the crossing ticks after the fault did not check the order",
        )
    finally:
        done.set()
        await trading
    at_sim = await sim_orders(sim_http, api_key)
    assert await recorded_fills(db, bot.id) == sim_fills(at_sim)


async def _lookups_failing(http: httpx.AsyncClient) -> bool:
    """True while the order-lookup fault has errors left to answer."""
    faults = (await http.get("/_sim/faults")).json()
    return any(fault["path_prefix"] == "/api/v3/order" for fault in faults)


async def _lookups_answered(http: httpx.AsyncClient) -> bool:
    return not await _lookups_failing(http)


async def test_the_engine_trades_on_at_once_after_the_broker_closes_its_bus_connection(
    engine_factory: Any,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    rabbitmqctl = host_tool("rabbitmqctl")
    levels = _levels()
    await set_price(sim_http, "95000")
    engine: EngineRuntime = await engine_factory()
    live, _ = await _running_bot(engine, bus, bots, credentials, sim_http, db)
    live_cid = await _cid_at(db, live.id, 5)
    paper_spec = BotSpec()  # Upbit KRW-BTC on paper: its fills come from ticks over the bus
    paper = await bots.create(paper_spec)
    paper_levels = plan_grid(
        paper_spec.lower, paper_spec.upper, paper_spec.percent, paper_spec.amount, paper_spec.rules()
    ).levels
    assert engine.cache is not None and engine.bus is not None
    await cache_price(engine.cache, "KRW-BTC", "53500000")  # between L3 and L4: buys rest at L0..L3
    await publish_command(bus, paper, BotEvent.START)
    await eventually(lambda: _open_buys(db, paper.id, 4), timeout=10)
    paper_cid = await _cid_at(db, paper.id, 3)
    name = engine.bus.connection_name

    await close_connection(rabbitmqctl, name, "recovery test: the broker closes the engine's connection")
    # The market moves at once: the live fill reaches the engine over the bus from its private stream, the
    # paper one through the engine's tick queue, both on the connection the broker just closed.
    await set_price(sim_http, levels[5] - D("0.01"))
    ticks = TickPublisher(bus)
    low = paper_levels[3] - 1000
    await ticks.send(ticks.tick(low, paper_levels[4], low))
    await eventually(
        lambda: _both_filled(db, live.id, live_cid, paper.id, paper_cid),
        timeout=RECOVERED_WITHIN,
        message="the engine did not trade on within the aim after its bus connection was closed",
    )
    assert len(await connection_pids(rabbitmqctl, name)) == 1  # the engine is connected again


async def _both_filled(
    db: async_sessionmaker[AsyncSession], live: uuid.UUID, live_cid: str, paper: uuid.UUID, paper_cid: str
) -> bool:
    return await _filled(db, live, live_cid) and await _filled(db, paper, paper_cid)


async def _requests_of(http: httpx.AsyncClient, api_key: str, path_prefix: str | None = None) -> int:
    """Exchange requests the simulator received with this API key (refused ones included)."""
    params = {"apiKey": api_key, **({"path_prefix": path_prefix} if path_prefix else {})}
    return int((await http.get("/_sim/requests", params=params)).json()["total"])


async def test_a_bot_whose_keys_the_exchange_refuses_goes_to_error_and_is_then_left_alone(
    engine_factory: Any,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    levels = _levels()
    await set_price(sim_http, "95000")
    engine: EngineRuntime = await engine_factory(reconcile_interval_seconds=0.5)
    refused, refused_key = await _running_bot(engine, bus, bots, credentials, sim_http, db)
    # Another user's bot, whose reconciliation shows the periodic one keeps running meanwhile.
    healthy, healthy_key = await _running_bot(engine, bus, bots, credentials, sim_http, db)

    # The user deletes the key on the exchange; the next order it needs is refused.
    await sim_http.post(f"/_sim/accounts/{refused_key}/revoke")
    await set_price(sim_http, levels[5] - D("0.01"))
    await eventually(lambda: _status_is(bots, refused.id, "error"), timeout=15)
    row = await bots.bot(refused.id)
    assert row.error_message is not None and "INVALID_CREDENTIALS" in row.error_message
    assert engine.live is not None
    # Its buys cannot be cancelled with refused keys: the halt ends, and the user is told which stay open.
    still_open = [o for o in await sim_orders(sim_http, refused_key) if o["status"] == "NEW"]
    assert len(still_open) == 5

    async def told() -> bool:
        message = (await bots.bot(refused.id)).error_message or ""
        return all(o["clientOrderId"] in message for o in still_open)

    await eventually(told, timeout=15)
    await engine.live.idle()

    before = await _requests_of(sim_http, refused_key)
    witness = await _requests_of(sim_http, healthy_key, "/api/v3/openOrders")
    # Several reconciliations of the healthy bot later, not one more request with the refused key.
    await eventually(
        lambda: _requests_grew(sim_http, healthy_key, "/api/v3/openOrders", witness + 4), timeout=15
    )
    assert await _requests_of(sim_http, refused_key) == before
    assert (await bots.bot(refused.id)).status == "error"
    assert (await bots.bot(healthy.id)).status == "running"


async def _requests_grew(http: httpx.AsyncClient, api_key: str, path_prefix: str, count: int) -> bool:
    return await _requests_of(http, api_key, path_prefix) >= count


async def _status_is(bots: BotFactory, bot_id: uuid.UUID, status: str) -> bool:
    return (await bots.bot(bot_id)).status == status
