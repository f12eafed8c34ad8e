"""Revoked access tokens, shared by every replica through the cache until the token would expire."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from common.cache import Cache

_PREFIX = "revoked:"


class RevocationList:
    """A jti is revoked by writing it with a TTL equal to the token's remaining life."""

    def __init__(self, cache: Cache, clock: Callable[[], float] = time.time) -> None:
        self._cache = cache
        self._clock = clock

    def key(self, jti: str) -> str:
        """The full cache key of a revoked jti (for callers that batch their own reads)."""
        return self._cache.full_key(_PREFIX + jti)

    async def revoke(self, jti: str, expires_at: datetime) -> None:
        """Revoke a token on every replica at once."""
        remaining = expires_at.timestamp() - self._clock()
        if remaining > 0:
            await self._cache.set(_PREFIX + jti, "1", ttl_seconds=remaining + 1)

    async def is_revoked(self, jti: str) -> bool:
        """True when the token was revoked by a logout."""
        return await self._cache.exists(_PREFIX + jti)
