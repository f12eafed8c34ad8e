"""Exchange market data the bots service needs: ccxt markets (cached, single-flight) and last prices."""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from common.cache import Cache, CacheError
from common.errors import AppError, ErrorCode
from common.exchanges import (
    Exchange,
    ExchangeBudget,
    ExchangeCallError,
    ExchangeSettings,
    call,
    create_ccxt,
    has_ticker,
    to_app_error,
    unified_symbol,
)

log = logging.getLogger(__name__)

ClientFactory = Callable[[Exchange, ExchangeSettings], Any]


def price_key(exchange: Exchange | str, ticker: str) -> str:
    """The market-data service's price hash of a ticker (under the cache namespace)."""
    return f"price:{Exchange(exchange).value}:{ticker}"


def _positive_decimal(text: object) -> Decimal | None:
    try:
        value = Decimal(str(text))
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() and value > 0 else None


async def cached_price(cache: Cache, exchange: Exchange | str, ticker: str) -> Decimal | None:
    """The latest price the market-data service cached, or None (absent, unusable, or cache down)."""
    try:
        fields = await cache.hgetall(price_key(exchange, ticker))
    except CacheError:
        # A read model degrades (currentPrice null) rather than failing when only Redis is down.
        log.warning("price cache unavailable for %s:%s", exchange, ticker)
        return None
    return _positive_decimal(fields.get("price")) if fields else None


@dataclass
class _Venue:
    client: Any
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    loaded_at: float | None = None


class MarketCatalog:
    """Each exchange's ccxt markets, loaded on first use and again after a TTL, one load at a time.

    The clients are public (no keys). A failed reload keeps serving the previous markets (exchange rules
    change rarely); with nothing loaded yet, the failure is the client's answer (EXCHANGE_API_ERROR).
    """

    def __init__(
        self,
        settings: ExchangeSettings,
        ttl_seconds: float,
        budget: ExchangeBudget,
        *,
        client_factory: ClientFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._ttl = ttl_seconds
        self._factory = client_factory or (lambda exchange, s: create_ccxt(exchange, s, budget=budget))
        self._clock = clock
        self._venues: dict[Exchange, _Venue] = {}
        # Every exchange call of a request is bounded, retries and waits included, by one exchange timeout.
        self.call_timeout = settings.exchange_timeout_seconds

    async def start(self) -> None:
        """Import ccxt off the event loop and make the clients (the import alone takes seconds)."""
        await asyncio.to_thread(importlib.import_module, "ccxt.async_support")
        for exchange in Exchange:
            self._venue(exchange)

    def _venue(self, exchange: Exchange) -> _Venue:
        venue = self._venues.get(exchange)
        if venue is None:
            venue = _Venue(self._factory(exchange, self._settings))
            self._venues[exchange] = venue
        return venue

    def _fresh(self, venue: _Venue) -> bool:
        return venue.loaded_at is not None and self._clock() - venue.loaded_at < self._ttl

    async def _client(self, exchange: Exchange) -> Any:
        venue = self._venue(exchange)
        if self._fresh(venue):
            return venue.client
        async with venue.lock:
            if self._fresh(venue):  # another request loaded them while this one waited
                return venue.client
            try:
                await call(venue.client.load_markets, True, attempts=2, total_timeout=self.call_timeout)
            except ExchangeCallError as exc:
                if venue.loaded_at is None:
                    raise _exchange_error(exc) from exc
                log.warning(
                    "reloading %s markets failed (%s); keeping the previous ones", exchange, exc.source
                )
                return venue.client
            venue.loaded_at = self._clock()
            return venue.client

    async def market(self, exchange: Exchange, ticker: str) -> dict[str, Any]:
        """The ccxt market of a native ticker (spot), or TICKER_NOT_FOUND."""
        client = await self._client(exchange)
        if not has_ticker(client, ticker):
            raise AppError(ErrorCode.TICKER_NOT_FOUND, {"exchange": exchange.value, "ticker": ticker[:40]})
        return dict(client.market(unified_symbol(client, ticker)))

    async def last_price(self, exchange: Exchange, ticker: str) -> Decimal:
        """The last traded price from the exchange's REST ticker (when the price cache has none)."""
        client = await self._client(exchange)
        symbol = unified_symbol(client, ticker)
        try:
            result = await call(client.fetch_ticker, symbol, attempts=2, total_timeout=self.call_timeout)
        except ExchangeCallError as exc:
            raise _exchange_error(exc) from exc
        info = result.get("info") or {}
        # The venue's own decimal text where there is one (ccxt's `last` is a float).
        raw = info.get("trade_price") or info.get("lastPrice") or result.get("last")
        price = _positive_decimal(raw)
        if price is None:
            raise AppError(ErrorCode.EXCHANGE_API_ERROR, {"exchange": exchange.value})
        return price

    async def close(self) -> None:
        """Close every ccxt client."""
        venues, self._venues = self._venues, {}
        for venue in venues.values():
            try:
                await venue.client.close()
            except Exception:  # closing is best effort at shutdown
                log.debug("closing a ccxt client failed", exc_info=True)


def _exchange_error(exc: ExchangeCallError) -> AppError:
    error = to_app_error(exc)
    # A market-data read that the exchange refuses is still the exchange's failure, not the user's; our
    # spent call budget stays a 503 with Retry-After.
    if error.code not in (
        ErrorCode.TICKER_NOT_FOUND,
        ErrorCode.EXCHANGE_API_ERROR,
        ErrorCode.SERVICE_UNAVAILABLE,
    ):
        return AppError(ErrorCode.EXCHANGE_API_ERROR, error.details)
    return error
