"""The market price a bot starts at: market-data's price cache, else the exchange's public ticker."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from common.cache import Cache, CacheError
from common.exchanges import Exchange

log = logging.getLogger(__name__)

PublicPrice = Callable[[Exchange, str], Awaitable[Decimal | None]]
# A cached price older than this may be a market nobody streams any more: the exchange is asked instead.
CACHE_MAX_AGE = timedelta(seconds=10)


def _positive(text: str | None) -> Decimal | None:
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() and value > 0 else None


def fresh(fields: Mapping[str, str], now: datetime, max_age: timedelta = CACHE_MAX_AGE) -> bool:
    """True when the cached entry's `timestamp` (its last trade) is at most `max_age` old."""
    try:
        at = datetime.fromisoformat(fields.get("timestamp", "").replace("Z", "+00:00"))
    except ValueError:
        return False
    if at.tzinfo is None:
        return False
    return now - at <= max_age


class PriceSource:
    """Latest price of a ticker, or None when nobody knows it yet (the bot then starts at the next tick)."""

    def __init__(self, cache: Cache, public: PublicPrice | None = None) -> None:
        self._cache = cache
        self._public = public

    async def price(self, exchange: Exchange, ticker: str) -> Decimal | None:
        """The cached price (market-data's `price:<exchange>:<ticker>`), else the exchange's."""
        try:
            fields = await self._cache.hgetall(f"price:{exchange.value}:{ticker}")
        except CacheError:
            log.warning("price cache unavailable for %s:%s", exchange.value, ticker)
            fields = {}
        price = _positive(fields.get("price"))
        if self._public is None or (price is not None and fresh(fields, datetime.now(UTC))):
            return price
        try:
            return await self._public(exchange, ticker)
        except Exception as exc:  # an unreachable exchange only delays the start to the next tick
            log.info("no public price for %s:%s: %s", exchange.value, ticker, type(exc).__name__)
            return None
