"""The public routes of market data (bearer token required on each)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path, Query, Request
from starlette.responses import Response

from common.errors import ErrorCode
from common.exchanges.ids import parse_exchange
from common.openapi import ExchangeInPath, errors
from common.security import CurrentUser
from common.web import ApiRouter, ok
from market_data.schemas import CandlesResponse, PriceResponse, TickersResponse
from market_data.service import MarketDataService

router = ApiRouter(prefix="/api/exchange", tags=["exchange"])

Interval = Literal["1m", "3m", "5m", "15m", "30m", "1h", "4h", "1d"]


def _service(request: Request) -> MarketDataService:
    service: MarketDataService = request.app.state.market
    return service


@router.get(
    "/tickers/{exchange}",
    response_model=TickersResponse,
    responses=errors(ErrorCode.UNSUPPORTED_EXCHANGE, ErrorCode.EXCHANGE_API_ERROR),
)
async def tickers(exchange: ExchangeInPath, request: Request, user: CurrentUser) -> Response:
    """Markets listed on an exchange (in its quote currency), with Korean and English names."""
    return ok({"tickers": await _service(request).tickers(parse_exchange(exchange))})


@router.get(
    "/price/{exchange}/{ticker}",
    response_model=PriceResponse,
    responses=errors(
        ErrorCode.UNSUPPORTED_EXCHANGE, ErrorCode.TICKER_NOT_FOUND, ErrorCode.EXCHANGE_API_ERROR
    ),
)
async def price(
    exchange: ExchangeInPath,
    ticker: Annotated[str, Path(examples=["KRW-BTC"])],
    request: Request,
    user: CurrentUser,
) -> Response:
    """The current price and 24h change/volume of a ticker."""
    return ok(await _service(request).price(parse_exchange(exchange), ticker))


@router.get(
    "/candles/{exchange}/{ticker}",
    response_model=CandlesResponse,
    responses=errors(
        ErrorCode.UNSUPPORTED_EXCHANGE, ErrorCode.TICKER_NOT_FOUND, ErrorCode.EXCHANGE_API_ERROR
    ),
)
async def candles(
    exchange: ExchangeInPath,
    ticker: Annotated[str, Path(examples=["KRW-BTC"])],
    request: Request,
    user: CurrentUser,
    interval: Annotated[Interval, Query()] = "1m",
    count: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    """OHLCV candles for charts, oldest first."""
    rows = await _service(request).candle_list(parse_exchange(exchange), ticker, interval, count)
    return ok({"candles": rows})
