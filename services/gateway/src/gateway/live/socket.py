"""One open live-update socket: a bounded send queue, conflated prices, and the task that writes them.

Nothing here ever waits on a client while fanning out: `push` and `offer_price` only append and wake the
socket's own writer. A client that lets `queue_size` events pile up, or whose one send takes longer than
`send_timeout`, is disconnected (1013) instead of slowing anyone else down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import Receive, Send

from common import metrics
from common.exchanges.ids import Exchange
from gateway.live.wire import PONG

log = logging.getLogger(__name__)

Pair = tuple[Exchange, str]

# RFC 6455 close codes.
GOING_AWAY = 1001
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
# Bound on the close frame of a client that stopped reading (its transport may never drain).
CLOSE_TIMEOUT_SECONDS = 1.0
# A price sent this late after its due time (a fraction of the interval) was sent by a tick, not the timer.
ON_SCHEDULE_SLACK = 0.05


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-socket bounds."""

    queue_size: int
    send_timeout: float
    price_interval: float


class LiveSocket:
    """The gateway's side of one accepted WebSocket of one user."""

    def __init__(
        self,
        user_id: str,
        jti: str,
        expires_at: float,
        limits: Limits,
        clock: Callable[[], float] = time.monotonic,
        phase: float | None = None,
    ) -> None:
        self.user_id = user_id
        self.jti = jti
        self.expires_at = expires_at
        self._limits = limits
        self._clock = clock
        self._queue: deque[str] = deque()
        self._prices: dict[Pair, str] = {}
        self._price_due: dict[Pair, float] = {}
        # This socket's own offset in the price interval (a fraction of it, drawn once; see _next_due).
        self._phase = random.random() if phase is None else phase  # noqa: S311 (spreading, not secrecy)
        self._wake = asyncio.Event()
        # The writer's one pending wake-up for a price coming due (a loop timer, not a task waiting on one).
        self._timer: asyncio.TimerHandle | None = None
        self._kicked = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""

    @property
    def closing(self) -> bool:
        """True once the socket was told to close."""
        return self.close_code is not None

    def push(self, text: str) -> None:
        """Queue one event; a full queue disconnects the socket (a slow client)."""
        if self.close_code is not None:
            return
        if len(self._queue) >= self._limits.queue_size:
            log.info("live socket of user %s dropped: %d events unsent", self.user_id, len(self._queue))
            metrics.GATEWAY_WS_SLOW_DROPPED.inc()
            self.kick(TRY_AGAIN_LATER, "slow consumer")
            return
        self._queue.append(text)
        self._wake.set()

    def offer_price(self, pair: Pair, text: str) -> None:
        """The latest price of a ticker; sent at most once per price interval (newer replaces older)."""
        if self.close_code is not None:
            return
        waiting = pair in self._prices
        self._prices[pair] = text
        # A price already waiting is in the writer's reckoning of when to wake: a newer one only replaces
        # its text. Waking the writer for every tick woke it several times for each price it could send.
        if waiting:
            return
        due = self._price_due.get(pair)
        wait = None if due is None else due - self._clock()
        if wait is None or wait <= 0:
            self._wake.set()
        else:
            # Not due yet: a timer wakes the writer when it is. Waking it now had it find the price early,
            # arm a timeout, and be woken a second time by that timeout's cancellation of its wait.
            self._arm(wait)

    def kick(self, code: int, reason: str) -> None:
        """Close the socket with `code` (the first reason given wins)."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self._kicked.set()

    async def run(self, receive: Receive, send: Send) -> None:
        """Write events and read client messages until either side ends the connection."""
        writer = asyncio.create_task(self._write(send), name=f"ws-writer:{self.user_id}")
        reader = asyncio.create_task(self._read(receive), name=f"ws-reader:{self.user_id}")
        kicked = asyncio.create_task(self._kicked.wait())
        tasks = {writer, reader, kicked}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if reader in done or self.close_code is None:
            return  # the client left (or the send failed): nothing to close
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await send({"type": "websocket.close", "code": self.close_code, "reason": self.close_reason})
        except (TimeoutError, OSError, RuntimeError):
            # A client that stopped reading cannot take a close frame either; the server drops the
            # connection once we return.
            log.debug("close frame to user %s not sent", self.user_id)

    async def _write(self, send: Send) -> None:
        try:
            while True:
                self._wake.clear()
                while self._queue:
                    await self._send(send, self._queue.popleft())
                wait = await self._send_due_prices(send)
                if self._queue:
                    continue
                if wait is not None:
                    self._arm(wait)
                await self._wake.wait()
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _arm(self, wait: float) -> None:
        """Wake the writer in `wait` seconds, unless a wake-up as early is pending already."""
        loop = asyncio.get_running_loop()
        when = loop.time() + max(0.0, wait)
        if self._timer is not None:
            if self._timer.when() <= when:
                return  # the writer reckons every pending price's due time whenever it runs
            self._timer.cancel()
        self._timer = loop.call_at(when, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        self._wake.set()

    async def _send_due_prices(self, send: Send) -> float | None:
        """Send every price whose interval passed; seconds until the next one is due (None: none pending)."""
        now = self._clock()
        next_due: float | None = None
        for pair in list(self._prices):
            due = self._price_due.get(pair)
            if due is None or due <= now:
                text = self._prices.pop(pair)
                self._price_due[pair] = self._next_due(now, due)
                await self._send(send, text)
            else:
                next_due = due if next_due is None else min(next_due, due)
        return None if next_due is None else max(0.0, next_due - now)

    def _next_due(self, now: float, due: float | None) -> float:
        """When this socket may send the ticker's next price, having sent one at `now`."""
        interval = self._limits.price_interval
        if due is not None and now - due <= interval * ON_SCHEDULE_SLACK:
            return now + interval  # sent on this socket's own timer: it keeps its schedule
        # Sent as its tick arrived (the first price, or the first after a quiet spell): that tick reached
        # every socket of the ticker at once. Left one interval apart, they would all write in the same
        # instant every second, a burst that holds up the HTTP requests behind it on the event loop. The
        # socket's own phase, added once, spreads their writes over the interval; a client still gets at
        # most one price per interval.
        return now + interval + self._phase * interval

    async def _send(self, send: Send, text: str) -> None:
        try:
            async with asyncio.timeout(self._limits.send_timeout):
                await send({"type": "websocket.send", "text": text})
        except TimeoutError:
            if not self.closing:
                metrics.GATEWAY_WS_SLOW_DROPPED.inc()
            self.kick(TRY_AGAIN_LATER, "slow consumer")
            raise

    async def _read(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message["type"] == "websocket.receive" and _is_ping(message.get("text")):
                # Browsers cannot see protocol pings: an application ping lets a page check the line.
                self.push(PONG)


def _is_ping(text: str | None) -> bool:
    if not text or len(text) > 64:
        return False
    try:
        parsed = json.loads(text)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("type") == "ping"
