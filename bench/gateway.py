"""Authenticated GET /api/auth/me through the gateway vs directly against auth, in one run.

Starts auth and gateway as real processes (as `make dev` does) over the local PostgreSQL and Redis, then
drives both paths with the keep-alive HTTP/1.1 client of loadkit.py (so the load generator costs little CPU on
this 2-core machine) and prints requests/s and p50/p99 latency of each path and their ratio.

    uv run python bench/gateway.py [--seconds 5] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from loadkit import Client

from common.testing.infra import DEFAULT_POSTGRES, DEFAULT_RABBITMQ, DEFAULT_REDIS, free_port
from launcher.dev import Stack, ensure_database
from launcher.topology import SERVICES


async def latencies(ports: dict[str, int], token: str, seconds: float) -> dict[str, list[float]]:
    """Sequential requests alternating between the paths, so load drift hits both alike."""
    path = "/api/auth/me"
    conns = {name: _client(port, token) for name, port in ports.items()}
    for conn in conns.values():
        for _ in range(300):  # warm-up: pools, caches, connection set-up
            assert (await conn.get(path))[0] == 200
    samples: dict[str, list[float]] = {name: [] for name in conns}
    end = time.perf_counter() + 2 * seconds
    while time.perf_counter() < end:
        for name, conn in conns.items():
            t0 = time.perf_counter()
            status, _ = await conn.get(path)
            samples[name].append(time.perf_counter() - t0)
            assert status == 200, status
    for conn in conns.values():
        conn.close()
    return samples


async def throughput(port: int, token: str, seconds: float, concurrency: int) -> float:
    """Requests/s with several keep-alive connections in flight."""
    conns = [_client(port, token) for _ in range(concurrency)]
    count = 0
    end = time.perf_counter() + seconds

    async def worker(c: Client) -> None:
        nonlocal count
        while time.perf_counter() < end:
            assert (await c.get("/api/auth/me"))[0] == 200
            count += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    return count / elapsed


def _client(port: int, token: str) -> Client:
    """One keep-alive connection sending the user's token."""
    return Client(port, {"authorization": f"Bearer {token}", "accept": "application/json"}, connections=1)


def summary(samples: list[float], rps: float) -> dict[str, float]:
    """p50/p99 in ms, sequential and concurrent requests/s."""
    ordered = sorted(samples)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000,
        "seq_rps": 1 / statistics.fmean(ordered),
        "rps": rps,
    }


async def run(seconds: float, concurrency: int) -> None:
    admin = DEFAULT_POSTGRES
    name = f"gridbot_bench_{uuid.uuid4().hex[:8]}"
    await ensure_database(admin, name)
    database_url = admin.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0] + f"/{name}"
    ports = {s.name: free_port() for s in SERVICES}
    stack = Stack(
        database_url=database_url,
        redis_url=DEFAULT_REDIS,
        rabbitmq_url=DEFAULT_RABBITMQ,
        ports=ports,
        log_dir=Path(tempfile.mkdtemp(prefix="gridbot-bench-")),
        cache_namespace=f"bench{uuid.uuid4().hex[:6]}",
        # The limiter still runs on every request; only its ceiling is raised so the bench is not throttled.
        extra_env={"gateway": {"RATE_LIMIT_DEFAULT": "10000000/minute"}},
    )
    try:
        await asyncio.to_thread(stack.migrate)
        await asyncio.to_thread(stack.start)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['gateway']}/api") as c:
            r = await c.post(
                "/auth/register",
                json={
                    "email": f"bench-{uuid.uuid4().hex[:6]}@example.com",
                    "password": "benchPass123",
                },
            )
            r.raise_for_status()
            token = r.json()["data"]["token"]
        samples = await latencies({"direct": ports["auth"], "gateway": ports["gateway"]}, token, seconds)
        direct = summary(samples["direct"], await throughput(ports["auth"], token, seconds, concurrency))
        through = summary(samples["gateway"], await throughput(ports["gateway"], token, seconds, concurrency))
    finally:
        await asyncio.to_thread(stack.stop)
        await _drop(admin, name)

    print(
        f"GET /api/auth/me: latency from {len(samples['direct'])} sequential requests per path (alternating), "
        f"throughput with {concurrency} connections for {seconds:.0f}s"
    )
    print(f"{'path':<10}{'req/s (conc)':>14}{'req/s (seq)':>13}{'p50 ms':>9}{'p99 ms':>9}")
    for label, m in (("direct", direct), ("gateway", through)):
        print(f"{label:<10}{m['rps']:>14.0f}{m['seq_rps']:>13.0f}{m['p50_ms']:>9.3f}{m['p99_ms']:>9.3f}")
    print(
        f"ratio gateway/direct: p50 {through['p50_ms'] / direct['p50_ms']:.2f}x, "
        f"p99 {through['p99_ms'] / direct['p99_ms']:.2f}x, throughput {direct['rps'] / through['rps']:.2f}x"
    )


async def _drop(admin: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
