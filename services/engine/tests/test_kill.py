"""`kill -9` of the engine process at random moments of a live run, restarted each time: nothing is lost,
nothing is placed twice, every exchange fill is recorded exactly once, and the profit adds up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from engine_support import (
    INTERNAL_TOKEN,
    BotFactory,
    CredentialsStub,
    TickPublisher,
    market_pause,
    orders_of,
    publish_command,
)
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_live import binance_spec, recorded_fills, set_price, sim_account, sim_fills, sim_orders

from common.bus import RabbitBus
from common.contracts.bots import BotEvent
from common.exchanges import sim_exchange_env
from common.grid import plan_grid
from common.testing.infra import free_port
from common.testing.wait import eventually
from common.trading.models import EngineState, Order, Trade
from engine.core import Side
from exchange_sim import SimServer

D = Decimal
RUN_SECONDS = 30.0
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app on a free loopback port inside this event loop; yields its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done(), timeout=10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class EngineProcess:
    """`python -m engine` with the test's database, bus, cache, simulator and credentials service."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env = env
        self.port = port
        self.log = log
        self.process: asyncio.subprocess.Process | None = None
        self.kills = 0

    async def spawn(self) -> None:
        """Start a new engine process."""
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "engine", cwd=REPO, env=self.env, stdout=log, stderr=log
            )

    async def kill(self) -> None:
        """SIGKILL: no cleanup of any kind."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            self.kills += 1
        await self.process.wait()

    async def ready(self, http: httpx.AsyncClient) -> bool:
        """True once /health/ready answers 200."""
        try:
            response = await http.get(f"http://127.0.0.1:{self.port}/health/ready", timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200


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


@pytest.fixture(autouse=True)
async def _release_the_killed_engines_leases(db: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    """The killed engines died holding leases: free them so later tests on this database may run engines."""
    yield
    async with db() as session:
        await session.execute(update(EngineState).values(owner=None, lease_expires_at=None))
        await session.commit()


@pytest.mark.timeout(150)
async def test_kill_9_at_random_moments_loses_nothing_and_places_nothing_twice(
    bus: RabbitBus,
    bots: BotFactory,
    sim: SimServer,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    migrated_postgres: str,
    redis_url: str,
    rabbitmq_url: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    rng = random.Random(int(os.environ.get("ENGINE_KILL_SEED", "20241201")))
    spec = binance_spec(uuid.uuid4())
    levels = plan_grid(spec.lower, spec.upper, spec.percent, spec.amount, spec.rules()).levels
    await set_price(sim_http, "95000")
    api_key, secret = await sim_account(sim_http)
    credentials = CredentialsStub()
    credentials.set(spec.user_id, "binance", api_key, secret)
    port = free_port()
    async with serving(credentials.app()) as credentials_url:
        env = {
            **os.environ,
            **sim_exchange_env(sim.url),
            "ENVIRONMENT": "test",
            "LOG_JSON": "false",
            "LOG_LEVEL": "INFO",
            "PORT": str(port),
            "DATABASE_URL": migrated_postgres,
            "REDIS_URL": redis_url,
            "CACHE_NAMESPACE": namespace,
            "RABBITMQ_URL": rabbitmq_url,
            "BUS_NAMESPACE": namespace,
            "CREDENTIALS_URL": credentials_url,
            "INTERNAL_KEYS_TOKEN": INTERNAL_TOKEN,
            "ENGINE_ID": f"kill-{namespace}",
            "EXCHANGE_TIMEOUT_SECONDS": "3",
            "OUTBOX_POLL_SECONDS": "0.2",
            "RECONCILE_INTERVAL_SECONDS": "5",
        }
        engine = EngineProcess(env, port, tmp_path / "engine.log")
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

        deadline = time.monotonic() + RUN_SECONDS
        try:
            async with httpx.AsyncClient() as http:
                await engine.spawn()
                await eventually(lambda: engine.ready(http), timeout=20)
                walk = asyncio.create_task(market())
                try:
                    while time.monotonic() < deadline:
                        if rng.random() < 0.3:
                            # While it starts and reconciles.
                            kill_at = time.monotonic() + rng.uniform(0.1, 1.5)
                        else:
                            await eventually(lambda: engine.ready(http), timeout=20)
                            kill_at = time.monotonic() + rng.uniform(0.3, 3.0)  # while it trades
                        await eventually(
                            lambda at=kill_at: time.monotonic() >= at or walk.done(), timeout=5, interval=0.05
                        )
                        await engine.kill()
                        await engine.spawn()
                finally:
                    walk.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await walk
                # The market rests; the last engine reconciles and catches up.
                await eventually(lambda: engine.ready(http), timeout=30)
                try:
                    await eventually(lambda: _settled(db, bot.id, sim_http, api_key), timeout=45)
                except AssertionError as exc:
                    raise AssertionError(await _explain(db, bot.id, sim_http, api_key)) from exc
                finally:
                    await engine.kill()
        finally:
            if engine.process is not None:
                await engine.kill()  # never leave an engine running after the test

    assert engine.kills >= 3
    at_sim = await sim_orders(sim_http, api_key)
    cids = [o["clientOrderId"] for o in at_sim]
    assert len(cids) == len(set(cids)), "a client order id was placed twice"
    exchange_fills = sim_fills(at_sim)
    assert len(exchange_fills) >= 10, "the run produced too few fills to mean anything"
    assert await recorded_fills(db, bot.id) == exchange_fills
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
                .where(Trade.bot_id == bot.id)
                .order_by(Trade.executed_at, Trade.created_at)
            )
        ).all()
        state = (
            await session.execute(select(EngineState.state).where(EngineState.bot_id == bot.id))
        ).scalar_one()
    assert len(rows) == len(exchange_fills)  # each exactly once
    booked = sum((r.profit for r in rows if r.profit is not None), D(0))
    replayed = replayed_profit(
        [(r.slot, r.side, r.price, r.amount, r.fee, r.fee_currency) for r in rows], "BTC"
    )
    assert abs(booked - replayed) < D("1e-12")
    assert D(state["core"]["realized_profit"]) == booked


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
