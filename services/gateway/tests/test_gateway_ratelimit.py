"""Rate limits: per IP on the auth routes, per user elsewhere, shared by replicas through Redis."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from limits import parse
from limits.aio.storage import MemoryStorage

from common.cache import Cache, RedisCache
from common.errors import ErrorCode
from common.security import Principal, RevocationList, TokenType
from common.testing.infra import free_port
from gateway.checks import RequestChecks
from gateway.ratelimit import RateLimiter, Rule, Rules, create_rate_limiter
from gateway.testing import Tokens, Upstream, bearer, gateway, make_settings


def _limit_headers(response: httpx.Response) -> tuple[int, int, int]:
    return (
        int(response.headers["x-ratelimit-limit"]),
        int(response.headers["x-ratelimit-remaining"]),
        int(response.headers["x-ratelimit-reset"]),
    )


async def test_auth_routes_allow_five_per_minute_per_ip(
    auth_up: Upstream, redis_overrides: dict[str, Any]
) -> None:
    settings = make_settings(**redis_overrides)
    async with gateway(settings, {"auth": auth_up.transport()}) as client:
        answers = [await client.post("/api/auth/login", json={}) for _ in range(5)]
        # The three auth routes share the bucket: hopping to /register does not help.
        sixth = await client.post("/api/auth/register", json={})
    assert [r.status_code for r in answers] == [200] * 5
    assert [_limit_headers(r)[1] for r in answers] == [4, 3, 2, 1, 0]
    assert sixth.status_code == 429
    assert sixth.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    limit, remaining, reset = _limit_headers(sixth)
    assert (limit, remaining) == (5, 0)
    retry_after = int(sixth.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert abs(reset - (time.time() + retry_after)) <= 2
    assert len(auth_up.calls) == 5


async def test_default_limit_is_per_user(
    auth_up: Upstream, redis_overrides: dict[str, Any], tokens: Tokens
) -> None:
    settings = make_settings(**redis_overrides, rate_limit_default="3/minute")
    alice, bob = bearer(tokens.access("alice")), bearer(tokens.access("bob"))
    async with gateway(settings, {"auth": auth_up.transport()}) as client:
        alice_answers = [(await client.get("/api/auth/me", headers=alice)).status_code for _ in range(4)]
        # Same client IP, another user: a bucket of its own.
        bob_answer = await client.get("/api/auth/me", headers=bob)
    assert alice_answers == [200, 200, 200, 429]
    assert bob_answer.status_code == 200
    assert _limit_headers(bob_answer)[:2] == (3, 2)


async def test_anonymous_requests_count_per_ip(auth_up: Upstream, redis_overrides: dict[str, Any]) -> None:
    settings = make_settings(**redis_overrides, rate_limit_default="2/minute")
    async with gateway(settings, {"auth": auth_up.transport()}) as client:
        codes = [(await client.get("/api/auth/me")).status_code for _ in range(3)]
    # Refused for want of a token until the IP's budget is spent, then refused for the rate.
    assert codes == [401, 401, 429]


async def test_bot_creation_has_its_own_hourly_limit(
    bots_up: Upstream, redis_overrides: dict[str, Any], tokens: Tokens
) -> None:
    settings = make_settings(**redis_overrides, rate_limit_bot_create="2/hour")
    user = bearer(tokens.access("carol"))
    async with gateway(settings, {"bots": bots_up.transport()}) as client:
        creates = [await client.post("/api/bots", json={}, headers=user) for _ in range(3)]
        listing = await client.get("/api/bots", headers=user)
        other_user = await client.post("/api/bots", json={}, headers=bearer(tokens.access("dave")))
    assert [r.status_code for r in creates] == [200, 200, 429]
    assert 60 < int(creates[2].headers["retry-after"]) <= 3600
    # Listing is under the default limit, and another user has a budget of their own.
    assert listing.status_code == 200
    assert _limit_headers(listing)[:2] == (100, 99)
    assert other_user.status_code == 200


async def test_sending_exchange_keys_has_a_stricter_per_user_limit(
    redis_overrides: dict[str, Any], tokens: Tokens
) -> None:
    credentials_up = Upstream("credentials")
    settings = make_settings(**redis_overrides, services={"credentials": "http://credentials.internal"})
    erin, frank = bearer(tokens.access("erin")), bearer(tokens.access("frank"))
    validate = "/api/exchange/validate-credentials"
    async with gateway(settings, {"credentials": credentials_up.transport()}) as client:
        # Validating, storing and replacing keys share one bucket: hopping between them does not help.
        answers = [await client.post(validate, json={}, headers=erin) for _ in range(3)]
        answers.append(await client.post("/api/credentials", json={}, headers=erin))
        answers.append(await client.put("/api/credentials/binance", json={}, headers=erin))
        sixth = await client.post(validate, json={}, headers=erin)
        listing = await client.get("/api/credentials", headers=erin)
        other_user = await client.post(validate, json={}, headers=frank)
    assert [r.status_code for r in answers] == [200] * 5
    assert sixth.status_code == 429 and sixth.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert _limit_headers(sixth)[:2] == (5, 0)
    assert 1 <= int(sixth.headers["retry-after"]) <= 60
    assert len(credentials_up.calls) == 5 + 2  # the refused one never reached the service
    # Reading keys is under the default limit; another user has a bucket of their own.
    assert listing.status_code == 200 and _limit_headers(listing)[0] == 100
    assert other_user.status_code == 200


async def test_limits_are_shared_by_two_gateway_replicas(
    auth_up: Upstream, redis_overrides: dict[str, Any]
) -> None:
    settings = make_settings(**redis_overrides)
    transports = {"auth": auth_up.transport()}
    async with gateway(settings, transports) as a, gateway(settings, transports) as b:
        codes = [
            (await (a if i % 2 == 0 else b).post("/api/auth/login", json={})).status_code for i in range(6)
        ]
    assert codes == [200, 200, 200, 200, 200, 429]


async def test_forwarded_for_is_honoured_only_from_trusted_proxies(
    auth_up: Upstream, redis_overrides: dict[str, Any]
) -> None:
    settings = make_settings(**redis_overrides, trusted_proxies="10.0.0.0/8, 192.168.1.1")
    transports = {"auth": auth_up.transport()}
    spoofed = [{"X-Forwarded-For": f"198.51.100.{i}"} for i in range(6)]
    async with gateway(settings, transports, client_addr=("203.0.113.9", 1)) as direct:
        # An untrusted peer cannot rotate its identity through X-Forwarded-For.
        codes = [(await direct.post("/api/auth/login", json={}, headers=h)).status_code for h in spoofed]
    assert codes == [200] * 5 + [429]
    assert auth_up.calls[0]["headers"]["x-real-ip"] == "203.0.113.9"

    async with gateway(settings, transports, client_addr=("10.1.2.3", 1)) as proxy:
        # Behind a trusted proxy each client is its own: the right-most untrusted hop.
        chains = [{"X-Forwarded-For": f"198.51.100.{i}, 192.168.1.1"} for i in range(6)]
        codes = [(await proxy.post("/api/auth/login", json={}, headers=h)).status_code for h in chains]
        assert codes == [200] * 6
        same = {"X-Forwarded-For": "6.6.6.6, 198.51.100.77"}
        repeated = [
            (await proxy.post("/api/auth/login", json={}, headers=same)).status_code for _ in range(6)
        ]
    assert repeated == [200] * 5 + [429]
    assert auth_up.calls[-1]["headers"]["x-real-ip"] == "198.51.100.77"


async def test_limits_can_be_switched_off(auth_up: Upstream) -> None:
    settings = make_settings(rate_limit_enabled=False)
    async with gateway(settings, {"auth": auth_up.transport()}) as client:
        codes = [(await client.post("/api/auth/login", json={})).status_code for _ in range(8)]
    assert codes == [200] * 8
    assert len(auth_up.calls) == 8


async def test_memory_storage_counts_when_redis_url_is_memory(auth_up: Upstream) -> None:
    async with gateway(make_settings(redis_url="memory://"), {"auth": auth_up.transport()}) as c:
        codes = [(await c.post("/api/auth/refresh", json={})).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]


async def test_redis_down_fails_open_for_limits_and_closed_for_revocation(
    auth_up: Upstream, tokens: Tokens
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = make_settings(redis_url=dead, redis_timeout_seconds=0.3)
    async with gateway(settings, {"auth": auth_up.transport()}) as client:
        started = time.monotonic()
        login = await client.post("/api/auth/login", json={})
        me = await client.get("/api/auth/me", headers=bearer(tokens.access()))
        elapsed = time.monotonic() - started
    # A public route still works (no limit can be counted), without rate-limit headers.
    assert login.status_code == 200
    assert "x-ratelimit-limit" not in login.headers
    # A token whose revocation cannot be checked is not trusted.
    assert me.status_code == 503
    assert me.json()["error"] == {
        "code": "SERVICE_UNAVAILABLE",
        "message": "서비스를 일시적으로 사용할 수 없습니다",
        "details": {"service": "redis"},
    }
    assert elapsed < 3
    assert [c["path"] for c in auth_up.calls] == ["/api/auth/login"]


async def test_windows_reset_and_identities_are_spread() -> None:
    now = [1_000_000.0]
    limiter = RateLimiter(MemoryStorage(), clock=lambda: now[0])
    rule = Rule("t", parse("2/minute"))
    first = [await limiter.hit(rule, "ip:1") for _ in range(3)]
    assert [d.allowed for d in first if d] == [True, True, False]
    assert first[2] is not None
    now[0] = first[2].reset_at + 0.001
    again = await limiter.hit(rule, "ip:1")
    assert again is not None and again.allowed and again.remaining == 1
    resets = set()
    for i in range(20):
        decision = await limiter.hit(rule, f"ip:10.0.0.{i}")
        assert decision is not None
        resets.add(decision.reset_at)
    # Windows are offset per identity, so clients do not all come back in the same second.
    assert len(resets) > 1
    await limiter.close()


@pytest.mark.parametrize("bad", ["5 per fortnight", "lots"])
def test_malformed_limit_settings_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="rate_limit_auth"):
        make_settings(rate_limit_auth=bad)


async def test_pipelined_and_limits_paths_count_the_same_window(
    redis_url: str, namespace: str, redis_cache: Cache
) -> None:
    settings = make_settings(redis_url=redis_url, cache_namespace=namespace)
    assert isinstance(redis_cache, RedisCache)
    limiter = create_rate_limiter(settings, redis_cache.client)
    checks = RequestChecks(limiter, redis_cache, redis_cache.client, 1.0)
    rule = Rule("default", parse("10/minute"))
    zoe = Principal("zoe", "zoe@example.com", "some-jti", TokenType.ACCESS, datetime.now(UTC))
    piped, refusal = await checks.run(rule, "user:zoe", zoe)
    via_limits = await limiter.hit(rule, "user:zoe")
    # A script that Redis forgot (restart, SCRIPT FLUSH) is loaded again transparently.
    checks._sha = "0" * 40
    reloaded, _ = await checks.run(rule, "user:zoe", zoe)
    assert refusal is None
    assert piped is not None and via_limits is not None and reloaded is not None
    assert [piped.remaining, via_limits.remaining, reloaded.remaining] == [9, 8, 7]
    revocations = RevocationList(redis_cache)
    await revocations.revoke("some-jti", datetime.now(UTC) + timedelta(minutes=5))
    _, refusal_now = await checks.run(rule, "user:zoe", zoe)
    assert refusal_now is ErrorCode.INVALID_TOKEN
    # A disabled user's token is refused as such, whatever else holds; enabled again, only the logout counts.
    await revocations.disable_user("zoe")
    assert (await checks.run(rule, "user:zoe", zoe))[1] is ErrorCode.ACCOUNT_DISABLED
    await revocations.enable_user("zoe")
    assert (await checks.run(rule, "user:zoe", zoe))[1] is ErrorCode.INVALID_TOKEN


def test_signals_have_a_per_ip_bucket_of_their_own() -> None:
    # TradingView posts every user's alerts from a few addresses: not the default 100 a minute shared by all.
    rules = Rules(make_settings())
    rule = rules.rule_for("POST", "/api/signals/tradingview/abc")
    assert rule is rules.signals
    assert (rule.per_ip, rule.item.amount) == (True, 600)
    assert rules.rule_for("POST", "/api/bots/1/signal-token") is rules.default
