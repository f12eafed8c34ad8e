"""What two pieces of the gateway's live-socket path cost, before and after this session's changes.

1. A frame: websockets' sans-I/O protocol framing one socket message (what uvicorn's `websockets-sansio`
   does on every `websocket.send`), with permessage-deflate as a browser negotiates it (12-bit windows, as
   uvicorn answered) and without it (the gateway's setting now). Prints µs of CPU per frame, and the memory
   an open connection holds either way.
2. The price writers of 100 sockets (the gateway's `LiveSocket`, with a send that only counts), 8 markets
   ticking four times a second, one price a second per socket: CPU per price sent and writer passes per
   price, for the writer as it is (a tick that finds its price not due arms a loop timer) against the writer
   before 2026-12-06's third session (the tick woke the writer, which found the price not due and waited in
   an `asyncio.timeout`, cancelled when it expired), alternated.
3. The revocation sweep of 100 sockets against the real Redis: one pipeline per socket, all gathered at once
   (before), against `RevocationList.refusals`, one pipeline for all (now). Prints, per sweep, the wall time
   and the longest time the event loop could not run anything else (a 1-ms ticker's largest gap).

    uv run python bench/live_costs.py [--frames 20000] [--sweeps 1000] [--sockets 100] [--writer-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

# bench/ goes to the end of the path: bench/gateway.py must not shadow the gateway package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

from starlette.types import Message, Send  # noqa: E402
from websockets.extensions.permessage_deflate import PerMessageDeflate  # noqa: E402
from websockets.protocol import Protocol, Side, State  # noqa: E402

from common.cache import RedisCache  # noqa: E402
from common.exchanges.ids import Exchange  # noqa: E402
from common.security import RevocationList  # noqa: E402
from common.testing.infra import DEFAULT_REDIS  # noqa: E402
from gateway.live.socket import Limits, LiveSocket  # noqa: E402

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


class _Counted(LiveSocket):
    """The gateway's socket, counting its writer's passes."""

    passes = 0

    async def _send_due_prices(self, send: Send) -> float | None:
        _Counted.passes += 1
        return await super()._send_due_prices(send)


class _Before(_Counted):
    """The writer as it was: every tick that found no price waiting woke it; it waited in a timeout."""

    def offer_price(self, pair: tuple[Exchange, str], text: str) -> None:
        if self.close_code is None:
            waiting = pair in self._prices
            self._prices[pair] = text
            if not waiting:
                self._wake.set()

    async def _write(self, send: Send) -> None:
        while True:
            self._wake.clear()
            while self._queue:
                await self._send(send, self._queue.popleft())
            wait = await self._send_due_prices(send)
            if self._queue:
                continue
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass


async def writers(kind: type[_Counted], sockets: int, seconds: float) -> tuple[float, float, int]:
    """(µs of CPU per price sent, writer passes per price, prices sent) over `seconds` of ticks."""
    markets = [(Exchange.BINANCE, f"M{k}USDT") for k in range(8)]
    closed = asyncio.Event()
    sent = 0

    async def send(message: Message) -> None:
        nonlocal sent
        sent += 1

    async def receive() -> Message:
        await closed.wait()
        return {"type": "websocket.disconnect"}

    limits = Limits(queue_size=256, send_timeout=10.0, price_interval=1.0)
    live = [kind("user", f"jti-{n}", expires_at=0.0, limits=limits) for n in range(sockets)]
    runs = [asyncio.create_task(socket.run(receive, send)) for socket in live]
    _Counted.passes = 0
    loop = asyncio.get_running_loop()
    started, cpu = loop.time(), time.process_time()
    tick = 0
    while loop.time() - started < seconds:
        # One market after another, each four times a second (as market-data publishes them).
        pair = markets[tick % len(markets)]
        text = PRICE.replace("BTCUSDT", pair[1])
        for socket in live[tick % len(markets) :: len(markets)]:
            socket.offer_price(pair, text)
        tick += 1
        await asyncio.sleep(0.25 / len(markets))  # the next market's tick is due then
    spent = time.process_time() - cpu
    passes = _Counted.passes
    closed.set()
    await asyncio.gather(*runs)
    return spent / max(sent, 1) * 1e6, passes / max(sent, 1), sent


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


async def compare_writers(sockets: int, seconds: float, rounds: int = 3) -> None:
    """Both writers, alternated `rounds` times; medians printed."""
    found: dict[str, list[tuple[float, float, int]]] = {"before": [], "now": []}
    for _ in range(rounds):
        found["before"].append(await writers(_Before, sockets, seconds))
        found["now"].append(await writers(_Counted, sockets, seconds))
    print(
        f"\nprice writers of {sockets} sockets, 8 markets at 4 ticks/s, {seconds:g} s a run ({rounds} runs each, alternated):"
    )
    for name, runs in found.items():
        cpu = sorted(r[0] for r in runs)[len(runs) // 2]
        passes = sorted(r[1] for r in runs)[len(runs) // 2]
        print(
            f"  {name:<7} {cpu:6.1f} µs of CPU per price sent (the ticks' own loop included), "
            f"{passes:4.2f} writer passes per price, {sum(r[2] for r in runs)} prices"
        )


def main() -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--sweeps", type=int, default=1000)
    parser.add_argument("--sockets", type=int, default=100)
    parser.add_argument("--writer-seconds", type=float, default=10.0, help="of ticks per writer run")
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
    asyncio.run(compare_writers(args.sockets, args.writer_seconds))
    asyncio.run(sweeps(args.sockets, args.sweeps))


if __name__ == "__main__":
    main()
