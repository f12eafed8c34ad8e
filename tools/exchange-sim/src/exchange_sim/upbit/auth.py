"""Upbit request authentication: a Bearer JWT (HS256/HS512) with access_key, nonce, query_hash."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote, urlencode

import jwt

from exchange_sim.accounts import Account, AccountStore
from exchange_sim.upbit import errors

_ALGORITHMS = ["HS256", "HS384", "HS512"]


def query_string_of_body(body: Mapping[str, Any]) -> str:
    """The unencoded query string a client hashes for a JSON body (keys in body order)."""

    def text(value: Any) -> str:
        if value is True:
            return "true"
        if value is False:
            return "false"
        if isinstance(value, Decimal):
            return f"{value}"
        return str(value)

    pairs: list[tuple[str, str]] = []
    for key, value in body.items():
        if isinstance(value, list):
            pairs.extend((f"{key}[]", text(item)) for item in value)
        else:
            pairs.append((key, text(value)))
    return unquote(urlencode(pairs, quote_via=quote))


def query_string_of_url(raw_query: str) -> str:
    """The unencoded form of the request's query string, as Upbit hashes it."""
    return unquote(raw_query)


def authenticate(accounts: AccountStore, authorization: str | None, hashed_query: str) -> Account:
    """The account a request's Authorization header proves, or raise UpbitError (401)."""
    if not authorization or not authorization.startswith("Bearer "):
        raise errors.jwt_verification()
    token = authorization[len("Bearer ") :].strip()
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise errors.jwt_verification() from exc
    access_key = claims.get("access_key")
    account = accounts.authenticate(access_key) if isinstance(access_key, str) else None
    if account is None:
        raise errors.invalid_access_key()
    try:
        jwt.decode(token, account.secret_key, algorithms=_ALGORITHMS)
    except jwt.PyJWTError as exc:
        raise errors.jwt_verification() from exc
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not nonce:
        raise errors.invalid_query_payload()
    if hashed_query:
        expected = hashlib.sha512(hashed_query.encode()).hexdigest()
        given = claims.get("query_hash")
        alg = str(claims.get("query_hash_alg", "SHA512")).upper()
        if alg != "SHA512" or not isinstance(given, str) or not hmac.compare_digest(given.lower(), expected):
            raise errors.invalid_query_payload()
    if not account.use_nonce(nonce):
        raise errors.nonce_used()
    return account


def authenticate_ws(accounts: AccountStore, authorization: str | None) -> Account | None:
    """The account of a private WebSocket upgrade header (no query hash; nonce may repeat)."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    token = authorization[len("Bearer ") :].strip()
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        access_key = claims.get("access_key")
        account = accounts.authenticate(access_key) if isinstance(access_key, str) else None
        if account is None:
            return None
        jwt.decode(token, account.secret_key, algorithms=_ALGORITHMS)
    except jwt.PyJWTError:
        return None
    return account
