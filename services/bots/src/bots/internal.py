"""Internal routes for other services (not under /api: the gateway never routes them; not in OpenAPI)."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import Response

from bots.deps import InternalCaller
from common.web import ApiRouter, JsonResponse
from trading.models import Bot, BotStatus

router = ApiRouter(prefix="/internal", include_in_schema=False, dependencies=[InternalCaller])


@router.get("/bots/running-tickers")
async def running_tickers(request: Request) -> Response:
    """`{"tickers": [{"exchange", "ticker"}]}`: every pair a running bot trades (market-data streams them)."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.read_session_factory
    async with factory() as session:
        rows = await session.execute(
            select(Bot.exchange, Bot.ticker)
            .where(Bot.status == BotStatus.RUNNING.value, Bot.deleted_at.is_(None))
            .distinct()
            .order_by(Bot.exchange, Bot.ticker)
        )
        pairs = [{"exchange": exchange, "ticker": ticker} for exchange, ticker in rows]
    response = JsonResponse({"tickers": pairs})
    response.headers["Cache-Control"] = "no-store"
    return response
