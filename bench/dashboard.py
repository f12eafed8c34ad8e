"""One polling user of bench/api_load.py: the dashboard's mix, its requests on schedule, and the users' sockets.

Shared by the whole-window measurement (api_load.py) and the paired one (wspaired.py); not a benchmark.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from loadkit import Client, Recorder, percentile, schedule

_HERE = Path(__file__).resolve().parent

# The dashboard: (label, path); {bot}, {exchange}, {ticker} are the user's bot and its market.
MIX = [
    ("GET /api/bots", "/api/bots"),
    ("GET /api/bots/:id", "/api/bots/{bot}"),
    ("GET /api/bots/:id/trades", "/api/bots/{bot}/trades?limit=50"),
    ("GET /api/bots/:id/grid-levels", "/api/bots/{bot}/grid-levels"),
    ("GET /api/bots/:id/performance", "/api/bots/{bot}/performance"),
    ("GET /api/exchange/price/:exchange/:ticker", "/api/exchange/price/{exchange}/{ticker}"),
    ("GET /api/auth/me", "/api/auth/me"),
]
REQUEST_TIMEOUT = 10.0
PIPE_LINE_LIMIT = 64 * 1024 * 1024
BURST_MS = 10  # the slice in which prices received together count as one burst


@dataclass
class User:
    """A registered user, the client IP it comes from, and its one running paper bot."""

    ip: str
    token: str
    bot: str = ""
    exchange: str = ""
    ticker: str = ""


async def fire(client: Client, label: str, path: str, scheduled: float, rec: Recorder) -> None:
    """One request at its scheduled time, recorded with its latency from that time."""
    loop = asyncio.get_running_loop()
    sent = loop.time()
    outcome: int | str
    body = b""
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            outcome, body = await client.get(path)
    except TimeoutError:
        outcome = "timeout"
    except (OSError, ConnectionError) as exc:
        outcome = f"connection: {type(exc).__name__}"
    rec.add(label, scheduled, sent, loop.time(), outcome, body)


async def poll(user: User, client: Client, times: list[float], offset: int, rec: Recorder) -> None:
    """One user's dashboard: the mix's routes in turn, each at its scheduled time."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()
    for k, scheduled in enumerate(times):
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        label, template = MIX[(offset + k) % len(MIX)]
        path = template.format(bot=user.bot, exchange=user.exchange, ticker=user.ticker)
        task = asyncio.create_task(fire(client, label, path, scheduled, rec))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    client.close()


def start_polling(
    users: list[User], port: int, start: float, end: float, rate: float, rng: random.Random, rec: Recorder
) -> list[asyncio.Task[None]]:
    """Every user's dashboard polling, each on its own schedule in [start, end) from a random point of the mix."""
    return [
        asyncio.create_task(
            poll(
                u,
                Client(port, {"authorization": f"Bearer {u.token}", "x-forwarded-for": u.ip}),
                schedule(start, end, rate, rng),
                rng.randrange(len(MIX)),
                rec,
            )
        )
        for u in users
    ]


class Sockets:
    """Every user's `/api/ws`, held by bench/wsclient.py in a process of its own (why: its docstring)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.pid = process.pid

    @classmethod
    async def open(cls, port: int, users: list[User], nice: int = 0) -> Sockets:
        """Start the child (at `nice`) and wait until every socket is open."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            f"import asyncio, os, sys; os.nice({nice}); sys.path.append({str(_HERE)!r}); import wsclient; "
            "asyncio.run(wsclient.main())",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=PIPE_LINE_LIMIT,  # the counts' line carries every price's arrival time
        )
        sockets = cls(process)
        await sockets._send({"port": port, "users": [[u.token, u.ip] for u in users]})
        if not (await sockets._receive()).get("ready"):
            raise RuntimeError("the sockets' process did not open the sockets")
        return sockets

    async def window(self, start: float, end: float) -> None:
        """Tell the child the measured window (loop.time() is time.monotonic() in both processes)."""
        await self._send({"window": [start, end]})

    async def stop(self) -> dict[str, Any]:
        """Close the sockets; their counts."""
        await self._send({"stop": True})
        counted = await self._receive()
        await self._process.wait()
        return counted

    async def _send(self, document: dict[str, Any]) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(orjson.dumps(document) + b"\n")
        await self._process.stdin.drain()

    async def _receive(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = await self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the sockets' process ended (exit {await self._process.wait()})")
        document: dict[str, Any] = orjson.loads(line)
        return document


def price_bursts(times: list[float]) -> dict[str, int]:
    """How many prices (all sockets) arrived in the same `BURST_MS`: the busiest slice and the p99 slice.

    The gateway writes a socket's frames as it goes through its sockets on one event-loop pass: prices that
    arrive together were written together, and an HTTP request that came in meanwhile waited for all of them.
    """
    slices = Counter(int(t * 1000 // BURST_MS) for t in times)
    counts = sorted(slices.values()) or [0]
    return {
        "max": counts[-1],
        "p99": int(percentile([float(c) for c in counts], 0.99)),
        "slices": len(slices),
    }
