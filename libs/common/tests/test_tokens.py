"""JWT issue/verify: algorithm pinned, kid required, type enforced, expiry on the injected clock."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from pydantic import SecretStr

from common.cache import RedisCache, create_cache
from common.errors import AppError, ErrorCode
from common.security import AuthState, RevocationList, TokenService, TokenType

KEY = SecretStr("k" * 40)
OLD = SecretStr("o" * 40)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def service(
    clock: Clock | None = None, keys: dict[str, SecretStr] | None = None, kid: str = "k1"
) -> TokenService:
    return TokenService(keys or {"k1": KEY}, kid, clock=clock or Clock(1_700_000_000))


def invalid(fn: object) -> ErrorCode:
    with pytest.raises(AppError) as info:
        fn()  # type: ignore[operator]
    return info.value.code


def test_roundtrip_carries_the_contract_claims() -> None:
    clock = Clock(1_700_000_000)
    svc = service(clock)
    issued = svc.issue(TokenType.ACCESS, user_id="u1", email="a@b.co")
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    assert {"userId", "email", "jti", "type", "exp", "iat", "iss"} <= set(claims)
    assert jwt.get_unverified_header(issued.token) == {"alg": "HS256", "kid": "k1", "typ": "JWT"}
    p = svc.verify(issued.token, TokenType.ACCESS)
    assert (p.user_id, p.email, p.jti, p.token_type) == (
        "u1",
        "a@b.co",
        issued.jti,
        TokenType.ACCESS,
    )
    assert p.expires_at == datetime.fromtimestamp(1_700_000_000 + 3600, UTC)


def test_wrong_type_is_rejected_both_ways() -> None:
    svc = service()
    access = svc.issue(TokenType.ACCESS, user_id="u", email="e@x.io").token
    refresh = svc.issue(TokenType.REFRESH, user_id="u", email="e@x.io", family="f").token
    assert invalid(lambda: svc.verify(access, TokenType.REFRESH)) is ErrorCode.INVALID_TOKEN
    assert invalid(lambda: svc.verify(refresh, TokenType.ACCESS)) is ErrorCode.INVALID_TOKEN
    assert svc.verify(refresh, TokenType.REFRESH).family == "f"


def test_expired_on_injected_clock() -> None:
    clock = Clock(1_700_000_000)
    svc = service(clock)
    token = svc.issue(TokenType.ACCESS, user_id="u", email="e@x.io").token
    clock.now += 3600
    assert invalid(lambda: svc.verify(token, TokenType.ACCESS)) is ErrorCode.INVALID_TOKEN


def test_tampered_alg_none_unknown_kid_and_garbage() -> None:
    svc = service()
    token = svc.issue(TokenType.ACCESS, user_id="u", email="e@x.io").token
    head, body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload["userId"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    none_head = base64.urlsafe_b64encode(b'{"alg":"none","kid":"k1"}').rstrip(b"=").decode()
    other = service(keys={"zz": KEY}, kid="zz").issue(TokenType.ACCESS, user_id="u", email="e@x.io").token
    for bad in (f"{head}.{forged}.{sig}", f"{none_head}.{body}.", other, "not-a-jwt", "", "a.b.c"):
        assert invalid(lambda bad=bad: svc.verify(bad, TokenType.ACCESS)) is ErrorCode.INVALID_TOKEN


def test_rotation_accepts_previous_key() -> None:
    old = service(keys={"k0": OLD}, kid="k0").issue(TokenType.ACCESS, user_id="u", email="e@x.io").token
    rotated = service(keys={"k0": OLD, "k1": KEY}, kid="k1")
    assert rotated.verify(old, TokenType.ACCESS).user_id == "u"
    assert (
        jwt.get_unverified_header(rotated.issue(TokenType.ACCESS, user_id="u", email="e").token)["kid"]
        == "k1"
    )


async def test_revocation_through_auth_state() -> None:
    cache = create_cache("memory://")
    svc = TokenService({"k1": KEY}, "k1")
    state = AuthState(svc, RevocationList(cache))
    issued = svc.issue(TokenType.ACCESS, user_id="u", email="e@x.io")
    assert (await state.authenticate(f"Bearer {issued.token}")).user_id == "u"
    await state.revocations.revoke(issued.jti, issued.expires_at)
    assert await _code(state, f"Bearer {issued.token}") is ErrorCode.INVALID_TOKEN
    assert await _code(state, None) is ErrorCode.UNAUTHORIZED
    assert await _code(state, "Basic abc") is ErrorCode.UNAUTHORIZED
    assert await _code(state, "Bearer ") is ErrorCode.UNAUTHORIZED
    # A token already expired is not written (nothing to revoke), and does not raise.
    await state.revocations.revoke("gone", datetime.now(UTC) - timedelta(seconds=5))
    assert not await state.revocations.is_revoked("gone")


async def test_auth_state_remembers_a_token_but_not_past_its_expiry_nor_its_revocation() -> None:
    clock = Clock(1_000_000.0)
    svc = service(clock)
    state = AuthState(svc, RevocationList(create_cache("memory://")))
    issued = svc.issue(TokenType.ACCESS, user_id="u", email="e@x.io")
    header = f"Bearer {issued.token}"
    assert (await state.authenticate(header)).user_id == "u"
    assert (await state.authenticate(header)).user_id == "u"  # from the cache of verified tokens
    await state.revocations.disable_user("u")
    assert await _code(state, header) is ErrorCode.ACCOUNT_DISABLED
    await state.revocations.enable_user("u")
    assert await _code(state, header) is None
    clock.now = issued.expires_at.timestamp() + 1  # the token service's clock, the cache's too
    assert await _code(state, header) is ErrorCode.INVALID_TOKEN


async def _code(state: AuthState, header: str | None) -> ErrorCode | None:
    try:
        await state.authenticate(header)
    except AppError as exc:
        return exc.code
    return None


@pytest.fixture(params=["memory", "redis"])
async def revocations(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[RevocationList]:
    if request.param == "memory":
        yield RevocationList(create_cache("memory://", namespace))
        return
    cache = RedisCache(request.getfixturevalue("redis_url"), namespace)
    try:
        yield RevocationList(cache)
    finally:
        await cache.close()


async def test_refusals_of_many_tokens_answer_as_each_tokens_own_refusal(revocations: RevocationList) -> None:
    later = datetime.now(UTC) + timedelta(minutes=1)  # the revocations expire on their own
    await revocations.revoke("logged-out", later)
    await revocations.revoke("both", later)
    await revocations.disable_user("disabled")
    tokens = [
        ("fine", "u1"),
        ("logged-out", "u2"),
        ("fine-too", "disabled"),
        ("both", "disabled"),
        ("fine", "u1"),  # the same token twice (two sockets) gets the same answer twice
    ]
    expected = [None, ErrorCode.INVALID_TOKEN, ErrorCode.ACCOUNT_DISABLED, ErrorCode.ACCOUNT_DISABLED, None]
    assert await revocations.refusals(tokens) == expected
    assert [await revocations.refusal(jti, user) for jti, user in tokens] == expected
    assert await revocations.refusals([]) == []
    await revocations.enable_user("disabled")
    assert await revocations.refusals([("fine-too", "disabled")]) == [None]
