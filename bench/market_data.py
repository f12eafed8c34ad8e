"""Market-data throughput and latency: simulator at full replay -> market-data -> RabbitMQ -> a consumer.

Starts the exchange simulator and market-data as their own processes (as `make dev` would) over the local
RabbitMQ and Redis, makes market-data stream every market of both venues (bot.start messages on the bus,
the real path), and for N seconds measures:

* exchange messages/s ingested by market-data (WebSocket frames: trades and 24h tickers) and trades/s,
* price ticks/s published to RabbitMQ (market-data's count) and received by our consumer,
* latency from the simulator's trade timestamp (the newest trade folded into a tick) to our consumer
  receiving the tick: p50 / p90 / p99 / max,
* CPU used by each process.

    uv run python bench/market_data.py [--seconds 10] [--speed max] [--tick-ms 100] [--profile out.prof]

`--speed` is the simulator's replay speed in candles/s (each candle is 4 trades per market, 8 markets) or
`max`. `--profile` runs market-data under cProfile and prints its top functions afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import orjson

from common.bus import QueueKind, create_bus
from common.contracts.bots import BOTS_EXCHANGE, BotEvent, BotLifecycle, BotStatus
from common.contracts.envelope import Envelope
from common.contracts.market import MARKET_EXCHANGE
from common.exchanges import Exchange, sim_exchange_env
from common.testing.infra import DEFAULT_RABBITMQ, DEFAULT_REDIS, free_port

MARKETS = {
    Exchange.UPBIT: ["KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL"],
    Exchange.BINANCE: ["BTCUSDT", "ETHUSDT", "XRPUSDT", "SOLUSDT"],
}
ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def process(args: list[str], env: dict[str, str], name: str) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, interrupted (then killed) on exit."""
    proc = subprocess.Popen(args, env={**os.environ, **env}, cwd=ROOT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop; killing it", file=sys.stderr)
                proc.kill()
                proc.wait()


async def wait_http(url: str, within: float = 60.0) -> None:
    """Until a URL answers 200."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up")
            await asyncio.sleep(0.2)


async def ready_stats(url: str) -> dict[str, Any]:
    """Counters from market-data's /health/ready (its details when it answers 503)."""
    async with httpx.AsyncClient(timeout=5) as client:
        body = (await client.get(url + "/health/ready")).json()
    details: dict[str, Any] = body["data"] if body["success"] else body["error"]["details"]
    return details


class Latencies:
    """Consumer side: ticks received and their age."""

    def __init__(self) -> None:
        self.recording = False
        self.samples: list[float] = []
        self.at_publish: list[float] = []
        self.bus_hop: list[float] = []
        self.received = 0

    async def handle(self, envelope: Envelope) -> None:
        """Bus handler: the tick's age on arrival."""
        now = time.time()
        if not self.recording:
            return
        self.received += 1
        payload = envelope.payload
        traded = _parse_iso(payload["last_trade_at"])
        published = _parse_iso(payload["published_at"])
        self.samples.append((now - traded) * 1000)
        self.at_publish.append((published - traded) * 1000)
        self.bus_hop.append((now - published) * 1000)


def _parse_iso(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def pct(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) of samples."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> None:
    """Start both processes, drive the replay, measure, print."""
    sim_port, md_port = free_port(), free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    md_url = f"http://127.0.0.1:{md_port}"
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    sim_env = {
        "SIM_REPLAY_SPEED": "0",
        "SIM_LOG_LEVEL": "WARNING",
        "SIM_TICKER_INTERVAL_MS": str(args.ticker_ms),
    }
    md_env = {
        **sim_exchange_env(sim_url),
        "PORT": str(md_port),
        "REDIS_URL": DEFAULT_REDIS,
        "RABBITMQ_URL": DEFAULT_RABBITMQ,
        "CACHE_NAMESPACE": namespace,
        "BUS_NAMESPACE": namespace,
        "PRICE_TICK_MS": str(args.tick_ms),
        "UPBIT_WS_FORMAT": args.upbit_format,
        "LOG_LEVEL": "WARNING",
        "LOG_JSON": "false",
    }
    md_cmd = [sys.executable, "-m", "market_data"]
    if args.profile:
        md_cmd = [sys.executable, "-m", "cProfile", "-o", args.profile, "-m", "market_data"]
    with (
        process([sys.executable, "-m", "exchange_sim", "--port", str(sim_port)], sim_env, "simulator") as sim,
        process(md_cmd, md_env, "market-data") as md,
    ):
        await wait_http(sim_url + "/_sim/health")
        await wait_http(md_url + "/health")
        bus = create_bus(DEFAULT_RABBITMQ, namespace)
        await bus.start()
        latencies = Latencies()
        try:
            await bus.subscribe(
                "bench.ticks",
                MARKET_EXCHANGE,
                ["price.#"],
                latencies.handle,
                kind=QueueKind.TRANSIENT,
                prefetch=64,
            )
            for exchange, tickers in MARKETS.items():
                for ticker in tickers:
                    bot = BotLifecycle(
                        bot_id=f"{exchange}-{ticker}",
                        user_id="bench",
                        exchange=exchange,
                        ticker=ticker,
                        status=BotStatus.RUNNING,
                    )
                    await bus.publish(BOTS_EXCHANGE, BotEvent.START.value, bot)
            async with httpx.AsyncClient(base_url=sim_url, timeout=10) as sim_http:
                deadline = time.monotonic() + 30
                while True:
                    topics = (await sim_http.get("/_sim/health")).json()["websocketTopics"]
                    if sum(1 for t in topics if t.endswith("@trade") or t.startswith("upbit:trade:")) >= 8:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"market-data did not subscribe: {topics}")
                    await asyncio.sleep(0.2)
                speed: Any = args.speed if args.speed == "max" else float(args.speed)
                await sim_http.put("/_sim/replay", json={"speed": speed})
                await asyncio.sleep(args.warmup)
                before = await ready_stats(md_url)
                sim_before = (await sim_http.get("/_sim/replay")).json()
                cpu_before = {
                    name: cpu_seconds(p.pid) for name, p in (("simulator", sim), ("market-data", md))
                }
                me_before = time.process_time()
                latencies.recording = True
                started = time.monotonic()
                await asyncio.sleep(args.seconds)
                latencies.recording = False
                elapsed = time.monotonic() - started
                after = await ready_stats(md_url)
                sim_after = (await sim_http.get("/_sim/replay")).json()
                cpu_after = {
                    name: cpu_seconds(p.pid) for name, p in (("simulator", sim), ("market-data", md))
                }
                me_cpu = time.process_time() - me_before
                await sim_http.put("/_sim/replay", json={"speed": 0})
        finally:
            await bus.close()
        report(args, elapsed, before, after, sim_before, sim_after, cpu_before, cpu_after, me_cpu, latencies)
    await _cleanup(namespace)
    if args.profile:
        print(f"\ncProfile of market-data ({args.profile}), top by internal time:")
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)


def report(
    args: argparse.Namespace,
    elapsed: float,
    before: dict[str, Any],
    after: dict[str, Any],
    sim_before: dict[str, Any],
    sim_after: dict[str, Any],
    cpu_before: dict[str, float],
    cpu_after: dict[str, float],
    me_cpu: float,
    latencies: Latencies,
) -> None:
    """Print the figures of one run."""
    frames = sum(s["frames"] for s in after["streams"].values()) - sum(
        s["frames"] for s in before["streams"].values()
    )
    per_venue = {
        name: (after["streams"][name]["frames"] - before["streams"][name]["frames"]) / elapsed
        for name in after["streams"]
    }
    trades = after["stats"]["trades"] - before["stats"]["trades"]
    published = after["stats"]["published"] - before["stats"]["published"]
    ticks = (sim_after["candleIndex"] * 4 + sim_after["tickInCandle"]) - (
        sim_before["candleIndex"] * 4 + sim_before["tickInCandle"]
    )
    samples = latencies.samples
    print(
        f"\nmarket-data benchmark: {elapsed:.1f} s, simulator speed {args.speed}, PRICE_TICK_MS {args.tick_ms}, "
        f"Upbit format {args.upbit_format}, 8 markets, consumer on {args.consumer_loop}"
    )
    print(
        f"  simulator replay          {ticks / elapsed:10.0f} ticks/s  ({8 * ticks / elapsed:.0f} trades/s generated)"
    )
    print(
        f"  exchange messages in      {frames / elapsed:10.0f} msgs/s  "
        + ", ".join(f"{k} {v:.0f}" for k, v in per_venue.items())
    )
    print(
        f"  trades folded             {trades / elapsed:10.0f} trades/s (duplicates {after['stats']['duplicates'] - before['stats']['duplicates']})"
    )
    print(
        f"  ticks published (bus)     {published / elapsed:10.0f} msgs/s  (failures {after['stats']['publishFailures']})"
    )
    print(f"  ticks received (consumer) {latencies.received / elapsed:10.0f} msgs/s")
    print(
        f"  latency trade -> consumer p50 {pct(samples, 0.5):.1f} ms  p90 {pct(samples, 0.9):.1f} ms  "
        f"p99 {pct(samples, 0.99):.1f} ms  max {max(samples, default=float('nan')):.1f} ms  (n={len(samples)})"
    )
    if samples:
        print(
            f"    of which trade -> published (simulator + market-data) p50 {pct(latencies.at_publish, 0.5):.1f} ms"
            f"  p99 {pct(latencies.at_publish, 0.99):.1f} ms; published -> consumer (RabbitMQ) "
            f"p50 {pct(latencies.bus_hop, 0.5):.1f} ms  p99 {pct(latencies.bus_hop, 0.99):.1f} ms"
        )
        print(f"  latency mean {statistics.fmean(samples):.1f} ms")
    gc_before, gc_after = before["stats"]["gc"], after["stats"]["gc"]
    print(
        f"  market-data GC: {gc_after['collections'] - gc_before['collections']} collections, "
        f"{gc_after['totalMs'] - gc_before['totalMs']:.0f} ms in total, longest pause so far {gc_after['maxMs']:.1f} ms"
    )
    cpu = {name: (cpu_after[name] - cpu_before[name]) / elapsed * 100 for name in cpu_after}
    print(
        "  CPU  "
        + "  ".join(f"{k} {v:.0f}%" for k, v in cpu.items())
        + f"  bench consumer {me_cpu / elapsed * 100:.0f}%"
    )


async def _cleanup(namespace: str) -> None:
    connection = await aio_pika.connect(DEFAULT_RABBITMQ)
    try:
        channel = await connection.channel()
        for queue in ("market-data.bot-lifecycle", "market-data.bot-lifecycle.dlq"):
            await channel.queue_delete(f"{namespace}.{queue}")
        for exchange in ("market", "bots", "dlx"):
            await channel.exchange_delete(f"{namespace}.{exchange}")
    finally:
        await connection.close()
    import redis.asyncio as redis

    client = redis.Redis.from_url(DEFAULT_REDIS)
    try:
        keys = [key async for key in client.scan_iter(f"{namespace}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def main() -> None:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--speed", default="max", help="simulator candles/s, or max")
    parser.add_argument("--tick-ms", type=int, default=100, help="PRICE_TICK_MS")
    parser.add_argument("--ticker-ms", type=int, default=1000, help="simulator Binance miniTicker interval")
    parser.add_argument("--upbit-format", default="DEFAULT", choices=["DEFAULT", "SIMPLE"])
    parser.add_argument("--profile", help="write market-data's cProfile here and print its top functions")
    parser.add_argument(
        "--consumer-loop",
        default="uvloop",
        choices=["uvloop", "asyncio"],
        help="event loop of our consumer (services run on uvloop under uvicorn)",
    )
    args = parser.parse_args()
    if args.consumer_loop == "uvloop":
        import uvloop

        uvloop.run(run(args))
    else:
        asyncio.run(run(args))


_ = orjson  # orjson is what market-data parses with; imported so a missing install fails here first

if __name__ == "__main__":
    main()
