"""Rate limits shared by every gateway replica: clock-aligned fixed windows on a `limits` storage.

Why fixed windows: one atomic INCR (limits' incr-with-expiry script) per request decides the hit
AND gives the exact count, and as windows are aligned to the clock every replica computes the same
reset time without asking Redis. That is one command, sent in the same pipeline as the revocation
check (checks.py), against two or three for the moving / sliding-window strategies (hit, then
window stats for the X-RateLimit-* headers). The price is the known boundary burst: up to twice the limit inside a short
span straddling a window edge (10 logins in two seconds around a minute mark, then none for a
minute), never more than the limit per window. Each identity's windows are shifted by a stable
per-identity offset, so that clients do not all reset (and retry) at the same second.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from redis.asyncio import Redis

from gateway.settings import Settings

log = logging.getLogger(__name__)

AUTH_PATHS = frozenset({"/api/auth/register", "/api/auth/login", "/api/auth/refresh"})
BOTS_PATH = "/api/bots"
# Each of these makes the server call an exchange with keys from the request body (weight 20 per Binance
# /account): a stricter per-user bucket so that no user can spend the server's shared exchange budget.
VALIDATE_PATH = "/api/exchange/validate-credentials"
CREDENTIALS_PATH = "/api/credentials"
# TradingView posts every user's signals from a few shared addresses: a per-IP bucket of their own.
SIGNALS_PATH = "/api/signals/"
_WARN_EVERY_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Rule:
    """One limit: its bucket name, its rate, and whether it counts per client IP even for users."""

    name: str
    item: RateLimitItem
    per_ip: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one hit, with what the X-RateLimit-* headers say."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: int
    retry_after: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        """X-RateLimit-Limit/Remaining/Reset (epoch seconds); Retry-After (seconds) when refused."""
        raw = [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset_at).encode()),
        ]
        if not self.allowed:
            raw.append((b"retry-after", str(self.retry_after).encode()))
        return raw


class Rules:
    """Which limit applies to a request: exactly one rule per request, the most specific."""

    def __init__(self, settings: Settings) -> None:
        self.auth = Rule("auth", parse(settings.rate_limit_auth), per_ip=True)
        self.bot_create = Rule("bot-create", parse(settings.rate_limit_bot_create))
        self.default = Rule("default", parse(settings.rate_limit_default))
        self.exchange_keys = Rule("exchange-keys", parse(settings.rate_limit_exchange_keys))
        self.signals = Rule("signals", parse(settings.rate_limit_signals), per_ip=True)

    def rule_for(self, method: str, path: str) -> Rule:
        """The rule of a request: the three auth routes share one per-IP bucket (no hopping).

        Validating, storing and replacing exchange keys share one per-user bucket the same way.
        """
        if method == "POST":
            if path in AUTH_PATHS:
                return self.auth
            if path == BOTS_PATH:
                return self.bot_create
            if path.rstrip("/") in (VALIDATE_PATH, CREDENTIALS_PATH):
                return self.exchange_keys
            if path.startswith(SIGNALS_PATH):
                return self.signals
        if method == "PUT" and path.startswith(CREDENTIALS_PATH + "/"):
            return self.exchange_keys
        return self.default


@dataclass(frozen=True, slots=True)
class Window:
    """Where one hit is counted: the storage key of the identity's current window, and its end."""

    key: str
    ttl: int
    reset_at: int
    retry_after: int


class RateLimiter:
    """Counts hits in a `limits` storage (Redis shared by replicas, or memory in one process)."""

    def __init__(
        self, storage: Storage, *, key_prefix: str = "", clock: Callable[[], float] = time.time
    ) -> None:
        self.storage = storage
        self.key_prefix = key_prefix
        self._clock = clock
        self._last_warning = 0.0

    def window(self, rule: Rule, identity: str) -> Window:
        """The current window of `identity` under `rule` (clock-aligned, shifted per identity)."""
        item = rule.item
        expiry = item.get_expiry()
        now = self._clock()
        offset = zlib.crc32(identity.encode()) % expiry
        index = int((now + offset) // expiry)
        reset_at = (index + 1) * expiry - offset
        left = math.ceil(reset_at - now)
        # The key lives until its window ends (plus a second), whichever replica created it.
        return Window(item.key_for(rule.name, identity, index), left + 1, reset_at, max(1, left))

    def storage_key(self, window: Window) -> str:
        """The key as the Redis storage of `limits` writes it (its prefix, a colon, the key)."""
        return f"{self.key_prefix}:{window.key}"

    @staticmethod
    def decide(rule: Rule, window: Window, count: int) -> Decision:
        """The decision once the window's count (this hit included) is known."""
        amount = rule.item.amount
        return Decision(
            allowed=count <= amount,
            limit=amount,
            remaining=max(0, amount - count),
            reset_at=window.reset_at,
            retry_after=window.retry_after,
        )

    async def hit(self, rule: Rule, identity: str) -> Decision | None:
        """Count one request of `identity` under `rule`; None when the storage failed (open)."""
        window = self.window(rule, identity)
        try:
            count = await self.storage.incr(window.key, window.ttl)
        except Exception as exc:  # fail open: a Redis outage must not take the API down with it
            self.warn(exc)
            return None
        return self.decide(rule, window, count)

    def warn(self, exc: BaseException) -> None:
        """Log a storage failure, at most once per few seconds."""
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_SECONDS:
            self._last_warning = now
            log.warning("rate limit storage unavailable, letting requests through: %r", exc)

    async def close(self) -> None:
        """Stop the memory storage's expiry task (a Redis pool belongs to the cache)."""
        if isinstance(self.storage, MemoryStorage):
            await self.storage.reset()


def create_rate_limiter(settings: Settings, redis: Redis | None) -> RateLimiter:
    """On Redis (the cache's pool, keys `<namespace>:ratelimit:...`), or in memory without one."""
    if redis is None:
        return RateLimiter(MemoryStorage())
    prefix = f"{settings.cache_namespace}:ratelimit"
    storage = RedisStorage(
        "async+" + settings.redis_url.get_secret_value(),
        implementation="redispy",
        key_prefix=prefix,
        connection_pool=redis.connection_pool,  # type: ignore[arg-type]
    )
    return RateLimiter(storage, key_prefix=prefix)
