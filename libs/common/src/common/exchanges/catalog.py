"""Public exchange reads through ccxt: markets (cached, single-flight), tickers, last prices, OHLCV, trades.

One public client (no keys) per exchange, whose markets are loaded on first use and again after a TTL, one
load at a time. A failed reload keeps serving the previous markets (exchange rules change rarely); with
nothing loaded yet, the failure is the caller's answer. Request-path calls are bounded by
EXCHANGE_TIMEOUT_SECONDS in total (retries included), so an exchange that is down answers 502
EXCHANGE_API_ERROR in bounded time instead of hanging the request.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from common.errors import AppError, ErrorCode
from common.exchanges.budget import ExchangeBudget
from common.exchanges.ccxt_client import create_ccxt
from common.exchanges.errors import ExchangeCallError, call, to_app_error
from common.exchanges.ids import Exchange, has_ticker, quote_currency, unified_symbol
from common.exchanges.settings import ExchangeSettings
from common.grid.rules import MarketRules

log = logging.getLogger(__name__)

ClientFactory = Callable[[Exchange, ExchangeSettings], Any]

# Binance lists no asset names; these are the well-known ones (others show their asset code).
BINANCE_ASSET_NAMES: dict[str, str] = {
    "BTC": "Bitcoin", "ETH": "Ethereum", "XRP": "XRP", "SOL": "Solana", "BNB": "BNB", "ADA": "Cardano",
    "DOGE": "Dogecoin", "TRX": "TRON", "DOT": "Polkadot", "POL": "Polygon", "MATIC": "Polygon",
    "LTC": "Litecoin", "AVAX": "Avalanche", "LINK": "Chainlink", "SHIB": "Shiba Inu", "ATOM": "Cosmos",
    "XLM": "Stellar", "ETC": "Ethereum Classic", "BCH": "Bitcoin Cash", "NEAR": "NEAR Protocol",
    "APT": "Aptos", "ARB": "Arbitrum", "OP": "Optimism", "SUI": "Sui", "TON": "Toncoin", "UNI": "Uniswap",
    "FIL": "Filecoin", "ICP": "Internet Computer", "HBAR": "Hedera", "VET": "VeChain", "ALGO": "Algorand",
    "AAVE": "Aave", "EOS": "EOS", "SAND": "The Sandbox", "MANA": "Decentraland", "AXS": "Axie Infinity",
    "PEPE": "Pepe", "USDC": "USD Coin", "FDUSD": "First Digital USD", "WLD": "Worldcoin", "SEI": "Sei",
    "INJ": "Injective", "TIA": "Celestia", "STX": "Stacks", "IMX": "Immutable", "RNDR": "Render",
    "RENDER": "Render", "GRT": "The Graph", "FET": "Fetch.ai", "ENS": "Ethereum Name Service",
}  # fmt: skip


def positive_decimal(text: object) -> Decimal | None:
    """A finite positive Decimal from an exchange's text, or None."""
    try:
        value = Decimal(str(text))
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() and value > 0 else None


def read_error(exc: ExchangeCallError) -> AppError:
    """The client-facing error of a failed public read.

    A read that the exchange refuses is still the exchange's failure, not the user's (never a credentials or
    order error); an unknown market stays TICKER_NOT_FOUND and our spent call budget a 503 with Retry-After.
    """
    error = to_app_error(exc)
    if error.code not in (
        ErrorCode.TICKER_NOT_FOUND,
        ErrorCode.EXCHANGE_API_ERROR,
        ErrorCode.SERVICE_UNAVAILABLE,
    ):
        return AppError(ErrorCode.EXCHANGE_API_ERROR, error.details)
    return error


@dataclass
class _Venue:
    client: Any
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    loaded_at: float | None = None
    tickers: list[dict[str, str]] | None = None  # derived from the markets, dropped with every load


class MarketCatalog:
    """Each exchange's public ccxt client and markets, and the public reads the services make with them."""

    def __init__(
        self,
        settings: ExchangeSettings,
        ttl_seconds: float,
        budget: ExchangeBudget,
        *,
        attempts: int = 3,
        client_factory: ClientFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._ttl = ttl_seconds
        self._factory = client_factory or (lambda exchange, s: create_ccxt(exchange, s, budget=budget))
        self._clock = clock
        self._venues: dict[Exchange, _Venue] = {}
        self.attempts = attempts
        """Tries of one call (transient errors only are retried)."""
        # Every exchange call of a request is bounded, retries and waits included, by one exchange timeout.
        self.call_timeout = settings.exchange_timeout_seconds

    async def start(self) -> None:
        """Import ccxt off the event loop and make the clients (the import alone takes seconds)."""
        await asyncio.to_thread(importlib.import_module, "ccxt.async_support")
        for exchange in Exchange:
            self._venue(exchange)

    async def close(self) -> None:
        """Close every ccxt client."""
        venues, self._venues = self._venues, {}
        for venue in venues.values():
            try:
                await venue.client.close()
            except Exception:  # closing is best effort at shutdown
                log.debug("closing a ccxt client failed", exc_info=True)

    def _venue(self, exchange: Exchange) -> _Venue:
        venue = self._venues.get(exchange)
        if venue is None:
            venue = _Venue(self._factory(exchange, self._settings))
            self._venues[exchange] = venue
        return venue

    def _fresh(self, venue: _Venue) -> bool:
        return venue.loaded_at is not None and self._clock() - venue.loaded_at < self._ttl

    async def _call(self, fn: Any, *args: Any, total_timeout: float | None = None) -> Any:
        return await call(fn, *args, attempts=self.attempts, total_timeout=total_timeout or self.call_timeout)

    async def _read(self, fn: Any, *args: Any) -> Any:
        try:
            return await self._call(fn, *args)
        except ExchangeCallError as exc:
            raise read_error(exc) from exc

    # ---- markets ---------------------------------------------------------------------------------------

    async def client(self, exchange: Exchange) -> Any:
        """The exchange's client with its markets loaded (the previous ones kept when a reload fails)."""
        venue = self._venue(exchange)
        if self._fresh(venue):
            return venue.client
        async with venue.lock:
            if self._fresh(venue):  # another request loaded them while this one waited
                return venue.client
            try:
                await self._call(venue.client.load_markets, True)
            except ExchangeCallError as exc:
                if venue.loaded_at is None:
                    raise read_error(exc) from exc
                log.warning(
                    "reloading %s markets failed (%s); keeping the previous ones", exchange, exc.source
                )
                return venue.client
            venue.loaded_at = self._clock()
            venue.tickers = None
            return venue.client

    async def symbol(self, exchange: Exchange, ticker: str) -> str:
        """ccxt's unified symbol of a native ticker; TICKER_NOT_FOUND when the exchange does not list it."""
        return unified_symbol(await self.client(exchange), ticker)

    async def exists(self, exchange: Exchange, ticker: str) -> bool:
        """True when the exchange lists the ticker as a spot market."""
        return has_ticker(await self.client(exchange), ticker)

    async def market(self, exchange: Exchange, ticker: str) -> dict[str, Any]:
        """The ccxt market of a native ticker (spot), or TICKER_NOT_FOUND."""
        client = await self.client(exchange)
        if not has_ticker(client, ticker):
            raise AppError(ErrorCode.TICKER_NOT_FOUND, {"exchange": exchange.value, "ticker": ticker[:40]})
        return dict(client.market(unified_symbol(client, ticker)))

    async def rules(self, exchange: Exchange, ticker: str) -> MarketRules:
        """The market's trading rules (tick, lot, minimums, fees); TICKER_NOT_FOUND for one we cannot trade."""
        market = await self.market(exchange, ticker)
        try:
            return MarketRules.from_ccxt_market(market, exchange.value)
        except ValueError as exc:
            # A market we cannot trade (e.g. not a KRW market on Upbit) is not one of ours.
            log.info("no usable rules for %s %s: %s", exchange, ticker, exc)
            raise AppError(
                ErrorCode.TICKER_NOT_FOUND, {"exchange": exchange.value, "ticker": ticker}
            ) from exc

    async def tickers(self, exchange: Exchange) -> list[dict[str, str]]:
        """Active spot markets in the exchange's quote currency, with their names (cached with the markets)."""
        client = await self.client(exchange)
        venue = self._venue(exchange)
        if venue.tickers is not None:
            return venue.tickers
        quote = quote_currency(exchange)
        rows: list[dict[str, str]] = []
        for market in client.markets.values():
            if not market.get("spot") or market.get("active") is False or market.get("quote") != quote:
                continue
            info = market.get("info") or {}
            if exchange is Exchange.UPBIT:
                english = str(info.get("english_name") or market["base"])
                korean = str(info.get("korean_name") or english)
            else:
                if info.get("status", "TRADING") != "TRADING":
                    continue
                english = BINANCE_ASSET_NAMES.get(str(market["base"]), str(market["base"]))
                korean = english
            rows.append({"symbol": str(market["id"]), "koreanName": korean, "englishName": english})
        rows.sort(key=lambda row: row["symbol"])
        venue.tickers = rows
        return rows

    @staticmethod
    def require_known(exchange: Exchange, ticker: str) -> None:
        """TICKER_NOT_FOUND for a ticker that cannot be one (guards routing keys and Redis keys)."""
        if not ticker or len(ticker) > 40 or not all(ch.isalnum() or ch == "-" for ch in ticker):
            raise AppError(ErrorCode.TICKER_NOT_FOUND, {"ticker": ticker[:40]})

    # ---- prices ----------------------------------------------------------------------------------------

    async def fetch_ticker(self, exchange: Exchange, ticker: str) -> dict[str, Any]:
        """ccxt's ticker structure for a native ticker."""
        client = await self.client(exchange)
        result: dict[str, Any] = await self._read(client.fetch_ticker, unified_symbol(client, ticker))
        return result

    async def last_price(self, exchange: Exchange, ticker: str) -> Decimal:
        """The last traded price from the exchange's REST ticker (when the price cache has none)."""
        result = await self.fetch_ticker(exchange, ticker)
        info = result.get("info") or {}
        # The venue's own decimal text where there is one (ccxt's `last` is a float).
        raw = info.get("trade_price") or info.get("lastPrice") or result.get("last")
        price = positive_decimal(raw)
        if price is None:
            raise AppError(ErrorCode.EXCHANGE_API_ERROR, {"exchange": exchange.value})
        return price

    # ---- history ---------------------------------------------------------------------------------------

    @staticmethod
    def ohlcv_page(exchange: Exchange) -> int:
        """The most candles one OHLCV request returns (Upbit 200, Binance 1000)."""
        return 200 if exchange is Exchange.UPBIT else 1000

    async def fetch_ohlcv(
        self, exchange: Exchange, ticker: str, timeframe: str, limit: int
    ) -> list[list[Any]]:
        """The newest `limit` candles, oldest first (Upbit pages 200 at a time).

        Pages walk back from the newest one, so a market with less history than `limit` still answers
        all it has (walking forward from `now - limit` would start before its first candle).
        """
        client = await self.client(exchange)
        symbol = unified_symbol(client, ticker)
        page = self.ohlcv_page(exchange)
        batch: list[list[Any]] = await self._read(
            client.fetch_ohlcv, symbol, timeframe, None, min(limit, page)
        )
        candles = {int(c[0]): c for c in batch}
        step = client.parse_timeframe(timeframe) * 1000 * page
        # A short page means the exchange has nothing older.
        while len(batch) >= page and len(candles) < limit:
            oldest = min(candles)
            # Upbit answers the `page` candles before since + step, Binance those from since on.
            batch = await self._read(client.fetch_ohlcv, symbol, timeframe, oldest - step, page)
            older = [c for c in batch if int(c[0]) < oldest]
            if not older:
                break
            candles.update((int(c[0]), c) for c in older)
        return [candles[key] for key in sorted(candles)][-limit:]

    async def candles_from(
        self, exchange: Exchange, ticker: str, since_ms: int, limit: int
    ) -> list[list[Any]]:
        """One page of closed-or-not 1-minute candles from `since_ms` on, oldest first (a worker's read).

        Both exchanges answer the `limit` minutes from `since` (ccxt turns Upbit's `to` around); minutes
        without trades are absent. Retried like a backfill, not bounded by a request's timeout; failures
        are the domain errors (ExchangeCallError), transient or permanent.
        """
        client = await self.client(exchange)
        symbol = unified_symbol(client, ticker)
        page = min(limit, self.ohlcv_page(exchange))
        result: list[list[Any]] = await self._call(
            client.fetch_ohlcv, symbol, "1m", since_ms, page, total_timeout=self.call_timeout * 3
        )
        return result

    async def fetch_trades(
        self,
        exchange: Exchange,
        ticker: str,
        since: int | None,
        limit: int,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Public trades (ccxt structures) for backfilling a gap; retried, not bounded by the request budget.

        Failures are the domain errors (ExchangeCallError), for the backfill to retry.
        """
        client = await self.client(exchange)
        symbol = unified_symbol(client, ticker)
        result: list[dict[str, Any]] = await self._call(
            client.fetch_trades, symbol, since, limit, params or {}, total_timeout=self.call_timeout * 3
        )
        return result
