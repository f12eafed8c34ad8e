"""The public backtest routes (served at their public paths: the gateway forwards them unchanged)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query
from starlette.responses import Response

from backtest.deps import RecommenderDep, Service
from backtest.responses import BacktestList, BacktestRead, Queued, Recommendations
from backtest.schemas import CreateBacktestRequest, RecommendRequest
from common.errors import ErrorCode
from common.i18n import t
from common.openapi import errors
from common.schemas import MessageOnly, Success
from common.security import CurrentUser
from common.web import ApiRouter, ok

router = ApiRouter(prefix="/api/backtests", tags=["backtests"])

GRID_ERRORS = (
    ErrorCode.UNSUPPORTED_EXCHANGE,
    ErrorCode.TICKER_NOT_FOUND,
    ErrorCode.INVALID_PRICE_RANGE,
    ErrorCode.INVALID_ORDER_AMOUNT,
    ErrorCode.EXCHANGE_API_ERROR,
)


@router.post("", status_code=202, response_model=Success[Queued], responses=errors(*GRID_ERRORS))
async def create_backtest(body: CreateBacktestRequest, principal: CurrentUser, service: Service) -> Response:
    """Queue a backtest of a grid over the exchange's past 1-minute candles (it runs on a worker)."""
    backtest = await service.create(principal.user_id, body)
    data = Queued(backtest_id=backtest.id, status=backtest.status, progress=backtest.progress)
    return ok(data.model_dump(), t("백테스트가 대기열에 추가되었습니다", "Backtest queued"), status_code=202)


@router.post("/recommend", response_model=Success[Recommendations], responses=errors(*GRID_ERRORS))
async def recommend(body: RecommendRequest, principal: CurrentUser, recommender: RecommenderDep) -> Response:
    """The best few grids of a sweep over the last `days` of candles, each creatable with `POST /bots`."""
    return ok((await recommender.recommend(body)).model_dump())


@router.get("", response_model=Success[BacktestList])
async def list_backtests(
    principal: CurrentUser,
    service: Service,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    """The user's backtests, newest first (without their results)."""
    return ok((await service.page(principal.user_id, limit, offset)).model_dump())


# `:uuid`: only an id is a backtest's path (`/api/backtests/recommend` is no backtest, and its Allow says so);
# anything else under /api/backtests is no route (404 NOT_FOUND).
@router.get(
    "/{backtest_id:uuid}",
    response_model=Success[BacktestRead],
    responses=errors(ErrorCode.BACKTEST_NOT_FOUND),
)
async def get_backtest(backtest_id: uuid.UUID, principal: CurrentUser, service: Service) -> Response:
    """One backtest: status, progress, params, and its result once done."""
    return ok((await service.get(principal.user_id, backtest_id)).model_dump())


@router.delete(
    "/{backtest_id:uuid}", response_model=MessageOnly, responses=errors(ErrorCode.BACKTEST_NOT_FOUND)
)
async def delete_backtest(backtest_id: uuid.UUID, principal: CurrentUser, service: Service) -> Response:
    """Delete a backtest (a running one stops)."""
    await service.delete(principal.user_id, backtest_id)
    return ok(message=t("백테스트가 삭제되었습니다", "Backtest deleted"))
