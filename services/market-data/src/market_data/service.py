"""The answers of the REST API: ticker lists, current prices and candles."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from common.errors import AppError, ErrorCode
from common.exchanges import MarketCatalog
from common.exchanges.ids import Exchange
from common.web import iso_utc
from market_data.candles import CandleService, candle_json
from market_data.conflate import decimal_text
from market_data.pricecache import PriceStore
from market_data.streams.base import StreamClient
from market_data.tickers import TickerRegistry

log = logging.getLogger(__name__)


def _decimal(text: str | None) -> Decimal | None:
    if text is None or text == "":
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return repr(float(value))


def rest_price_fields(exchange: Exchange, ticker: dict[str, Any]) -> dict[str, str]:
    """Price hash fields from a ccxt ticker, preferring the exchange's own (exact) fields."""
    info = ticker.get("info") or {}
    if exchange is Exchange.UPBIT:
        price = _text(info.get("trade_price", ticker.get("last")))
        rate = info.get("signed_change_rate")
        change = f"{float(rate) * 100:.2f}" if rate is not None else _text(ticker.get("percentage"))
        volume = _text(info.get("acc_trade_volume_24h", ticker.get("baseVolume")))
        ts = info.get("trade_timestamp", ticker.get("timestamp"))
    else:
        price = _text(info.get("lastPrice", ticker.get("last")))
        change = _text(info.get("priceChangePercent", ticker.get("percentage")))
        volume = _text(info.get("volume", ticker.get("baseVolume")))
        ts = info.get("closeTime", ticker.get("timestamp"))
    now_ms = int(time.time() * 1000)
    trade_ms = int(ts) if ts is not None else now_ms
    fields = {"updatedAt": str(now_ms), "tradeTime": str(trade_ms)}
    fields["timestamp"] = iso_utc(datetime.fromtimestamp(trade_ms / 1000, UTC))
    for key, value in (("price", price), ("change24h", change), ("volume24h", volume)):
        number = _decimal(value)
        if number is not None:
            fields[key] = (
                decimal_text(number) if key != "change24h" else str(number.quantize(Decimal("0.01")))
            )
    return fields


class MarketDataService:
    """Prices from the cache (streamed tickers), REST otherwise; the asked ticker gets streamed."""

    def __init__(
        self,
        catalog: MarketCatalog,
        store: PriceStore,
        registry: TickerRegistry,
        candles: CandleService,
        streams: dict[Exchange, StreamClient],
        price_stale_seconds: float,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.registry = registry
        self.candles = candles
        self.streams = streams
        self.price_stale_ms = int(price_stale_seconds * 1000)

    async def tickers(self, exchange: Exchange) -> list[dict[str, str]]:
        """Listed markets in the exchange's quote currency."""
        return await self.catalog.tickers(exchange)

    def _streamed(self, exchange: Exchange, ticker: str) -> bool:
        stream = self.streams.get(exchange)
        return stream is not None and stream.state.status == "connected" and ticker in stream.subscribed

    async def price(self, exchange: Exchange, ticker: str) -> dict[str, Any]:
        """The current price and 24h stats of a ticker."""
        self.catalog.require_known(exchange, ticker)
        fields = await self.store.read_price(exchange, ticker)
        complete = all(fields.get(key) for key in ("price", "change24h", "volume24h"))
        fresh = self._streamed(exchange, ticker) or (
            int(time.time() * 1000) - int(fields.get("updatedAt") or 0) < self.price_stale_ms
        )
        if complete and fresh:
            # Known ticker (it was cached): keep it streamed while clients ask for it.
            self.registry.touch(exchange, ticker)
            return self._body(ticker, fields)
        await self.catalog.symbol(exchange, ticker)  # TICKER_NOT_FOUND before anything gets streamed
        self.registry.touch(exchange, ticker)
        rest = rest_price_fields(exchange, await self.catalog.fetch_ticker(exchange, ticker))
        if fields.get("price") and fresh:
            # The stream's price is newer than a REST snapshot: only fill in the missing stats.
            rest = {
                key: rest[key] for key in ("change24h", "volume24h") if key in rest and not fields.get(key)
            }
        if rest:
            try:
                await self.store.write_price(exchange, ticker, rest)
            except Exception:  # a cache outage must not fail an answer we have
                log.warning("could not cache the REST price of %s:%s", exchange, ticker)
        return self._body(ticker, {**fields, **rest})

    @staticmethod
    def _body(ticker: str, fields: dict[str, str]) -> dict[str, Any]:
        price = _decimal(fields.get("price"))
        if price is None:
            raise AppError(ErrorCode.EXCHANGE_API_ERROR)
        return {
            "ticker": ticker,
            "currentPrice": price,
            "change24h": _decimal(fields.get("change24h")),
            "volume24h": _decimal(fields.get("volume24h")),
            "timestamp": fields.get("timestamp"),
        }

    async def candle_list(
        self, exchange: Exchange, ticker: str, interval: str, count: int
    ) -> list[dict[str, Any]]:
        """OHLCV candles, oldest first."""
        self.catalog.require_known(exchange, ticker)
        await self.catalog.symbol(exchange, ticker)
        if interval == "1m":
            self.registry.touch(exchange, ticker)
        rows = await self.candles.candles(exchange, ticker, interval, count)
        return [candle_json(row) for row in rows]
