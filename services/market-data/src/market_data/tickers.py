"""Which tickers to stream: those of running bots (bus + start-up query) and those recently asked for."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

import httpx

from common.contracts.bots import BotEvent, BotLifecycle
from common.exchanges.ids import Exchange

log = logging.getLogger(__name__)

Pair = tuple[Exchange, str]
OnChange = Callable[[Exchange, frozenset[str], frozenset[str]], None]
"""Called with (exchange, new wanted set, previous wanted set) whenever an exchange's set changes."""


class TickerRegistry:
    """The union of running bots' tickers and recently requested ones, per exchange."""

    def __init__(
        self, recent_ttl_seconds: float, on_change: OnChange, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.recent_ttl = recent_ttl_seconds
        self.on_change = on_change
        self.clock = clock
        self._bots: dict[str, Pair] = {}
        self._startup: set[Pair] = set()
        self._recent: dict[Pair, float] = {}
        self._current: dict[Exchange, frozenset[str]] = {ex: frozenset() for ex in Exchange}
        self.resync_needed = asyncio.Event()

    def wanted(self, exchange: Exchange) -> frozenset[str]:
        """Tickers of one exchange to stream now."""
        pairs = set(self._bots.values()) | self._startup | set(self._recent)
        return frozenset(ticker for ex, ticker in pairs if ex is exchange)

    def is_wanted(self, exchange: Exchange, ticker: str) -> bool:
        """True when the ticker is in the streamed set."""
        return ticker in self._current[exchange]

    def apply(self, event: BotEvent, message: BotLifecycle) -> None:
        """A bot lifecycle message: a running bot's ticker is streamed; a stopped or deleted one's is not."""
        pair = (message.exchange, message.ticker)
        if event in (BotEvent.STOP, BotEvent.DELETED) or not message.is_running:
            self._bots.pop(message.bot_id, None)
            if pair in self._startup and pair not in self._bots.values():
                # Known only from the start-up query: other running bots may still trade it. Ask again.
                self.resync_needed.set()
        else:
            self._bots[message.bot_id] = pair
        self._notify()

    def set_startup(self, pairs: Iterable[Pair]) -> None:
        """Tickers of running bots according to the bots service (replaces the previous answer)."""
        self._startup = set(pairs)
        self._notify()

    def touch(self, exchange: Exchange, ticker: str) -> None:
        """A ticker was asked for through the API: stream it for the next TTL."""
        pair = (exchange, ticker)
        known = pair in self._recent
        self._recent[pair] = self.clock() + self.recent_ttl
        if not known:
            self._notify()

    def expire(self) -> None:
        """Forget requested tickers whose TTL passed."""
        now = self.clock()
        expired = [pair for pair, until in self._recent.items() if until <= now]
        for pair in expired:
            del self._recent[pair]
        if expired:
            self._notify()

    def _notify(self) -> None:
        for exchange in Exchange:
            wanted = self.wanted(exchange)
            previous = self._current[exchange]
            if wanted != previous:
                self._current[exchange] = wanted
                self.on_change(exchange, wanted, previous)

    async def run_expiry(self) -> None:
        """Expire requested tickers until cancelled."""
        interval = max(0.5, min(5.0, self.recent_ttl / 4))
        while True:
            await asyncio.sleep(interval)
            self.expire()


async def fetch_running_tickers(
    bots_url: str,
    token: str,
    timeout_seconds: float,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Pair] | None:
    """GET {BOTS_URL}/internal/bots/running-tickers (INTERNAL_TICKERS_TOKEN); None when it cannot tell."""
    url = bots_url.rstrip("/") + "/internal/bots/running-tickers"
    try:
        async with httpx.AsyncClient(timeout=timeout_seconds, transport=transport) as client:
            response = await client.get(url, headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        rows = response.json()["tickers"]
        pairs: list[Pair] = []
        for row in rows:
            try:
                pairs.append((Exchange(row["exchange"]), str(row["ticker"])))
            except (KeyError, ValueError, TypeError):
                log.warning("bots service listed an unusable ticker: %r", row)
        return pairs
    except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
        log.warning(
            "running tickers unavailable from the bots service (%s); relying on the bus", type(exc).__name__
        )
        return None


async def sync_with_bots(
    registry: TickerRegistry,
    bots_url: str,
    token: str,
    every_seconds: float,
    timeout_seconds: float,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """Ask the bots service at start-up, then periodically and whenever the registry needs it."""
    while True:
        pairs = await fetch_running_tickers(bots_url, token, timeout_seconds, transport)
        if pairs is not None:
            registry.set_startup(pairs)
        registry.resync_needed.clear()
        try:
            async with asyncio.timeout(every_seconds):
                await registry.resync_needed.wait()
        except TimeoutError:
            pass
