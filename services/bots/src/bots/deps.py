"""Request-scoped dependencies: the services held by the app, and the internal-caller check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from bots.queries import BotQueries
from bots.service import BotService
from bots.settings import Settings
from common.errors import AppError, ErrorCode
from common.security import bearer_token


async def _service(request: Request) -> BotService:
    service: BotService = request.app.state.bot_service
    return service


async def _queries(request: Request) -> BotQueries:
    queries: BotQueries = request.app.state.bot_queries
    return queries


async def internal_caller(request: Request) -> None:
    """Admit only market-data: `Authorization: Bearer <INTERNAL_TICKERS_TOKEN>`, compared in constant time."""
    token = bearer_token(request.headers.get("authorization"))
    settings: Settings = request.app.state.settings
    expected = settings.internal_tickers_token.get_secret_value().encode()
    if not hmac.compare_digest(token.encode(), expected):
        raise AppError(ErrorCode.INVALID_TOKEN)


# The services open and commit their own transactions (a stop commits, waits, and may commit again), so
# no session is request-scoped here: every commit happens before the route returns its response.
Service = Annotated[BotService, Depends(_service)]
Queries = Annotated[BotQueries, Depends(_queries)]
InternalCaller = Depends(internal_caller)
