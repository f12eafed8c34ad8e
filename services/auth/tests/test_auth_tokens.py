"""Refresh rotation, reuse detection, concurrent refreshes and forged/expired/wrong-type tokens."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable

import httpx
import jwt
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select

from auth.models import RefreshToken
from auth.testing import JWT_SECRET, Account, error_code
from common.security import TokenService, TokenType

REFRESH = "/api/auth/refresh"
ME = "/api/auth/me"
Register = Callable[..., Awaitable[Account]]


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _family_rows(app: FastAPI, jti: str) -> list[RefreshToken]:
    async with app.state.session_factory() as session:
        row = await session.get(RefreshToken, jti)
        assert row is not None
        result = await session.execute(select(RefreshToken).where(RefreshToken.family_id == row.family_id))
        return list(result.scalars())


async def test_refresh_rotates_the_pair(app: FastAPI, client: httpx.AsyncClient, register: Register) -> None:
    account = await register()
    response = await client.post(REFRESH, json={"refreshToken": account.refresh_token})
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert set(body["data"]) == {"token", "refreshToken"}
    new_access, new_refresh = body["data"]["token"], body["data"]["refreshToken"]
    assert new_refresh != account.refresh_token
    assert (await client.get(ME, headers=bearer(new_access))).status_code == 200
    # The new refresh token works in turn; it belongs to the same family, child of the first.
    old_jti = jwt.decode(account.refresh_token, options={"verify_signature": False})["jti"]
    new_claims = jwt.decode(new_refresh, options={"verify_signature": False})
    rows = {r.jti: r for r in await _family_rows(app, old_jti)}
    assert rows[old_jti].replaced_by == new_claims["jti"]
    assert rows[new_claims["jti"]].parent_jti == old_jti
    again = await client.post(REFRESH, json={"refreshToken": new_refresh})
    assert again.status_code == 200


async def test_reuse_revokes_the_whole_family(
    app: FastAPI, client: httpx.AsyncClient, register: Register
) -> None:
    account = await register()
    first = (await client.post(REFRESH, json={"refreshToken": account.refresh_token})).json()["data"]
    second = (await client.post(REFRESH, json={"refreshToken": first["refreshToken"]})).json()["data"]
    assert (await client.get(ME, headers=bearer(second["token"]))).status_code == 200

    # The thief (or the victim) presents the already-rotated original.
    reuse = await client.post(REFRESH, json={"refreshToken": account.refresh_token})
    assert reuse.status_code == 401
    assert error_code(reuse) == "INVALID_TOKEN"

    # Every token of the family is now worthless, refresh and access alike, and it was committed.
    latest = await client.post(REFRESH, json={"refreshToken": second["refreshToken"]})
    assert latest.status_code == 401
    assert error_code(latest) == "INVALID_TOKEN"
    for access in (account.token, first["token"], second["token"]):
        me = await client.get(ME, headers=bearer(access))
        assert me.status_code == 401
        assert error_code(me) == "INVALID_TOKEN"
    old_jti = jwt.decode(account.refresh_token, options={"verify_signature": False})["jti"]
    rows = await _family_rows(app, old_jti)
    assert len(rows) == 3
    assert all(r.revoked_at is not None for r in rows)


async def test_reuse_leaves_other_sessions_alone(client: httpx.AsyncClient, register: Register) -> None:
    account = await register()
    other = (
        await client.post("/api/auth/login", json={"email": account.email, "password": account.password})
    ).json()
    rotated = await client.post(REFRESH, json={"refreshToken": account.refresh_token})
    assert rotated.status_code == 200
    reuse = await client.post(REFRESH, json={"refreshToken": account.refresh_token})
    assert reuse.status_code == 401
    assert error_code(reuse) == "INVALID_TOKEN"
    assert (await client.get(ME, headers=bearer(other["data"]["token"]))).status_code == 200
    fresh = await client.post(REFRESH, json={"refreshToken": other["data"]["refreshToken"]})
    assert fresh.status_code == 200


async def test_concurrent_double_refresh_has_exactly_one_winner(
    app: FastAPI, client: httpx.AsyncClient, register: Register
) -> None:
    account = await register()
    responses = await asyncio.gather(
        *(client.post(REFRESH, json={"refreshToken": account.refresh_token}) for _ in range(2))
    )
    assert sorted(r.status_code for r in responses) == [200, 401]
    loser = next(r for r in responses if r.status_code == 401)
    assert error_code(loser) == "INVALID_TOKEN"
    old_jti = jwt.decode(account.refresh_token, options={"verify_signature": False})["jti"]
    rows = await _family_rows(app, old_jti)
    # One rotation only: a single child row. The loser's attempt counts as a reuse, so the family
    # (the winner's new pair included) ends revoked: a duplicate refresh looks exactly like theft.
    assert [r.parent_jti for r in rows].count(old_jti) == 1
    assert all(r.revoked_at is not None for r in rows)
    winner = next(r for r in responses if r.status_code == 200).json()["data"]
    after = await client.post(REFRESH, json={"refreshToken": winner["refreshToken"]})
    assert after.status_code == 401
    assert error_code(after) == "INVALID_TOKEN"


async def test_access_token_is_not_a_refresh_token_and_vice_versa(
    client: httpx.AsyncClient, register: Register
) -> None:
    account = await register()
    as_refresh = await client.post(REFRESH, json={"refreshToken": account.token})
    assert as_refresh.status_code == 401
    assert error_code(as_refresh) == "INVALID_TOKEN"
    as_access = await client.get(ME, headers=bearer(account.refresh_token))
    assert as_access.status_code == 401
    assert error_code(as_access) == "INVALID_TOKEN"
    # Neither attempt consumed anything.
    assert (await client.post(REFRESH, json={"refreshToken": account.refresh_token})).status_code == 200


def _forgeries(token: str) -> dict[str, str]:
    header_b64, payload_b64, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    header = jwt.get_unverified_header(token)
    other_user = {**claims, "userId": "00000000-0000-0000-0000-000000000000"}
    # Change a middle character: the last one may only carry padding bits.
    mid = len(signature) // 2
    flipped = signature[:mid] + ("A" if signature[mid] != "A" else "B") + signature[mid + 1 :]
    return {
        "tampered payload": f"{header_b64}.{_b64(other_user)}.{signature}",
        "tampered signature": f"{header_b64}.{payload_b64}.{flipped}",
        "alg none": f"{_b64({**header, 'alg': 'none'})}.{payload_b64}.",
        "alg none no kid": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload_b64}.",
        "HS512": jwt.encode(claims, JWT_SECRET, algorithm="HS512", headers={"kid": header["kid"]}),
        "wrong secret": jwt.encode(
            claims,
            "another-secret-0123456789abcdef0123",
            algorithm="HS256",
            headers={"kid": header["kid"]},
        ),
        "unknown kid": TokenService({"k9": SecretStr(JWT_SECRET)}, "k9")
        .issue(
            TokenType(claims["type"]),
            user_id=claims["userId"],
            email=claims["email"],
            family=claims.get("fam"),
        )
        .token,
        "no kid": jwt.encode(claims, JWT_SECRET, algorithm="HS256"),
        "missing jti": jwt.encode(
            {k: v for k, v in claims.items() if k != "jti"},
            JWT_SECRET,
            algorithm="HS256",
            headers={"kid": header["kid"]},
        ),
        "garbage": "not.a.jwt",
        "empty segments": "..",
    }


@pytest.mark.parametrize(
    "kind",
    list(
        _forgeries(
            jwt.encode(
                {
                    "userId": "u",
                    "email": "e",
                    "jti": "j",
                    "type": "access",
                    "iss": "gridbot",
                    "iat": 0,
                    "exp": 1,
                },
                "x" * 32,
                algorithm="HS256",
                headers={"kid": "k1"},
            )
        )
    ),
)
async def test_forged_tokens_are_invalid(client: httpx.AsyncClient, register: Register, kind: str) -> None:
    account = await register()
    access = _forgeries(account.token)[kind]
    me = await client.get(ME, headers=bearer(access))
    assert me.status_code == 401, kind
    assert error_code(me) == "INVALID_TOKEN"
    refresh = _forgeries(account.refresh_token)[kind]
    response = await client.post(REFRESH, json={"refreshToken": refresh})
    assert response.status_code == 401, kind
    assert error_code(response) == "INVALID_TOKEN"
    # The genuine tokens were not affected by the forgeries.
    assert (await client.get(ME, headers=account.auth)).status_code == 200
    assert (await client.post(REFRESH, json={"refreshToken": account.refresh_token})).status_code == 200


async def test_expired_tokens_are_invalid(client: httpx.AsyncClient, register: Register) -> None:
    account = await register()
    claims = jwt.decode(account.refresh_token, options={"verify_signature": False})
    long_ago = time.time() - 8 * 24 * 3600
    past = TokenService({"k1": SecretStr(JWT_SECRET)}, "k1", clock=lambda: long_ago)
    expired_access = past.issue(TokenType.ACCESS, user_id=account.user_id, email=account.email)
    expired_refresh = past.issue(
        TokenType.REFRESH, user_id=account.user_id, email=account.email, family=claims["fam"]
    )
    me = await client.get(ME, headers=bearer(expired_access.token))
    assert me.status_code == 401
    assert error_code(me) == "INVALID_TOKEN"
    refresh = await client.post(REFRESH, json={"refreshToken": expired_refresh.token})
    assert refresh.status_code == 401
    assert error_code(refresh) == "INVALID_TOKEN"
    # An expired token is no reuse: the live family is intact.
    assert (await client.post(REFRESH, json={"refreshToken": account.refresh_token})).status_code == 200


async def test_validly_signed_but_unrecorded_refresh_token_is_invalid(
    client: httpx.AsyncClient, register: Register
) -> None:
    account = await register()
    claims = jwt.decode(account.refresh_token, options={"verify_signature": False})
    same_key = TokenService({"k1": SecretStr(JWT_SECRET)}, "k1")
    unrecorded = same_key.issue(
        TokenType.REFRESH, user_id=account.user_id, email=account.email, family=claims["fam"]
    )
    response = await client.post(REFRESH, json={"refreshToken": unrecorded.token})
    assert response.status_code == 401
    assert error_code(response) == "INVALID_TOKEN"
    # Not a reuse of anything we issued: the family lives on.
    assert (await client.post(REFRESH, json={"refreshToken": account.refresh_token})).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{}, {"refreshToken": ""}, {"refreshToken": 5}, {"refreshToken": "x" * 5000}, {"token": "abc"}],
)
async def test_refresh_body_validation(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    response = await client.post(REFRESH, json=body)
    assert response.status_code == 400
    assert error_code(response) == "VALIDATION_ERROR"


async def test_invalid_token_message_in_english(client: httpx.AsyncClient) -> None:
    response = await client.post(REFRESH, json={"refreshToken": "a.b.c"}, headers={"Accept-Language": "en"})
    assert response.json()["error"] == {
        "code": "INVALID_TOKEN",
        "message": "Invalid token",
        "details": {},
    }
    korean = await client.post(REFRESH, json={"refreshToken": "a.b.c"})
    assert korean.json()["error"]["message"] == "유효하지 않은 토큰입니다"
