"""The users' live sockets for bench/api_load.py, in a process of their own (started by it; not a benchmark).

A browser reads its socket on its own; here one client plays every user, so the sockets' traffic (every frame
parsed by the websockets library) would run on the same event loop that times the HTTP requests, and a burst
of socket events would show as HTTP latency the server never had. So the sockets live in this child process.

Line protocol over stdin/stdout, one JSON document a line:
  parent → {"port", "users": [[token, client ip], ...]}      child → {"ready": true} once every socket is open
  parent → {"window": [start, end]} (time.monotonic(), shared by both processes on Linux)
  parent → {"stop": true}                                     child → {"events", "prices", "closed"}
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol


class Window:
    """The measured window, known once the parent has it."""

    start = float("inf")
    end = float("-inf")

    def counts(self, now: float) -> bool:
        """Whether a message received at `now` falls inside the window."""
        return self.start <= now < self.end


async def listen(
    ws: ClientConnection, window: Window, events: Counter[str], prices: list[float], closed: Counter[str]
) -> None:
    """Count a socket's events by type inside the window, note when each price came and a close by the server."""
    async for message in ws:
        now = time.monotonic()
        if window.counts(now):
            kind = str(orjson.loads(message).get("type"))
            events[kind] += 1
            if kind == "price":
                prices.append(now)
    closed[f"{ws.close_code} {ws.close_reason}"] += 1


async def main() -> None:
    """Open the sockets, report ready, count until told to stop, report the counts."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def read() -> dict[str, Any]:
        line = await reader.readline()
        if not line:
            raise SystemExit("the bench went away")
        parsed: dict[str, Any] = orjson.loads(line)
        return parsed

    def write(document: dict[str, Any]) -> None:
        sys.stdout.buffer.write(orjson.dumps(document) + b"\n")
        sys.stdout.buffer.flush()

    setup = await read()
    sockets = list(
        await asyncio.gather(
            *(
                connect(
                    f"ws://127.0.0.1:{setup['port']}/api/ws",
                    subprotocols=[Subprotocol("bearer"), Subprotocol(token)],
                    additional_headers={"x-forwarded-for": ip},
                    open_timeout=30,
                )
                for token, ip in setup["users"]
            )
        )
    )
    window = Window()
    events: Counter[str] = Counter()
    prices: list[float] = []
    closed: Counter[str] = Counter()
    listeners = [asyncio.create_task(listen(ws, window, events, prices, closed)) for ws in sockets]
    write({"ready": True})
    window.start, window.end = (await read())["window"]
    await read()  # stop
    for task in listeners:
        task.cancel()
    await asyncio.gather(*listeners, return_exceptions=True)
    await asyncio.gather(*(ws.close() for ws in sockets))
    write({"events": dict(events), "prices": prices, "closed": dict(closed)})
