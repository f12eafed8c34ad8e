"""Response shapes of the REST API (documentation: handlers answer with the kit's envelope)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel


class TickerInfo(BaseModel):
    """One listed market."""

    symbol: str
    koreanName: str  # noqa: N815 - the public contract is camelCase
    englishName: str  # noqa: N815


class TickerList(BaseModel):
    """GET /api/exchange/tickers/{exchange} data."""

    tickers: list[TickerInfo]


class TickersResponse(BaseModel):
    """Envelope of the ticker list."""

    success: bool = True
    data: TickerList


class Price(BaseModel):
    """GET /api/exchange/price/{exchange}/{ticker} data."""

    ticker: str
    currentPrice: float  # noqa: N815
    change24h: float | None
    volume24h: float | None
    timestamp: datetime | None


class PriceResponse(BaseModel):
    """Envelope of a price."""

    success: bool = True
    data: Price


class CandleOut(BaseModel):
    """One OHLCV candle (timestamp = the start of its interval)."""

    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class CandleList(BaseModel):
    """GET /api/exchange/candles/{exchange}/{ticker} data."""

    candles: list[CandleOut]


class CandlesResponse(BaseModel):
    """Envelope of candles."""

    success: bool = True
    data: CandleList
