"""Queries of the auth schema. Repositories flush, never commit: the unit of work does."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import RefreshToken, User


class EmailTakenError(Exception):
    """The email is already registered (the unique index said so)."""


@dataclass(frozen=True, slots=True)
class UserView:
    """The public facts of a user, as GET /auth/me shows them."""

    id: uuid.UUID
    email: str
    name: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LiveAccess:
    """An access token issued with a refresh token, to put on the revocation list."""

    jti: str
    expires_at: datetime


class UserRepository:
    """Users."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, email: str, password_hash: str, name: str | None) -> User:
        """Insert a user; EmailTakenError when the email exists (also under a concurrent insert)."""
        user = User(id=uuid.uuid4(), email=email, password_hash=password_hash, name=name)
        self._session.add(user)
        try:
            await self._session.flush()
        except IntegrityError as exc:
            # The id is a fresh uuid4, so the only constraint this insert can break is the email's.
            raise EmailTakenError from exc
        return user

    async def by_email(self, email: str) -> User | None:
        """The user with this (normalised) email."""
        result = await self._session.execute(select(User).where(User.email == email))
        return result.scalar_one_or_none()

    async def view(self, user_id: uuid.UUID) -> UserView | None:
        """One primary-key lookup of the public columns (no password hash)."""
        result = await self._session.execute(
            select(User.id, User.email, User.name, User.created_at).where(User.id == user_id)
        )
        row = result.one_or_none()
        if row is None:
            return None
        return UserView(id=row.id, email=row.email, name=row.name, created_at=row.created_at)


class RefreshTokenRepository:
    """Refresh tokens: issue, rotate, revoke by family."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, row: RefreshToken) -> None:
        """Persist a freshly issued refresh token."""
        self._session.add(row)
        await self._session.flush()

    async def claim_for_rotation(self, jti: str, user_id: uuid.UUID, replaced_by: str, now: datetime) -> bool:
        """Mark a live token as replaced; True for exactly one caller however many race for it.

        A single conditional UPDATE: the database serialises concurrent ones on the row lock, and
        the loser re-checks the condition after the winner commits, so it matches nothing.
        """
        result = await self._session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.jti == jti,
                RefreshToken.user_id == user_id,
                RefreshToken.replaced_by.is_(None),
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > now,
            )
            .values(replaced_by=replaced_by)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def get(self, jti: str) -> RefreshToken | None:
        """A refresh token row by its jti."""
        return await self._session.get(RefreshToken, jti)

    async def revoke_family(self, family_id: str, now: datetime) -> list[LiveAccess]:
        """Revoke a family's refresh tokens; return the live access tokens issued with them."""
        await self._session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        result = await self._session.execute(
            select(RefreshToken.access_jti, RefreshToken.access_expires_at).where(
                RefreshToken.family_id == family_id, RefreshToken.access_expires_at > now
            )
        )
        return [LiveAccess(jti=r.access_jti, expires_at=r.access_expires_at) for r in result]
