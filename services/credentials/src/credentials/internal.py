"""Internal routes for trusted services: one user's keys (the engine), one user's quote balance (bots).

Not under /api, so the gateway never routes them; left out of the OpenAPI document. Each route opens with
its own bearer token: INTERNAL_KEYS_TOKEN (held by the engine) the keys route only, INTERNAL_BALANCE_TOKEN
(held by the bots service) the balance route only, so a compromised bots service cannot read keys. Answers
are never cached and every key disclosure is logged (without the keys)."""

from __future__ import annotations

import logging
from decimal import Decimal

from starlette.responses import Response

from common.exchanges import parse_exchange
from common.web import ApiRouter, ok
from credentials.deps import BalanceCaller, DbSession, KeysCaller, ReadSession, Service

log = logging.getLogger(__name__)


def decimal_text(value: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros ("777.00000000" -> "777")."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


router = ApiRouter(prefix="/internal", include_in_schema=False)


@router.get("/credentials/{user_id}/{exchange}", dependencies=[KeysCaller])
async def credential_keys(user_id: str, exchange: str, read: ReadSession, service: Service) -> Response:
    """`{"apiKey", "secretKey"}` of one user's credential for one exchange (404 when there is none)."""
    venue = parse_exchange(exchange)
    keys = await service.keys_for(read, user_id, venue)
    log.info(
        "credential keys disclosed to an internal caller", extra={"user_id": user_id, "exchange": venue.value}
    )
    response = ok({"apiKey": keys.api_key, "secretKey": keys.secret_key})
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/credentials/{user_id}/{exchange}/balance", dependencies=[BalanceCaller])
async def credential_balance(
    user_id: str, exchange: str, read: ReadSession, db: DbSession, service: Service
) -> Response:
    """`{"isValid", "currency", "free", "locked"}` read with the stored keys, which stay in this service."""
    venue = parse_exchange(exchange)
    balance = await service.balance(read, db, user_id, venue)
    response = ok(
        {
            "isValid": balance.is_valid,
            "currency": balance.currency,
            # Decimal text: the caller compares it with order amounts exactly.
            "free": decimal_text(balance.free),
            "locked": decimal_text(balance.locked),
        }
    )
    response.headers["Cache-Control"] = "no-store"
    return response
