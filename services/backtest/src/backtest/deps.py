"""Request-scoped dependencies: the services held by the app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from backtest.recommendations import Recommender
from backtest.service import BacktestService


async def _service(request: Request) -> BacktestService:
    service: BacktestService = request.app.state.backtest_service
    return service


async def _recommender(request: Request) -> Recommender:
    recommender: Recommender = request.app.state.recommender
    return recommender


# The services open and commit their own transactions, before the route returns its response.
Service = Annotated[BacktestService, Depends(_service)]
RecommenderDep = Annotated[Recommender, Depends(_recommender)]
