"""TradingView signal routes: the owner's (issue a token, read what was received) and the public signal URL."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request
from starlette.responses import Response

from bots.endpoints import START_ERRORS, state_reply
from bots.responses import BotState, SignalRead, Signals, SignalUrl
from bots.schemas import parse_bot_id
from bots.signals import ACTIONS, MAX_BODY_BYTES, SignalService, parse_action
from common.contracts.public import Pagination
from common.errors import ErrorCode
from common.i18n import t
from common.openapi import errors
from common.schemas import Success
from common.security import CurrentUser
from common.web import ApiRouter, ok

router = ApiRouter(prefix="/api/bots", tags=["signals"])
public_router = ApiRouter(prefix="/api/signals", tags=["signals"])


async def _signals(request: Request) -> SignalService:
    service: SignalService = request.app.state.signal_service
    return service


Signaller = Annotated[SignalService, Depends(_signals)]

_ACTION_DOC = "start or stop the bot, as the owner's POST /api/bots/:id/start and /stop do"
SIGNAL_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["action"],
                "properties": {
                    "action": {"type": "string", "enum": list(ACTIONS), "description": _ACTION_DOC}
                },
            },
            "examples": {"stop": {"value": {"action": "stop"}}},
        },
        "text/plain": {
            "schema": {"type": "string", "enum": list(ACTIONS), "maxLength": MAX_BODY_BYTES},
            "examples": {"start": {"value": "start"}},
        },
    },
}


@router.post(
    "/{bot_id}/signal-token", response_model=Success[SignalUrl], responses=errors(ErrorCode.BOT_NOT_FOUND)
)
async def issue_signal_token(bot_id: str, principal: CurrentUser, signals: Signaller) -> Response:
    """A new TradingView signal URL for the bot (the token is shown this once); the previous one stops working."""
    token = await signals.issue(principal.user_id, parse_bot_id(bot_id))
    data = SignalUrl(url=signals.url(token), token=token)
    return ok(data.model_dump(), t("시그널 토큰이 발급되었습니다", "Signal token issued"))


@router.get("/{bot_id}/signals", response_model=Success[Signals], responses=errors(ErrorCode.BOT_NOT_FOUND))
async def list_signals(
    bot_id: str,
    principal: CurrentUser,
    signals: Signaller,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    """The signals the bot received, newest first: action, outcome (`ok` or the error code), client IP."""
    total, rows = await signals.history(principal.user_id, parse_bot_id(bot_id), limit, offset)
    page = [
        SignalRead(
            id=row.id,
            action=row.action,
            outcome=row.outcome,
            client_ip=row.client_ip,
            received_at=row.received_at,
        )
        for row in rows
    ]
    pagination = Pagination(total=total, limit=limit, offset=offset, has_more=offset + len(page) < total)
    return ok(Signals(signals=page, pagination=pagination).model_dump())


@public_router.post(
    "/tradingview/{token}",
    response_model=Success[BotState],
    responses=errors(
        ErrorCode.NOT_FOUND,
        ErrorCode.RATE_LIMIT_EXCEEDED,
        ErrorCode.ACCOUNT_DISABLED,
        ErrorCode.SERVICE_UNAVAILABLE,
        *START_ERRORS,
    ),
    openapi_extra={"requestBody": SIGNAL_BODY},
)
async def tradingview_signal(token: str, request: Request, signals: Signaller) -> Response:
    """A TradingView alert: no bearer token (the URL's token is the secret). Answers what the owner's start
    or stop answers; an unknown or replaced token is 404 NOT_FOUND; 10 a minute per token."""
    body = await request.body()
    action = parse_action(body, request.headers.get("content-type"))
    # The gateway sets X-Real-IP (and drops a client's own); without it, the peer.
    client_ip = request.headers.get("x-real-ip") or (request.client.host if request.client else None)
    done, bot = await signals.receive(token, action, client_ip)
    return state_reply(bot, started=done == "start")
