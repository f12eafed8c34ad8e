"""The market price a bot starts at: market-data's price cache, else the exchange's public ticker."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation

from common.cache import Cache, CacheError
from common.exchanges import Exchange

log = logging.getLogger(__name__)

PublicPrice = Callable[[Exchange, str], Awaitable[Decimal | None]]


def _positive(text: str | None) -> Decimal | None:
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() and value > 0 else None


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
        if price is not None or self._public is None:
            return price
        try:
            return await self._public(exchange, ticker)
        except Exception as exc:  # an unreachable exchange only delays the start to the next tick
            log.info("no public price for %s:%s: %s", exchange.value, ticker, type(exc).__name__)
            return None
