"""The price a bot starts at: market-data's cached price while it is fresh, else the exchange's own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from common.cache.memory import InMemoryCache
from common.exchanges import Exchange
from engine.intake.prices import PriceSource, fresh

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def test_fresh_reads_the_last_trades_timestamp() -> None:
    assert fresh({"timestamp": "2026-12-02T09:59:55.000Z"}, NOW)
    assert not fresh({"timestamp": "2026-12-02T09:59:49.000Z"}, NOW)
    assert not fresh({"timestamp": "2026-12-02T09:59:59"}, NOW)  # no zone: cannot tell
    assert not fresh({}, NOW)
    assert not fresh({"timestamp": "yesterday"}, NOW)


async def _asked(calls: list[str]) -> Decimal:
    calls.append("public")
    return Decimal("101")


async def test_a_stale_cached_price_is_not_a_start_price() -> None:
    # A market nobody streams any more keeps its last cached price: starting a grid there would place it
    # around a price the market left long ago.
    cache, calls = InMemoryCache(), []
    source = PriceSource(cache, lambda exchange, ticker: _asked(calls))
    stale = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    await cache.hset("price:upbit:KRW-BTC", {"price": "90", "timestamp": stale})
    assert await source.price(Exchange.UPBIT, "KRW-BTC") == Decimal("101")
    assert calls == ["public"]

    await cache.hset("price:upbit:KRW-BTC", {"price": "100", "timestamp": datetime.now(UTC).isoformat()})
    assert await source.price(Exchange.UPBIT, "KRW-BTC") == Decimal("100")
    assert calls == ["public"]
