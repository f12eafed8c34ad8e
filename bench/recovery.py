"""Recovery from the faults around the engine: time from a fault's end to a bot's next recorded fill.

Scenarios (each run `--runs` times, 5 by default):

* exchange: the exchange drops every WebSocket for `--hold` seconds (3) and answers its next five REST
  requests with 500 and the five after with 429, while the price crosses a live bot's resting buy. The fault
  ends once WebSockets are let in again and the last error has been answered (whoever asked), or 2 s after
  the WebSockets' return if nobody asked for the rest (those are then taken back). Measured: that end → the
  fill's trade row; and from the WebSockets' return.
* bus: RabbitMQ closes the engine's connection (`rabbitmqctl close_connection`, found by its name), and at
  once the price crosses a level of a live bot (its fill goes private stream → bus → engine) and of a paper
  bot (its tick goes over the bus). Measured: the close → each bot's trade row.
* rabbitmq, postgres, redis — only with `--restart-servers`, and ONLY ON A MACHINE OF YOUR OWN: they restart
  the real servers (../shared/SERVICES.md's commands), which everyone else's tests on the machine use. The
  fault ends when the server answers again; then as in `bus`. `BENCH_RESTART_<SERVER>` replaces a server's
  restart command (a shell line), e.g. to restart a private RabbitMQ node given with `--rabbitmq`.

Everything runs in this process: the engine runtime with its production settings (reconciliation every 60 s,
a crossing check per order at most once a second) over a scratch PostgreSQL database, Redis and RabbitMQ
under a namespace of its own (deleted at the end), the exchange simulator (paused: the bench moves prices and
publishes the tick of each trade it makes, as market-data would: one per price move, none while the price
stands still, so a crossing is seen by one tick only), and the credentials route. Printed per scenario:
samples, median and max, how many client order ids reached the exchange twice, and this process's CPU share
(engine, simulator and bench together). Figures only: nothing is asserted.

    uv run python bench/recovery.py [--runs 5] [--scenarios exchange,bus] [--restart-servers]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio as redis
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# This file is bench/recovery.py: drop its directory from the path, or bench/engine.py would shadow `engine`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from bots.commands import command_payload  # noqa: E402
from bots.service import level_rows  # noqa: E402
from common.bus import RabbitBus  # noqa: E402
from common.contracts.bots import BOTS_EXCHANGE, BotEvent  # noqa: E402
from common.contracts.envelope import new_message_id  # noqa: E402
from common.contracts.market import MARKET_EXCHANGE, PriceTick  # noqa: E402
from common.db import create_engine, create_session_factory  # noqa: E402
from common.exchanges import Exchange, sim_exchange_env  # noqa: E402
from common.grid import MarketRules, plan_grid  # noqa: E402
from common.testing.infra import DEFAULT_POSTGRES, DEFAULT_RABBITMQ, DEFAULT_REDIS  # noqa: E402
from common.testing.rabbit import close_connection  # noqa: E402
from common.testing.shared import shared_file  # noqa: E402
from common.testing.sweep import sweep_namespaces  # noqa: E402
from engine.runtime import EngineRuntime  # noqa: E402
from engine.settings import Settings  # noqa: E402
from exchange_sim import SimServer, SimSettings  # noqa: E402
from trading.migrate import upgrade  # noqa: E402
from trading.models import SCHEMA, Bot, Order, Trade  # noqa: E402

D = Decimal
TOKEN = "bench-recovery-internal-token-0123456789abcdef-0123456789abcdef"
LIVE_START = D(95_000)  # the live bot starts here: a buy rests at every level below
PAPER_START = D(53_500_000)
RECORDED_WITHIN = 90.0  # 1.5 periodic reconciliations
ERRORS_LAST = 2.0  # after the WebSockets' return, errors nobody asked for are taken back

# ../shared/SERVICES.md: a stopped server is started again by the command that started it.
RESTARTS = {
    "rabbitmq": "rabbitmqctl stop && rabbitmq-server -detached && rabbitmqctl await_startup --timeout 60",
    "postgres": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main restart",
    "redis": (
        "redis-cli -h 127.0.0.1 -p 6379 shutdown nosave; redis-server --daemonize yes --bind 127.0.0.1 -::1 "
        '--port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log'
    ),
}


def binance_rules() -> MarketRules:
    """Binance BTCUSDT as the simulator lists it."""
    info: dict[str, Any] = json.loads(
        shared_file("wire", "binance_exchangeInfo_symbol_BTCUSDT_ccxt.json").read_text()
    )
    market = {"id": "BTCUSDT", "base": "BTC", "quote": "USDT", "maker": 0.001, "taker": 0.001, "info": info}
    return MarketRules.from_ccxt_market(market)


@dataclass
class Grid:
    """A bot and what the bench needs to move its market."""

    bot: Bot
    levels: tuple[Decimal, ...]
    api_key: str | None = None


@dataclass
class Stack:
    """The engine and everything around it."""

    args: argparse.Namespace
    namespace: str
    db_url: str
    sim: SimServer
    http: httpx.AsyncClient
    bus: RabbitBus
    runtime: EngineRuntime
    factory: Any
    live_price: Decimal = LIVE_START
    paper_price: Decimal = PAPER_START
    seq: int = 0
    epoch: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def tick(self, exchange: str, ticker: str, price: Decimal) -> PriceTick:
        """The next tick of a market at one price, as market-data publishes it."""
        self.seq += 1
        now = datetime.now(UTC)
        return PriceTick(
            exchange=Exchange(exchange),
            ticker=ticker,
            last=price,
            high=price,
            low=price,
            seq=self.seq,
            epoch=self.epoch,
            trades=1,
            first_trade_at=now,
            last_trade_at=now,
            published_at=now,
        )

    async def publish_tick(self, exchange: str, ticker: str, price: Decimal) -> None:
        """The tick of one trade, as market-data publishes it (a market with no trades sends none)."""
        tick = self.tick(exchange, ticker, price)
        # The bench's own connection may be down in a restart scenario: that tick is lost, as market-data's
        # would be folded into its next one.
        with contextlib.suppress(Exception):
            await self.bus.publish(MARKET_EXCHANGE, tick.routing_key, tick, persistent=False)

    async def set_live_price(self, price: Decimal) -> None:
        """A trade at the simulator (resting orders it reaches fill), then ticks at that price."""
        response = await self.http.put("/_sim/prices/binance/BTCUSDT", json={"price": str(price)})
        response.raise_for_status()
        self.live_price = price
        await self.publish_tick("binance", "BTCUSDT", price)

    async def set_paper_price(self, price: Decimal) -> None:
        """A trade on the paper bot's market: its tick."""
        self.paper_price = price
        await self.publish_tick("upbit", "KRW-BTC", price)


async def create_bot(factory: Any, **values: Any) -> Grid:
    """A running bot and its levels, as the bots service inserts them."""
    rules: MarketRules = values.pop("rules")
    plan = plan_grid(
        values["lower_price"],
        values["upper_price"],
        values["price_change_percent"],
        values["order_amount"],
        rules,
    )
    now = datetime.now(UTC)
    bot = Bot(
        id=uuid.uuid4(),
        grid_type="geometric",
        grid_count=plan.grid_count,
        investment_amount=plan.investment_amount,
        stop_at_max=False,
        status="running",
        market_rules=rules.to_dict(),
        config_version=1,
        created_at=now,
        updated_at=now,
        first_started_at=now,
        **values,
    )
    async with factory() as session:
        session.add(bot)
        await session.flush()
        session.add_all(level_rows(bot.id, plan.levels))
        await session.commit()
    return Grid(bot, plan.levels)


async def start(stack: Stack, grid: Grid) -> None:
    """bot.start as the bots service's outbox relays it."""
    command_id = new_message_id()
    payload = command_payload(grid.bot, "running", command_id)
    await stack.bus.publish(BOTS_EXCHANGE, BotEvent.START.value, payload, message_id=command_id)


async def open_slots(stack: Stack, bot_id: uuid.UUID, side: str) -> list[int]:
    """The bot's slots with an open order on that side."""
    async with stack.factory() as session:
        rows = await session.execute(
            select(Order.slot).where(Order.bot_id == bot_id, Order.status == "open", Order.side == side)
        )
        return sorted(rows.scalars())


async def recorded(stack: Stack, bot_id: uuid.UUID, cid: str) -> bool:
    """True once a trade of that order is committed."""
    async with stack.factory() as session:
        found = await session.execute(
            select(Trade.id)
            .join(Order, Order.id == Trade.order_id)
            .where(Trade.bot_id == bot_id, Order.client_order_id == cid)
        )
        return found.first() is not None


async def until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Poll until `check` holds; the monotonic time it first did (raises after `within` seconds)."""
    deadline = time.monotonic() + within
    while True:
        try:
            if await check():
                return time.monotonic()
        except Exception:  # a server being restarted: ask again
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {within}s")
        await asyncio.sleep(0.01)


async def highest_buy(stack: Stack, grid: Grid) -> tuple[int, str]:
    """The bot's highest resting buy: its slot and client order id (each run crosses the next one down)."""
    async with stack.factory() as session:
        rows = await session.execute(
            select(Order.slot, Order.client_order_id)
            .where(Order.bot_id == grid.bot.id, Order.status == "open", Order.side == "buy")
            .order_by(Order.slot.desc())
            .limit(1)
        )
        slot, cid = rows.one()
    return int(slot), str(cid)


async def sells_at(stack: Stack, grid: Grid, slot: int) -> bool:
    """True once the slot rests its sell (it bought, and placed its next order)."""
    return slot in await open_slots(stack, grid.bot.id, "sell")


async def resting(stack: Stack, grid: Grid, price: Decimal) -> bool:
    """Every level below the price rests its buy."""
    below = [n for n, level in enumerate(grid.levels) if level < price]
    return await open_slots(stack, grid.bot.id, "buy") == below


async def covered(stack: Stack, grid: Grid) -> bool:
    """The live bot's private stream is up and the bot caught up since it connected."""
    live = stack.runtime.live
    handle = stack.runtime.registry.handles.get(grid.bot.id)
    return live is not None and handle is not None and live.stream_up(handle)


async def exchange_fault(stack: Stack, live: Grid, paper: Grid) -> dict[str, float | None]:
    """WebSockets dropped for a while, 5×500 + 5×429, the price through a buy meanwhile: end → fill recorded."""
    await until(lambda: covered(stack, live), RECORDED_WITHIN, "the live bot's stream covering it")
    slot, cid = await highest_buy(stack, live)
    hold = stack.args.hold
    began = time.monotonic()
    await stack.http.post(
        "/_sim/faults", json={"kind": "drop_websockets", "exchange": "binance", "seconds": hold}
    )
    for kind in ("http_500", "http_429"):
        await stack.http.post("/_sim/faults", json={"kind": kind, "count": 5, "exchange": "binance"})
    await stack.set_live_price(live.levels[slot] - D("0.01"))
    await asyncio.sleep(max(0.0, began + hold - time.monotonic()))  # the fault's own length
    streams_back = time.monotonic()

    async def answered() -> bool:
        return not (await stack.http.get("/_sim/faults")).json()

    try:
        ended = await until(answered, ERRORS_LAST, "the injected errors answered")
    except TimeoutError:
        # Nobody asked for the rest: the exchange answers normally again from here (an engine that stopped
        # asking would otherwise set the fault's end itself, at its next periodic reconciliation).
        await stack.http.delete("/_sim/faults")
        ended = time.monotonic()
    done = await recorded_at(stack, live, cid, slot)
    # Whoever asked got the errors: the fill may be found by the very call after the last of them.
    return {
        "live": None if done is None else max(0.0, done - ended),
        "live, from the WebSockets' return": None if done is None else max(0.0, done - streams_back),
    }


async def recorded_at(stack: Stack, grid: Grid, cid: str, slot: int) -> float | None:
    """When the order's fill was recorded (None: not within RECORDED_WITHIN); then its next order rests."""
    try:
        done = await until(lambda: recorded(stack, grid.bot.id, cid), RECORDED_WITHIN, "fill recorded")
    except TimeoutError:
        return None
    await until(lambda: sells_at(stack, grid, slot), RECORDED_WITHIN, "the bot's next order")
    return done


async def crossing_after(stack: Stack, live: Grid, paper: Grid, ended: float) -> dict[str, float | None]:
    """Both bots' markets cross a level at once: the fault's end → each fill recorded."""
    (live_slot, live_cid), (paper_slot, paper_cid) = (
        await highest_buy(stack, live),
        await highest_buy(stack, paper),
    )
    await stack.set_live_price(live.levels[live_slot] - D("0.01"))
    await stack.set_paper_price(paper.levels[paper_slot] - 1000)
    live_done, paper_done = await asyncio.gather(
        recorded_at(stack, live, live_cid, live_slot), recorded_at(stack, paper, paper_cid, paper_slot)
    )
    return {
        "live": None if live_done is None else live_done - ended,
        "paper": None if paper_done is None else paper_done - ended,
    }


async def bus_fault(stack: Stack, live: Grid, paper: Grid) -> dict[str, float | None]:
    """The broker closes the engine's connection: the close → the next fills."""
    assert stack.runtime.bus is not None
    await until(lambda: covered(stack, live), RECORDED_WITHIN, "the live bot's stream covering it")
    name = getattr(stack.runtime.bus, "connection_name", "")
    await close_connection(stack.args.rabbitmqctl, name, "bench: the broker closes the engine's connection")
    return await crossing_after(stack, live, paper, time.monotonic())


def restart_fault(server: str) -> Callable[[Stack, Grid, Grid], Awaitable[dict[str, float | None]]]:
    """A real restart of one server (see the module doc): the server answering again → the next fills."""

    async def restart(stack: Stack, live: Grid, paper: Grid) -> dict[str, float | None]:
        command = os.environ.get(f"BENCH_RESTART_{server.upper()}", RESTARTS[server])
        process = await asyncio.create_subprocess_shell(
            command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        await process.wait()
        ended = await until(lambda: answers(stack, server), 120, f"{server} answering")
        await until(lambda: covered(stack, live), RECORDED_WITHIN, "the live bot's stream covering it")
        return await crossing_after(stack, live, paper, ended)

    return restart


async def answers(stack: Stack, server: str) -> bool:
    """True when the server takes a request."""
    args = stack.args
    if server == "postgres":
        connection = await asyncpg.connect(args.postgres, timeout=2)
        await connection.close()
        return True
    if server == "redis":
        client = redis.from_url(args.redis)
        try:
            return bool(await client.ping())
        finally:
            await client.aclose()
    process = await asyncio.create_subprocess_exec(
        args.rabbitmqctl,
        "await_startup",
        "--timeout",
        "5",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await process.wait() == 0


async def scenario(
    stack: Stack,
    name: str,
    fault: Callable[[Stack, Grid, Grid], Awaitable[dict[str, float | None]]],
    live: Grid,
    paper: Grid,
) -> None:
    """Run one scenario `--runs` times and print its figures."""
    samples: dict[str, list[float | None]] = {}
    began, cpu = time.monotonic(), time.process_time()
    for _ in range(stack.args.runs):
        for key, value in (await fault(stack, live, paper)).items():
            samples.setdefault(key, []).append(value)
    share = (time.process_time() - cpu) / (time.monotonic() - began)
    orders = (
        await stack.http.get("/_sim/orders", params={"apiKey": live.api_key, "exchange": "binance"})
    ).json()
    cids = [o["clientOrderId"] for o in orders]
    for key, values in samples.items():
        seen = [v for v in values if v is not None]
        figures = (
            f"median={statistics.median(seen):.2f}s max={max(seen):.2f}s" if seen else "no fill recorded"
        )
        print(
            f"{name:9} {key}: fault end → next fill recorded: n={len(values)} {figures}  "
            f"not recorded within {RECORDED_WITHIN:.0f}s={len(values) - len(seen)}  "
            f"placed twice={len(cids) - len(set(cids))}  process CPU share={share:.2f}",
            flush=True,
        )


def credentials_app(keys: dict[str, tuple[str, str]]) -> Starlette:
    """The credentials service's internal keys route, in-process."""

    async def route(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"success": False}, status_code=401)
        found = keys.get(request.path_params["user_id"])
        if found is None:
            return JSONResponse(
                {"success": False, "error": {"code": "CREDENTIAL_NOT_FOUND"}}, status_code=404
            )
        return JSONResponse({"success": True, "data": {"apiKey": found[0], "secretKey": found[1]}})

    return Starlette(routes=[Route("/internal/credentials/{user_id}/{exchange}", route)])


async def run(args: argparse.Namespace) -> None:
    """Set the stack up, run the scenarios, take everything down."""
    namespace = f"benchrec{uuid.uuid4().hex[:8]}"
    name = f"gridbot_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.postgres)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    db_url = args.postgres.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0] + f"/{name}"
    sim = SimServer(SimSettings(port=0, replay_speed=0, log_level="WARNING", fault_timeout_seconds=3))
    await sim.start()
    db = create_engine(db_url, schemas=[SCHEMA])
    keys: dict[str, tuple[str, str]] = {}
    try:
        await asyncio.to_thread(upgrade, db_url)
        http = httpx.AsyncClient(base_url=sim.url, timeout=10)
        exchange_urls: dict[str, Any] = {
            key.lower(): value for key, value in sim_exchange_env(sim.url).items()
        }
        settings = Settings(
            environment="development",
            log_json=False,
            database_url=db_url,
            redis_url=args.redis,
            cache_namespace=namespace,
            rabbitmq_url=args.rabbitmq,
            bus_namespace=namespace,
            engine_id=f"bench-{namespace}",
            credentials_url="http://credentials.bench",
            internal_keys_token=TOKEN,
            **exchange_urls,
        )
        runtime = EngineRuntime(settings, credentials_transport=httpx.ASGITransport(credentials_app(keys)))
        await runtime.start()
        bus = RabbitBus(args.rabbitmq, namespace, connection_name=f"bench-recovery:{namespace}")
        await bus.start()
        stack = Stack(args, namespace, db_url, sim, http, bus, runtime, create_session_factory(db))
        try:
            await stack.set_live_price(LIVE_START)
            account = (await http.post("/_sim/accounts", json={"balances": {"USDT": "10000"}})).json()
            # Every run crosses the next resting buy down: as many levels below the start as runs in all.
            wanted = args.runs * len(args.scenarios.split(",")) + 2
            live = await create_bot(
                stack.factory,
                user_id=uuid.uuid4(),
                exchange="binance",
                ticker="BTCUSDT",
                mode="live",
                lower_price=(LIVE_START * D("0.99") ** wanted).quantize(D("0.01")),
                upper_price=D(110_000),
                price_change_percent=D(1),
                order_amount=D(20),
                rules=binance_rules(),
            )
            live.api_key = account["apiKey"]
            keys[str(live.bot.user_id)] = (account["apiKey"], account["secretKey"])
            paper = await create_bot(
                stack.factory,
                user_id=uuid.uuid4(),
                exchange="upbit",
                ticker="KRW-BTC",
                mode="paper",
                lower_price=(PAPER_START * D("0.98") ** wanted).quantize(D(1000)),
                upper_price=D(70_000_000),
                price_change_percent=D(2),
                order_amount=D(10_000),
                rules=MarketRules.upbit_krw(base="BTC"),
            )
            assert runtime.cache is not None
            await runtime.cache.hset(
                "price:upbit:KRW-BTC", {"price": str(PAPER_START), "timestamp": datetime.now(UTC).isoformat()}
            )
            await start(stack, live)
            await start(stack, paper)
            await until(lambda: resting(stack, live, LIVE_START), 300, "live bot started")
            await until(lambda: resting(stack, paper, PAPER_START), 60, "paper bot started")
            faults: dict[str, Callable[[Stack, Grid, Grid], Awaitable[dict[str, float | None]]]] = {
                "exchange": exchange_fault,
                "bus": bus_fault,
                **{server: restart_fault(server) for server in RESTARTS},
            }
            for scenario_name in args.scenarios.split(","):
                if scenario_name in RESTARTS and not args.restart_servers:
                    print(
                        f"{scenario_name:9} skipped: restarts a real server (--restart-servers, own machine only)"
                    )
                    continue
                await scenario(stack, scenario_name, faults[scenario_name], live, paper)
        finally:
            await runtime.stop()
            await bus.close()
            await http.aclose()
    finally:
        await db.dispose()
        await sim.stop()
        admin = await asyncpg.connect(args.postgres)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        await asyncio.to_thread(sweep_namespaces, args.rabbitmq, [namespace])


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hold", type=float, default=3.0, help="seconds the exchange drops every WebSocket")
    parser.add_argument("--scenarios", default="exchange,bus,rabbitmq,postgres,redis")
    parser.add_argument(
        "--restart-servers",
        action="store_true",
        help="also restart RabbitMQ, PostgreSQL and Redis for real: ONLY on a machine of your own",
    )
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--rabbitmq", default=os.environ.get("BENCH_RABBITMQ_URL", DEFAULT_RABBITMQ))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--rabbitmqctl", default=shutil.which("rabbitmqctl") or "rabbitmqctl")
    # Figures only: the faults' own noise (reconnections, retries, refused calls) is expected.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s %(message)s")
    for noisy in ("aio_pika", "aiormq", "engine", "common", "exchange_sim", "uvicorn"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
