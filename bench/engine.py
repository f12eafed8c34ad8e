"""Engine throughput, latency, memory and CPU with 1, 2, … replicas as real processes over PostgreSQL and
RabbitMQ: N paper bots over 20 tickers.

For each replica count a fresh database gets the bots schema; engine-1..n start on it (`python -m engine`,
ports of their own, one bus namespace) and split the 64 partitions with no bot yet (their RSS then is the
baseline); N paper bots are inserted and started as the bots service does (rows, then `bot.start` on the
bus); once every replica drives its share and the first orders are committed, the phases run, each read
from the replicas' `GET /metrics` and /proc:

* ticks: ticks at `--rate` (default 6,000/s) that move the price a hair, for `--seconds`: ticks/s each
  replica consumed (a replica takes the ticks of its bots' markets, bots being in their market's
  partition; the broker drops the oldest past 5,000 queued) and their sum,
  CPU-seconds per 1,000 ticks and CPU share of each replica, and where the machine's CPU went;
* fills: ticks sweeping each price through many levels: committed fills/s (each a trade committed with
  the core state, levels, the next order and the outbox);
* settle: one tick per ticker at its price (the fills phase leaves marketable orders; that burst is not
  the latency below);
* latency: market-data's pace (one tick per ticker per 100 ms) with moves that cross levels, until at least
  `--samples` tick→order samples (tick publication → commit of the order it caused): p50/p99 from the
  replicas' histograms (1 ms buckets to 5 ms, 2.5 ms to 25 ms, linear inside a bucket).

RSS per bot = (RSS − the replica's own 0-bot baseline) / its bots, once loaded and after the phases.

    uv run python bench/engine.py [--replicas 1,2] [--bots 10000] [--seconds 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

# This file is bench/engine.py: the `engine` package must win over it (bench/ goes to the end of the path).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

import asyncpg  # noqa: E402
from enginekit import (  # noqa: E402
    TICKERS,
    Market,
    PriceCache,
    Published,
    TickStream,
    create_database,
    drop_database,
    seed,
    send_starts,
)
from enginereplicas import (  # noqa: E402
    Replicas,
    bots_per_replica,
    engine_env,
    merge_delta,
    quantile,
    worst,
)
from prockit import CpuMeter, proc_cpu, proc_rss  # noqa: E402

from common.bus import create_bus  # noqa: E402
from common.contracts.market import MARKET_EXCHANGE  # noqa: E402
from common.testing.infra import DEFAULT_POSTGRES, DEFAULT_RABBITMQ, DEFAULT_REDIS  # noqa: E402
from trading.partitions import market_partition  # noqa: E402

LATENCY = "gridbot_engine_tick_to_order_seconds"
LOOP_LAG = "gridbot_engine_event_loop_lag_seconds"
GC_PAUSE = "gridbot_engine_gc_full_pause_seconds"


def delta(
    after: dict[str, dict[str, float]], before: dict[str, dict[str, float]], key: str
) -> dict[str, float]:
    """A counter's increase per replica."""
    return {name: page.get(key, 0) - before.get(name, {}).get(key, 0) for name, page in after.items()}


class Run:
    """One replica count: its database, replicas, market and meters."""

    def __init__(self, args: argparse.Namespace, replicas: int, bots: int, logs: Path) -> None:
        self.args, self.count, self.bots = args, replicas, bots
        self.namespace = f"bench{uuid.uuid4().hex[:8]}"
        self.logs = logs
        self.rng = random.Random(bots)
        self.market = Market(self.rng)
        self.url = ""
        self.replicas: Replicas | None = None
        self.stream: TickStream | None = None

    @property
    def group(self) -> Replicas:
        """The replicas (once started)."""
        assert self.replicas is not None
        return self.replicas

    def names(self) -> dict[int, str]:
        """Pid → name of the processes the CPU meter should name."""
        return {os.getpid(): "bench", **{r.pid: r.name for r in self.group.all}}

    async def meter(self) -> tuple[CpuMeter, int]:
        """A CPU meter started now, and PostgreSQL's count of sessions opened to the run's database."""
        meter = CpuMeter(self.database)
        meter.start()
        return meter, await self.sessions()

    async def usage(self, meter: tuple[CpuMeter, int], published: Published) -> dict[str, Any]:
        """Where the CPU went since `meter()`, and how many database sessions were opened meanwhile (a pool
        that closes and reopens connections costs PostgreSQL a process start each)."""
        figures = meter[0].read(self.names(), {"tick publisher": published.cpu_s})
        figures["pg_sessions_opened"] = await self.sessions() - meter[1]
        return figures

    async def sessions(self) -> int:
        """pg_stat_database.sessions of the run's database."""
        conn = await asyncpg.connect(self.args.postgres)
        try:
            return int(
                await conn.fetchval("SELECT sessions FROM pg_stat_database WHERE datname = $1", self.database)
                or 0
            )
        finally:
            await conn.close()

    @property
    def database(self) -> str:
        """The run's database name."""
        return self.url.rsplit("/", 1)[1]

    async def start(self) -> dict[str, Any]:
        """Database, replicas with no bot (the RSS baseline), then the bots: seeded, started, loaded."""
        args = self.args
        self.url = await create_database(args.postgres)
        extra = dict(item.split("=", 1) for item in args.engine_env)
        env = engine_env(self.url, args.redis, args.rabbitmq, self.namespace, **extra)
        self.replicas = replicas = Replicas(env, self.logs, self.count)
        await replicas.start()
        await replicas.wait_split()
        baseline = {r.name: proc_rss(r.pid) for r in replicas.all}
        began = time.perf_counter()
        bots = await seed(self.url, self.bots, self.rng)
        seeded = time.perf_counter() - began
        began = time.perf_counter()
        await send_starts(args.rabbitmq, self.namespace, bots)
        # The replicas balance the partitions by the bots they hold, so the split settles as the bots load.
        await replicas.wait_split(b.id for b in bots)
        expected = bots_per_replica((b.id for b in bots), replicas.shares)
        await replicas.wait_quiet(self.url)
        self.stream = TickStream(args.rabbitmq, self.namespace, self.market)
        return {
            "seed_s": round(seeded, 1),
            "start_s": round(time.perf_counter() - began, 1),
            "bots_per_replica": expected,
            "baseline_rss_mb": {k: round(v / 2**20, 1) for k, v in baseline.items()},
            "_baseline": baseline,
            "_expected": expected,
        }

    def rss_per_bot(self, baseline: dict[str, int], expected: dict[str, int]) -> dict[str, float]:
        """KB per bot of each replica: (RSS − its 0-bot baseline) / its bots."""
        return {
            r.name: round((proc_rss(r.pid) - baseline[r.name]) / max(1, expected[r.name]) / 1024, 1)
            for r in self.group.all
        }

    async def ticks(self) -> dict[str, Any]:
        """Ticks at `--rate` that barely move the price, for `--seconds`: what each replica consumes."""
        assert self.stream is not None
        group = self.group
        before = await group.scrape()
        cpu0 = {r.name: proc_cpu(r.pid) for r in group.all}
        meter = await self.meter()
        self.stream.start(self.args.rate, 0.00001, self.args.seconds, prebuilt=True)
        # Each replica's consumption ends when its counter stops moving (it drains what the broker kept).
        key = "gridbot_engine_ticks_consumed_total"
        last = {r.name: (before[r.name][key], time.time()) for r in group.all}
        waiter = asyncio.ensure_future(self.stream.wait())
        while True:
            await asyncio.sleep(0.1)
            now = time.time()
            for name, page in (await group.scrape()).items():
                if page.get(key, 0) != last[name][0]:
                    last[name] = (page.get(key, 0), now)
            if waiter.done() and all(now - at > 0.5 for _, at in last.values()):
                break
        published = waiter.result()
        usage = await self.usage(meter, published)
        cpu = {r.name: proc_cpu(r.pid) - cpu0[r.name] for r in group.all}
        await group.wait_quiet(self.url)
        # Each replica takes the ticks of its bots' markets (the tickers go round-robin, so a replica is
        # offered its share of markets' share of what was sent).
        offered = self.markets_share()
        per: dict[str, Any] = {}
        for name, (value, at) in last.items():
            consumed = value - before[name][key]
            elapsed = max(at - published.started, 1e-9)
            per[name] = {
                "markets": offered[name],
                "consumed": int(consumed),
                "consumed_per_s": round(consumed / elapsed),
                "dropped": int(published.sent * offered[name] / len(TICKERS) - consumed),
                "cpu_share": round(cpu[name] / elapsed, 2),
                "cpu_s_per_1000_ticks": round(cpu[name] / max(1, consumed) * 1000, 3),
            }
        ended = max(at for _, at in last.values())
        return {
            "ticks_published": published.sent,
            "ticks_published_per_s": round(published.per_s),
            "publisher_cpu_share": round(
                published.cpu_publishing_s / (published.ended - published.started), 2
            ),
            # Each tick goes to the one replica driving its market: the deployment consumes their sum. When
            # none dropped any, that is the publisher's pace and the engines' capacity is at least that.
            "ticks_consumed_per_s": round(
                sum(p["consumed"] for p in per.values()) / max(ended - published.started, 1e-9)
            ),
            "kept_up": all(p["dropped"] <= 0 for p in per.values()),
            "replicas": per,
            "cpu": usage,
        }

    def markets_share(self) -> dict[str, int]:
        """How many of the bench's markets each replica drives (bots are in their market's partition)."""
        owner = {p: name for name, parts in self.group.shares.items() for p in parts}
        counts = dict.fromkeys(owner.values(), 0)
        for ticker in TICKERS:
            counts[owner[market_partition("binance", ticker)]] += 1
        return counts

    async def fills(self) -> dict[str, Any]:
        """Big swings through many levels: committed fills per second until the backlog drained."""
        assert self.stream is not None
        before = await self.group.scrape()
        meter = await self.meter()
        began = time.perf_counter()
        self.stream.start(200, 0.004, self.args.seconds)
        published = await self.stream.wait()
        await self.group.wait_quiet(self.url)
        elapsed = time.perf_counter() - began
        after = await self.group.scrape()
        fills = delta(after, before, "gridbot_engine_fills_committed_total")
        return {
            "fills_committed": int(sum(fills.values())),
            "fills_per_s": round(sum(fills.values()) / elapsed),
            "fills_per_s_by_replica": {k: round(v / elapsed) for k, v in fills.items()},
            "fill_phase_s": round(elapsed, 1),
            "cpu": await self.usage(meter, published),
        }

    async def settle(self) -> dict[str, Any]:
        """One tick per ticker at its current price: the book the fills phase left settles."""
        before = await self.group.scrape()
        bus = create_bus(self.args.rabbitmq, self.namespace)
        await bus.start()
        try:
            for ticker in TICKERS:
                tick = self.market.tick(ticker, 0.0)
                await bus.publish(MARKET_EXCHANGE, tick.routing_key, tick, persistent=False)
        finally:
            await bus.close()
        began = time.perf_counter()
        await self.group.wait_quiet(self.url)
        after = await self.group.scrape()
        return {
            "settle_fills": int(sum(delta(after, before, "gridbot_engine_fills_committed_total").values())),
            "settle_s": round(time.perf_counter() - began, 1),
        }

    async def latency(self) -> dict[str, Any]:
        """Market-data's pace until `--samples` tick→order samples (at least `--seconds`)."""
        assert self.stream is not None
        args, group = self.args, self.group
        before = await group.scrape()
        cpu0 = {r.name: proc_cpu(r.pid) for r in group.all}
        meter = await self.meter()
        began = time.perf_counter()
        self.stream.start(200, args.latency_move * 1000 / self.bots, args.max_latency_seconds)
        while True:
            await asyncio.sleep(1)
            pages = await group.scrape()
            group.check_alive()
            buckets = merge_delta(pages.values(), before.values(), LATENCY)
            elapsed = time.perf_counter() - began
            if buckets and buckets[-1][1] >= args.samples and elapsed >= args.seconds:
                break
            if elapsed >= args.max_latency_seconds:
                break
        published = await self.stream.stop()
        await group.wait_quiet(self.url)
        elapsed = time.perf_counter() - began
        after = await group.scrape()
        usage = await self.usage(meter, published)
        buckets = merge_delta(after.values(), before.values(), LATENCY)
        p50, p99 = quantile(0.5, buckets), quantile(0.99, buckets)
        ticks = delta(after, before, "gridbot_engine_ticks_consumed_total")
        fills = delta(after, before, "gridbot_engine_fills_committed_total")
        per: dict[str, Any] = {}
        for r in group.all:
            cpu = proc_cpu(r.pid) - cpu0[r.name]
            replica_buckets = merge_delta([after[r.name]], [before[r.name]], LATENCY)
            lags = merge_delta([after[r.name]], [before[r.name]], LOOP_LAG)
            pauses = merge_delta([after[r.name]], [before[r.name]], GC_PAUSE)
            per[r.name] = {
                "samples": int(replica_buckets[-1][1]) if replica_buckets else 0,
                "p99_ms": round(quantile(0.99, replica_buckets)[0] * 1000, 1),
                # The event loop's lateness waking a 50 ms sleeper: stalls the ticks' path would also meet.
                "loop_lag_p99_ms": round(quantile(0.99, lags)[0] * 1000, 1),
                "loop_lag_worst_bucket_ms": round(worst(lags) * 1000, 1),
                "gc_full_collections": int(pauses[-1][1]) if pauses else 0,
                "gc_full_pause_worst_bucket_ms": round(worst(pauses) * 1000, 1),
                "cpu_share": round(cpu / elapsed, 2),
                "cpu_s_per_1000_ticks": round(cpu / max(1, ticks[r.name]) * 1000, 3),
            }
        return {
            "latency_samples": int(buckets[-1][1]) if buckets else 0,
            "tick_to_order_p50_ms": round(p50[0] * 1000, 1),
            "tick_to_order_p50_bucket_ms": [round(p50[1] * 1000, 1), round(p50[2] * 1000, 1)],
            "tick_to_order_p99_ms": round(p99[0] * 1000, 1),
            "tick_to_order_p99_bucket_ms": [round(p99[1] * 1000, 1), round(p99[2] * 1000, 1)],
            "latency_phase_s": round(elapsed, 1),
            "latency_phase_fills_per_s": round(sum(fills.values()) / elapsed),
            "replicas": per,
            "cpu": usage,
        }

    async def close(self) -> None:
        """Stop the replicas (SIGTERM) and drop the database."""
        if self.replicas is not None:
            await self.replicas.stop()
        if self.url:
            await drop_database(self.args.postgres, self.url)


async def run(replicas: int, bots: int, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """One replica count: start, the phases; the figures."""
    current = Run(args, replicas, bots, logs)
    prices = PriceCache(args.redis, current.namespace)
    await prices.start()
    try:
        started = await current.start()
        baseline, expected = started.pop("_baseline"), started.pop("_expected")
        figures: dict[str, Any] = {"replicas": replicas, "bots": bots, **started}
        figures["rss_kb_per_bot_loaded"] = current.rss_per_bot(baseline, expected)
        phases = args.phases.split(",")
        if "ticks" in phases:
            figures["ticks"] = await current.ticks()
        if "fills" in phases:
            figures["fills"] = await current.fills()
        if "latency" in phases:
            figures["settle"] = await current.settle()
            figures["latency"] = await current.latency()
        figures["rss_kb_per_bot_after"] = current.rss_per_bot(baseline, expected)
        return figures
    finally:
        await current.close()
        await prices.stop()


def summary(results: list[dict[str, Any]]) -> str:
    """The figures the issue asks for, one line per run, and the scaling of ticks/s against one replica."""
    lines = ["replicas  bots    ticks/s  fills/s  p50 ms  p99 ms (samples)  KB/bot (after)  CPU-s/1k ticks"]
    for r in results:
        ticks, lat = r.get("ticks", {}), r.get("latency", {})
        cpu = ", ".join(f"{v['cpu_s_per_1000_ticks']}" for v in ticks.get("replicas", {}).values())
        rss = ", ".join(f"{v}" for v in r["rss_kb_per_bot_after"].values())
        rate = f"{'≥' if ticks.get('kept_up') else ''}{ticks.get('ticks_consumed_per_s', '-')}"
        lines.append(
            f"{r['replicas']:>8}  {r['bots']:>6}  {rate:>7}  "
            f"{r.get('fills', {}).get('fills_per_s', '-'):>7}  {lat.get('tick_to_order_p50_ms', '-'):>6}  "
            f"{lat.get('tick_to_order_p99_ms', '-'):>6} ({lat.get('latency_samples', '-')})  {rss:>14}  {cpu}"
        )
    ones = {r["bots"]: r for r in results if r["replicas"] == 1 and "ticks" in r}
    for r in results:
        one = ones.get(r["bots"])
        if r["replicas"] > 1 and one and "ticks" in r:
            ratio = r["ticks"]["ticks_consumed_per_s"] / max(1, one["ticks"]["ticks_consumed_per_s"])
            note = (
                " (a run kept up with the publisher: a bound, not a capacity)"
                if r["ticks"]["kept_up"] or one["ticks"]["kept_up"]
                else ""
            )
            lines.append(f"{r['replicas']} replicas / 1 at {r['bots']} bots: ticks/s ×{ratio:.2f}{note}")
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, run each (bots, replicas) pair, print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", default="1,2")
    parser.add_argument("--bots", default="10000")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the ticks and fills phases")
    parser.add_argument("--rate", type=float, default=6000.0, help="ticks/s published in the ticks phase")
    parser.add_argument(
        "--samples", type=int, default=1000, help="tick→order samples the latency phase waits for"
    )
    parser.add_argument("--max-latency-seconds", type=float, default=120.0)
    parser.add_argument("--latency-move", type=float, default=0.0005, help="tick move σ at 1,000 bots")
    parser.add_argument("--phases", default="ticks,fills,latency")
    parser.add_argument(
        "--engine-env", action="append", default=[], metavar="KEY=VALUE", help="engines' environment"
    )
    parser.add_argument("--quick", action="store_true", help="2,000 bots, 5 s phases")
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--rabbitmq", default=os.environ.get("BENCH_RABBITMQ_URL", DEFAULT_RABBITMQ))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument(
        "--logs", default=None, help="directory for the engines' logs (default: a temporary one)"
    )
    args = parser.parse_args()
    if args.quick:
        args.bots, args.seconds = "2000", 5.0
    print(f"load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as scratch:
        logs = Path(args.logs or scratch)
        logs.mkdir(parents=True, exist_ok=True)
        results = asyncio.run(run_all(args, logs))
    print(summary(results), flush=True)


async def run_all(args: argparse.Namespace, logs: Path) -> list[dict[str, Any]]:
    """Each bot count with each replica count, printed as it ends."""
    results = []
    for bots in (int(n) for n in args.bots.split(",")):
        for replicas in (int(n) for n in args.replicas.split(",")):
            figures = await run(replicas, bots, args, logs)
            figures["load_average"] = os.getloadavg()
            print(json.dumps(figures), flush=True)
            results.append(figures)
    return results


if __name__ == "__main__":
    main()
