"""Administration (API.md "Roles and administration"): the user list, disabling and enabling users, and
keeping the disabled users' cache markers and the configured administrators in place.

Disabling is three steps, each safe to repeat: the user row (`disabled_at`) and the revocation of every
refresh token are committed; the user's marker goes into the shared cache, which makes every replica refuse
all their access tokens at once (ACCOUNT_DISABLED); then the bots service stops their bots (orders
cancelled), asked with the administrator's own token. When that last call fails the answer is 503 and the
user stays disabled: the administrator repeats the request, which redoes what is left.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.repository import RefreshTokenRepository, UserRepository, UserView
from common.db import unit_of_work
from common.dbtypes import utc_now
from common.errors import AppError, ErrorCode
from common.security import Principal, RevocationList

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Disabled:
    """The outcome of a disable: the user, and how many of their bots the bots service stopped."""

    user: UserView
    bots_stopped: int


class AdminService:
    """The administrators' use cases; each opens and commits its own transaction."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        revocations: RevocationList,
        bots: httpx.AsyncClient,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._sessions = sessions
        self._revocations = revocations
        self._bots = bots
        self._clock = clock

    async def users(self, limit: int, offset: int) -> tuple[list[UserView], int]:
        """A page of users, oldest first, and the total."""
        async with self._sessions() as session:
            return await UserRepository(session).page(limit, offset)

    async def disable(self, admin: Principal, authorization: str, user_id: uuid.UUID) -> Disabled:
        """Disable a user: tokens refused everywhere at once, refresh tokens revoked, bots stopped."""
        if str(user_id) == admin.user_id:
            raise AppError(ErrorCode.VALIDATION_ERROR, {"reason": "an administrator cannot disable themself"})
        async with unit_of_work(self._sessions) as session:
            users = UserRepository(session)
            user = await users.get(user_id, lock=True)
            if user is None:
                raise AppError(ErrorCode.USER_NOT_FOUND)
            now = self._clock()
            if user.disabled_at is None:
                user.disabled_at = now
            live = await RefreshTokenRepository(session).revoke_user(user_id, now)
            await session.flush()
            view = await users.view(user_id)
        assert view is not None
        await self._revocations.disable_user(str(user_id))
        # Revoked one by one as well: enabling the user again must not bring these tokens back.
        for access in live:
            await self._revocations.revoke(access.jti, access.expires_at)
        log.warning("user disabled by an administrator", extra={"user_id": str(user_id), "by": admin.user_id})
        stopped = await self._stop_bots(authorization, user_id)
        return Disabled(view, stopped)

    async def enable(self, user_id: uuid.UUID) -> UserView:
        """Enable a user again: they may sign in; tokens revoked while disabled stay revoked."""
        async with unit_of_work(self._sessions) as session:
            users = UserRepository(session)
            user = await users.get(user_id, lock=True)
            if user is None:
                raise AppError(ErrorCode.USER_NOT_FOUND)
            user.disabled_at = None
            await session.flush()
            view = await users.view(user_id)
        assert view is not None
        await self._revocations.enable_user(str(user_id))
        return view

    async def _stop_bots(self, authorization: str, user_id: uuid.UUID) -> int:
        """Ask the bots service to stop every bot of the user (waits for their orders to be cancelled)."""
        try:
            response = await self._bots.post(
                f"/internal/admin/users/{user_id}/stop-bots", headers={"authorization": authorization}
            )
        except httpx.HTTPError as exc:
            log.warning("stopping the bots of disabled user %s failed: %r", user_id, exc)
            raise AppError(ErrorCode.SERVICE_UNAVAILABLE, {"service": "bots"}) from exc
        if response.status_code != 200:
            log.warning(
                "stopping the bots of disabled user %s: bots answered %s", user_id, response.status_code
            )
            raise AppError(ErrorCode.SERVICE_UNAVAILABLE, {"service": "bots"})
        return int(response.json()["data"]["botsStopped"])


async def promote_admins(sessions: async_sessionmaker[AsyncSession], emails: list[str]) -> list[str]:
    """Make the users with these emails administrators (ADMIN_EMAILS, `make admin`); the ones changed."""
    async with unit_of_work(sessions) as session:
        changed = await UserRepository(session).promote(emails)
    for email in changed:
        log.warning("user %s is now an administrator", email)
    return changed


async def keep_disabled_marked(
    sessions: async_sessionmaker[AsyncSession], revocations: RevocationList, every_seconds: float
) -> None:
    """Write every disabled user's cache marker periodically (the lifespan did it once before serving): the
    cache may lose it (Redis keeps nothing on disk), the database is the record."""
    while True:
        await asyncio.sleep(every_seconds)
        await mark_disabled(sessions, revocations)


async def mark_disabled(sessions: async_sessionmaker[AsyncSession], revocations: RevocationList) -> None:
    """Write every disabled user's cache marker (and take back one whose user was enabled meanwhile)."""
    try:
        async with sessions() as session:
            disabled = await UserRepository(session).disabled_ids()
        for user_id in disabled:
            await revocations.disable_user(str(user_id))
        # Enabled meanwhile (its marker deleted before ours was written): take ours back. An enable
        # committed after this read deletes the marker itself, after our write.
        async with sessions() as session:
            still = set(await UserRepository(session).disabled_ids())
        for user_id in set(disabled) - still:
            await revocations.enable_user(str(user_id))
    except Exception as exc:  # the next round tries again
        log.warning("re-marking disabled users failed: %r", exc)
