"""The public bot routes (served at their public paths: the gateway forwards them unchanged)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import WithJsonSchema
from starlette.responses import Response

from bots.deps import Queries, Service
from bots.responses import (
    BotDetail,
    BotList,
    BotState,
    CreatedBot,
    DailyPerformance,
    Levels,
    Performance,
    Trades,
    Updated,
)
from bots.schemas import (
    CreateBotRequest,
    UpdateBotRequest,
    parse_bot_id,
    parse_choice,
    trade_window,
)
from bots.views import created
from common.errors import ErrorCode
from common.exchanges import parse_exchange
from common.i18n import t
from common.openapi import EXCHANGE_IDS, errors, one_of
from common.schemas import MessageOnly, Success
from common.security import CurrentUser
from common.web import ApiRouter, ok
from trading.models import Bot

router = ApiRouter(prefix="/api/bots", tags=["bots"])

STATUSES = ("running", "stopped", "error")
LEVEL_STATUSES = ("available", "pending", "filled")
# A date (a bare endDate covers that whole day) or a date-time, ISO 8601 (UTC when no offset is given);
# empty means no bound.
ISO_DATE = WithJsonSchema(
    {
        "anyOf": [
            {"type": "string", "format": "date"},
            {"type": "string", "format": "date-time"},
            {"type": "string", "enum": [""]},
        ],
        "maxLength": 64,
    }
)


# What start answers can carry (a TradingView signal acting as the owner answers the same).
START_ERRORS = (
    ErrorCode.BOT_NOT_FOUND,
    ErrorCode.TICKER_NOT_FOUND,
    ErrorCode.INVALID_ORDER_AMOUNT,
    ErrorCode.CREDENTIAL_NOT_FOUND,
    ErrorCode.INVALID_CREDENTIALS,
    ErrorCode.INSUFFICIENT_BALANCE,
    ErrorCode.EXCHANGE_API_ERROR,
)


def state_reply(bot: Bot, *, started: bool) -> Response:
    """The answer of start and stop (the owner's routes and a TradingView signal alike)."""
    message = t("봇이 시작되었습니다", "Bot started") if started else t("봇이 중지되었습니다", "Bot stopped")
    return ok(BotState(bot_id=bot.id, status=bot.status).model_dump(), message)


@router.post(
    "",
    status_code=201,
    response_model=Success[CreatedBot],
    responses=errors(
        ErrorCode.UNSUPPORTED_EXCHANGE,
        ErrorCode.TICKER_NOT_FOUND,
        ErrorCode.INVALID_PRICE_RANGE,
        ErrorCode.INVALID_ORDER_AMOUNT,
        ErrorCode.CREDENTIAL_NOT_FOUND,
        ErrorCode.INVALID_CREDENTIALS,
        ErrorCode.INSUFFICIENT_BALANCE,
        ErrorCode.EXCHANGE_API_ERROR,
    ),
)
async def create_bot(body: CreateBotRequest, principal: CurrentUser, service: Service) -> Response:
    """Create a bot: the grid is built from the exchange's rules; `autoStart` starts it at once."""
    bot = await service.create(principal.user_id, body)
    return ok(created(bot).model_dump(), t("봇이 생성되었습니다", "Bot created"), status_code=201)


@router.get("", response_model=Success[BotList], responses=errors(ErrorCode.UNSUPPORTED_EXCHANGE))
async def list_bots(
    principal: CurrentUser,
    queries: Queries,
    # Empty means no filter (API.md); the handler checks the values itself.
    status: Annotated[str | None, Query(), WithJsonSchema(one_of("", *STATUSES))] = None,
    exchange: Annotated[str | None, Query(max_length=32), WithJsonSchema(one_of("", *EXCHANGE_IDS))] = None,
) -> Response:
    """The user's bots (filters: status, exchange) and a summary over exactly those bots."""
    wanted_status = parse_choice("status", status, STATUSES)
    venue = parse_exchange(exchange) if exchange else None
    return ok((await queries.list_bots(principal.user_id, wanted_status, venue)).model_dump())


@router.get("/{bot_id}", response_model=Success[BotDetail], responses=errors(ErrorCode.BOT_NOT_FOUND))
async def get_bot(bot_id: str, principal: CurrentUser, queries: Queries) -> Response:
    """One bot with every field, plus the latest market price."""
    return ok((await queries.get(principal.user_id, parse_bot_id(bot_id))).model_dump())


@router.put(
    "/{bot_id}",
    response_model=Success[Updated],
    responses=errors(
        ErrorCode.BOT_NOT_FOUND,
        ErrorCode.BOT_RUNNING,
        ErrorCode.INVALID_PRICE_RANGE,
        ErrorCode.INVALID_ORDER_AMOUNT,
        ErrorCode.TICKER_NOT_FOUND,
        ErrorCode.EXCHANGE_API_ERROR,
    ),
)
async def update_bot(
    bot_id: str, body: UpdateBotRequest, principal: CurrentUser, service: Service
) -> Response:
    """Change settings: orderAmount, stopAtMax, takeProfitPrice and stopLossPrice any time; the grid's
    geometry and the other options only while stopped. null clears an option price."""
    result = await service.update(principal.user_id, parse_bot_id(bot_id), body)
    data = Updated(id=result.bot.id, **result.changed, updated_at=result.bot.updated_at)
    return ok(data.model_dump(exclude_unset=True), t("봇 설정이 업데이트되었습니다", "Bot settings updated"))


@router.post("/{bot_id}/start", response_model=Success[BotState], responses=errors(*START_ERRORS))
async def start_bot(bot_id: str, principal: CurrentUser, service: Service) -> Response:
    """Start the bot (idempotent; clears an error)."""
    return state_reply(await service.start(principal.user_id, parse_bot_id(bot_id)), started=True)


@router.post("/{bot_id}/stop", response_model=Success[BotState], responses=errors(ErrorCode.BOT_NOT_FOUND))
async def stop_bot(bot_id: str, principal: CurrentUser, service: Service) -> Response:
    """Stop the bot once the engine confirmed that its open orders are cancelled (idempotent)."""
    return state_reply(await service.stop(principal.user_id, parse_bot_id(bot_id)), started=False)


@router.delete(
    "/{bot_id}", response_model=MessageOnly, responses=errors(ErrorCode.BOT_NOT_FOUND, ErrorCode.BOT_RUNNING)
)
async def delete_bot(bot_id: str, principal: CurrentUser, service: Service) -> Response:
    """Stop the bot, then delete it (its trades are kept for audit)."""
    await service.delete(principal.user_id, parse_bot_id(bot_id))
    return ok(message=t("봇이 삭제되었습니다", "Bot deleted"))


@router.get(
    "/{bot_id}/grid-levels", response_model=Success[Levels], responses=errors(ErrorCode.BOT_NOT_FOUND)
)
async def grid_levels(
    bot_id: str,
    principal: CurrentUser,
    queries: Queries,
    status: Annotated[str | None, Query(), WithJsonSchema(one_of("", *LEVEL_STATUSES))] = None,
) -> Response:
    """The grid's levels as they are now (trailing up moves them), ascending by price (filter: status)."""
    wanted = parse_choice("status", status, LEVEL_STATUSES)
    levels = await queries.grid_levels(principal.user_id, parse_bot_id(bot_id), wanted)
    return ok(levels.model_dump())


@router.get("/{bot_id}/trades", response_model=Success[Trades], responses=errors(ErrorCode.BOT_NOT_FOUND))
async def trades(
    bot_id: str,
    principal: CurrentUser,
    queries: Queries,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    start_date: Annotated[str | None, Query(alias="startDate", max_length=64), ISO_DATE] = None,
    end_date: Annotated[str | None, Query(alias="endDate", max_length=64), ISO_DATE] = None,
) -> Response:
    """The bot's trades, newest first, paginated (ISO 8601 bounds, both inclusive; a bare endDate: that day)."""
    since, until = trade_window(start_date, end_date)
    page = await queries.trades(
        principal.user_id, parse_bot_id(bot_id), limit=limit, offset=offset, since=since, until=until
    )
    return ok(page.model_dump())


@router.get(
    "/{bot_id}/performance",
    response_model=Success[Performance],
    responses=errors(ErrorCode.BOT_NOT_FOUND, ErrorCode.EXCHANGE_API_ERROR),
)
async def bot_performance(bot_id: str, principal: CurrentUser, queries: Queries) -> Response:
    """Profit, trade counts and current value, all computed from the bot's trades."""
    return ok((await queries.performance(principal.user_id, parse_bot_id(bot_id))).model_dump())


@router.get(
    "/{bot_id}/performance/daily",
    response_model=Success[DailyPerformance],
    responses=errors(ErrorCode.BOT_NOT_FOUND),
)
async def daily_performance(
    bot_id: str,
    principal: CurrentUser,
    queries: Queries,
    start_date: Annotated[str | None, Query(alias="startDate", max_length=64), ISO_DATE] = None,
    end_date: Annotated[str | None, Query(alias="endDate", max_length=64), ISO_DATE] = None,
) -> Response:
    """Profit, fills and fees per UTC day with trades, oldest first (bounds as the trades route takes them);
    over all days they add up to /performance's totalProfit and totalTrades."""
    since, until = trade_window(start_date, end_date)
    return ok((await queries.daily(principal.user_id, parse_bot_id(bot_id), since, until)).model_dump())
