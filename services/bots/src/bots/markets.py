"""Prices the bots service reads: the market-data service's cached price of a ticker.

Markets and last prices from the exchange itself come from the shared `common.exchanges.MarketCatalog`
(re-exported here for the modules that type against it).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from common.cache import Cache, CacheError
from common.exchanges import Exchange, MarketCatalog
from common.exchanges.catalog import positive_decimal

__all__ = ["MarketCatalog", "cached_price", "price_key"]

log = logging.getLogger(__name__)


def price_key(exchange: Exchange | str, ticker: str) -> str:
    """The market-data service's price hash of a ticker (under the cache namespace)."""
    return f"price:{Exchange(exchange).value}:{ticker}"


async def cached_price(cache: Cache, exchange: Exchange | str, ticker: str) -> Decimal | None:
    """The latest price the market-data service cached, or None (absent, unusable, or cache down)."""
    try:
        fields = await cache.hgetall(price_key(exchange, ticker))
    except CacheError:
        # A read model degrades (currentPrice null) rather than failing when only Redis is down.
        log.warning("price cache unavailable for %s:%s", exchange, ticker)
        return None
    return positive_decimal(fields.get("price")) if fields else None
