"""What two pieces of the gateway's live-socket path cost, before and after this session's changes.

1. A frame: websockets' sans-I/O protocol framing one socket message (what uvicorn's `websockets-sansio`
   does on every `websocket.send`), with permessage-deflate as a browser negotiates it (12-bit windows, as
   uvicorn answered) and without it (the gateway's setting now). Prints µs of CPU per frame, and the memory
   an open connection holds either way.
2. The revocation sweep of 100 sockets against the real Redis: one pipeline per socket, all gathered at once
   (before), against `RevocationList.refusals`, one pipeline for all (now). Prints, per sweep, the wall time
   and the longest time the event loop could not run anything else (a 1-ms ticker's largest gap).

    uv run python bench/live_costs.py [--frames 20000] [--sweeps 1000] [--sockets 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable

from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.protocol import Protocol, Side, State

from common.cache import RedisCache
from common.security import RevocationList
from common.testing.infra import DEFAULT_REDIS

PRICE = '{"type":"price","exchange":"binance","ticker":"BTCUSDT","price":97012.45,"timestamp":"2026-12-06T04:00:00.250Z"}'
TRADE = (
    '{"type":"trade","botId":"6f1c0f5e-3a52-4f7e-9a6e-1f1a4b0f9c11","_id":"0b6f2d6e-58a1-4d0a-8f0e-9b8f7c6d5e4f",'
    '"side":"sell","price":97100.5,"amount":0.00021,"fee":0.0204,"profit":0.0189,"executedAt":"2026-12-06T04:00:00Z"}'
)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def frame_cost(text: str, deflate: bool, frames: int) -> float:
    """µs of CPU to frame one message (send_text + data_to_send) on an open server-side connection."""
    protocol = Protocol(Side.SERVER, state=State.OPEN)
    if deflate:
        protocol.extensions = [PerMessageDeflate(False, False, 12, 12)]
    data = text.encode()
    started = time.process_time()
    for _ in range(frames):
        protocol.send_text(data)
        protocol.data_to_send()
    return (time.process_time() - started) / frames * 1e6


def kib_per_connection(deflate: bool, connections: int = 1000) -> float:
    """Resident memory that each open connection's protocol adds once it has sent a frame (KiB)."""

    def resident() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    before = resident()
    kept = []
    for _ in range(connections):
        protocol = Protocol(Side.SERVER, state=State.OPEN)
        if deflate:
            protocol.extensions = [PerMessageDeflate(False, False, 12, 12)]
        protocol.send_text(PRICE.encode())
        protocol.data_to_send()
        kept.append(protocol)
    return (resident() - before) / connections / 1024


async def held(sweep: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """(wall ms of one sweep, the longest ms the loop was held meanwhile, from a 1-ms ticker's gaps)."""
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    done = False

    async def tick() -> None:
        last = loop.time()
        while not done:
            await asyncio.sleep(0.001)
            now = loop.time()
            gaps.append(now - last - 0.001)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.003)
    started = loop.time()
    await sweep()
    wall = loop.time() - started
    done = True
    await ticker
    return wall * 1000, max(gaps, default=0.0) * 1000


async def sweeps(sockets: int, count: int) -> None:
    """The two sweeps, alternated, `count` times each."""
    cache = RedisCache(DEFAULT_REDIS, f"bench-live-{uuid.uuid4().hex[:8]}", max_connections=1000)
    revocations = RevocationList(cache)
    tokens = [(uuid.uuid4().hex, uuid.uuid4().hex) for _ in range(sockets)]

    async def each() -> object:
        return await asyncio.gather(*(revocations.refusal(jti, user) for jti, user in tokens))

    async def batched() -> object:
        return await revocations.refusals(tokens)

    figures: dict[str, tuple[list[float], list[float]]] = {
        "per socket, gathered": ([], []),
        "one pipeline": ([], []),
    }
    cpu = dict.fromkeys(figures, 0.0)
    try:
        for _ in range(count):
            for name, sweep in (("per socket, gathered", each), ("one pipeline", batched)):
                before = time.process_time()
                wall, stall = await held(sweep)
                cpu[name] += time.process_time() - before
                figures[name][0].append(wall)
                figures[name][1].append(stall)
    finally:
        await cache.close()
    print(f"\nrevocation sweep of {sockets} sockets, real Redis ({count} sweeps each, alternated):")
    for name, (walls, stalls) in figures.items():
        print(
            f"  {name:<22} wall p50 {percentile(walls, 0.5):6.2f} p99 {percentile(walls, 0.99):6.2f} ms;"
            f" loop held p50 {percentile(stalls, 0.5):6.2f} p99 {percentile(stalls, 0.99):6.2f} ms;"
            f" CPU {cpu[name] / count * 1000:5.2f} ms a sweep (with the ticker)"
        )


def main() -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--sweeps", type=int, default=1000)
    parser.add_argument("--sockets", type=int, default=100)
    args = parser.parse_args()
    print(f"one process (pid {os.getpid()}), all figures are its own CPU; {args.frames} frames per cell")
    for label, text in (("price", PRICE), ("trade", TRADE)):
        plain = frame_cost(text, False, args.frames)
        deflated = frame_cost(text, True, args.frames)
        print(
            f"  {label} ({len(text)} bytes): {plain:5.1f} µs a frame without deflate,"
            f" {deflated:5.1f} µs with permessage-deflate"
        )
    print(
        f"  memory of an open connection once it has sent a frame: {kib_per_connection(False):.1f} KiB without"
        f" deflate, {kib_per_connection(True):.1f} KiB with it (1,000 connections each)"
    )
    asyncio.run(sweeps(args.sockets, args.sweeps))


if __name__ == "__main__":
    main()
