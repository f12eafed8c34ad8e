"""CPU per request of the bots service's dashboard reads, in-process on PostgreSQL (issue 17).

Builds the bots app as it is served (PostgreSQL, Redis, RabbitMQ, JSON access lines, the collector frozen after
start-up, uvloop) on a scratch database and namespaces of its own, with `--users` users owning one running
paper bot each (spread over the simulator's markets, about 20 grid levels, as bench/api_load.py makes them)
and `--fills` trades per bot. Then, `--rounds` times, sends `--requests` sequential requests to each of the
five bot routes of the dashboard mix in turn (users round-robin) through httpx's ASGI transport, and prints
per route: the CPU of this process per request (`time.process_time`: the app, the loop, the driver and the
httpx client together, the client's part being the same before and after a change), the median over the
rounds and the spread, the sample count, and p50/p99 latency of a lone request (no queue).

    uv run python bench/bots_reads.py [--users 50] [--fills 20] [--requests 300] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

# bench/ goes to the end of the path: bench/engine.py must not shadow the engine package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

import httpx  # noqa: E402
import uvloop  # noqa: E402
from api_load import grid_body  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402
from loadkit import percentile  # noqa: E402

from bots.main import create_app  # noqa: E402
from bots.testing import BALANCE_TOKEN, CredentialsContract, Fill, make_settings, seed_fills  # noqa: E402
from common.collector import freeze  # noqa: E402
from common.logging import configure_logging  # noqa: E402
from common.testing.infra import DEFAULT_POSTGRES, DEFAULT_RABBITMQ, DEFAULT_REDIS, scratch_database  # noqa: E402
from common.testing.service import Backend, user_factory  # noqa: E402
from common.testing.sweep import sweep_namespaces  # noqa: E402
from exchange_sim.server import SimServer  # noqa: E402
from exchange_sim.settings import SimSettings  # noqa: E402
from trading.migrate import upgrade  # noqa: E402

D = Decimal
ROUTES = [
    ("GET /api/bots", "/api/bots"),
    ("GET /api/bots/:id", "/api/bots/{bot}"),
    ("GET /api/bots/:id/trades", "/api/bots/{bot}/trades?limit=50"),
    ("GET /api/bots/:id/grid-levels", "/api/bots/{bot}/grid-levels"),
    ("GET /api/bots/:id/performance", "/api/bots/{bot}/performance"),
]
QUOTE = {"upbit": "KRW", "binance": "USDT"}


def fills(price: Decimal, exchange: str, count: int) -> list[Fill]:
    """`count` fills alternating buy and sell around `price`, fees in the quote currency, one an hour."""
    start = datetime.now(UTC) - timedelta(hours=count)
    amount = (D(1000) / price).quantize(D("0.00000001")) if exchange == "binance" else D("0.0002")
    out: list[Fill] = []
    for n in range(count):
        buy = n % 2 == 0
        at = price * (D("0.99") if buy else D("1.01"))
        fee = (at * amount * D("0.0005")).quantize(D("0.00000001"))
        profit = None if buy else (price * D("0.02") * amount - 2 * fee).quantize(D("0.00000001"))
        out.append(
            Fill(
                "buy" if buy else "sell", at, amount, fee, QUOTE[exchange], start + timedelta(hours=n), profit
            )
        )
    return out


async def setup(
    client: httpx.AsyncClient, app: Any, sim: SimServer, settings: Any, args: Any
) -> list[tuple[str, str]]:
    """The users (Authorization header, bot id) with their bots, fills and cached prices."""
    async with httpx.AsyncClient(base_url=sim.url, timeout=30) as c:
        prices = (await c.get("/_sim/prices")).json()
    markets = [
        (venue, symbol, D(m["price"])) for venue, listed in prices.items() for symbol, m in listed.items()
    ]
    for venue, symbol, price in markets:
        await app.state.cache.hset(f"price:{venue}:{symbol}", {"price": str(price)})
    new_user = user_factory(settings)
    users: list[tuple[str, str]] = []
    for n in range(args.users):
        user = new_user()
        venue, symbol, price = markets[n % len(markets)]
        r = await client.post(
            "/api/bots",
            headers={**user.auth, "content-type": "application/json"},
            content=grid_body(venue, symbol, price),
        )
        if r.status_code != 201:
            raise RuntimeError(f"POST /api/bots: {r.status_code} {r.text}")
        bot = str(r.json()["data"]["botId"])
        await seed_fills(app.state.session_factory, bot, venue, fills(price, venue, args.fills))
        users.append((user.auth["Authorization"], bot))
    return users


async def measure(client: httpx.AsyncClient, users: list[tuple[str, str]], args: Any) -> dict[str, Any]:
    """Per route: CPU ms per request of each round, and every request's latency."""
    cpu: dict[str, list[float]] = {label: [] for label, _ in ROUTES}
    lat: dict[str, list[float]] = {label: [] for label, _ in ROUTES}
    bodies: dict[str, int] = {}
    for label, path in ROUTES:  # warm-up: pools, statement caches, prepared statements
        for auth, bot in users:
            r = await client.get(path.format(bot=bot), headers={"authorization": auth})
            assert r.status_code == 200, (label, r.status_code, r.text)
            bodies[label] = len(r.content)
    for _ in range(args.rounds):
        for label, path in ROUTES:
            samples = lat[label]
            began = time.process_time()
            for i in range(args.requests):
                auth, bot = users[i % len(users)]
                t0 = time.perf_counter()
                r = await client.get(path.format(bot=bot), headers={"authorization": auth})
                samples.append(time.perf_counter() - t0)
                assert r.status_code == 200, (label, r.status_code)
            cpu[label].append((time.process_time() - began) * 1000 / args.requests)
    return {
        label: {
            "cpu_ms": statistics.median(cpu[label]),
            "cpu_ms_min": min(cpu[label]),
            "cpu_ms_max": max(cpu[label]),
            "samples": len(lat[label]),
            "p50_ms": percentile(sorted(lat[label]), 0.50) * 1000,
            "p99_ms": percentile(sorted(lat[label]), 0.99) * 1000,
            "body_bytes": bodies[label],
        }
        for label, _ in ROUTES
    }


async def run(args: Any, database_url: str, namespace: str, sim_settings: SimSettings) -> dict[str, Any]:
    """Start the simulator and the app, set up, measure."""
    sim = SimServer(sim_settings)
    await sim.start()
    try:
        backend = Backend("postgres", database_url, DEFAULT_REDIS, DEFAULT_RABBITMQ)
        settings = make_settings(backend, sim.url, namespace, log_json=True, database_pool_size=10)
        app = create_app(settings, credentials_transport=CredentialsContract(token=BALANCE_TOKEN).transport())
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=20):
            freeze()  # as common.web.serve does once start-up is complete
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bots", timeout=30) as client:
                users = await setup(client, app, sim, settings, args)
                routes = await measure(client, users, args)
    finally:
        await sim.stop()
    return {
        "users": args.users,
        "fills": args.fills,
        "requests": args.requests,
        "rounds": args.rounds,
        "routes": routes,
    }


def report(result: dict[str, Any]) -> list[str]:
    """The figures as a table."""
    lines = [
        f"{result['users']} users (one bot each, {result['fills']} fills), {result['rounds']} rounds of "
        f"{result['requests']} sequential requests a route; CPU of this process (app + httpx client)",
        f"{'route':32} {'CPU ms/req':>10} {'(min-max)':>13} {'samples':>8} {'p50 ms':>7} {'p99 ms':>7} {'bytes':>6}",
    ]
    for label, r in result["routes"].items():
        spread = f"{r['cpu_ms_min']:.2f}-{r['cpu_ms_max']:.2f}"
        lines.append(
            f"{label:32} {r['cpu_ms']:10.2f} {spread:>13} {r['samples']:8} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f}"
            f" {r['body_bytes']:6}"
        )
    return lines


def main() -> None:
    """Parse the options, run on a scratch database, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--fills", type=int, default=20)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="", help="measure only the routes whose label contains this")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    ROUTES[:] = [route for route in ROUTES if args.only in route[0]]
    configure_logging("bots", "INFO", True)
    # The access lines are formatted as served, and thrown away (writing them is the terminal's cost, not ours).
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115
    namespace = f"botsreads{uuid.uuid4().hex[:8]}"
    sim_settings = SimSettings(port=0, replay_speed=0, log_level="WARNING", history_minutes=1440)
    try:
        with scratch_database(os.environ.get("POSTGRES_ADMIN_URL", DEFAULT_POSTGRES)) as database_url:
            upgrade(database_url)
            result = uvloop.run(run(args, database_url, namespace, sim_settings))
    finally:
        sweep_namespaces(DEFAULT_RABBITMQ, [namespace])
    print(json.dumps(result, indent=2) if args.json else "\n".join(report(result)))


if __name__ == "__main__":
    main()
