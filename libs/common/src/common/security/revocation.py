"""Revoked access tokens and disabled users, shared by every replica through the cache.

A logout revokes one token: its jti is written with a TTL equal to the token's remaining life. An
administrator disabling a user revokes every token of theirs at once: the user's key is written without
expiry until they are enabled again (the auth service's `users.disabled_at` is the durable record and puts
the key back at start-up should the cache have lost it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime

from common.cache import Cache
from common.errors import ErrorCode

_PREFIX = "revoked:"
_USER_PREFIX = "disabled-user:"


class RevocationList:
    """Revoked jtis (with a TTL) and disabled users (until enabled)."""

    def __init__(self, cache: Cache, clock: Callable[[], float] = time.time) -> None:
        self._cache = cache
        self._clock = clock

    def key(self, jti: str) -> str:
        """The full cache key of a revoked jti (for callers that batch their own reads)."""
        return self._cache.full_key(_PREFIX + jti)

    def user_key(self, user_id: str) -> str:
        """The full cache key of a disabled user (for callers that batch their own reads)."""
        return self._cache.full_key(_USER_PREFIX + user_id)

    async def revoke(self, jti: str, expires_at: datetime) -> None:
        """Revoke a token on every replica at once."""
        remaining = expires_at.timestamp() - self._clock()
        if remaining > 0:
            await self._cache.set(_PREFIX + jti, "1", ttl_seconds=remaining + 1)

    async def is_revoked(self, jti: str) -> bool:
        """True when the token was revoked by a logout."""
        return await self._cache.exists(_PREFIX + jti)

    async def disable_user(self, user_id: str) -> None:
        """Refuse every token of the user on every replica at once, until `enable_user`."""
        await self._cache.set(_USER_PREFIX + user_id, "1")

    async def enable_user(self, user_id: str) -> None:
        """Accept the user's tokens again (those not revoked otherwise)."""
        await self._cache.delete(_USER_PREFIX + user_id)

    async def is_disabled(self, user_id: str) -> bool:
        """True while an administrator has the user disabled (a caller acting for them without a token)."""
        return await self._cache.exists(_USER_PREFIX + user_id)

    async def refusal(self, jti: str, user_id: str) -> ErrorCode | None:
        """Why a verified token is refused now (INVALID_TOKEN: logged out; ACCOUNT_DISABLED), or None."""
        return (await self.refusals([(jti, user_id)]))[0]

    async def refusals(self, tokens: Sequence[tuple[str, str]]) -> list[ErrorCode | None]:
        """`refusal` of each (jti, user id), all read in one round trip."""
        keys = [key for jti, user_id in tokens for key in (_PREFIX + jti, _USER_PREFIX + user_id)]
        found = await self._cache.exists_each(*keys)
        return [
            refusal_of(revoked=revoked, disabled=disabled)
            for revoked, disabled in zip(found[::2], found[1::2], strict=True)
        ]


def refusal_of(*, revoked: bool, disabled: bool) -> ErrorCode | None:
    """The error a token gets for these facts: a disabled account first (the user must know why)."""
    if disabled:
        return ErrorCode.ACCOUNT_DISABLED
    return ErrorCode.INVALID_TOKEN if revoked else None
