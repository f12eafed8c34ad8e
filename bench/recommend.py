"""POST /backtests/recommend and a 30-day POST /backtests over the backtest service, end to end.

The service's own app (its lifespan: PostgreSQL on a scratch database, Redis, RabbitMQ) and a worker in this
process, the exchange simulator holding the shared month as history; requests through httpx's ASGI transport.

* a recommendation over 30 days of Binance BTCUSDT: the first one fetches the month (paged through ccxt on the
  shared call budget) and stores it, the next ones read the stored candles — wall ms of each, median/min/max;
* a 30-day backtest of the spec's example grid from POST to done (the candles already stored).

Prints sample counts and this process's CPU share (the simulator, the app and the worker share it).

    uv run python bench/recommend.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from backtest.main import create_app, create_worker_app
from backtest.migrate import upgrade
from backtest.testing import make_settings
from common.testing.infra import scratch_database
from common.testing.service import Backend, User, user_factory
from common.web import dumps
from exchange_sim.server import SimServer
from exchange_sim.settings import SimSettings

ADMIN = os.environ.get("POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
RABBIT = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


def summary(values: list[float]) -> str:
    """median (min–max) of milliseconds, with the sample count."""
    return (
        f"{statistics.median(values):8.0f} ms median ({min(values):.0f}–{max(values):.0f}), n={len(values)}"
    )


async def run(runs: int, database_url: str) -> None:
    """Time recommendations (cold, then warm) and a 30-day backtest."""
    sim = SimServer(SimSettings(port=0, replay_speed=0, log_level="WARNING"))
    await sim.start()
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    try:
        settings = make_settings(Backend("postgres", database_url, REDIS, RABBIT), sim.url, namespace)
        await asyncio.to_thread(upgrade, database_url)
        user = user_factory(settings)()
        app, worker = create_app(settings), create_worker_app(settings)
        async with (
            LifespanManager(app, startup_timeout=60),
            LifespanManager(worker, startup_timeout=60),
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://b", timeout=120) as c,
        ):
            await measure(c, user, runs)
    finally:
        await sim.stop()


async def measure(c: httpx.AsyncClient, user: User, runs: int) -> None:
    """The timed requests."""
    headers = {**user.auth, "content-type": "application/json"}
    wanted = dumps({"exchange": "binance", "ticker": "BTCUSDT", "investment": 1000, "days": 30})
    cpu0, wall0 = time.process_time(), time.perf_counter()
    timings: list[float] = []
    configurations = 0
    for _ in range(runs + 1):
        started = time.perf_counter()
        response = await c.post("/api/backtests/recommend", content=wanted, headers=headers)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        configurations = len(data["recommendations"])
    print(f"recommend, 30 days ({data['basis']['candles']} candles), top {configurations}:")
    print(f"  cold (fetch + store + sweep): {timings[0]:8.0f} ms, n=1")
    print(f"  warm (stored candles + sweep): {summary(timings[1:])}")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    body = dumps(
        {
            "exchange": "binance",
            "ticker": "BTCUSDT",
            "lowerPrice": 85000,
            "upperPrice": 110000,
            "priceChangePercent": 2,
            "orderAmount": 100,
            "startDate": (now - timedelta(days=30)).isoformat(),
            "endDate": now.isoformat(),
        }
    )
    runs_ms: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        backtest_id = (await c.post("/api/backtests", content=body, headers=headers)).json()["data"][
            "backtestId"
        ]
        while True:
            shown = (await c.get(f"/api/backtests/{backtest_id}", headers=user.auth)).json()["data"]
            if shown["status"] in ("done", "failed"):
                break
            await asyncio.sleep(0.02)  # polling the API as a client would
        assert shown["status"] == "done", shown
        runs_ms.append((time.perf_counter() - started) * 1000)
    print(f"30-day backtest, POST to done (candles stored): {summary(runs_ms)}")
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"this process (app + worker + simulator): {cpu:.1f} CPU-s over {wall:.1f} s = {cpu / wall:.0%}")


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with scratch_database(ADMIN) as url:
        asyncio.run(run(args.runs, url))


if __name__ == "__main__":
    main()
