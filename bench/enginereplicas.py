"""Engine replicas as real processes (`python -m engine`, ENGINE_ID engine-1..n) read through their
`GET /metrics`, and the figures made of those readings (histogram quantiles); CPU and memory by process are
in prockit.py."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from enginekit import plain
from prometheus_client.parser import text_string_to_metric_families

from common.exchanges import sim_exchange_env
from common.testing.infra import free_port
from engine.assignment import balanced, worth_recording
from trading.models import SCHEMA
from trading.partitions import partition_of

REPO = Path(__file__).resolve().parents[1]


def scrape_text(text: str) -> dict[str, float]:
    """A /metrics page as {sample name (+ {le=…} for buckets): value} (one replica per page)."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            le = sample.labels.get("le")
            samples[f"{sample.name}{{le={le}}}" if le else sample.name] = sample.value
    return samples


async def scrape_port(http: httpx.AsyncClient, port: int) -> dict[str, float]:
    """The /metrics of the process listening on a loopback port ({} while it does not answer)."""
    try:
        response = await http.get(f"http://127.0.0.1:{port}/metrics")
    except httpx.HTTPError:
        return {}
    return scrape_text(response.text) if response.status_code == 200 else {}


@dataclass
class Replica:
    """One `python -m engine` process (ENGINE_ID = name) and what was read from it."""

    name: str
    env: dict[str, str]
    log_dir: Path
    port: int = 0
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=5))

    @property
    def pid(self) -> int:
        """The running process's id."""
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.returncode is None

    async def spawn(self) -> None:
        """Start a process under this replica's name (a supervisor's restart keeps the name)."""
        self.port = free_port()
        self.starts += 1
        log = self.log_dir / f"{self.name}-{self.starts}.log"
        env = {**self.env, "ENGINE_ID": self.name, "PORT": str(self.port), "HOST": "127.0.0.1"}
        with log.open("wb") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "engine", cwd=REPO, env=env, stdout=out, stderr=out
            )

    async def scrape(self) -> dict[str, float]:
        """Its /metrics now ({} while it does not answer)."""
        return await scrape_port(self.http, self.port) if self.alive else {}

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind."""
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)

    async def stop(self, timeout: float = 30) -> None:  # noqa: ASYNC109
        """SIGTERM (hands its partitions over), SIGKILL if it does not end in time."""
        if self.process is None:
            return
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.kill()
        await self.process.wait()

    def tail(self, chars: int = 3000) -> str:
        """The end of its current log."""
        path = self.log_dir / f"{self.name}-{self.starts}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def engine_env(database_url: str, redis: str, rabbitmq: str, namespace: str, **extra: str) -> dict[str, str]:
    """An engine's environment on the run's database, cache and bus namespace; exchanges and credentials
    point at a loopback port nobody listens on (paper bots need neither)."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGINE_", "TEST_PARK"))}
    env.update(
        {
            **sim_exchange_env(nowhere),
            "ENVIRONMENT": "development",
            "LOG_JSON": "false",
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis,
            "CACHE_NAMESPACE": namespace,
            "RABBITMQ_URL": rabbitmq,
            "BUS_NAMESPACE": namespace,
            "CREDENTIALS_URL": nowhere,
            **extra,
        }
    )
    return env


class Replicas:
    """engine-1..n as processes on one database and namespace."""

    def __init__(self, env: dict[str, str], log_dir: Path, count: int) -> None:
        self.all = [Replica(f"engine-{n}", env, log_dir) for n in range(1, count + 1)]
        self.database_url = env["DATABASE_URL"]
        # The partitions each replica held when `wait_split` last saw them settled.
        self.shares: dict[str, set[int]] = {}

    @property
    def names(self) -> list[str]:
        """The replicas' names."""
        return [r.name for r in self.all]

    async def weights(self) -> dict[int, int]:
        """The partitions' recorded weights (`engine_partition_weights`: bots, as their owners reported)."""
        conn = await asyncpg.connect(plain(self.database_url))
        try:
            rows = await conn.fetch(f"SELECT partition, weight FROM {SCHEMA}.engine_partition_weights")
        finally:
            await conn.close()
        return {int(r["partition"]): int(r["weight"]) for r in rows}

    async def share(self, names: Iterable[str] | None = None) -> dict[str, set[int]]:
        """The partitions each replica should hold when `names` (default: all) are the live set, by the
        engines' own rule (`engine.assignment.balanced`) over the weights recorded now."""
        live = list(names if names is not None else self.names)
        weights = await self.weights()
        shares: dict[str, set[int]] = {name: set() for name in live}
        for partition, owner in balanced(weights, live, weights).items():
            shares[owner].add(partition)
        return shares

    async def start(self) -> None:
        """Spawn every replica at once."""
        for replica in self.all:
            await replica.spawn()

    async def scrape(self) -> dict[str, dict[str, float]]:
        """Every live replica's /metrics."""
        pages = await asyncio.gather(*(r.scrape() for r in self.all))
        return {r.name: page for r, page in zip(self.all, pages, strict=True)}

    def check_alive(self) -> None:
        """Fail with its log when a replica exited by itself."""
        for replica in self.all:
            if replica.process is not None and replica.process.returncode is not None:
                raise RuntimeError(f"{replica.name} exited ({replica.process.returncode}):\n{replica.tail()}")

    async def wait_split(
        self, bot_ids: Iterable[uuid.UUID] = (), within: float = 300
    ) -> dict[str, dict[str, float]]:
        """Until the recorded weights follow these bots (none left to record), and each replica holds, loaded,
        exactly its share by those weights and drives the bots of it."""
        per_partition: dict[int, int] = {}
        for bot_id in bot_ids:
            per_partition[partition_of(bot_id)] = per_partition.get(partition_of(bot_id), 0) + 1
        deadline = time.monotonic() + within
        while True:
            self.check_alive()
            weights = await self.weights()
            shares = await self.share()
            bots = {name: sum(per_partition.get(p, 0) for p in parts) for name, parts in shares.items()}
            pages = await self.scrape()
            settled = not any(worth_recording(w, per_partition.get(p, 0)) for p, w in weights.items())
            if settled and all(
                page.get("gridbot_engine_partitions_ready") == len(shares[name])
                and page.get("gridbot_engine_partitions_held") == len(shares[name])
                and page.get("gridbot_engine_bots_driven") == bots.get(name, 0)
                for name, page in pages.items()
            ):
                self.shares = shares
                return pages
            if time.monotonic() > deadline:
                raise TimeoutError(f"replicas never split: {_brief(pages)}")
            await asyncio.sleep(0.2)

    async def wait_quiet(self, database_url: str, within: float = 600) -> None:
        """Until no replica has work queued or fills in flight, their counters stand still for 0.5 s, and
        the outbox is empty."""
        deadline = time.monotonic() + within
        moving = (
            "gridbot_engine_ticks_consumed_total",
            "gridbot_engine_transactions_total",
            "gridbot_engine_work_items_total",
        )
        conn = await asyncpg.connect(plain(database_url))
        try:
            before: dict[str, tuple[float, ...]] = {}
            while time.monotonic() < deadline:
                self.check_alive()
                pages = await self.scrape()
                now = {name: tuple(page.get(k, -1) for k in moving) for name, page in pages.items()}
                idle = all(
                    page.get("gridbot_engine_shard_backlog") == 0
                    and page.get("gridbot_engine_fills_in_flight") == 0
                    for page in pages.values()
                )
                if idle and now == before:
                    pending = await conn.fetchval(
                        f"SELECT count(*) FROM {SCHEMA}.engine_outbox WHERE published_at IS NULL"
                    )
                    if pending == 0:
                        return
                before = now
                await asyncio.sleep(0.5)
        finally:
            await conn.close()
        raise TimeoutError("the replicas did not settle")

    async def stop(self) -> None:
        """SIGTERM every replica (each hands its partitions over) and wait for them."""
        await asyncio.gather(*(r.stop() for r in self.all))
        for replica in self.all:
            await replica.http.aclose()


def _brief(pages: Mapping[str, Mapping[str, float]]) -> str:
    keys = ("gridbot_engine_partitions_held", "gridbot_engine_partitions_ready", "gridbot_engine_bots_driven")
    return "; ".join(
        f"{name}: " + ", ".join(f"{k[7:]}={page.get(k)}" for k in keys) for name, page in pages.items()
    )


def bots_per_replica(bot_ids: Iterable[uuid.UUID], shares: Mapping[str, set[int]]) -> dict[str, int]:
    """How many of the bots each replica drives once the partitions are split as `shares`."""
    owner = {p: name for name, parts in shares.items() for p in parts}
    counts = dict.fromkeys(shares, 0)
    for bot_id in bot_ids:
        counts[owner[partition_of(bot_id)]] += 1
    return counts


# --- figures --------------------------------------------------------------------------------------------


def histogram(page: Mapping[str, float], name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a histogram on a scraped page, +Inf last."""
    prefix = f"{name}_bucket{{le="
    pairs = [(float(k[len(prefix) : -1]), v) for k, v in page.items() if k.startswith(prefix)]
    return sorted(pairs)


def merge_delta(pages_after: Iterable[Mapping[str, float]], pages_before: Iterable[Mapping[str, float]], name: str) -> list[tuple[float, float]]:  # fmt: skip
    """A histogram's buckets summed over replicas, counting only what came after `pages_before`."""
    total: dict[float, float] = {}
    for page in pages_after:
        for bound, count in histogram(page, name):
            total[bound] = total.get(bound, 0) + count
    for page in pages_before:
        for bound, count in histogram(page, name):
            total[bound] = total.get(bound, 0) - count
    return sorted(total.items())


def quantile(q: float, buckets: list[tuple[float, float]]) -> tuple[float, float, float]:
    """The q-quantile of cumulative buckets, interpolated linearly inside its bucket as Prometheus'
    histogram_quantile does: (estimate, bucket's lower bound, upper bound); NaNs without samples."""
    if not buckets or buckets[-1][1] <= 0:
        return (float("nan"),) * 3
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound, lower_bound, bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (bound - lower_bound) * share, lower_bound, bound
        lower_bound, lower_count = bound, count
    return (float("nan"),) * 3


def worst(buckets: list[tuple[float, float]]) -> float:
    """The upper bound of the highest bucket that counted anything (NaN when none did)."""
    if not buckets or buckets[-1][1] <= 0:
        return float("nan")
    return next(bound for bound, count in buckets if count >= buckets[-1][1])


def tick_to_order(
    after: Iterable[Mapping[str, float]], before: Iterable[Mapping[str, float]]
) -> dict[str, float]:
    """p50 / p99 (ms) and count of the tick→order samples replicas took between two scrapes of each."""
    buckets = merge_delta(after, before, "gridbot_engine_tick_to_order_seconds")
    count = buckets[-1][1] if buckets else 0.0
    return {
        "p50_ms": round(quantile(0.5, buckets)[0] * 1000, 1),
        "p99_ms": round(quantile(0.99, buckets)[0] * 1000, 1),
        "samples": count,
    }
