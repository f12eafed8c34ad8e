"""Queries of the auth schema. Repositories flush, never commit: the unit of work does."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, update
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
    role: str = "user"
    disabled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LiveAccess:
    """An access token issued with a refresh token, to put on the revocation list."""

    jti: str
    expires_at: datetime


class UserRepository:
    """Users."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, email: str, password_hash: str, name: str | None, role: str = "user") -> User:
        """Insert a user; EmailTakenError when the email exists (also under a concurrent insert)."""
        user = User(id=uuid.uuid4(), email=email, password_hash=password_hash, name=name, role=role)
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
        result = await self._session.execute(select(*_VIEW).where(User.id == user_id))
        row = result.one_or_none()
        return None if row is None else UserView(*row)

    async def page(self, limit: int, offset: int) -> tuple[list[UserView], int]:
        """Users, oldest first, and how many there are."""
        total = int(await self._session.scalar(select(func.count()).select_from(User)) or 0)
        rows = await self._session.execute(
            select(*_VIEW).order_by(User.created_at, User.id).limit(limit).offset(offset)
        )
        return [UserView(*row) for row in rows], total

    async def get(self, user_id: uuid.UUID, *, lock: bool = False) -> User | None:
        """A user row (locked for the transaction when asked)."""
        return await self._session.get(User, user_id, with_for_update=lock)

    async def promote(self, emails: list[str]) -> list[str]:
        """Make these users administrators; the emails that were changed."""
        if not emails:
            return []
        result = await self._session.execute(
            update(User)
            .where(User.email.in_(emails), User.role != "admin")
            .values(role="admin")
            .returning(User.email)
            .execution_options(synchronize_session=False)
        )
        return list(result.scalars())

    async def disabled_ids(self) -> list[uuid.UUID]:
        """Every disabled user."""
        return list(
            (await self._session.execute(select(User.id).where(User.disabled_at.is_not(None)))).scalars()
        )


_VIEW = (User.id, User.email, User.name, User.created_at, User.role, User.disabled_at)


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

    async def replace_claim(self, jti: str, replaced_by: str) -> None:
        """Point a token this transaction claimed at the pair finally issued in its place."""
        await self._session.execute(
            update(RefreshToken)
            .where(RefreshToken.jti == jti)
            .values(replaced_by=replaced_by)
            .execution_options(synchronize_session=False)
        )

    async def get(self, jti: str) -> RefreshToken | None:
        """A refresh token row by its jti."""
        return await self._session.get(RefreshToken, jti)

    async def revoke_user(self, user_id: uuid.UUID, now: datetime) -> list[LiveAccess]:
        """Revoke every refresh token of a user; return the live access tokens issued with them."""
        return await self._revoke(RefreshToken.user_id == user_id, now)

    async def revoke_family(self, family_id: str, now: datetime) -> list[LiveAccess]:
        """Revoke a family's refresh tokens; return the live access tokens issued with them."""
        return await self._revoke(RefreshToken.family_id == family_id, now)

    async def _revoke(self, which: ColumnElement[bool], now: datetime) -> list[LiveAccess]:
        await self._session.execute(
            update(RefreshToken)
            .where(which, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        result = await self._session.execute(
            select(RefreshToken.access_jti, RefreshToken.access_expires_at).where(
                which, RefreshToken.access_expires_at > now
            )
        )
        return [LiveAccess(jti=r.access_jti, expires_at=r.access_expires_at) for r in result]
