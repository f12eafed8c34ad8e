"""Response shapes of the REST API (documentation: handlers answer with the kit's envelope)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from common.schemas import Success, WireNumber, WireTime


class TickerInfo(BaseModel):
    """One listed market."""

    symbol: str = Field(examples=["KRW-BTC"])
    koreanName: str = Field(examples=["비트코인"])  # noqa: N815 - the public contract is camelCase
    englishName: str = Field(examples=["Bitcoin"])  # noqa: N815


class TickerList(BaseModel):
    """GET /api/exchange/tickers/{exchange} data."""

    tickers: list[TickerInfo]


class Price(BaseModel):
    """GET /api/exchange/price/{exchange}/{ticker} data."""

    ticker: str = Field(examples=["KRW-BTC"])
    currentPrice: WireNumber = Field(examples=[51000000])  # noqa: N815
    change24h: WireNumber | None = Field(description="Percent, 2 decimals", examples=[1.25])
    volume24h: WireNumber | None = Field(description="Base volume", examples=[1234.5678])
    timestamp: WireTime | None


class CandleOut(BaseModel):
    """One OHLCV candle (timestamp = the start of its interval)."""

    timestamp: WireTime
    open: WireNumber
    high: WireNumber
    low: WireNumber
    close: WireNumber
    volume: WireNumber


class CandleList(BaseModel):
    """GET /api/exchange/candles/{exchange}/{ticker} data."""

    candles: list[CandleOut]


TickersResponse = Success[TickerList]
PriceResponse = Success[Price]
CandlesResponse = Success[CandleList]
