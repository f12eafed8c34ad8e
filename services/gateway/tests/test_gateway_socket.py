"""One live socket's writer, driven directly: what wakes it."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from common.exchanges.ids import Exchange
from common.testing.wait import eventually
from gateway.live.socket import Limits, LiveSocket

PAIR = (Exchange.UPBIT, "KRW-BTC")


async def test_ticks_of_a_price_not_due_yet_do_not_wake_the_writer() -> None:
    # Each pass of the writer reads the clock once, and so does a tick that arms the writer's timer: the
    # reads are counted through the clock it is given.
    passes = 0

    def clock() -> float:
        nonlocal passes
        passes += 1
        return time.monotonic()

    sent: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["text"])

    closed = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await closed.wait()
        return {"type": "websocket.disconnect"}

    socket = LiveSocket("user", "jti", expires_at=0.0, limits=Limits(16, 5.0, 0.5), clock=clock, phase=0.0)
    writer = asyncio.create_task(socket.run(receive, send))
    try:
        socket.offer_price(PAIR, "p-0")
        await eventually(lambda: sent == ["p-0"], timeout=5)
        assert passes == 1
        # The next price is due half a second after the first. The tick after the send only arms a timer
        # for then (one clock read), and the 49 ticks after it only replace the text: none wakes the writer.
        for n in range(1, 51):
            socket.offer_price(PAIR, f"p-{n}")
            assert not socket._wake.is_set()
        assert passes == 2
        # When the price is due, the timer wakes the writer once, and it sends the newest one.
        await eventually(lambda: sent == ["p-0", "p-50"], timeout=5)
        assert passes == 3
        socket.push("event")  # an event goes at once
        await eventually(lambda: sent == ["p-0", "p-50", "event"], timeout=5)
    finally:
        closed.set()
        await writer
    assert socket._timer is None  # nothing of the socket is left on the loop


async def test_sockets_of_one_ticker_spread_their_prices_over_the_interval() -> None:
    # Eight sockets of one ticker, each with its own phase, fed the same ticks (four a second) for ten
    # seconds. The writer sends only what is due whenever it runs; here it runs every 10 ms of a clock
    # the test moves, which sends exactly what the writer's own timer would.
    now = 0.0
    sends: dict[int, list[float]] = {k: [] for k in range(8)}

    def clock() -> float:
        return now

    def sender(k: int) -> Any:
        async def send(message: dict[str, Any]) -> None:
            sends[k].append(now)

        return send

    limits = Limits(16, 5.0, 1.0)
    sockets = [
        LiveSocket("user", f"jti-{k}", expires_at=0.0, limits=limits, clock=clock, phase=k / 8)
        for k in range(8)
    ]
    for step in range(1000):
        now = step / 100
        if step % 25 == 0:
            for socket in sockets:
                socket.offer_price(PAIR, f"tick-{step}")
        for k, socket in enumerate(sockets):
            await socket._send_due_prices(sender(k))

    for times in sends.values():
        # Never more than one price per interval to a client.
        assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(times))
        assert len(times) >= 9  # and still about one a second
    # The first tick reached every socket at once; from then on no two sockets write at the same instant.
    later = sorted(t for times in sends.values() for t in times if t > 0)
    assert len(later) == len(set(later))
    assert all(times[0] == 0.0 for times in sends.values())
