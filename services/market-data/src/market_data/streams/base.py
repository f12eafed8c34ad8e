"""A reconnecting WebSocket client carrying every wanted ticker of one exchange on one connection.

Subclasses speak the exchange's protocol (subscribe, parse, probe). This class owns the lifecycle:
connect with jittered exponential backoff (`common.retry`), (re)subscribe when the wanted set changes (debounced, within
the exchange's message rate limit), probe a connection that went silent and replace it when the probe
fails, rotate it proactively before the exchange's own connection lifetime ends (open the new one,
subscribe, then close the old one; trade ids dedupe the overlap), and hand the backfiller every ticker
that may have missed trades.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from common import metrics
from common.exchanges.ids import Exchange
from common.retry import Backoff, Jitter
from common.web import iso_utc
from market_data.backfill import Backfiller
from market_data.conflate import Conflator, TickerBook

log = logging.getLogger(__name__)

# A connection that stayed up this long resets the backoff.
_STABLE_SECONDS = 30.0


@dataclass(frozen=True)
class StreamOptions:
    """Timing of a stream client (from the service settings)."""

    silent_seconds: float = 10.0
    probe_timeout_seconds: float = 5.0
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    debounce_seconds: float = 0.2
    open_timeout_seconds: float = 10.0
    rotate_after_seconds: float | None = None

    @property
    def backoff(self) -> Backoff:
        """The reconnection policy: half of each delay fixed (never back at once), half jittered."""
        return Backoff(self.backoff_initial_seconds, self.backoff_max_seconds, Jitter.HALF)


class RateLimiter:
    """Sliding-window limits on messages we send, e.g. [(5, 1.0), (100, 60.0)]."""

    def __init__(self, limits: list[tuple[int, float]]) -> None:
        self.limits = limits
        self._sent: deque[float] = deque()

    async def acquire(self) -> None:
        """Wait until one more message fits in every window."""
        while True:
            now = time.monotonic()
            horizon = max(period for _, period in self.limits)
            while self._sent and now - self._sent[0] > horizon:
                self._sent.popleft()
            wait = 0.0
            for count, period in self.limits:
                recent = [t for t in self._sent if now - t < period]
                if len(recent) >= count:
                    wait = max(wait, period - (now - recent[-count]))
            if wait <= 0:
                self._sent.append(now)
                return
            await asyncio.sleep(wait)


class Connection:
    """One open WebSocket and what it is subscribed to."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.opened_at = time.monotonic()
        self.last_frame = self.opened_at
        self.frames = 0
        self.subscribed: set[str] = set()
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 1

    async def close(self) -> None:
        """Close without waiting long for the peer."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 2.0)


@dataclass
class StreamState:
    """What /health/ready reports about a stream."""

    status: str = "idle"  # idle | connecting | connected | reconnecting
    connected_since: float | None = None
    reconnects: int = 0
    rotations: int = 0
    frames: int = 0
    last_error: str | None = None

    @property
    def healthy(self) -> bool:
        """Idle (nothing to stream) or connected."""
        return self.status in ("idle", "connected")


class StreamClient(ABC):
    """The lifecycle of one exchange's market-data connection."""

    exchange: Exchange
    max_tickers: int = 10_000

    def __init__(
        self,
        url: str,
        conflator: Conflator,
        backfiller: Backfiller,
        options: StreamOptions,
        prepare_books: Callable[[Exchange, list[TickerBook]], Awaitable[None]] | None = None,
    ) -> None:
        self.url = url
        self.conflator = conflator
        self.books = conflator.by_exchange[self.exchange]
        self.backfiller = backfiller
        self.options = options
        self.prepare_books = prepare_books
        self.state = StreamState()
        self._wanted: frozenset[str] = frozenset()
        self._changed = asyncio.Event()
        self._has_wanted = asyncio.Event()
        self._conn: Connection | None = None
        self._session_over = asyncio.Event()
        self._readers: set[asyncio.Task[None]] = set()

    # ---- protocol hooks ------------------------------------------------------------------------------

    @abstractmethod
    def endpoint(self) -> str:
        """The URL to connect to."""

    @abstractmethod
    async def update_subscription(
        self, conn: Connection, wanted: set[str], added: set[str], removed: set[str]
    ) -> None:
        """Make the connection carry exactly `wanted` (returns once the exchange took it)."""

    @abstractmethod
    def handle(self, conn: Connection, frame: str | bytes) -> None:
        """Parse one frame and feed the conflator (synchronous: the hot path)."""

    @abstractmethod
    async def probe(self, conn: Connection) -> bool:
        """After a silence: True when the connection still answers."""

    # ---- public --------------------------------------------------------------------------------------

    @property
    def wanted(self) -> frozenset[str]:
        """Tickers this client should carry."""
        return self._wanted

    @property
    def subscribed(self) -> frozenset[str]:
        """Tickers the open connection carries now."""
        return frozenset(self._conn.subscribed) if self._conn is not None else frozenset()

    def set_tickers(self, tickers: frozenset[str]) -> None:
        """Change the wanted set (applied after a short debounce)."""
        if len(tickers) > self.max_tickers:
            log.error(
                "%s: %d tickers wanted, one connection carries %d",
                self.exchange,
                len(tickers),
                self.max_tickers,
            )
            tickers = frozenset(sorted(tickers)[: self.max_tickers])
        if tickers == self._wanted:
            return
        self._wanted = tickers
        self._changed.set()
        if tickers:
            self._has_wanted.set()
        else:
            self._has_wanted.clear()

    def health(self) -> dict[str, Any]:
        """Connection state for readiness: status, since, reconnects, last frame age."""
        conn = self._conn
        now = time.monotonic()
        return {
            "status": self.state.status,
            "connectedSince": (
                iso_utc(datetime.fromtimestamp(self.state.connected_since, UTC))
                if self.state.connected_since is not None
                else None
            ),
            "reconnects": self.state.reconnects,
            "rotations": self.state.rotations,
            "lastFrameAgeSeconds": round(now - conn.last_frame, 3) if conn is not None else None,
            "frames": self.state.frames,
            "tickers": len(self._wanted),
            "subscribed": len(conn.subscribed) if conn is not None else 0,
            "lastError": self.state.last_error,
        }

    async def run(self) -> None:
        """Connect, serve, reconnect; until cancelled."""
        attempt = 0
        while True:
            if not self._wanted:
                self.state.status = "idle"
                await self._has_wanted.wait()
            self.state.status = "connecting" if attempt == 0 else "reconnecting"
            started = time.monotonic()
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, InvalidURI) as exc:
                self.state.last_error = f"{type(exc).__name__}: {exc}"[:200]
                log.warning("%s stream connection failed: %s", self.exchange, self.state.last_error)
            except Exception as exc:
                self.state.last_error = f"{type(exc).__name__}: {exc}"[:200]
                log.exception("%s stream failed", self.exchange)
            self.state.connected_since = None
            if not self._wanted:
                attempt = 0
                continue
            attempt = 1 if time.monotonic() - started > _STABLE_SECONDS else attempt + 1
            self.state.reconnects += 1
            metrics.MARKET_RECONNECTS.labels(self.exchange.value).inc()
            self.state.status = "reconnecting"
            await asyncio.sleep(self.options.backoff.delay(attempt))

    # ---- internals -----------------------------------------------------------------------------------

    async def _open(self) -> Connection:
        ws = await connect(
            self.endpoint(),
            open_timeout=self.options.open_timeout_seconds,
            ping_interval=None,  # our watchdog pings only after a silence
            close_timeout=2,
            max_size=2**22,
            max_queue=4096,
            compression=None,  # deflate costs more CPU than the bandwidth it saves on this traffic
        )
        return Connection(ws)

    async def _session(self) -> None:
        conn = await self._open()
        self._session_over.clear()
        self._conn = conn
        self._start_reader(conn)
        helpers: list[asyncio.Task[None]] = []
        try:
            await self._apply(conn, set(self._wanted))
            self.state.status = "connected"
            self.state.connected_since = time.time()
            self.state.last_error = None
            helpers = [
                asyncio.create_task(self._guard(self._watchdog()), name=f"{self.exchange}-watchdog"),
                asyncio.create_task(self._guard(self._follow()), name=f"{self.exchange}-follow"),
            ]
            if self.options.rotate_after_seconds:
                helpers.append(
                    asyncio.create_task(self._guard(self._rotate_loop()), name=f"{self.exchange}-rotate")
                )
            await self._session_over.wait()
        finally:
            for task in helpers:
                task.cancel()
            current, self._conn = self._conn, None
            for c in {conn, current}:
                if c is not None:
                    await c.close()
            readers = list(self._readers)
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, *helpers, return_exceptions=True)

    def _start_reader(self, conn: Connection) -> asyncio.Task[None]:
        task = asyncio.create_task(self._read(conn), name=f"{self.exchange}-reader")
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)
        return task

    async def _guard(self, work: Awaitable[None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.state.last_error = f"{type(exc).__name__}: {exc}"[:200]
            log.warning("%s stream session ends: %s", self.exchange, self.state.last_error)
            self._session_over.set()

    async def _read(self, conn: Connection) -> None:
        handle = self.handle
        state = self.state
        received = metrics.MARKET_MESSAGES.labels(self.exchange.value)
        try:
            async for frame in conn.ws:
                conn.last_frame = time.monotonic()
                conn.frames += 1
                state.frames += 1
                received.inc()
                try:
                    handle(conn, frame)
                except Exception:
                    log.exception("%s: bad frame dropped", self.exchange)
        except ConnectionClosed as exc:
            state.last_error = f"closed: {exc}"[:200]
        finally:
            for future in conn.pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))
            if self._conn is conn:
                self._session_over.set()

    async def _apply(self, conn: Connection, wanted: set[str]) -> None:
        added = wanted - conn.subscribed
        removed = conn.subscribed - wanted
        if not added and not removed:
            return
        books = [self.conflator.book(self.exchange, ticker) for ticker in sorted(added)]
        if self.prepare_books is not None and books:
            await self.prepare_books(self.exchange, books)
        backfill = [book for book in books if self.backfiller.prepare(book)]
        try:
            await self.update_subscription(conn, wanted, added, removed)
        except BaseException:
            for book in backfill:
                if book.buffer is not None and not self.backfiller.is_running(book):
                    self.conflator.drain_buffer(book)
            raise
        conn.subscribed = set(wanted)
        for ticker in removed:
            self.conflator.book(self.exchange, ticker).forget_position()
        self.backfiller.start(backfill)

    async def _follow(self) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(self.options.debounce_seconds)
            self._changed.clear()
            conn = self._conn
            if conn is None:
                return
            if not self._wanted:
                self._session_over.set()
                return
            await self._apply(conn, set(self._wanted))

    async def _watchdog(self) -> None:
        interval = min(1.0, self.options.silent_seconds / 2)
        while True:
            await asyncio.sleep(interval)
            conn = self._conn
            if conn is None:
                return
            if time.monotonic() - conn.last_frame < self.options.silent_seconds:
                continue
            try:
                alive = await asyncio.wait_for(self.probe(conn), self.options.probe_timeout_seconds)
            except (TimeoutError, ConnectionClosed, ConnectionError):
                alive = False
            if not alive:
                log.warning(
                    "%s stream silent for %.0fs and unanswered: reconnecting",
                    self.exchange,
                    self.options.silent_seconds,
                )
                self.state.last_error = "silent connection"
                self._session_over.set()
                return

    async def _rotate_loop(self) -> None:
        assert self.options.rotate_after_seconds is not None
        while True:
            conn = self._conn
            if conn is None:
                return
            wait = conn.opened_at + self.options.rotate_after_seconds - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            await self.rotate()

    async def rotate(self) -> None:
        """Replace the connection without a gap: open and subscribe the new one, then close the old one."""
        old = self._conn
        if old is None:
            return
        new = await self._open()
        reader = self._start_reader(new)
        try:
            await self.update_subscription(new, set(old.subscribed), set(old.subscribed), set())
        except BaseException:
            reader.cancel()
            await new.close()
            raise
        new.subscribed = set(old.subscribed)
        self._conn = new
        self.state.rotations += 1
        # A change applied to the old connection meanwhile is reconciled on the new one.
        self._changed.set()
        await old.close()
        log.info("%s stream rotated to a new connection", self.exchange)
