"""Binance SIGNED security: X-MBX-APIKEY, timestamp/recvWindow and an HMAC-SHA256 signature."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from exchange_sim.accounts import Account, AccountStore
from exchange_sim.binance import errors

MAX_RECV_WINDOW = 60_000
DEFAULT_RECV_WINDOW = 5_000
# Binance rejects timestamps more than this far in the future.
FUTURE_TOLERANCE_MS = 1_000


def _without_signature(raw: str) -> str:
    return "&".join(part for part in raw.split("&") if part and not part.startswith("signature="))


def signed_payload(raw_query: str, raw_body: str) -> str:
    """Binance's "totalParams": the query string then the body, signature removed, no separator."""
    return _without_signature(raw_query) + _without_signature(raw_body)


def sign(secret: str, payload: str) -> str:
    """Lowercase hex HMAC-SHA256 of a payload."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def check_key(accounts: AccountStore, api_key: str | None) -> Account:
    """The account of an API key header, or the -2014/-2015 error Binance gives."""
    if not api_key or not api_key.isalnum() or not api_key.isascii():
        raise errors.bad_key_format()
    account = accounts.authenticate(api_key)
    if account is None:
        raise errors.rejected_key()
    return account


def check_timestamp(params: Mapping[str, str], now_ms: int) -> None:
    """Validate timestamp and recvWindow as Binance does."""
    try:
        timestamp = int(params["timestamp"])
    except (KeyError, ValueError) as exc:
        raise errors.mandatory("timestamp") from exc
    try:
        recv_window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW))
    except ValueError as exc:
        raise errors.mandatory("recvWindow") from exc
    if recv_window > MAX_RECV_WINDOW or recv_window <= 0:
        raise errors.bad_recv_window()
    if timestamp > now_ms + FUTURE_TOLERANCE_MS:
        raise errors.timestamp_ahead()
    if now_ms - timestamp > recv_window:
        raise errors.timestamp_outside_window()


def authenticate(
    accounts: AccountStore,
    api_key: str | None,
    params: Mapping[str, str],
    raw_query: str,
    raw_body: str,
    now_ms: int,
) -> Account:
    """The account a SIGNED REST request proves, or raise BinanceError."""
    account = check_key(accounts, api_key)
    signature = params.get("signature")
    check_timestamp(params, now_ms)
    if not signature:
        raise errors.mandatory("signature")
    expected = sign(account.secret_key, signed_payload(raw_query, raw_body))
    if not hmac.compare_digest(expected, signature.lower()):
        raise errors.bad_signature()
    return account


def ws_payload(params: Mapping[str, object]) -> str:
    """The WebSocket API's signed payload: params but signature, sorted by name, key=value&..."""

    def text(value: object) -> str:
        if value is True:
            return "true"
        if value is False:
            return "false"
        return str(value)

    return "&".join(f"{key}={text(params[key])}" for key in sorted(params) if key != "signature")


def authenticate_ws(accounts: AccountStore, params: Mapping[str, object], now_ms: int) -> Account:
    """The account a signed WebSocket API request (apiKey, timestamp, signature) proves."""
    api_key = params.get("apiKey")
    account = check_key(accounts, api_key if isinstance(api_key, str) else None)
    text_params = {k: str(v) for k, v in params.items()}
    check_timestamp(text_params, now_ms)
    signature = params.get("signature")
    if not isinstance(signature, str) or not signature:
        raise errors.mandatory("signature")
    expected = sign(account.secret_key, ws_payload(params))
    if not hmac.compare_digest(expected, signature.lower()):
        raise errors.bad_signature()
    return account
