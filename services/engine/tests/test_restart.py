"""Restart and reconciliation: a real engine process SIGKILLed between the commit and the exchange call, or
after it, then restarted as a supervisor would, loses nothing and places nothing twice."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from engine_process import EngineSupervisor
from engine_support import (
    BotFactory,
    BotSpec,
    CredentialsStub,
    TickPublisher,
    cache_price,
    orders_of,
    publish_command,
    trades_of,
)
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_live import binance_spec, recorded_fills, set_price, sim_account, sim_fills, sim_orders

from common.bus import RabbitBus
from common.contracts.bots import BotEvent
from common.grid import plan_grid
from common.testing.wait import eventually
from engine.runtime import EngineRuntime
from engine.settings import Settings
from gridcore import MARKET_SLOT
from trading.models import ENGINE_PARTITIONS, EnginePartition
from trading.partitions import new_bot_id, partition_of

D = Decimal


def _parked(path: Path) -> list[str]:
    """The client order ids the engine parked at the point (one line each: `<point> <cid>`)."""
    return [line.split()[1] for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.timeout(180)
@pytest.mark.parametrize("point", ["before_place", "after_place"])
async def test_a_kill_9_around_the_exchange_call_never_places_an_order_twice(
    point: str,
    supervisor: EngineSupervisor,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    await set_price(sim_http, "95000")
    spec = binance_spec(uuid.uuid4())
    levels = plan_grid(spec.lower, spec.upper, spec.percent, spec.amount, spec.rules()).levels
    api_key, secret = await sim_account(sim_http)
    credentials.set(spec.user_id, "binance", api_key, secret)
    # The first process parks every order it places at `point`; the test kills it once all six are there.
    parked = tmp_path / "parked"
    await supervisor.run_until_ready(TEST_PARK_AT=point, TEST_PARK_FILE=str(parked))
    bot = await bots.create(spec)
    first = await _owner(db, bot.id)
    await publish_command(bus, bot, BotEvent.START)
    await eventually(lambda: len(_parked(parked)) == 6, timeout=30, message="the six buys never parked")
    await supervisor.kill()
    crashed = _parked(parked)
    # The orders were committed (`new`) before any call; after_place: the exchange has them all.
    rows = await orders_of(db, bot.id)
    assert sorted(r.client_order_id for r in rows) == sorted(crashed)
    assert {r.status for r in rows} == {"new"}
    at_sim = await sim_orders(sim_http, api_key)
    assert sorted(o["clientOrderId"] for o in at_sim) == (sorted(crashed) if point == "after_place" else [])
    # While the engine is down the market falls through L5 and L4: what rests there fills.
    await set_price(sim_http, levels[4] - D("0.01"))

    # Restarted without the hook under the same replica name, as a supervisor restarts a container: it
    # takes its partitions back at once (a new epoch fences anything the dead process might still write).
    await supervisor.run_until_ready()
    owner, epoch = await _owner(db, bot.id)
    assert owner == first[0] == supervisor.engine_id and epoch > first[1]
    # after_place: L5 and L4 filled while down; before_place: placed now, they fill at once (marketable).
    await eventually(lambda: _sells(db, bot.id, [4, 5]), timeout=30)
    await eventually(lambda: _all_open(db, bot.id), timeout=30)
    at_sim = await sim_orders(sim_http, api_key)
    cids = [o["clientOrderId"] for o in at_sim]
    assert len(cids) == len(set(cids))  # no client order id placed twice
    assert set(crashed) <= set(cids)
    await eventually(lambda: _fills_match(db, bot.id, sim_http, api_key), timeout=30)
    fills_at_sim = sim_fills(await sim_orders(sim_http, api_key))
    assert len(await trades_of(db, bot.id)) == len(fills_at_sim)
    assert len(fills_at_sim) == 2  # recorded once each, whoever reported them (reconciliation, stream)


async def _sells(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, slots: list[int]) -> bool:
    rows = await orders_of(db, bot_id)
    return sorted(r.slot for r in rows if r.side == "sell" and r.status == "open") == slots


async def _all_open(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID) -> bool:
    rows = await orders_of(db, bot_id)
    return not [r for r in rows if r.status == "new"] and any(r.status == "open" for r in rows)


async def _fills_match(
    db: async_sessionmaker[AsyncSession],
    bot_id: uuid.UUID,
    http: httpx.AsyncClient,
    api_key: str,
    *,
    folded: bool = False,
) -> bool:
    recorded = await recorded_fills(db, bot_id)
    return (_fold_shares(recorded) if folded else recorded) == sim_fills(await sim_orders(http, api_key))


Fill = tuple[str, str, Decimal, Decimal, Decimal]


def _fold_shares(fills: set[Fill]) -> set[Fill]:
    """A market sell's per-slot trades (fill id `<fill id>:<slot>`) summed back into the exchange's fill."""
    folded: dict[tuple[str, str, Decimal], tuple[Decimal, Decimal]] = {}
    for cid, fill_id, price, qty, fee in fills:
        key = (cid, fill_id.rsplit(":", 1)[0] if "-m" in cid else fill_id, price)
        total_qty, total_fee = folded.get(key, (D(0), D(0)))
        folded[key] = (total_qty + qty, total_fee + fee)
    return {(c, f, p, q.normalize(), fee.normalize()) for (c, f, p), (q, fee) in folded.items()}


async def test_a_second_replica_shares_the_bots_and_a_clean_stop_hands_them_over(
    engine_factory: Any, bus: RabbitBus, bots: BotFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    first: EngineRuntime = await engine_factory(engine_id="replica-one")
    assert first.ownership is not None and len(first.ownership.held) == ENGINE_PARTITIONS
    second: EngineRuntime = await engine_factory(engine_id="replica-two")
    assert second.ownership is not None
    # The first hands the second its share on its next round; each partition has one owner throughout.
    await eventually(lambda: _split(first, second), timeout=10)
    assert not set(first.ownership.held) & set(second.ownership.held)
    created = [await bots.create(BotSpec()) for _ in range(6)]
    assert first.cache is not None
    await cache_price(first.cache, "KRW-BTC", "53500000")
    for bot in created:
        await publish_command(bus, bot, BotEvent.START)
    for bot in created:
        await eventually(lambda bot=bot: _open_count(db, bot.id, 4), timeout=10)  # type: ignore[misc]
        owner = first if first.ownership.owns(bot.id) else second
        assert bot.id in owner.registry.handles
        assert (owner.settings.engine_id, owner.ownership.epoch(bot.id)) == await _owner(db, bot.id)
    await first.stop()  # SIGTERM's path: its partitions are released, and the second takes them
    # All of them, over its next rounds (not necessarily those of the test's bots first), each one owned
    # once its bots are loaded.
    await eventually(
        lambda: (
            len(second.ownership.held) == ENGINE_PARTITIONS
            and all(second.ownership.owns(bot.id) for bot in created)
        ),
        timeout=10,
    )
    for bot in created:
        assert bot.id in second.registry.handles
    placed = [len(await orders_of(db, bot.id)) for bot in created]
    assert placed == [4] * 6  # nothing placed again


async def test_only_the_replica_driving_a_market_takes_its_ticks_and_its_successor_binds_them(
    engine_factory: Any, bus: RabbitBus, bots: BotFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    first: EngineRuntime = await engine_factory(engine_id="replica-one")
    second: EngineRuntime = await engine_factory(engine_id="replica-two")
    await eventually(lambda: _split(first, second), timeout=10)
    assert first.ownership is not None and second.ownership is not None
    # As the bots service creates them: ids in the market's partition, so one replica drives all three.
    created = [await bots.create(BotSpec(), bot_id=new_bot_id("upbit", "KRW-BTC")) for _ in range(3)]
    owner, other = (first, second) if first.ownership.owns(created[0].id) else (second, first)
    assert all(owner.ownership.owns(bot.id) for bot in created)
    assert first.cache is not None
    await cache_price(first.cache, "KRW-BTC", "53500000")
    for bot in created:
        await publish_command(bus, bot, BotEvent.START)
    for bot in created:
        await eventually(lambda bot=bot: _open_count(db, bot.id, 4), timeout=10)  # type: ignore[misc]
    # (Its market: bots that earlier tests of this database left behind may bind others.)
    market = ("upbit", "KRW-BTC")
    assert market in owner.markets.bound and market not in other.markets.bound
    ticks = TickPublisher(bus)
    await ticks.send(ticks.tick(53_400_000, 53_500_000, 53_400_000))  # crosses nothing
    await eventually(lambda: owner.metrics.ticks >= 1, timeout=10)
    assert other.metrics.ticks == 0  # never routed to it: its queue has no binding for the market

    await (
        owner.stop()
    )  # hands the market's partition over: its successor binds the market as it loads the bots
    await eventually(lambda: all(bot.id in other.registry.handles for bot in created), timeout=10)
    assert market in other.markets.bound
    # The low passes L3, L2 and L1: the successor fills three paper buys per bot.
    await ticks.send(ticks.tick(51_000_000, 53_500_000, 51_000_000))
    for bot in created:
        await eventually(lambda bot=bot: _trades(db, bot.id, 3), timeout=10)  # type: ignore[misc]


async def _trades(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, count: int) -> bool:
    return len(await trades_of(db, bot_id)) == count


def _split(first: EngineRuntime, second: EngineRuntime) -> bool:
    assert first.ownership is not None and second.ownership is not None
    held = [len(first.ownership.held), len(second.ownership.held)]
    return sum(held) == ENGINE_PARTITIONS and min(held) > 0


async def _owner(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID) -> tuple[str | None, int]:
    async with db() as session:
        row = (
            await session.execute(
                select(EnginePartition.owner, EnginePartition.epoch).where(
                    EnginePartition.partition == partition_of(bot_id)
                )
            )
        ).one()
    return row.owner, int(row.epoch)


async def _open_count(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, count: int) -> bool:
    return sum(1 for r in await orders_of(db, bot_id) if r.status == "open") == count


@pytest.mark.parametrize("environment", ["development", "production"])
def test_parking_orders_is_refused_outside_tests(environment: str, tmp_path: Path) -> None:
    strong = {"internal_keys_token": "k" * 48}  # production refuses placeholder secrets first
    with pytest.raises(ValidationError, match="TEST_PARK_AT"):
        Settings(
            environment=environment, test_park_at="before_place", test_park_file=tmp_path / "parked", **strong
        )
    with pytest.raises(ValidationError, match="TEST_PARK_FILE"):
        Settings(environment="test", test_park_at="after_place")
    assert Settings(environment="test", test_park_at="after_place", test_park_file=tmp_path).test_park_at


async def test_an_engine_that_dies_at_start_fails_the_supervisor_at_once(
    supervisor: EngineSupervisor,
) -> None:
    # An engine that exits by itself (here: TEST_PARK_AT without its file) fails the test at once, with
    # its log, instead of being waited for until the deadline.
    with pytest.raises(AssertionError, match="engine exited") as failed:
        await supervisor.run_until_ready(TEST_PARK_AT="before_place")
    assert "TEST_PARK_FILE" in str(failed.value)
    assert supervisor.spawned == 1


@pytest.mark.timeout(180)
@pytest.mark.parametrize("point", ["before_place", "after_place"])
async def test_a_kill_9_around_a_stops_market_sell_sells_exactly_once(
    point: str,
    supervisor: EngineSupervisor,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    await set_price(sim_http, "95000")
    spec = binance_spec(uuid.uuid4())
    spec.options = {"sell_base_on_stop": True}
    levels = plan_grid(spec.lower, spec.upper, spec.percent, spec.amount, spec.rules()).levels
    api_key, secret = await sim_account(sim_http)
    credentials.set(spec.user_id, "binance", api_key, secret)
    await supervisor.run_until_ready()
    bot = await bots.create(spec)
    await publish_command(bus, bot, BotEvent.START)
    await eventually(lambda: _all_open(db, bot.id), timeout=30)
    # L5 and L4 fill: their slots hold base and rest their sells one level up.
    await set_price(sim_http, levels[4] - D("0.01"))
    await eventually(lambda: _sells(db, bot.id, [4, 5]), timeout=30)
    await eventually(lambda: _all_open(db, bot.id), timeout=30)

    # The next process parks the first order it places at `point`: with nothing left to place, that is the
    # stop's market sell, placed once every cancel is confirmed. It is killed there.
    await supervisor.kill()
    parked = tmp_path / "parked"
    await supervisor.run_until_ready(TEST_PARK_AT=point, TEST_PARK_FILE=str(parked))
    stopping = await bots.request_stop(bot.id)
    await publish_command(bus, stopping, BotEvent.STOP)
    await eventually(lambda: len(_parked(parked)) == 1, timeout=30, message="the market sell never parked")
    await supervisor.kill()
    (market_cid,) = _parked(parked)
    rows = {r.client_order_id: r for r in await orders_of(db, bot.id)}
    assert "-m" in market_cid and rows[market_cid].status == "new" and rows[market_cid].slot == MARKET_SLOT
    at_sim = [o["clientOrderId"] for o in await sim_orders(sim_http, api_key)]
    assert at_sim.count(market_cid) == (1 if point == "after_place" else 0)

    # Restarted as a supervisor would: the market sell is looked up by its client id and placed only if the
    # exchange never saw it; its fill is booked to the two slots and the stop completes.
    await supervisor.run_until_ready()
    await eventually(lambda: _stopped(bots, bot.id), timeout=30, message="the stop never completed")
    at_sim = await sim_orders(sim_http, api_key)
    cids = [o["clientOrderId"] for o in at_sim]
    assert len(cids) == len(set(cids)) and market_cid in cids  # sold once
    # Every exchange fill recorded once: the market sell's one fill as its two slots' shares.
    await eventually(lambda: _fills_match(db, bot.id, sim_http, api_key, folded=True), timeout=30)
    trades = await trades_of(db, bot.id)
    market = [t for t in trades if t.fill_id.rsplit(":", 1)[-1] in ("4", "5") and t.price < levels[5]]
    assert len(market) == 2 and all(t.side == "sell" and t.profit is not None for t in market)
    # What the two buys got (net of their fee in BTC) is sold, down to the lot: no open order is left.
    account = (await sim_http.get(f"/_sim/accounts/{api_key}")).json()
    btc = account["balances"]["binance"]["BTC"]
    assert D(btc["free"]) + D(btc["locked"]) < spec.rules().lot_step
    assert not [o for o in at_sim if o["status"] in ("NEW", "PARTIALLY_FILLED")]


async def _stopped(bots: BotFactory, bot_id: uuid.UUID) -> bool:
    row = await bots.bot(bot_id)
    return row.status == "stopped" and row.stop_reason == "user"
