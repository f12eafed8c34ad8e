"""Validating keys against the exchange: fetch the balance with them through ccxt, in bounded time."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from common import metrics
from common.errors import AppError, ErrorCode
from common.exchanges import (
    ErrorKind,
    Exchange,
    ExchangeBudget,
    ExchangeCallError,
    ExchangeSettings,
    PermanentExchangeError,
    call,
    create_ccxt,
    quote_currency,
    to_app_error,
)
from credentials.vault import ExchangeKeys

log = logging.getLogger(__name__)
# ccxt logs every request's headers (Binance's X-MBX-APIKEY, Upbit's JWT carrying the access key) and
# every response body at DEBUG. Its clients here log through this logger, which never passes DEBUG on,
# whatever level the process runs at.
_CCXT_LOG = logging.getLogger("credentials.ccxt")
_CCXT_LOG.setLevel(logging.WARNING)

# Kinds of refusal that mean "these keys do not work" (rather than "the exchange is unwell").
_REJECTED = frozenset({ErrorKind.AUTHENTICATION, ErrorKind.PERMISSION})


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """The quote currency's balance as validate-credentials reports it."""

    currency: str
    balance: Decimal
    locked: Decimal
    avg_buy_price: Decimal

    def to_wire(self) -> dict[str, Any]:
        """`accountInfo` of the API (decimals become JSON numbers in the envelope)."""
        return {
            "currency": self.currency,
            "balance": self.balance,
            "locked": self.locked,
            "avgBuyPrice": self.avg_buy_price,
        }


def is_rejection(exc: ExchangeCallError) -> bool:
    """True when the exchange refused the keys themselves (not a transient or unrelated failure)."""
    return isinstance(exc, PermanentExchangeError) and exc.kind in _REJECTED


class Outcome(StrEnum):
    """What a background re-validation learnt about stored keys."""

    VALID = "valid"
    REJECTED = "rejected"
    UNKNOWN = "unknown"  # the exchange could not answer: nothing is concluded


def _decimal(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)


def account_info(exchange: Exchange, balance: dict[str, Any]) -> AccountInfo:
    """The quote currency's free, locked and average buy price from a ccxt fetch_balance result."""
    currency = quote_currency(exchange)
    info = balance.get("info")
    # The exchange's own strings are exact; ccxt's unified numbers are floats.
    if exchange is Exchange.UPBIT and isinstance(info, list):
        for entry in info:
            if isinstance(entry, dict) and entry.get("currency") == currency:
                return AccountInfo(
                    currency,
                    _decimal(entry.get("balance")),
                    _decimal(entry.get("locked")),
                    _decimal(entry.get("avg_buy_price")),
                )
        return AccountInfo(currency, Decimal(0), Decimal(0), Decimal(0))
    if exchange is Exchange.BINANCE and isinstance(info, dict) and isinstance(info.get("balances"), list):
        for entry in info["balances"]:
            if isinstance(entry, dict) and entry.get("asset") == currency:
                # Binance keeps no average buy price.
                return AccountInfo(
                    currency, _decimal(entry.get("free")), _decimal(entry.get("locked")), Decimal(0)
                )
        return AccountInfo(currency, Decimal(0), Decimal(0), Decimal(0))
    unified = balance.get(currency) or {}
    return AccountInfo(currency, _decimal(unified.get("free")), _decimal(unified.get("used")), Decimal(0))


@dataclass(frozen=True, slots=True)
class _Markets:
    markets: dict[str, Any]
    currencies: dict[str, Any]
    loaded_at: float


class ExchangeValidator:
    """Calls the exchange with a user's keys; the keys live in the ccxt client only for that call."""

    def __init__(
        self,
        settings: ExchangeSettings,
        budget: ExchangeBudget,
        *,
        attempts: int = 2,
        markets_ttl_seconds: float = 3600.0,
    ) -> None:
        self._settings = settings
        self._budget = budget
        self._attempts = attempts
        self._markets_ttl = markets_ttl_seconds
        # fetch_balance loads the markets first (Binance's are megabytes): loaded once per exchange and
        # handed to each short-lived client instead.
        self._markets: dict[Exchange, _Markets] = {}

    async def warm_up(self) -> None:
        """Import ccxt and build each exchange's description off the event loop (seconds, once)."""

        def build() -> list[Any]:
            return [create_ccxt(exchange, self._settings, budget=self._budget) for exchange in Exchange]

        for client in await asyncio.to_thread(build):
            await client.close()

    async def fetch_account(self, exchange: Exchange, keys: ExchangeKeys) -> AccountInfo:
        """The quote balance fetched with `keys`; raises the domain ExchangeCallError on failure."""
        client = create_ccxt(
            exchange, self._settings, budget=self._budget, api_key=keys.api_key, secret=keys.secret_key
        )
        client.logger = _CCXT_LOG
        cached = self._markets.get(exchange)
        fresh = cached is not None and time.monotonic() - cached.loaded_at < self._markets_ttl
        if cached is not None and fresh:
            client.set_markets(list(cached.markets.values()), cached.currencies)
        try:
            balance = await call(
                client.fetch_balance,
                attempts=self._attempts,
                total_timeout=self._settings.exchange_timeout_seconds,
            )
            if not fresh:
                self._markets[exchange] = _Markets(
                    dict(client.markets), dict(client.currencies or {}), time.monotonic()
                )
        finally:
            await client.close()
        return account_info(exchange, balance)

    async def validate(self, exchange: Exchange, keys: ExchangeKeys) -> AccountInfo:
        """For requests: INVALID_CREDENTIALS when the exchange rejects the keys, else EXCHANGE_API_ERROR."""
        try:
            info = await self.fetch_account(exchange, keys)
        except ExchangeCallError as exc:
            error = to_app_error(exc)
            log.info(
                "credential validation failed",
                extra={"exchange": exchange.value, "source": exc.source, "code": error.code.value},
            )
            # Only "these keys are refused" is the user's fault; our spent call budget is a 503 with
            # Retry-After; anything else is the exchange's (502).
            passed = (ErrorCode.INVALID_CREDENTIALS, ErrorCode.SERVICE_UNAVAILABLE)
            code = error.code if error.code in passed else ErrorCode.EXCHANGE_API_ERROR
            metrics.CREDENTIALS_VALIDATIONS.labels(exchange.value, code.value).inc()
            # `from None`: the ccxt exception (its text quotes the exchange's answer) goes no further.
            raise AppError(code, {**error.details, "exchange": exchange.value}, error.headers) from None
        metrics.CREDENTIALS_VALIDATIONS.labels(exchange.value, Outcome.VALID.value).inc()
        return info

    async def check(self, exchange: Exchange, keys: ExchangeKeys) -> Outcome:
        """For background re-validation: VALID, REJECTED (keys refused) or UNKNOWN (exchange trouble)."""
        try:
            await self.fetch_account(exchange, keys)
        except ExchangeCallError as exc:
            rejected = is_rejection(exc)
            if not rejected:
                log.info(
                    "re-validation inconclusive", extra={"exchange": exchange.value, "source": exc.source}
                )
            outcome = Outcome.REJECTED if rejected else Outcome.UNKNOWN
        else:
            outcome = Outcome.VALID
        metrics.CREDENTIALS_VALIDATIONS.labels(exchange.value, f"recheck_{outcome.value}").inc()
        return outcome
