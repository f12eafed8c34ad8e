"""Internal routes for other services (not under /api: the gateway never routes them; not in OpenAPI)."""

from __future__ import annotations

import uuid

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import Response

from bots.deps import InternalCaller, Service
from bots.system import system_view
from common.security import AdminUser
from common.web import ApiRouter, JsonResponse, ok
from trading.models import Bot, BotStatus

router = ApiRouter(prefix="/internal", include_in_schema=False, dependencies=[InternalCaller])
# Called by the auth service on behalf of an administrator, with the administrator's own token (no secret of
# its own); not under /api, so never routed by the gateway.
admin_router = ApiRouter(prefix="/internal/admin", include_in_schema=False)


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


@admin_router.post("/users/{user_id}/stop-bots")
async def stop_user_bots(user_id: uuid.UUID, _: AdminUser, service: Service) -> Response:
    """`{"botsStopped": n}`: every running bot of a disabled user stopped, its orders cancelled."""
    return ok({"botsStopped": await service.stop_all(user_id)})


@admin_router.get("/system")
async def system(request: Request, _: AdminUser) -> Response:
    """The engine replicas, their partitions and bots, and the queues (the gateway's GET /api/admin/system)."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.read_session_factory
    async with factory() as session:
        view = await system_view(session, request.app.state.bus)
    response = JsonResponse(view)
    response.headers["Cache-Control"] = "no-store"
    return response
