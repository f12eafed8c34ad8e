"""Engine replicas as real processes: random SIGKILLs of any replica during a live run, a replica frozen
(SIGSTOP) past its ownership and woken again, and a rolling restart of every replica. The simulator is the
exchange (through ccxt), PostgreSQL and RabbitMQ are real, and recovery is left to the replicas alone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
import uuid
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest
from engine_process import REPLICA_TTL_SECONDS, EngineSupervisor
from engine_support import (
    BotFactory,
    CredentialsStub,
    TickPublisher,
    market_pause,
    orders_of,
    publish_command,
    trades_of,
)
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_kill import _explain, _settled
from test_kill import check_books as books
from test_live import binance_spec, set_price, sim_account, sim_orders

from common.bus import RabbitBus
from common.contracts.bots import BotEvent
from common.grid import plan_grid
from common.testing.wait import eventually
from engine.assignment import assign
from trading.models import Bot, EnginePartition, EngineReplica, EngineState
from trading.partitions import partition_of

D = Decimal
Cluster = Callable[[str], EngineSupervisor]


def bot_id_on(replica: str, replicas: list[str]) -> uuid.UUID:
    """A new bot id whose partition the live set `replicas` assigns to `replica`."""
    while True:
        candidate = uuid.uuid4()
        if assign(partition_of(candidate), replicas) == replica:
            return candidate


async def owner_of(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID) -> tuple[str | None, int]:
    """The replica holding the bot's partition, and the partition's epoch."""
    async with db() as session:
        row = (
            await session.execute(
                select(EnginePartition.owner, EnginePartition.epoch).where(
                    EnginePartition.partition == partition_of(bot_id)
                )
            )
        ).one()
    return row.owner, int(row.epoch)


async def heartbeat(db: async_sessionmaker[AsyncSession], replica: str) -> float:
    """Seconds since the replica's last heartbeat, by the database's clock."""
    async with db() as session:
        age = await session.scalar(
            select(func.extract("epoch", func.now() - EngineReplica.heartbeat_at)).where(
                EngineReplica.replica_id == replica
            )
        )
    return float(age) if age is not None else float("inf")


async def live_bots(
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    bus: RabbitBus,
    ids: list[uuid.UUID],
) -> list[tuple[Bot, str]]:
    """Live BTCUSDT bots with these ids, one simulator account each, started; (bot, api key) pairs."""
    started = []
    for bot_id in ids:
        spec = binance_spec(uuid.uuid4())
        api_key, secret = await sim_account(sim_http)
        credentials.set(spec.user_id, "binance", api_key, secret)
        bot = await bots.create(spec, bot_id=bot_id)
        await publish_command(bus, bot, BotEvent.START)
        started.append((bot, api_key))
    return started


async def settle(
    db: async_sessionmaker[AsyncSession],
    sim_http: httpx.AsyncClient,
    bot: Bot,
    api_key: str,
    within: float = 30,
) -> None:
    """Until the engine agrees with the exchange about the bot (failing with where they disagree)."""
    try:
        await eventually(lambda: _settled(db, bot.id, sim_http, api_key), timeout=within)
    except AssertionError as exc:
        async with db() as session:
            row = (await session.execute(select(Bot.status, Bot.error_message).where(Bot.id == bot.id))).one()
            state = await session.scalar(select(EngineState.state).where(EngineState.bot_id == bot.id))
        core = (state or {}).get("core", {})
        where = f"status {row.status} ({row.error_message}), core {core.get('phase')}, pending {state and state.get('pending_start')}"
        raise AssertionError(
            f"bot {bot.id}: {where}; {await _explain(db, bot.id, sim_http, api_key)}"
        ) from exc


async def check_books(
    db: async_sessionmaker[AsyncSession], sim_http: httpx.AsyncClient, bot: Bot, api_key: str
) -> int:
    """The kill test's books check (`test_kill.check_books`), and the bot running; the fill count."""
    fills, state = await books(db, sim_http, bot.id, api_key)
    async with db() as session:
        status = await session.scalar(select(Bot.status).where(Bot.id == bot.id))
    assert status == "running" and state["core"]["phase"] == "running"
    return fills


@pytest.mark.timeout(420)
async def test_random_kills_of_three_replicas_lose_nothing_and_place_nothing_twice(
    cluster: Cluster,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    rng = random.Random(int(os.environ.get("ENGINE_KILL_SEED", "20261202")))
    names = ["engine-a", "engine-b", "engine-c"]
    replicas = {name: cluster(name) for name in names}
    await set_price(sim_http, "95000")
    for replica in replicas.values():
        replica.env["RECONCILE_INTERVAL_SECONDS"] = "5"
        # The simulator publishes no limits, and thirty restarts in a minute (each with new clients, market
        # loads and reconciliations of six accounts) spend more Binance weight than hours of normal trading:
        # at the production budget the run would measure the budget's wait, not the replicas.
        replica.env["EXCHANGE_BUDGET_LIMITS"] = '{"binance.weight": 100000}'
        await replica.spawn()
    for replica in replicas.values():
        await replica.run_until_ready()
    # Two bots on each replica's share of the partitions.
    pairs = await live_bots(
        bots, credentials, sim_http, bus, [bot_id_on(name, names) for name in names for _ in range(2)]
    )
    levels = plan_grid(D(90_000), D(110_000), D(1), D(20), binance_spec(uuid.uuid4()).rules()).levels
    ticks = TickPublisher(bus, "binance", "BTCUSDT")
    price = D(95_000)

    async def market() -> None:
        nonlocal price
        while True:
            target = levels[rng.randint(1, 8)] + D(rng.choice((-1, 1))) * D("0.01")
            low, high = min(price, target), max(price, target)
            price = target
            await set_price(sim_http, price)
            await ticks.send(ticks.tick(price, high, low))
            await market_pause(rng)

    walk = asyncio.create_task(market())
    kills = 0
    try:
        while kills < 30:
            name = rng.choice(names)
            replica = replicas[name]
            if replica.process is None or replica.process.returncode is not None:
                await replica.spawn()  # a supervisor's restart, at once
            at = time.monotonic() + rng.uniform(0.2, 2.0)
            await eventually(lambda at=at: time.monotonic() >= at or walk.done(), timeout=5, interval=0.05)
            await replica.kill()
            kills += 1
            if rng.random() < 0.7:
                await replica.spawn()  # restarted at once; else it stays down until it is picked again
    finally:
        walk.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await walk
    for replica in replicas.values():
        await replica.run_until_ready()
    fills = 0
    for bot, api_key in pairs:
        await settle(db, sim_http, bot, api_key, 60)
        fills += await check_books(db, sim_http, bot, api_key)
    assert sum(r.kills for r in replicas.values()) == 30
    assert fills >= 20, "the run produced too few fills to mean anything"


@pytest.mark.timeout(240)
async def test_a_replica_frozen_past_its_ownership_writes_and_places_nothing_when_it_wakes(
    cluster: Cluster,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    names = ["engine-a", "engine-b"]
    frozen, other = cluster("engine-a"), cluster("engine-b")
    for replica in (frozen, other):
        await replica.run_until_ready()
    await set_price(sim_http, "95000")
    [(bot, api_key)] = await live_bots(bots, credentials, sim_http, bus, [bot_id_on("engine-a", names)])
    await eventually(lambda: _open_buys(db, bot.id, 5), timeout=30)
    assert (await owner_of(db, bot.id))[0] == "engine-a"
    levels = plan_grid(D(90_000), D(110_000), D(1), D(20), binance_spec(uuid.uuid4()).rules()).levels
    ticks = TickPublisher(bus, "binance", "BTCUSDT")

    await frozen.signal(signal.SIGSTOP)
    # The other replica sees the frozen one's heartbeat go stale and takes the bot over (a new epoch).
    # (A deadline, not a figure: on a loaded machine the processes get their turns late.)
    await eventually(lambda: _owned_by(db, bot.id, "engine-b"), timeout=REPLICA_TTL_SECONDS + 30)
    # The market falls through L5 and L4: the new owner records both fills and rests the sells above them.
    await set_price(sim_http, levels[4] - D("0.01"))
    await ticks.send(ticks.tick(levels[4] - D("0.01"), D(95_000), levels[4] - D("0.01")))
    await eventually(lambda: _sells_at(db, bot.id, [4, 5]), timeout=30)
    await eventually(lambda: _settled(db, bot.id, sim_http, api_key), timeout=30)
    # A tick the frozen replica will read when it wakes: it still thinks it drives the bot, and the tick
    # crosses the bot's sell and its next buy.
    await ticks.send(ticks.tick(levels[5] + D("0.01"), levels[5] + D("0.01"), levels[3] - D("0.01")))
    before_orders = await sim_orders(sim_http, api_key)
    before_rows = {r.client_order_id: r.status for r in await orders_of(db, bot.id)}
    before_trades = len(await trades_of(db, bot.id))
    before_state = await _version(db, bot.id)
    owner_epoch = (await owner_of(db, bot.id))[1]

    await frozen.signal(signal.SIGCONT)
    # Woken, it heartbeats again and finds the partition gone (its log says so): from then on it holds
    # nothing of the bot's; what it tried before that (the tick it had queued) met the fence.
    await eventually(lambda: "lost partitions" in frozen.tail(20_000), timeout=20)
    await eventually(lambda: _heartbeat_within(db, "engine-a", 1.0), timeout=10)

    # The market did not move at the exchange: the owner had nothing to do, and the woken replica wrote,
    # placed and cancelled nothing.
    assert await sim_orders(sim_http, api_key) == before_orders
    assert {r.client_order_id: r.status for r in await orders_of(db, bot.id)} == before_rows
    assert len(await trades_of(db, bot.id)) == before_trades
    assert await _version(db, bot.id) == before_state
    # The partition is still engine-b's, or already on its way back to the woken replica, which the
    # assignment gives it now that it heartbeats again (released: no owner, the same epoch; claimed: a newer
    # epoch). Never engine-a's under the epoch it lost.
    owner, epoch = await owner_of(db, bot.id)
    assert (owner, epoch) in {("engine-b", owner_epoch), (None, owner_epoch)} or (
        owner == "engine-a" and epoch > owner_epoch
    ), (owner, epoch, owner_epoch)
    assert _alive(frozen)


@pytest.mark.timeout(300)
async def test_a_rolling_restart_of_every_replica_leaves_no_bot_undriven_beyond_the_takeover_goal(
    cluster: Cluster,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    names = ["engine-a", "engine-b"]
    replicas = [cluster(name) for name in names]
    for replica in replicas:
        await replica.run_until_ready()
    await set_price(sim_http, "95000")
    pairs = await live_bots(bots, credentials, sim_http, bus, [bot_id_on(name, names) for name in names])
    for bot, _ in pairs:
        await eventually(lambda bot=bot: _open_buys(db, bot.id, 5), timeout=30)
    gaps: list[float] = []
    watcher = asyncio.create_task(_watch_gaps(db, [bot.id for bot, _ in pairs], gaps))  # noqa: RUF006
    try:
        for replica in replicas:
            await replica.signal(signal.SIGTERM)  # hands its partitions over, then exits
            assert replica.process is not None
            await replica.process.wait()
            await replica.run_until_ready()  # back under its name: it takes its share again
            await eventually(lambda: _all_owned_by_live(db, [b.id for b, _ in pairs], names), timeout=20)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    assert gaps, "the watch never ran"
    assert max(gaps) < 10.0, f"a bot was undriven for {max(gaps):.2f} s"
    # Still trading: the market falls through L5 and L4; every bot records both fills and rests its sells.
    levels = plan_grid(D(90_000), D(110_000), D(1), D(20), binance_spec(uuid.uuid4()).rules()).levels
    await set_price(sim_http, levels[4] - D("0.01"))
    ticks = TickPublisher(bus, "binance", "BTCUSDT")
    await ticks.send(ticks.tick(levels[4] - D("0.01"), D(95_000), levels[4] - D("0.01")))
    for bot, api_key in pairs:
        await settle(db, sim_http, bot, api_key)
        assert await _sells_at(db, bot.id, [4, 5]), [
            (r.side, r.slot, r.status) for r in await orders_of(db, bot.id)
        ]
        await check_books(db, sim_http, bot, api_key)


async def _watch_gaps(
    db: async_sessionmaker[AsyncSession], bot_ids: list[uuid.UUID], gaps: list[float]
) -> None:
    """Record, for each stretch where a bot's partition had no live owner, how long it lasted."""
    since: dict[uuid.UUID, float] = {}
    while True:
        now = time.monotonic()
        for bot_id in bot_ids:
            owner, _ = await owner_of(db, bot_id)
            driven = owner is not None and await heartbeat(db, owner) < REPLICA_TTL_SECONDS
            if not driven:
                since.setdefault(bot_id, now)
            elif bot_id in since:
                gaps.append(now - since.pop(bot_id))
        gaps.append(0.0)
        await asyncio.sleep(0.05)  # the watch's sampling period, not a synchronisation


async def _all_owned_by_live(
    db: async_sessionmaker[AsyncSession], bot_ids: list[uuid.UUID], names: list[str]
) -> bool:
    for bot_id in bot_ids:
        owner, _ = await owner_of(db, bot_id)
        if owner != assign(partition_of(bot_id), names):
            return False
    return True


async def _owned_by(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, replica: str) -> bool:
    return (await owner_of(db, bot_id))[0] == replica


async def _heartbeat_within(db: async_sessionmaker[AsyncSession], replica: str, seconds: float) -> bool:
    return await heartbeat(db, replica) < seconds


def _alive(replica: EngineSupervisor) -> bool:
    return replica.process is not None and replica.process.returncode is None


async def _open_buys(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, count: int) -> bool:
    rows = await orders_of(db, bot_id)
    return sum(1 for r in rows if r.side == "buy" and r.status == "open") >= count


async def _sells_at(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, slots: list[int]) -> bool:
    rows = await orders_of(db, bot_id)
    return sorted(r.slot for r in rows if r.side == "sell" and r.status == "open") == slots


async def _version(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID) -> int:
    async with db() as session:
        version = await session.scalar(select(EngineState.version).where(EngineState.bot_id == bot_id))
    return int(version or 0)
