"""The API under load: N users polling a dashboard through the gateway of a real `make dev` stack.

Starts the dev topology (every service its own process, two bots and two engine replicas, the simulator replaying
prices at its default pace) over the local PostgreSQL, Redis and RabbitMQ, on a database and namespaces of its
own. Registers N users (each once), gives each one running paper bot (spread over the simulator's markets),
then every user polls a dashboard's mix (bot list, its bot, its trades, its grid levels, its performance, a
price, `me`: one route after the other) at `--rate` requests/s. Prints requests/s, p50/p90/p99/max per route
and overall, errors by route and code, and the CPU share of every service process, of the bench client
itself, and of PostgreSQL/RabbitMQ/Redis, over the measured window. `--extra-bots N` adds N running paper
bots under a few more users, each with a grid of its own (centre, width and step drawn from the seed), as a
thousand users would pick them; `--same-grids` gives them all the users' grid instead, the worst case where
every extra bot of a market fills at the same tick.

Open loop, no coordinated omission: each user's send times are fixed in advance (every 1/rate s from a random
phase, ±20 % jitter, not accumulated), a request is sent at its time whether or not the previous ones came
back (up to 6 connections per user, as a browser), and its latency runs from the *scheduled* time, so a slow
server (or a late client) shows in the figures instead of silently lowering the rate. `client lateness`
says how late the client itself was; a large value means the client, not the server, was saturated.
The first `--warmup` seconds are excluded (40 by default: time for extra bots to place their first orders, and the
same window for the runs with and without them); p99 wants ≥ 1,000 samples per route (warned otherwise).

Why an asyncio client and not locust: locust runs closed-loop users (a wait after each answer) on gevent,
would be a new dependency, and costs far more CPU per request than the httptools client of loadkit.py, on a
2-core machine where the client competes with the services it measures (its CPU share is printed).

`--ws-paired N` measures the sockets' share on one stack instead: 2N phases alternating without and with every
user's socket (bench/wspaired.py says why and how).

    uv run python bench/api_load.py [--users 100] [--duration 60] [--warmup 40] [--rate 1.4] [--ws]
                                    [--ws-paired N [--phase 12] [--first-on]]
                                    [--extra-bots 0] [--same-grids] [--timeline FILE] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import math
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

# bench/ goes to the end of the path: bench/gateway.py and bench/engine.py must not shadow those packages.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

import httpx  # noqa: E402
from dashboard import BURST_MS, Sockets, User, price_bursts, start_polling  # noqa: E402
from enginereplicas import scrape_port, tick_to_order  # noqa: E402
from limits import parse  # noqa: E402
from loadkit import Recorder, percentile  # noqa: E402
from prockit import CpuMeter, CpuSlices, write_timeline  # noqa: E402
from wspaired import measure_paired, paired_report  # noqa: E402

from common.testing.infra import (  # noqa: E402
    DEFAULT_POSTGRES,
    DEFAULT_RABBITMQ,
    DEFAULT_REDIS,
    free_port,
    scratch_database,
)
from common.testing.sweep import sweep_namespaces  # noqa: E402
from gateway.settings import Settings as GatewaySettings  # noqa: E402
from launcher.dev import Stack  # noqa: E402
from launcher.testing import random_client_ip  # noqa: E402
from launcher.topology import SERVICES, service  # noqa: E402

D = Decimal
MIN_SAMPLES = 1000
EXTRA_BOTS_PER_USER = 250
READINGS_LEAD = 1.0  # seconds before the window at which the CPU and engine readings start
# Quote amount per grid order: above each venue's minimum (Upbit 5,000 KRW; Binance 5 USDT).
ORDER_AMOUNT = {"upbit": 10_000, "binance": 20}
# The polling users' grid (offset, half-width, step in %): price ± 2 % in 0.2 % steps, about 20 levels.
USERS_GRID = (D(0), D(2), D("0.2"))
SETUP_CONCURRENCY = 4  # registrations are bcrypt: more at once only queues them in auth


@dataclass(frozen=True)
class Grid:
    """Where a bot's grid stands around the market price: its centre's offset, half-width and step (%)."""

    offset: Decimal = USERS_GRID[0]
    half_width: Decimal = USERS_GRID[1]
    step: Decimal = USERS_GRID[2]

    @classmethod
    def varied(cls, rng: random.Random) -> Grid:
        """A grid as some user might pick it: centre within ±1 % of the price, ±1–5 %, steps of 0.2–1.0 %."""
        return cls(
            offset=D(rng.randint(-100, 100)) / 100,
            half_width=D(rng.randint(100, 500)) / 100,
            step=D(rng.randint(20, 100)) / 100,
        )


def grid_body(exchange: str, ticker: str, price: Decimal, grid: Grid = Grid()) -> bytes:
    """A paper bot's POST /api/bots body, running at once (by default price ± 2 % in 0.2 % steps, about 20
    levels); the prices cut to 5 significant digits and written as exact JSON numbers."""
    step = D(10) ** (price.adjusted() - 4)
    centre = price * (1 + grid.offset / 100)
    fields = {
        "exchange": json.dumps(exchange),
        "ticker": json.dumps(ticker),
        "lowerPrice": str((centre * (1 - grid.half_width / 100)).quantize(step)),
        "upperPrice": str((centre * (1 + grid.half_width / 100)).quantize(step)),
        "priceChangePercent": str(grid.step),
        "orderAmount": str(ORDER_AMOUNT[exchange]),
        "stopAtMax": "false",
        "autoStart": "true",
        "mode": '"paper"',
    }
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}").encode()


async def register(api: httpx.AsyncClient) -> User:
    """A fresh user from a client IP of its own (the register limit is per IP)."""
    ip = random_client_ip()
    r = await api.post(
        "/api/auth/register",
        headers={"x-forwarded-for": ip},
        json={"email": f"load-{uuid.uuid4().hex[:12]}@example.com", "password": "loadBench12345"},
    )
    if r.status_code != 201:
        raise RuntimeError(f"register: {r.status_code} {r.text}")
    return User(ip=ip, token=r.json()["data"]["token"])


async def create_bot(
    api: httpx.AsyncClient, user: User, exchange: str, ticker: str, price: Decimal, grid: Grid = Grid()
) -> str:
    """A running paper bot of `user`; its id."""
    r = await api.post(
        "/api/bots",
        headers={
            "authorization": f"Bearer {user.token}",
            "x-forwarded-for": user.ip,
            "content-type": "application/json",
        },
        content=grid_body(exchange, ticker, price, grid),
    )
    data = r.json().get("data") or {}
    if r.status_code != 201 or data.get("status") != "running":
        raise RuntimeError(f"POST /api/bots {exchange} {ticker}: {r.status_code} {r.text}")
    return str(data["botId"])


async def setup(
    gateway: str, sim: str, users: int, extra_bots: int, grids: Callable[[], Grid]
) -> tuple[list[User], list[User], float]:
    """`users` users with one running paper bot each, plus `extra_bots` bots (their grids from `grids`) under
    a few extra users; returns the users, the extra users and the seconds the extra bots took."""
    async with httpx.AsyncClient(timeout=30) as c:
        prices = (await c.get(f"{sim}/_sim/prices")).json()
    markets = [
        (venue, symbol, D(m["price"])) for venue, listed in prices.items() for symbol, m in listed.items()
    ]
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as api:

        async def one(n: int) -> User:
            async with gate:
                user = await register(api)
                user.exchange, user.ticker, price = markets[n % len(markets)]
                user.bot = await create_bot(api, user, user.exchange, user.ticker, price)
                return user

        polling = await asyncio.gather(*(one(n) for n in range(users)))
        began = time.monotonic()
        owners = [await register(api) for _ in range(math.ceil(extra_bots / EXTRA_BOTS_PER_USER))]

        async def extra(n: int) -> None:
            async with gate:
                venue, symbol, price = markets[n % len(markets)]
                await create_bot(api, owners[n // EXTRA_BOTS_PER_USER], venue, symbol, price, grids())

        await asyncio.gather(*(extra(n) for n in range(extra_bots)))
    return list(polling), owners, time.monotonic() - began


TRADING_CHECKS_AT_ONCE = 16


async def trading(gateway: str, users: list[User]) -> int:
    """How many of the users' bots are running with at least one resting order (the engine drives them)."""
    # A few users at a time: all of them at once would be refused by the gateway's admission (a 503 is not
    # a stopped bot).
    gate = asyncio.Semaphore(TRADING_CHECKS_AT_ONCE)
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as api:

        async def one(user: User) -> bool:
            headers = {"authorization": f"Bearer {user.token}", "x-forwarded-for": user.ip}
            async with gate:
                bot = (await api.get(f"/api/bots/{user.bot}", headers=headers)).json().get("data") or {}
                levels = await api.get(f"/api/bots/{user.bot}/grid-levels?status=pending", headers=headers)
            return bot.get("status") == "running" and bool(
                (levels.json().get("data") or {}).get("gridLevels")
            )

        return sum(await asyncio.gather(*(one(u) for u in users)))


async def running(gateway: str, owners: list[User]) -> int:
    """How many bots of the extra users are running (their bot lists' summaries)."""
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as api:
        total = 0
        for user in owners:
            headers = {"authorization": f"Bearer {user.token}", "x-forwarded-for": user.ip}
            total += int(
                (await api.get("/api/bots", headers=headers)).json()["data"]["summary"]["activeBots"]
            )
        return total


def limits_for(rate: float, extra_bots: int) -> tuple[dict[str, str], str]:
    """The gateway's rate-limit overrides (none unless the product's own would make the bench measure
    429s) and a sentence saying which limits are in force."""
    default = GatewaySettings.model_fields["rate_limit_default"].default
    item = parse(default)
    per_window = rate * item.get_expiry()
    env: dict[str, str] = {}
    # The mix, plus the socket's handshake, in one fixed window (the jitter moves a count by one at most).
    if math.ceil(per_window) + 2 > item.amount:
        env["RATE_LIMIT_DEFAULT"] = "1000000/minute"
        said = f"default limit RAISED (the mix sends {per_window:.0f} per window, over {default})"
    else:
        said = f"product limits in force ({default} per user; the mix sends {per_window:.0f})"
    if extra_bots > 0:
        env["RATE_LIMIT_BOT_CREATE"] = "1000000/hour"
        said += "; bot creation limit raised to create the extra bots (setup only, not measured)"
    return env, said + "; each user its own client IP (X-Forwarded-For, TRUSTED_PROXIES=127.0.0.1)"


async def scrape_all(ports: list[int]) -> list[dict[str, float]]:
    """The /metrics of each process listening on these ports ({} for one that does not answer)."""
    async with httpx.AsyncClient(timeout=10) as http:
        return list(await asyncio.gather(*(scrape_port(http, port) for port in ports)))


def _group(name: str) -> str:
    if name.startswith("engine"):
        return "engines"
    if name.startswith("postgres"):
        return "postgres"
    if name in ("gateway", "auth") or name.startswith("bots"):
        return "api"
    return name


def attribute(
    requests: list[tuple[float, float, str]], slices: list[tuple[float, dict[str, float]]], hot: float = 0.5
) -> dict[str, Any]:
    """Who was busy while the slowest 1 % of requests were in flight, against the fastest half: the mean CPU
    share of the engines, PostgreSQL and the API processes over the slices each request overlapped, and how
    many overlapped a slice where the engines took more than `hot` of a core."""
    if not requests or not slices:
        return {}
    times = [t for t, _ in slices]
    half = (times[-1] - times[0]) / max(1, len(times) - 1) / 2
    by_latency = sorted(requests, key=lambda r: r[1])
    groups = {
        "slowest 1 %": by_latency[int(len(by_latency) * 0.99) :],
        "fastest half": by_latency[: len(by_latency) // 2],
    }

    def overlapped(t: float, latency: float) -> list[dict[str, float]]:
        first = bisect.bisect_left(times, t - half)
        last = bisect.bisect_right(times, t + latency + half)
        return [
            {g: sum(v for k, v in shares.items() if _group(k) == g) for g in ("engines", "postgres", "api")}
            for _, shares in slices[first:last]
        ]

    found: dict[str, Any] = {}
    for label, chosen in groups.items():
        seen = [overlapped(t, latency) for t, latency, _ in chosen]
        flat = [s for one in seen for s in one] or [{"engines": 0.0, "postgres": 0.0, "api": 0.0}]
        found[label] = {
            "requests": len(chosen),
            "mean_cpu": {g: round(sum(s[g] for s in flat) / len(flat), 2) for g in flat[0]},
            "during_engine_bursts": sum(any(s["engines"] > hot for s in one) for one in seen),
        }
    found["engine_burst_share_of_time"] = round(
        sum(1 for _, shares in slices if sum(v for k, v in shares.items() if _group(k) == "engines") > hot)
        / len(slices),
        3,
    )
    return found


async def measure(args: argparse.Namespace, stack: Stack, users: list[User], database: str) -> dict[str, Any]:
    """Warm-up, then the measured window: the figures, the sockets' events, CPU by process."""
    port = stack.port("gateway")
    sockets = await Sockets.open(port, users, args.sockets_nice) if args.ws else None
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    rec = Recorder(start + args.warmup, start + args.warmup + args.duration)
    if args.timeline:
        rec.timeline = []
    rng = random.Random(args.seed)
    if sockets is not None:
        await sockets.window(rec.window_start, rec.window_end)
    pollers = start_polling(users, port, start, rec.window_end, args.rate, rng, rec)
    meter = CpuMeter(database)
    names = {popen.pid: key for key, popen in stack.processes.items()} | {os.getpid(): "bench client"}
    if sockets is not None:
        names[sockets.pid] = "bench sockets"
    slices = CpuSlices(meter, names) if args.timeline else None
    # The first readings walk /proc and scrape the engines, in this process: taken before the window, so the
    # client's own stall is not charged to the requests that open it (the CPU figures then span a second more).
    await asyncio.sleep(max(0.0, rec.window_start - READINGS_LEAD - loop.time()))
    restarts = {key: stack.restarts(key) for key in stack.processes}
    engines = [port for key, port in stack.all_ports().items() if key.startswith("engine")]
    engines_before = await scrape_all(engines)
    await asyncio.to_thread(meter.start)
    if slices is not None:
        slices.start()
    # And the last ones once every request of the window has come back (no request is sent after it).
    await asyncio.gather(*pollers)
    cpu = await asyncio.to_thread(meter.read, names)
    engine_latency = tick_to_order(await scrape_all(engines), engines_before)
    tail: dict[str, Any] | None = None
    if slices is not None:
        cut = await asyncio.to_thread(slices.stop)
        write_timeline(args.timeline, rec.timeline or [], cut)
        tail = attribute(rec.timeline or [], cut)
    counted = await sockets.stop() if sockets is not None else None
    lateness = sorted(rec.lateness) or [0.0]
    return {
        "routes": rec.figures(),
        "answered": rec.answered_figures(),
        "errors": {f"{route}: {code}": n for (route, code), n in sorted(rec.errors.items())},
        "client_lateness_ms": {
            "p99": round(percentile(lateness, 0.99) * 1000, 1),
            "max": round(lateness[-1] * 1000, 1),
        },
        "ws": {
            "sockets": len(users),
            "events": counted["events"],
            "price_bursts": price_bursts(counted["prices"]),
            "closed_by_server": counted["closed"],
        }
        if counted is not None
        else None,
        "cpu": cpu,
        "engine_tick_to_order": engine_latency,
        "tail": tail,
        "processes": sorted(stack.processes),
        "restarted": sorted(k for k in stack.processes if stack.restarts(k) != restarts.get(k, 0)),
    }


async def run(args: argparse.Namespace, database_url: str, namespace: str) -> dict[str, Any]:
    """Start the stack, set the users up, measure, stop the stack."""
    limit_env, limits_said = limits_for(args.rate, args.extra_bots)
    ports = {s.name: free_port() for s in SERVICES}
    log_dir = Path(tempfile.mkdtemp(prefix="gridbot-api-load-"))
    stack = Stack(
        database_url=database_url,
        redis_url=DEFAULT_REDIS,
        rabbitmq_url=DEFAULT_RABBITMQ,
        ports=ports,
        log_dir=log_dir,
        cache_namespace=namespace,
        bus_namespace=namespace,
        extra_env={"gateway": {"TRUSTED_PROXIES": json.dumps(["127.0.0.1"]), **limit_env}},
        # The launcher's own lines (a process restarted) to stderr: with --json, stdout is the document alone.
        say=lambda line: print(line, file=sys.stderr, flush=True),
        replica_counts={} if args.bots_replicas is None else {"bots": args.bots_replicas},
    )

    def say(line: str) -> None:
        if not args.json:  # --json: stdout is the document alone
            print(line, flush=True)

    try:
        say(f"starting the dev stack (logs in {log_dir}) ...")
        await asyncio.to_thread(stack.migrate)
        await asyncio.to_thread(stack.start, 120.0)
        gateway, sim = f"http://127.0.0.1:{ports['gateway']}", f"http://127.0.0.1:{ports['exchange-sim']}"
        say(f"registering {args.users} users, one paper bot each; {args.extra_bots} extra bots ...")
        shapes = random.Random(args.seed)
        grids: Callable[[], Grid] = Grid if args.same_grids else (lambda: Grid.varied(shapes))
        users, owners, extra_seconds = await setup(gateway, sim, args.users, args.extra_bots, grids)
        measured = (
            f"{2 * args.ws_paired} phases without and with sockets"
            if args.ws_paired
            else f"{args.duration:g} s measured"
        )
        say(f"polling: {args.warmup:g} s warm-up, then {measured} ...")
        database = database_url.rsplit("/", 1)[1]
        figures: dict[str, Any]
        if args.ws_paired:
            figures = {"paired": await measure_paired(args, stack, users, database)}
        else:
            figures = await measure(args, stack, users, database)
        figures["bots_trading"] = await trading(gateway, users)
        figures["extra_bots_running"] = await running(gateway, owners)
    finally:
        await asyncio.to_thread(stack.stop)
    return {
        "users": args.users,
        "rate_per_user": args.rate,
        "offered_rps": round(args.users * args.rate, 1),
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "ws": args.ws,
        "extra_bots": args.extra_bots,
        "extra_grids": "the users' own" if args.same_grids else "varied",
        "extra_bots_setup_s": round(extra_seconds, 1),
        "engine_replicas": stack.engine_replicas,
        "bots_replicas": len(stack.names(service("bots"))),
        "sim_replay_speed": os.environ.get("SIM_REPLAY_SPEED", "1 (default)"),
        "rate_limits": limits_said,
        **figures,
    }


def report(result: dict[str, Any]) -> list[str]:
    """The figures as text."""
    lines = [
        f"api_load: {result['users']} users x {result['rate_per_user']:g} req/s (offered "
        f"{result['offered_rps']:g} req/s), {result['duration_s']:g} s measured after {result['warmup_s']:g} s "
        f"warm-up; sockets {'on' if result['ws'] else 'off'}; extra bots {result['extra_bots']}"
        + (
            f" ({result['extra_grids']} grids; created in {result['extra_bots_setup_s']:g} s; running after the window: "
            f"{result['extra_bots_running']})"
            if result["extra_bots"]
            else ""
        ),
        f"stack: make dev topology ({result['bots_replicas']} bots and {result['engine_replicas']} engine "
        "replicas), simulator replay speed "
        f"{result['sim_replay_speed']}",
        f"rate limits: {result['rate_limits']}",
        "",
        f"{'route':<42}{'samples':>8}{'req/s':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}",
    ]
    for route, m in result["routes"].items():
        if route == "overall":
            lines.append("-" * 102)
        lines.append(
            f"{route:<42}{m['samples']:>8}{m['rps']:>8.1f}{m['p50_ms']:>9.1f}{m['p90_ms']:>9.1f}"
            f"{m['p99_ms']:>9.1f}{m['max_ms']:>9.1f}{m['errors']:>8}"
        )
    errors = result["errors"]
    if errors:
        ok = result["answered"]
        lines.append(
            f"{'answered without an error':<42}{ok['samples']:>8}{ok['rps']:>8.1f}{ok['p50_ms']:>9.1f}"
            f"{ok['p90_ms']:>9.1f}{ok['p99_ms']:>9.1f}{ok['max_ms']:>9.1f}"
        )
    lines.append("")
    lines.append(
        f"bots running with resting orders after the window: {result['bots_trading']}/{result['users']}"
    )
    lines.append("errors: " + ("none" if not errors else "; ".join(f"{k} x{n}" for k, n in errors.items())))
    late = result["client_lateness_ms"]
    lines.append(f"client lateness (send - schedule): p99 {late['p99']:g} ms, max {late['max']:g} ms")
    engine = result["engine_tick_to_order"]
    lines.append(
        f"engines' tick→order over the window (tick published → its orders committed, all replicas): "
        f"p50 {engine['p50_ms']:g} ms, p99 {engine['p99_ms']:g} ms ({engine['samples']:g} samples)"
    )
    if result["tail"]:
        tail = result["tail"]
        lines.append(
            f"timeline: the engines took > 0.5 core in {tail['engine_burst_share_of_time']:.1%} of the 50-ms "
            "slices; while requests were in flight (mean CPU share; requests overlapping such a slice):"
        )
        for label in ("slowest 1 %", "fastest half"):
            t = tail[label]
            cpu = ", ".join(f"{k} {v:.2f}" for k, v in t["mean_cpu"].items())
            lines.append(f"  {label:<13} {cpu}; {t['during_engine_bursts']} of {t['requests']}")
    if result["ws"] is not None:
        ws = result["ws"]
        received = sum(ws["events"].values())
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(ws["events"].items())) or "none"
        lines.append(
            f"websockets: {ws['sockets']} open, {received} events received in the window ({kinds}); "
            f"closed by the server: {ws['closed_by_server'] or 'none'}"
        )
        bursts = ws["price_bursts"]
        lines.append(
            f"  prices received in the same {BURST_MS} ms (every socket): busiest {bursts['max']}, "
            f"p99 {bursts['p99']} (over {bursts['slices']} slices that had any)"
        )
    cpu = result["cpu"]
    lines.append(
        f"CPU share over {cpu['seconds']:g} s (1.00 = one core; the machine was {cpu['machine_busy_share']:.0%} "
        "busy over all its cores):"
    )
    shares = {k: v / cpu["seconds"] for k, v in cpu["cpu_s"].items()}
    services = {k: v for k, v in shares.items() if k in result["processes"]}
    clients = ("bench client", "bench sockets")
    infrastructure = {k: v for k, v in shares.items() if k not in services and k not in clients}
    lines.append(
        f"  services {sum(services.values()):.2f}: " + "  ".join(f"{k} {v:.2f}" for k, v in services.items())
    )
    lines.append(
        f"  bench client {shares.get('bench client', 0.0):.2f}"
        + (f" (its sockets' process {shares['bench sockets']:.2f})" if "bench sockets" in shares else "")
    )
    lines.append(
        "  servers (shared by the machine unless 'this run'): "
        + "  ".join(f"{k} {v:.2f}" for k, v in infrastructure.items())
    )
    others = ", ".join(f"{k} {v / cpu['seconds']:.2f}" for k, v in cpu["other_top_cpu_s"].items())
    lines.append(
        f"  other processes on the machine {cpu['other_cpu_s'] / cpu['seconds']:.2f} (top: {others})"
    )
    few = [
        f"{r} ({m['samples']})"
        for r, m in result["routes"].items()
        if r != "overall" and m["samples"] < MIN_SAMPLES
    ]
    if few:
        lines.append(
            f"warning: < {MIN_SAMPLES:,} samples, p99 not reliable (longer --duration): {', '.join(few)}"
        )
    if result["bots_trading"] < result["users"]:
        lines.append("warning: not every user's bot was running with resting orders")
    if result["extra_bots_running"] < result["extra_bots"]:
        lines.append(
            f"warning: only {result['extra_bots_running']} of the {result['extra_bots']} extra bots were running"
        )
    if result["restarted"]:
        lines.append(f"warning: restarted during the window: {', '.join(result['restarted'])}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds, after the warm-up")
    parser.add_argument(
        "--warmup",
        type=float,
        default=40.0,
        help="seconds polled before the figures start (keep it the same in runs to be compared)",
    )
    parser.add_argument("--rate", type=float, default=1.4, help="requests/s of each user")
    parser.add_argument("--ws", action="store_true", help="open /api/ws for every user and count its events")
    parser.add_argument(
        "--ws-paired",
        type=int,
        default=0,
        metavar="N",
        help="instead of one window: N pairs of phases without and with every user's socket, on one stack",
    )
    parser.add_argument(
        "--phase", type=float, default=12.0, help="measured seconds of each --ws-paired phase"
    )
    parser.add_argument(
        "--first-on", action="store_true", help="--ws-paired in the mirror order: on, off, off, on, …"
    )
    parser.add_argument(
        "--sockets-nice",
        type=int,
        default=0,
        metavar="N",
        help="run the sockets' process at this niceness: they stand for browsers elsewhere, and here they "
        "share the services' cores",
    )
    parser.add_argument("--extra-bots", type=int, default=0, help="running paper bots under a few more users")
    parser.add_argument(
        "--same-grids",
        action="store_true",
        help="give the extra bots the users' grid (price ± 2 %%, 0.2 %% steps) instead of varied ones: the worst "
        "case, every extra bot of a market filling at the same tick",
    )
    parser.add_argument("--seed", type=int, default=17, help="of the schedules' phases and jitter")
    parser.add_argument(
        "--bots-replicas",
        type=int,
        default=None,
        help="bots processes behind the gateway (default: make dev's)",
    )
    parser.add_argument(
        "--timeline",
        metavar="FILE",
        help="write every request (scheduled time, latency, route) and each process's CPU share in 50-ms "
        "slices to FILE as JSON, to see who was busy when requests were slow (with --ws-paired: over every "
        "phase, and the phases' windows)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    args = parser.parse_args()
    if args.users < 1 or args.rate <= 0 or args.duration <= 0 or args.warmup < 0 or args.extra_bots < 0:
        parser.error("--users ≥ 1, --rate > 0, --duration > 0, --warmup ≥ 0, --extra-bots ≥ 0")
    if args.ws_paired < 0 or args.phase <= 0 or (args.ws_paired and (args.ws or args.json)):
        parser.error("--ws-paired N ≥ 0 and --phase > 0, without --ws or --json")
    namespace = f"load{uuid.uuid4().hex[:8]}"
    try:
        with scratch_database(os.environ.get("POSTGRES_ADMIN_URL", DEFAULT_POSTGRES)) as database_url:
            result = asyncio.run(run(args, database_url, namespace))
    finally:
        sweep_namespaces(DEFAULT_RABBITMQ, [namespace])
    if args.ws_paired:
        print("\n".join(paired_report(result)))
    else:
        print(json.dumps(result, indent=2) if args.json else "\n".join(report(result)))


if __name__ == "__main__":
    main()
