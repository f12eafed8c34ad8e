"""A WebSocket session: a receive loop, a queue-fed send loop, and a registry to drop them all."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.websockets import WebSocket, WebSocketDisconnect

from exchange_sim.markets import VENUES, Venue

log = logging.getLogger(__name__)
_MAX_QUEUED = 10_000
# Close code used when the control API drops connections: 1012 "service restart".
DROP_CODE = 1012


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


Outgoing = str | bytes | _Close
MessageHandler = Callable[[str | bytes], Awaitable[None]]


class WsSession:
    """Frames queued by event listeners are sent in order; closing is a queued frame too."""

    def __init__(self, websocket: WebSocket, venue: Venue, registry: ConnectionRegistry) -> None:
        self.websocket = websocket
        self.venue = venue
        self.registry = registry
        self._outbox: asyncio.Queue[Outgoing] = asyncio.Queue()
        self.closing = False
        # What this connection is subscribed to, e.g. "binance:btcusdt@trade" (shown by /_sim/health).
        self.topics: set[str] = set()
        # API keys whose private (user data) events this connection receives (shown by /_sim/user-streams).
        self.user_keys: set[str] = set()

    def send(self, frame: str | bytes) -> None:
        """Queue a text (str) or binary (bytes) frame; a client too far behind is dropped."""
        if self.closing:
            return
        if self._outbox.qsize() >= _MAX_QUEUED:
            self.close(1008, "too slow")
            return
        self._outbox.put_nowait(frame)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Queue a close frame; nothing is sent after it."""
        if not self.closing:
            self.closing = True
            self._outbox.put_nowait(_Close(code, reason))

    async def _send_loop(self) -> None:
        while True:
            frame = await self._outbox.get()
            if isinstance(frame, _Close):
                with contextlib.suppress(Exception):
                    await self.websocket.close(frame.code, frame.reason)
                return
            if isinstance(frame, bytes):
                await self.websocket.send_bytes(frame)
            else:
                await self.websocket.send_text(frame)

    async def _receive_loop(self, handler: MessageHandler) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            data: str | bytes | None = text if text is not None else message.get("bytes")
            if data is not None:
                await handler(data)

    async def serve(self, handler: MessageHandler) -> None:
        """Run until the client leaves or the session is closed."""
        self.registry.add(self)
        if self.registry.holding(self.venue):
            # The venue is dropping every WebSocket for a while: this one goes as soon as it came.
            self.close(DROP_CODE, "dropped by simulator")
        sender = asyncio.create_task(self._send_loop())
        receiver = asyncio.create_task(self._receive_loop(handler))
        try:
            await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.registry.remove(self)
            for task in (sender, receiver):
                task.cancel()
            for task in (sender, receiver):
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                except (WebSocketDisconnect, Exception) as exc:
                    # A peer that vanished mid-send is normal for a WebSocket server.
                    log.debug("websocket task ended: %r", exc)


class ConnectionRegistry:
    """Every open WebSocket session, so the control API can drop them."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._sessions: set[WsSession] = set()
        self._clock = clock
        # Until when (clock seconds) every new WebSocket of a venue is closed at once.
        self._held_until: dict[Venue, float] = {}

    def add(self, session: WsSession) -> None:
        """Track a session."""
        self._sessions.add(session)

    def remove(self, session: WsSession) -> None:
        """Forget a session."""
        self._sessions.discard(session)

    def drop_all(self, venue: Venue | None = None, hold_seconds: float = 0.0) -> int:
        """Close every session (of one venue when given); returns how many.

        With `hold_seconds`, sessions that open during that time are closed at once too.
        """
        if hold_seconds > 0:
            until = self._clock() + hold_seconds
            for held in VENUES if venue is None else (venue,):
                self._held_until[held] = max(until, self._held_until.get(held, 0.0))
        dropped = 0
        for session in list(self._sessions):
            if venue is None or session.venue == venue:
                session.close(DROP_CODE, "dropped by simulator")
                dropped += 1
        return dropped

    def holding(self, venue: Venue) -> bool:
        """True while the venue drops every WebSocket that opens."""
        return self._clock() < self._held_until.get(venue, 0.0)

    def count(self) -> int:
        """How many sessions are open."""
        return len(self._sessions)

    def user_streams(self) -> dict[tuple[Venue, str], int]:
        """How many open sessions receive each (venue, API key)'s private events."""
        counts: dict[tuple[Venue, str], int] = {}
        for session in self._sessions:
            for api_key in session.user_keys:
                counts[(session.venue, api_key)] = counts.get((session.venue, api_key), 0) + 1
        return counts

    def topics(self) -> dict[str, int]:
        """How many open sessions subscribe to each topic."""
        counts: dict[str, int] = {}
        for session in self._sessions:
            for topic in session.topics:
                counts[topic] = counts.get(topic, 0) + 1
        return dict(sorted(counts.items()))
