"""Engine throughput and latency: N running paper bots over 20 tickers in PostgreSQL, ticks on RabbitMQ.

For each bot count (default 1,000 and 10,000) a fresh database gets the bots schema and N paper bots
(random geometric grids around each ticker's price, as the bots service would create them); the engine
runtime starts in this process and starts them (placing their first orders); then three phases run:

* quiet: ticks at a fixed rate (default 2,500/s over 20 tickers) that move the price a hair: what the
  engine must keep up with at any bot count (ticks/s published and consumed; dropped = not consumed);
* fills: ticks sweeping each price down and up through many levels: committed fills/s (each fill is
  a trade row committed together with the core state, levels, the next order and the outbox);
* settle: one tick per ticker at its price, which fills the orders the fills phase's last ticks left
  marketable (reported as settle_*: a burst, not the pace below);
* latency: ticks at market-data's pace (one per ticker per 100 ms) that cross levels: tick publication
  (the publisher's clock when it built the tick; the earliest of the ticks a ticker's worker folded
  together) → commit of the order it caused (an idle level armed, or the next order after a paper fill,
  which the paper broker applies in the very transaction that detected it): p50 / p99.

    uv run python bench/engine.py [--bots 1000,10000] [--seconds 10] [--rate 2500] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import multiprocessing
import os
import pstats
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
from sqlalchemy import insert

# This file is bench/engine.py: drop its directory from the path, or it would shadow the `engine` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from bots.migrate import upgrade  # noqa: E402
from common.bus import create_bus  # noqa: E402
from common.contracts.market import MARKET_EXCHANGE, PriceTick  # noqa: E402
from common.db import create_engine, create_session_factory  # noqa: E402
from common.exchanges import Exchange  # noqa: E402
from common.grid import MarketRules, plan_grid  # noqa: E402
from common.runtime import acquire_cache, release_cache  # noqa: E402
from common.testing.infra import DEFAULT_POSTGRES, DEFAULT_RABBITMQ, DEFAULT_REDIS  # noqa: E402
from common.testing.shared import shared_dir  # noqa: E402
from common.trading.models import SCHEMA, Bot, GridLevel  # noqa: E402
from engine.runtime import EngineRuntime  # noqa: E402
from engine.settings import Settings  # noqa: E402

D = Decimal
TICKERS = [f"B{n:02d}USDT" for n in range(20)]
BASE_PRICE = D(100_000)


def rules() -> MarketRules:
    """Binance BTCUSDT's rules (tick 0.01, step 0.00001, min notional 5)."""
    path = shared_dir() / "wire" / "binance_exchangeInfo_symbol_BTCUSDT_ccxt.json"
    if path.exists():
        info: dict[str, Any] = json.loads(path.read_text())
        market = {
            "id": "BTCUSDT",
            "base": "BTC",
            "quote": "USDT",
            "maker": 0.001,
            "taker": 0.001,
            "info": info,
        }
        return MarketRules.from_ccxt_market(market)
    return MarketRules.binance(
        base="BTC",
        quote="USDT",
        tick_size=D("0.01"),
        lot_step=D("0.00001"),
        min_qty=D("0.00001"),
        min_notional=D(5),
    )


async def create_database(admin: str) -> str:
    """A fresh database; its SQLAlchemy URL."""
    name = f"gridbot_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0] + f"/{name}"


async def drop_database(admin: str, url: str) -> None:
    """Drop the bench database."""
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def seed(url: str, count: int, rng: random.Random) -> None:
    """N running paper bots with their grid levels, inserted as the bots service would create them."""
    market = rules()
    engine = create_engine(url, schemas=[SCHEMA])
    factory = create_session_factory(engine)
    now = datetime.now(UTC)
    bots: list[dict[str, Any]] = []
    levels: list[dict[str, Any]] = []
    for n in range(count):
        lower = (BASE_PRICE * D(1 - rng.uniform(0.04, 0.12))).quantize(D("0.01"))
        upper = (BASE_PRICE * D(1 + rng.uniform(0.04, 0.12))).quantize(D("0.01"))
        percent = D(str(round(rng.uniform(0.4, 1.5), 2)))
        plan = plan_grid(lower, upper, percent, D(20), market)
        bot_id = uuid.uuid4()
        bots.append(
            {
                "id": bot_id,
                "user_id": uuid.uuid4(),
                "exchange": "binance",
                "ticker": TICKERS[n % len(TICKERS)],
                "mode": "paper",
                "grid_type": "geometric",
                "lower_price": lower,
                "upper_price": upper,
                "price_change_percent": percent,
                "grid_count": plan.grid_count,
                "order_amount": D(20),
                "investment_amount": plan.investment_amount,
                "stop_at_max": False,
                "status": "running",
                "market_rules": market.to_dict(),
                "config_version": 1,
                "created_at": now,
                "updated_at": now,
                "first_started_at": now,
            }
        )
        for i, price in enumerate(plan.levels):
            levels.append(
                {
                    "id": uuid.uuid4(),
                    "bot_id": bot_id,
                    "level_index": i,
                    "price": price,
                    "type": "buy" if i < len(plan.levels) - 1 else "sell",
                    "status": "available",
                    "updated_at": now,
                }
            )
    async with factory() as session, session.begin():
        for start in range(0, len(bots), 2000):
            await session.execute(insert(Bot.__table__), bots[start : start + 2000])
        for start in range(0, len(levels), 5000):
            await session.execute(insert(GridLevel.__table__), levels[start : start + 5000])
    await engine.dispose()


class Market:
    """Per-ticker prices and tick sequences (one publisher epoch)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.epoch = uuid.uuid4().hex[:12]
        self.seq = dict.fromkeys(TICKERS, 0)
        self.price = dict.fromkeys(TICKERS, BASE_PRICE)

    def tick(self, ticker: str, move: float) -> PriceTick:
        """The next tick of a ticker, the price moved by `move` (a fraction, e.g. 0.001 = 0.1 %)."""
        before = self.price[ticker]
        after = (before * D(1 + move)).quantize(D("0.01"))
        # Keep every ticker inside the band the grids cover.
        after = min(max(after, BASE_PRICE * D("0.9")), BASE_PRICE * D("1.1"))
        self.price[ticker] = after
        self.seq[ticker] += 1
        now = datetime.now(UTC)
        return PriceTick(
            exchange=Exchange.BINANCE,
            ticker=ticker,
            last=after,
            high=max(before, after),
            low=min(before, after),
            seq=self.seq[ticker],
            epoch=self.epoch,
            trades=1,
            first_trade_at=now,
            last_trade_at=now,
            published_at=now,
        )


async def _publish_at(
    url: str, namespace: str, market: Market, rate: float, seconds: float, move: float
) -> int:
    bus = create_bus(url, namespace)
    await bus.start()
    sent = 0
    started = time.perf_counter()
    try:
        while (elapsed := time.perf_counter() - started) < seconds:
            due = int(rate * elapsed) - sent
            batch = []
            for _ in range(max(0, due)):
                ticker = TICKERS[sent % len(TICKERS)]
                tick = market.tick(ticker, market.rng.gauss(0, move))
                batch.append(bus.publish(MARKET_EXCHANGE, tick.routing_key, tick, persistent=False))
                sent += 1
            if batch:
                await asyncio.gather(*batch)
            await asyncio.sleep(0.005)
    finally:
        await bus.close()
    return sent


def _publisher(
    url: str, namespace: str, market: Market, rate: float, seconds: float, move: float, out: Any
) -> None:
    sent = asyncio.run(_publish_at(url, namespace, market, rate, seconds, move))
    out.put((sent, market.seq, market.price, market.rng.getstate()))


async def publish_at(
    url: str, namespace: str, market: Market, rate: float, seconds: float, move: float
) -> int:
    """Publish ticks round-robin over the tickers at `rate`/s for `seconds`, from another process (so the
    publisher does not share the engine's CPU); the count sent."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    process = context.Process(target=_publisher, args=(url, namespace, market, rate, seconds, move, out))
    process.start()
    sent, market.seq, market.price, state = await asyncio.to_thread(out.get)
    market.rng.setstate(state)
    await asyncio.to_thread(process.join)
    return int(sent)


async def wait_quiet(runtime: EngineRuntime, url: str, namespace: str, within: float = 600) -> None:
    """Until no shard has work queued, the outbox is empty and the fill queue is empty at the broker."""
    deadline = time.monotonic() + within
    assert runtime.relay is not None
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()

        async def quiet() -> bool:
            queue = await channel.declare_queue(f"{namespace}.engine.fills", passive=True)
            return (
                all(s.backlog == 0 for s in runtime.shards)
                and runtime.fills is not None
                and runtime.fills.in_flight == 0
                and await runtime.relay.pending() == 0  # type: ignore[union-attr]
                and queue.declaration_result.message_count == 0
            )

        while time.monotonic() < deadline:
            if await quiet():
                fills = runtime.metrics.fills
                await asyncio.sleep(0.5)
                if await quiet() and runtime.metrics.fills == fills:
                    return
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
    raise TimeoutError(
        f"the engine did not settle: backlog {[s.backlog for s in runtime.shards]}, "
        f"fills in flight {runtime.fills.in_flight if runtime.fills else None}"
    )


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine so far (Linux /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def phase_quiet(
    runtime: EngineRuntime, args: argparse.Namespace, namespace: str, market: Market
) -> dict[str, Any]:
    """Ticks that move the price a hair (~0.001 %): what the index must absorb at any bot count."""
    runtime.metrics.reset()
    sent = await publish_at(args.rabbitmq, namespace, market, args.rate, args.seconds, 0.00001)
    await wait_quiet(runtime, args.rabbitmq, namespace)
    return {
        "quiet_ticks_published_per_s": round(sent / args.seconds),
        "quiet_ticks_consumed_per_s": round(runtime.metrics.ticks / args.seconds),
        "quiet_ticks_dropped": sent - runtime.metrics.ticks,
    }


async def phase_fills(
    runtime: EngineRuntime, args: argparse.Namespace, namespace: str, market: Market
) -> dict[str, Any]:
    """Big swings through many levels: committed fills per second while the backlog drains."""
    runtime.metrics.reset()
    began, cpu = time.perf_counter(), time.process_time()
    await publish_at(args.rabbitmq, namespace, market, 200, args.seconds, 0.004)
    await wait_quiet(runtime, args.rabbitmq, namespace)
    elapsed = time.perf_counter() - began
    m = runtime.metrics
    return {
        "fills_committed": m.fills,
        "fills_per_s": round(m.fills / elapsed),
        "fill_phase_s": round(elapsed, 1),
        "fill_phase_cpu_share": round((time.process_time() - cpu) / elapsed, 2),
        "transactions_per_s": round(m.transactions / elapsed),
        "work_per_transaction": round(m.work_items / max(1, m.transactions), 1),
        "ms_per_transaction": round(m.commit_seconds / max(1, m.transactions) * 1000, 1),
    }


async def settle(
    runtime: EngineRuntime, args: argparse.Namespace, namespace: str, market: Market
) -> dict[str, Any]:
    """One tick per ticker at its current price, then quiet: the book as the previous phase left it settles.

    The last (folded) ticks of the fills phase leave orders that are already marketable (an order rests
    from the tick after the fill that placed it): they all fill on the next tick of their ticker. That
    burst is the fills phase's tail, not latency at market-data's pace, so it is taken here and reported
    on its own (settle_*), and the latency phase starts from a settled book.
    """
    runtime.metrics.reset()
    began = time.perf_counter()
    bus = create_bus(args.rabbitmq, namespace)
    await bus.start()
    try:
        for ticker in TICKERS:
            tick = market.tick(ticker, 0.0)
            await bus.publish(MARKET_EXCHANGE, tick.routing_key, tick, persistent=False)
    finally:
        await bus.close()
    await wait_quiet(runtime, args.rabbitmq, namespace)
    m = runtime.metrics
    values = [v * 1000 for v in m.tick_to_order]
    return {
        "settle_fills": m.fills,
        "settle_s": round(time.perf_counter() - began, 1),
        "settle_tick_to_order_p50_ms": round(percentile(values, 50), 1),
        "settle_tick_to_order_p99_ms": round(percentile(values, 99), 1),
    }


async def phase_latency(
    runtime: EngineRuntime, args: argparse.Namespace, namespace: str, market: Market, count: int
) -> dict[str, Any]:
    """Market-data's pace (one tick per ticker per 100 ms), moves scaled to the grids' density so that
    fills come at a rate the engine sustains: tick publication -> commit of the order it caused."""
    runtime.metrics.reset()
    began, cpu = time.perf_counter(), time.process_time()
    busy0, total0 = machine_busy()
    lags: list[float] = []
    in_flight: list[float] = []
    backlog: list[float] = []

    async def lag_monitor() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append((time.perf_counter() - before - 0.005) * 1000)
            in_flight.append(runtime.fills.in_flight if runtime.fills else 0)
            backlog.append(sum(s.backlog for s in runtime.shards))

    monitor = asyncio.create_task(lag_monitor())
    await publish_at(args.rabbitmq, namespace, market, 200, args.seconds, args.latency_move * 1000 / count)
    await wait_quiet(runtime, args.rabbitmq, namespace)
    monitor.cancel()
    elapsed = time.perf_counter() - began
    busy1, total1 = machine_busy()
    m = runtime.metrics
    figures: dict[str, Any] = {
        "latency_phase_fills_per_s": round(m.fills / elapsed),
        "latency_phase_cpu_share": round((time.process_time() - cpu) / elapsed, 2),
        "latency_phase_machine_busy": round((busy1 - busy0) / max(1, total1 - total0), 2),
        "loop_lag_p99_ms": round(percentile(lags, 99), 1),
        "fills_in_flight_p50": percentile(in_flight, 50),
        "fills_in_flight_max": max(in_flight, default=0),
        "shard_backlog_p50": percentile(backlog, 50),
        "shard_backlog_p99": percentile(backlog, 99),
        "latency_phase_ms_per_transaction": round(m.commit_seconds / max(1, m.transactions) * 1000, 1),
        "latency_phase_work_per_transaction": round(m.work_items / max(1, m.transactions), 1),
        "latency_phase_shard_busy": round(m.commit_seconds / elapsed / max(1, len(runtime.shards)), 2),
        "latency_samples": len(m.tick_to_order),
    }
    for stage in ("tick_to_order", "tick_to_paper_fill"):
        values = [v * 1000 for v in getattr(m, stage)]
        figures[f"{stage}_p50_ms"] = round(percentile(values, 50), 1)
        figures[f"{stage}_p99_ms"] = round(percentile(values, 99), 1)
    return figures


async def run(count: int, args: argparse.Namespace) -> dict[str, Any]:
    """One bot count: seed, start, the phases; the figures."""
    rng = random.Random(count)
    url = await create_database(args.postgres)
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    try:
        await asyncio.to_thread(upgrade, url)
        began = time.perf_counter()
        await seed(url, count, rng)
        seeded = time.perf_counter() - began
        settings = Settings(
            environment="development",
            database_url=url,
            database_pool_size=20,
            redis_url=args.redis,
            cache_namespace=namespace,
            rabbitmq_url=args.rabbitmq,
            bus_namespace=namespace,
            engine_id=f"bench-{namespace}",
            log_json=False,
            **({"engine_shards": args.shards} if args.shards else {}),
        )
        runtime = EngineRuntime(settings)
        # The bots start at the cached price, as after market-data wrote it.
        cache = await acquire_cache(args.redis, namespace)
        for ticker in TICKERS:
            await cache.hset(f"price:binance:{ticker}", {"price": str(BASE_PRICE)})
        began = time.perf_counter()
        await runtime.start()
        try:
            await wait_quiet(runtime, args.rabbitmq, namespace)
            figures: dict[str, Any] = {
                "bots": count,
                "shards": len(runtime.shards),
                "seed_s": round(seeded, 1),
                "start_s": round(time.perf_counter() - began, 1),
                "initial_orders": runtime.metrics.orders_placed,
            }
            market = Market(rng)
            phases = args.phases.split(",")
            profile = cProfile.Profile() if args.profile else None
            if profile:
                profile.enable()
            if "quiet" in phases:
                figures.update(await phase_quiet(runtime, args, namespace, market))
            if "fills" in phases:
                figures.update(await phase_fills(runtime, args, namespace, market))
            if "latency" in phases:
                figures.update(await settle(runtime, args, namespace, market))
                figures.update(await phase_latency(runtime, args, namespace, market, count))
            if profile:
                profile.disable()
                profile.dump_stats(args.profile)
        finally:
            await runtime.stop()
            await release_cache(cache)
        return figures
    finally:
        await drop_database(args.postgres, url)


async def main() -> None:
    """Parse arguments, run each bot count, print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bots", default="1000,10000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=2500.0, help="quiet ticks per second")
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--rabbitmq", default=os.environ.get("BENCH_RABBITMQ_URL", DEFAULT_RABBITMQ))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--profile", default=None, help="write a cProfile of the phases here")
    parser.add_argument("--shards", type=int, default=None, help="ENGINE_SHARDS (default: the engine's)")
    parser.add_argument("--phases", default="quiet,fills,latency")
    parser.add_argument("--latency-move", type=float, default=0.0002, help="tick move σ at 1,000 bots")
    args = parser.parse_args()
    for count in (int(n) for n in args.bots.split(",")):
        figures = await run(count, args)
        print(json.dumps(figures), flush=True)
        if args.profile:
            stats = pstats.Stats(args.profile)
            stats.sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    asyncio.run(main())
