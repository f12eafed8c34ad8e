"""Token checks at the gateway: each bad token gets its documented 401 and never reaches a service."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from common.cache import Cache
from common.security import RevocationList, TokenService, TokenType
from gateway.settings import Settings
from gateway.testing import Tokens, Upstream, bearer, gateway, make_settings, unsigned_token


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    # Flip one character of the payload: the signature no longer matches.
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    return f"{header}.{flipped}.{signature}"


def _expired() -> str:
    # Signed with the right key two hours ago: its one-hour life is over.
    settings = Settings(environment="test")
    issuer = TokenService(settings.jwt_keys(), settings.jwt_kid, clock=lambda: time.time() - 7200)
    return issuer.issue(TokenType.ACCESS, user_id="u", email="u@example.com").token


def _foreign_key() -> str:
    from pydantic import SecretStr

    other = TokenService({"k1": SecretStr("another-secret-that-is-long-enough-0123456789")}, "k1")
    return other.issue(TokenType.ACCESS, user_id="u", email="u@example.com").token


CLAIMS: dict[str, Any] = {
    "userId": "u",
    "email": "u@example.com",
    "jti": "j",
    "type": "access",
    "iss": "gridbot",
    "iat": int(time.time()),
    "exp": int(time.time()) + 3600,
}


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "UNAUTHORIZED"),
        ("", "UNAUTHORIZED"),
        ("Bearer", "UNAUTHORIZED"),
        ("Basic dXNlcjpwYXNz", "UNAUTHORIZED"),
        ("Bearer not-a-jwt", "INVALID_TOKEN"),
        ("Bearer a.b.c", "INVALID_TOKEN"),
        (f"Bearer {unsigned_token(CLAIMS)}", "INVALID_TOKEN"),
        (f"Bearer {_expired()}", "INVALID_TOKEN"),
        (f"Bearer {_foreign_key()}", "INVALID_TOKEN"),
    ],
    ids=[
        "none",
        "empty",
        "no-token",
        "basic",
        "garbage",
        "three-parts",
        "alg-none",
        "expired",
        "foreign-key",
    ],
)
async def test_bad_tokens_are_refused_before_any_service(
    auth_up: Upstream, authorization: str | None, code: str
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with gateway(make_settings(), {"auth": auth_up.transport()}) as client:
        response = await client.get("/api/auth/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert auth_up.calls == []


async def test_tampered_and_refresh_tokens_are_invalid(auth_up: Upstream, tokens: Tokens) -> None:
    async with gateway(make_settings(), {"auth": auth_up.transport()}) as client:
        tampered = await client.get("/api/auth/me", headers=bearer(_tamper(tokens.access())))
        # A refresh token is a valid JWT of the wrong type.
        refresh = await client.get("/api/auth/me", headers=bearer(tokens.refresh()))
        good = await client.get("/api/auth/me", headers=bearer(tokens.access()))
    assert (tampered.status_code, tampered.json()["error"]["code"]) == (401, "INVALID_TOKEN")
    assert (refresh.status_code, refresh.json()["error"]["code"]) == (401, "INVALID_TOKEN")
    assert good.status_code == 200
    assert len(auth_up.calls) == 1


async def test_revoked_token_is_refused_at_once(
    auth_up: Upstream, redis_overrides: dict[str, Any], redis_cache: Cache, tokens: Tokens
) -> None:
    issued = tokens.service.issue(TokenType.ACCESS, user_id="u7", email="u7@example.com")
    async with gateway(make_settings(**redis_overrides), {"auth": auth_up.transport()}) as client:
        before = await client.get("/api/auth/me", headers=bearer(issued.token))
        await RevocationList(redis_cache).revoke(issued.jti, issued.expires_at)
        after = await client.get("/api/auth/me", headers=bearer(issued.token))
    assert before.status_code == 200
    assert (after.status_code, after.json()["error"]["code"]) == (401, "INVALID_TOKEN")
    assert len(auth_up.calls) == 1


async def test_verified_token_cache_still_honours_expiry(auth_up: Upstream) -> None:
    from common.security import VerifiedTokens

    now = [time.time()]
    service = TokenService.from_settings(Settings(environment="test"))
    verified = VerifiedTokens(service, clock=lambda: now[0])
    issued = service.issue(TokenType.ACCESS, user_id="u", email="u@example.com")
    assert verified.authenticate(f"Bearer {issued.token}").user_id == "u"
    now[0] = (issued.expires_at + timedelta(seconds=1)).timestamp()
    with pytest.raises(Exception, match="INVALID_TOKEN"):
        verified.authenticate(f"Bearer {issued.token}")
    assert issued.expires_at > datetime.now(UTC)


async def test_public_paths_need_no_token(auth_up: Upstream) -> None:
    async with gateway(make_settings(), {"auth": auth_up.transport()}) as client:
        for path in ("/api/auth/register", "/api/auth/login", "/api/auth/refresh"):
            response = await client.post(path, json={"email": "a@b.co"})
            assert response.status_code == 200, path
        # Only the listed method is public.
        get_login = await client.get("/api/auth/login")
        logout = await client.post("/api/auth/logout")
    assert get_login.status_code == 401
    assert logout.status_code == 401
    assert [c["path"] for c in auth_up.calls] == [
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/refresh",
    ]


async def test_public_paths_are_configurable(auth_up: Upstream) -> None:
    settings = make_settings(public_paths="GET /api/auth/status, /api/auth/open")
    async with gateway(settings, {"auth": auth_up.transport()}) as client:
        status = await client.get("/api/auth/status")
        open_delete = await client.delete("/api/auth/open")
        login = await client.post("/api/auth/login")
    assert status.status_code == 200
    assert open_delete.status_code == 200
    assert login.status_code == 401
