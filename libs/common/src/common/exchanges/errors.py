"""ccxt errors translated at the adapter boundary: transient (retry with backoff) or permanent (surface).

Modelled on freqtrade's exchange layer: only temporary errors are retried. ccxt maps several Upbit error
names only to a plain `ExchangeError` (as it does against the real exchange) and Binance's NOTIONAL filter
failure to `BadRequest`, so those are classified here by the exchange's own error name or message.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, TypeVar

from common.errors import AppError, ErrorCode
from common.logging import redact_text
from common.retry import Backoff, Jitter, RetryCallState

log = logging.getLogger(__name__)
T = TypeVar("T")

_MAX_MESSAGE = 500
_SIGNATURE = re.compile(r"(signature=)[0-9A-Za-z%+/=_-]+", re.IGNORECASE)
_UPBIT_NAME = re.compile(r'"name"\s*:\s*"?([A-Za-z0-9_]+)"?')
_BINANCE_KEY_REFUSED = re.compile(r'"code"\s*:\s*-2015\b')


class ErrorKind(StrEnum):
    """Why an exchange refused a request for good."""

    AUTHENTICATION = "authentication"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INVALID_ORDER = "invalid_order"
    ORDER_NOT_FOUND = "order_not_found"
    BAD_SYMBOL = "bad_symbol"
    PERMISSION = "permission"
    OTHER = "other"


class ExchangeCallError(Exception):
    """An exchange call failed (base of the two domain errors below)."""

    def __init__(self, message: str, *, exchange: str | None = None, source: str | None = None) -> None:
        super().__init__(message)
        self.exchange = exchange
        self.source = source
        """The ccxt exception class name, for logs and tests."""


class RequestWithheldError(Exception):
    """The caller's own guard stopped the request before it was signed: nothing reached the exchange.

    Not an exchange error: `call` neither classifies nor retries it (a replica whose authority ran out must
    not send the request later either).
    """


class TransientExchangeError(ExchangeCallError):
    """Network trouble, timeouts, rate limits, 5xx, maintenance: worth retrying with backoff."""


class ExchangeBudgetExhaustedError(TransientExchangeError):
    """Our shared budget of calls to an exchange is spent for longer than the caller may wait (budget.py)."""

    def __init__(self, exchange: str, bucket: str, retry_after: float) -> None:
        super().__init__(
            f"{exchange} call budget ({bucket}) exhausted for {retry_after:.1f}s",
            exchange=exchange,
            source="ExchangeBudgetExhaustedError",
        )
        self.bucket = bucket
        self.retry_after = retry_after


class PermanentExchangeError(ExchangeCallError):
    """The exchange refused the request itself: retrying cannot help; tell the user."""

    def __init__(
        self,
        message: str,
        kind: ErrorKind,
        *,
        reason: str | None = None,
        exchange: str | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(message, exchange=exchange, source=source)
        self.kind = kind
        self.reason = reason
        """A finer cause where known: min_notional, price, quantity, duplicate, post_only, …"""


# Upbit error names that ccxt leaves as a plain ExchangeError (or maps too coarsely).
_UPBIT_PREFIXES: tuple[tuple[str, ErrorKind | None, str | None], ...] = (
    ("under_min_total", ErrorKind.INVALID_ORDER, "min_notional"),
    ("over_max_total", ErrorKind.INVALID_ORDER, "max_notional"),
    ("invalid_price", ErrorKind.INVALID_ORDER, "price"),
    ("invalid_volume", ErrorKind.INVALID_ORDER, "quantity"),
    ("invalid_funds", ErrorKind.INVALID_ORDER, "funds"),
    ("volume_too_large", ErrorKind.INVALID_ORDER, "quantity"),
    ("duplicated_identifier", ErrorKind.INVALID_ORDER, "duplicate"),
    ("invalid_post_only", ErrorKind.INVALID_ORDER, "post_only"),
    ("create_bid_error", ErrorKind.INVALID_ORDER, None),
    ("create_ask_error", ErrorKind.INVALID_ORDER, None),
    ("insufficient_funds", ErrorKind.INSUFFICIENT_FUNDS, None),
    ("order_not_found", ErrorKind.ORDER_NOT_FOUND, None),
    ("notfoundmarket", ErrorKind.BAD_SYMBOL, None),
    ("404", ErrorKind.BAD_SYMBOL, None),  # {"name": 404, "message": "Code not found"}: unknown market
    ("invalid_access_key", ErrorKind.AUTHENTICATION, None),
    ("jwt_verification", ErrorKind.AUTHENTICATION, None),
    ("invalid_query_payload", ErrorKind.AUTHENTICATION, None),
    ("expired_access_key", ErrorKind.AUTHENTICATION, None),
    ("no_authorization_ip", ErrorKind.PERMISSION, None),
    ("out_of_scope", ErrorKind.PERMISSION, None),
    ("thirdparty_agreement_required", ErrorKind.PERMISSION, None),
    # A reused nonce is refused before anything happens: a new signature succeeds.
    ("nonce_used", None, None),
)

_BINANCE_ORDER_REASONS: tuple[tuple[str, str], ...] = (
    ("NOTIONAL", "min_notional"),
    ("PRICE_FILTER", "price"),
    ("PERCENT_PRICE", "price"),
    ("LOT_SIZE", "quantity"),
    ("MARKET_LOT_SIZE", "quantity"),
    ("Duplicate order", "duplicate"),
    ("immediately match", "post_only"),
)


def safe_message(exc: BaseException) -> str:
    """An exception's text with signatures, bearer tokens and JWTs masked, and bounded in length."""
    text = _SIGNATURE.sub(r"\1[REDACTED]", str(exc))
    return redact_text(text)[:_MAX_MESSAGE]


def upbit_error_name(text: str) -> str | None:
    """The `error.name` inside an Upbit error body quoted in a ccxt message."""
    match = _UPBIT_NAME.search(text)
    return match.group(1) if match else None


def _exchange_of(text: str) -> str | None:
    head = text.split(" ", 1)[0].lower()
    return head if head in ("upbit", "binance") else None


def _order_reason(text: str) -> str | None:
    for marker, binance_reason in _BINANCE_ORDER_REASONS:
        if marker in text:
            return binance_reason
    name = upbit_error_name(text)
    if name:
        for prefix, kind, upbit_reason in _UPBIT_PREFIXES:
            if kind is ErrorKind.INVALID_ORDER and name.startswith(prefix):
                return upbit_reason
    return None


def _by_upbit_name(text: str, exchange: str | None, source: str) -> ExchangeCallError | None:
    name = upbit_error_name(text)
    if name is None:
        return None
    for prefix, kind, reason in _UPBIT_PREFIXES:
        if name.startswith(prefix):
            if kind is None:
                return TransientExchangeError(text, exchange=exchange, source=source)
            return PermanentExchangeError(text, kind, reason=reason, exchange=exchange, source=source)
    return None


def classify(exc: BaseException, exchange: str | None = None) -> ExchangeCallError:
    """The domain error an exception from an exchange call stands for."""
    if isinstance(exc, ExchangeCallError):
        return exc
    import ccxt

    text = safe_message(exc)
    venue = exchange or _exchange_of(text)
    source = type(exc).__name__

    def permanent(kind: ErrorKind, reason: str | None = None) -> PermanentExchangeError:
        return PermanentExchangeError(text, kind, reason=reason, exchange=venue, source=source)

    if not isinstance(exc, ccxt.BaseError):
        # aiohttp/socket trouble that escaped ccxt, or our own deadline.
        return TransientExchangeError(text or source, exchange=venue, source=source)
    if venue == "binance" and isinstance(exc, ccxt.DDoSProtection) and _BINANCE_KEY_REFUSED.search(text):
        # ccxt reads -2015 as a temporary ban once a client has signed in successfully; Binance means that
        # the key, its IP whitelist or its permissions no longer let it act (a key deleted or restricted).
        return permanent(ErrorKind.AUTHENTICATION)
    if isinstance(exc, ccxt.OperationFailed):
        # NetworkError (timeouts, DDoSProtection/RateLimitExceeded, ExchangeNotAvailable/OnMaintenance,
        # InvalidNonce) and BadResponse/NullResponse/CancelPending: all temporary.
        return TransientExchangeError(text, exchange=venue, source=source)
    if isinstance(exc, ccxt.PermissionDenied | ccxt.AccountSuspended | ccxt.RestrictedLocation):
        return permanent(ErrorKind.PERMISSION)
    if isinstance(exc, ccxt.AuthenticationError):
        return permanent(ErrorKind.AUTHENTICATION)
    if isinstance(exc, ccxt.InsufficientFunds):
        return permanent(ErrorKind.INSUFFICIENT_FUNDS)
    if isinstance(exc, ccxt.OrderNotFound | ccxt.OrderNotCached):
        return permanent(ErrorKind.ORDER_NOT_FOUND)
    if isinstance(exc, ccxt.InvalidOrder):
        return permanent(ErrorKind.INVALID_ORDER, _order_reason(text))
    if isinstance(exc, ccxt.BadSymbol):
        return permanent(ErrorKind.BAD_SYMBOL)
    by_name = _by_upbit_name(text, venue, source)
    if by_name is not None:
        return by_name
    if isinstance(exc, ccxt.BadRequest):
        reason = _order_reason(text)
        if reason is not None:
            return permanent(ErrorKind.INVALID_ORDER, reason)
    return permanent(ErrorKind.OTHER)


def to_app_error(exc: BaseException) -> AppError:
    """The client-facing error of an exchange failure (transient and unknown ones are 502)."""
    if isinstance(exc, AppError):
        return exc
    error = classify(exc)
    details: dict[str, Any] = {}
    if error.exchange:
        details["exchange"] = error.exchange
    if isinstance(error, ExchangeBudgetExhaustedError):
        # Our own budget of calls to the exchange is spent: try again later.
        details["reason"] = "exchange_budget"
        seconds = str(max(1, math.ceil(error.retry_after)))
        return AppError(ErrorCode.SERVICE_UNAVAILABLE, details, headers={"Retry-After": seconds})
    if not isinstance(error, PermanentExchangeError):
        return AppError(ErrorCode.EXCHANGE_API_ERROR, details)
    details["kind"] = error.kind.value
    if error.reason:
        details["reason"] = error.reason
    code = {
        ErrorKind.AUTHENTICATION: ErrorCode.INVALID_CREDENTIALS,
        ErrorKind.PERMISSION: ErrorCode.INVALID_CREDENTIALS,
        ErrorKind.INSUFFICIENT_FUNDS: ErrorCode.INSUFFICIENT_BALANCE,
        ErrorKind.BAD_SYMBOL: ErrorCode.TICKER_NOT_FOUND,
        ErrorKind.ORDER_NOT_FOUND: ErrorCode.ORDER_FAILED,
        ErrorKind.INVALID_ORDER: ErrorCode.ORDER_FAILED,
        ErrorKind.OTHER: ErrorCode.EXCHANGE_API_ERROR,
    }[error.kind]
    if error.kind is ErrorKind.INVALID_ORDER and error.reason == "min_notional":
        code = ErrorCode.INVALID_ORDER_AMOUNT
    return AppError(code, details)


def _retried(error: BaseException) -> bool:
    # Only temporary failures are worth another try; a spent budget already waited as long as a caller may,
    # so retrying it at once would only spend more.
    return isinstance(error, TransientExchangeError) and not isinstance(error, ExchangeBudgetExhaustedError)


async def call(
    fn: Callable[..., Awaitable[T]],
    *args: Any,
    attempts: int = 3,
    base_delay: float = 0.2,
    max_delay: float = 2.0,
    total_timeout: float | None = None,
    **kw: Any,
) -> T:
    """Await `fn(*args, **kw)`, retrying transient exchange errors; raises the domain error on failure.

    Delays are `common.retry`'s full-jitter backoff from `base_delay` up to `max_delay`. `total_timeout`
    bounds every attempt and wait together (a request handler must answer in bounded time).
    """
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    policy = Backoff(base_delay, max_delay, Jitter.FULL)

    async def once() -> T:
        try:
            return await fn(*args, **kw)
        except RequestWithheldError:
            raise
        except Exception as exc:
            raise classify(exc) from exc

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log.info(
            "transient exchange error (%s), retry %d/%d in %.2fs",
            getattr(error, "source", None),
            state.attempt_number,
            attempts - 1,
            state.next_action.sleep if state.next_action is not None else 0.0,
        )

    async def attempt_all() -> T:
        return await policy.retrying(attempts, retry=_retried, before_sleep=log_retry)(once)

    if total_timeout is None:
        return await attempt_all()
    try:
        async with asyncio.timeout(total_timeout) as scope:
            return await attempt_all()
    except TimeoutError as exc:
        if scope.expired():
            raise TransientExchangeError(
                f"exchange call exceeded {total_timeout}s", source="TimeoutError"
            ) from exc
        raise
