"""Exchange ids, quote currencies, and the mapping between our tickers and ccxt's unified symbols.

Our API names a market by the exchange's own id ("KRW-BTC" on Upbit, "BTCUSDT" on Binance); ccxt names it
by a unified symbol ("BTC/KRW", "BTC/USDT"). The loaded markets of a ccxt client are the bridge: a market's
`id` is the native ticker.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from common.errors import AppError, ErrorCode


class Exchange(StrEnum):
    """The exchanges this system trades on."""

    UPBIT = "upbit"
    BINANCE = "binance"


QUOTE_CURRENCY: dict[Exchange, str] = {Exchange.UPBIT: "KRW", Exchange.BINANCE: "USDT"}


def parse_exchange(value: str) -> Exchange:
    """The Exchange named by `value`, or AppError(UNSUPPORTED_EXCHANGE)."""
    try:
        return Exchange(value.strip().lower())
    except ValueError:
        raise AppError(ErrorCode.UNSUPPORTED_EXCHANGE, {"exchange": value[:50]}) from None


def quote_currency(exchange: Exchange) -> str:
    """The quote currency our bots trade against on an exchange (KRW on Upbit, USDT on Binance)."""
    return QUOTE_CURRENCY[exchange]


def _spot_market(client: Any, ticker: str) -> dict[str, Any] | None:
    by_id = getattr(client, "markets_by_id", None) or {}
    found = by_id.get(ticker)
    # ccxt keeps a list per id (one id can name a spot and a derivative market).
    candidates = found if isinstance(found, list) else [found] if found else []
    for market in candidates:
        if market.get("spot", True):
            return dict(market)
    return None


def unified_symbol(client: Any, ticker: str) -> str:
    """ccxt's unified symbol of a native ticker, from the client's loaded markets; else TICKER_NOT_FOUND."""
    market = _spot_market(client, ticker)
    if market is None:
        raise AppError(ErrorCode.TICKER_NOT_FOUND, {"ticker": ticker[:50]})
    return str(market["symbol"])


def native_ticker(client: Any, symbol: str) -> str:
    """The native ticker of a unified symbol, from the client's loaded markets; else TICKER_NOT_FOUND."""
    market = (getattr(client, "markets", None) or {}).get(symbol)
    if market is None:
        raise AppError(ErrorCode.TICKER_NOT_FOUND, {"ticker": symbol[:50]})
    return str(market["id"])


def has_ticker(client: Any, ticker: str) -> bool:
    """True when the client's loaded markets list this native ticker as a spot market."""
    return _spot_market(client, ticker) is not None
