"""Exchange REST through ccxt: market lists (cached), ticker existence, tickers, OHLCV and trades.

Request-path calls are bounded by EXCHANGE_TIMEOUT_SECONDS in total (retries included), so an exchange
that is down answers 502 EXCHANGE_API_ERROR in bounded time instead of hanging the request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from common.errors import AppError, ErrorCode
from common.exchanges import Exchange, ExchangeBudget, call, create_ccxt, quote_currency, to_app_error
from common.exchanges.errors import ExchangeCallError
from common.exchanges.ids import has_ticker, unified_symbol
from common.exchanges.settings import ExchangeSettings

log = logging.getLogger(__name__)

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


class MarketCatalog:
    """One public ccxt client per exchange, its markets loaded lazily and refreshed after a TTL."""

    def __init__(
        self, settings: ExchangeSettings, budget: ExchangeBudget, markets_ttl_seconds: float = 3600.0
    ) -> None:
        self.settings = settings
        self.timeout = settings.exchange_timeout_seconds
        self.markets_ttl = markets_ttl_seconds
        self.clients: dict[Exchange, Any] = {ex: create_ccxt(ex, settings, budget=budget) for ex in Exchange}
        self._loaded_at: dict[Exchange, float] = {}
        self._locks = {ex: asyncio.Lock() for ex in Exchange}
        self._tickers: dict[Exchange, tuple[float, list[dict[str, str]]]] = {}

    async def close(self) -> None:
        """Close every client."""
        await asyncio.gather(*(client.close() for client in self.clients.values()), return_exceptions=True)

    async def _call(self, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return await call(fn, *args, total_timeout=self.timeout, **kw)
        except ExchangeCallError as exc:
            raise to_app_error(exc) from exc

    async def client(self, exchange: Exchange) -> Any:
        """The exchange's client with its markets loaded (stale markets are kept when a refresh fails)."""
        client = self.clients[exchange]
        loaded_at = self._loaded_at.get(exchange)
        if loaded_at is not None and time.monotonic() - loaded_at < self.markets_ttl:
            return client
        async with self._locks[exchange]:
            loaded_at = self._loaded_at.get(exchange)
            if loaded_at is not None and time.monotonic() - loaded_at < self.markets_ttl:
                return client
            params = {"isDetails": "true"} if exchange is Exchange.UPBIT else {}
            try:
                await self._call(client.load_markets, loaded_at is not None, params)
            except AppError:
                if loaded_at is None:
                    raise
                log.warning("refreshing %s markets failed; keeping the previous list", exchange)
                return client
            self._loaded_at[exchange] = time.monotonic()
            self._tickers.pop(exchange, None)
        return client

    async def symbol(self, exchange: Exchange, ticker: str) -> str:
        """ccxt's unified symbol of a native ticker; TICKER_NOT_FOUND when the exchange does not list it."""
        return unified_symbol(await self.client(exchange), ticker)

    async def exists(self, exchange: Exchange, ticker: str) -> bool:
        """True when the exchange lists the ticker as a spot market."""
        return has_ticker(await self.client(exchange), ticker)

    async def tickers(self, exchange: Exchange) -> list[dict[str, str]]:
        """Active spot markets in the exchange's quote currency, with their names (cached with the markets)."""
        client = await self.client(exchange)
        cached = self._tickers.get(exchange)
        if cached is not None:
            return cached[1]
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
        self._tickers[exchange] = (time.monotonic(), rows)
        return rows

    async def fetch_ticker(self, exchange: Exchange, ticker: str) -> dict[str, Any]:
        """ccxt's ticker structure for a native ticker."""
        client = await self.client(exchange)
        symbol = unified_symbol(client, ticker)
        result: dict[str, Any] = await self._call(client.fetch_ticker, symbol)
        return result

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
        batch: list[list[Any]] = await self._call(
            client.fetch_ohlcv, symbol, timeframe, None, min(limit, page)
        )
        candles = {int(c[0]): c for c in batch}
        step = client.parse_timeframe(timeframe) * 1000 * page
        # A short page means the exchange has nothing older.
        while len(batch) >= page and len(candles) < limit:
            oldest = min(candles)
            # Upbit answers the `page` candles before since + step, Binance those from since on.
            batch = await self._call(client.fetch_ohlcv, symbol, timeframe, oldest - step, page)
            older = [c for c in batch if int(c[0]) < oldest]
            if not older:
                break
            candles.update((int(c[0]), c) for c in older)
        return [candles[key] for key in sorted(candles)][-limit:]

    async def fetch_trades(
        self,
        exchange: Exchange,
        ticker: str,
        since: int | None,
        limit: int,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Public trades (ccxt structures) for backfilling a gap; retried, not bounded by the request budget."""
        client = await self.client(exchange)
        symbol = unified_symbol(client, ticker)
        result: list[dict[str, Any]] = await call(
            client.fetch_trades, symbol, since, limit, params or {}, total_timeout=self.timeout * 3
        )
        return result

    def require_known(self, exchange: Exchange, ticker: str) -> None:
        """TICKER_NOT_FOUND for a ticker that cannot be one (guards routing keys and Redis keys)."""
        if not ticker or len(ticker) > 40 or not all(ch.isalnum() or ch == "-" for ch in ticker):
            raise AppError(ErrorCode.TICKER_NOT_FOUND, {"ticker": ticker[:40]})
