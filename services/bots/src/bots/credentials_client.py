"""Client of the credentials service's internal API: is a user's key valid, and how much quote is free.

Contract (served by the credentials service, not through the gateway):
`GET {CREDENTIALS_URL}/internal/credentials/{user_id}/{exchange}/balance` with
`Authorization: Bearer <INTERNAL_BALANCE_TOKEN>` answers 200 `{"isValid": bool, "currency": "KRW"|"USDT",
"free": "<decimal text>"}` (bare, or inside the `{"success": true, "data": ...}` envelope), or 404 when the
user has no credential for that exchange. The keys themselves never reach this service.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import httpx

from common import tracing
from common.errors import AppError, ErrorCode
from common.exchanges import Exchange, quote_currency

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QuoteBalance:
    """What the credentials service says about one user's keys on one exchange."""

    is_valid: bool
    currency: str
    free: Decimal


class CredentialsClient:
    """Asks the credentials service; every failure becomes the contract's error code."""

    def __init__(
        self,
        base_url: str,
        token: str,
        timeout_seconds: float,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout_seconds,
            transport=transport,
            headers={"Authorization": f"Bearer {token}"},
            event_hooks=tracing.internal_client_hooks(),  # request id and trace context go along
        )

    async def close(self) -> None:
        """Release the connection pool."""
        await self._client.aclose()

    async def balance(self, user_id: str, exchange: Exchange) -> QuoteBalance:
        """The user's free quote balance and key validity; CREDENTIAL_NOT_FOUND when there is no key."""
        path = f"/internal/credentials/{quote(user_id, safe='')}/{exchange.value}/balance"
        try:
            response = await self._client.get(path)
        except httpx.HTTPError as exc:
            log.warning("credentials service unreachable: %s", type(exc).__name__)
            raise AppError(ErrorCode.SERVICE_UNAVAILABLE, {"service": "credentials"}) from exc
        if response.status_code == 404:
            raise AppError(ErrorCode.CREDENTIAL_NOT_FOUND, {"exchange": exchange.value})
        if response.status_code == 502:
            # The credentials service could not reach the exchange to read the balance.
            raise AppError(ErrorCode.EXCHANGE_API_ERROR, {"exchange": exchange.value})
        if response.status_code != 200:
            log.error("credentials service answered %s to a balance request", response.status_code)
            raise AppError(ErrorCode.SERVICE_UNAVAILABLE, {"service": "credentials"})
        return _parse(response, exchange)


def _parse(response: httpx.Response, exchange: Exchange) -> QuoteBalance:
    try:
        body: Any = response.json()
        if isinstance(body, dict) and "success" in body and isinstance(body.get("data"), dict):
            body = body["data"]
        is_valid = body["isValid"]
        currency = body["currency"]
        free = Decimal(str(body["free"]))
        if not isinstance(is_valid, bool) or not isinstance(currency, str) or not free.is_finite():
            raise TypeError("unexpected field types")
    except (ValueError, TypeError, KeyError, InvalidOperation) as exc:
        log.error("credentials service answered an unreadable balance: %s", type(exc).__name__)
        raise AppError(ErrorCode.SERVICE_UNAVAILABLE, {"service": "credentials"}) from exc
    if is_valid and currency != quote_currency(exchange):
        log.error(
            "credentials service reported %s for %s (expected %s)",
            currency,
            exchange,
            quote_currency(exchange),
        )
        raise AppError(ErrorCode.SERVICE_UNAVAILABLE, {"service": "credentials"})
    return QuoteBalance(is_valid=is_valid, currency=currency, free=free)
