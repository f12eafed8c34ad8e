"""One live socket's writer, driven directly: what wakes it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from common.exchanges.ids import Exchange
from common.testing.wait import eventually
from gateway.live.socket import Limits, LiveSocket

PAIR = (Exchange.UPBIT, "KRW-BTC")


async def test_ticks_of_a_price_not_due_yet_do_not_wake_the_writer() -> None:
    # The writer reads the clock once per pass: its passes are counted through the clock it is given.
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

    socket = LiveSocket("user", "jti", expires_at=0.0, limits=Limits(16, 5.0, 60.0), clock=clock)
    writer = asyncio.create_task(socket.run(receive, send))
    try:
        socket.offer_price(PAIR, "p-0")
        await eventually(lambda: sent == ["p-0"], timeout=5)
        # The first tick after a send wakes the writer once, to learn when the next price is due (in a
        # minute). Once that pass cleared the wake-up, the writer is parked: nothing else runs it.
        socket.offer_price(PAIR, "p-1")
        await eventually(lambda: passes == 2 and not socket._wake.is_set(), timeout=5)
        # The 49 ticks after it only replace the text: none of them wakes the writer.
        for n in range(2, 51):
            socket.offer_price(PAIR, f"p-{n}")
            assert not socket._wake.is_set()
        socket.push("event")  # an event goes at once, the price still waits for its interval
        await eventually(lambda: sent == ["p-0", "event"], timeout=5)
        assert passes == 3
    finally:
        closed.set()
        await writer
