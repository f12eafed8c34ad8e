"""Auth use cases: register, login, refresh (rotation, reuse detection), logout, me."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import RefreshToken, User
from auth.passwords import PasswordHasher
from auth.repository import EmailTakenError, RefreshTokenRepository, UserRepository, UserView
from common.dbtypes import utc_now
from common.errors import AppError, ErrorCode
from common.security import (
    ADMIN_ROLE,
    USER_ROLE,
    IssuedToken,
    Principal,
    RevocationList,
    TokenService,
    TokenType,
)

log = logging.getLogger(__name__)


class CommittedAppError(AppError):
    """An error whose database changes must still be committed (the revocation a reuse triggers).

    The request's unit of work rolls back on every other error; this one it commits first.
    """


@dataclass(frozen=True, slots=True)
class TokenPair:
    """An access token and the refresh token issued with it."""

    access: IssuedToken
    refresh: IssuedToken


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in user and their fresh tokens."""

    user: User
    tokens: TokenPair


class AuthService:
    """The auth use cases; each works inside the caller's session and never commits."""

    def __init__(
        self,
        tokens: TokenService,
        revocations: RevocationList,
        hasher: PasswordHasher,
        clock: Callable[[], datetime] = utc_now,
        admin_emails: frozenset[str] = frozenset(),
    ) -> None:
        self._tokens = tokens
        self._revocations = revocations
        self._hasher = hasher
        self._clock = clock
        self._admin_emails = admin_emails

    async def register(self, db: AsyncSession, email: str, password: str, name: str | None) -> Session:
        """Create a user and sign them in; EMAIL_ALREADY_EXISTS when the email is taken."""
        # Hash before touching the database, so no pooled connection idles through bcrypt.
        password_hash = await self._hasher.hash(password)
        try:
            role = ADMIN_ROLE if email in self._admin_emails else USER_ROLE
            user = await UserRepository(db).add(email, password_hash, name, role)
        except EmailTakenError:
            raise AppError(ErrorCode.EMAIL_ALREADY_EXISTS) from None
        tokens = await self._start_family(db, user)
        log.info("user registered", extra={"user_id": str(user.id)})
        return Session(user, tokens)

    async def login(self, db: AsyncSession, email: str, password: str) -> Session:
        """Check the password; INVALID_LOGIN for an unknown email or a wrong password alike."""
        user = await UserRepository(db).by_email(email)
        # Always one bcrypt check, against a dummy hash when the user is unknown: equal timing.
        valid = await self._hasher.verify(password, user.password_hash if user else None)
        if user is None or not valid:
            raise AppError(ErrorCode.INVALID_LOGIN)
        if user.disabled_at is not None:
            raise AppError(ErrorCode.ACCOUNT_DISABLED)  # told only to whoever knows the password
        return Session(user, await self._start_family(db, user))

    async def refresh(self, db: AsyncSession, refresh_token: str) -> TokenPair:
        """Rotate a refresh token; a second use revokes its whole family (CommittedAppError)."""
        claims = self._tokens.verify(refresh_token, TokenType.REFRESH)
        user_id = _user_uuid(claims)
        if claims.family is None:
            raise AppError(ErrorCode.INVALID_TOKEN)
        repo = RefreshTokenRepository(db)
        now = self._clock()
        pair = self._issue_pair(str(user_id), claims.email, claims.family, USER_ROLE)
        # The conditional UPDATE is the transaction's first statement (SQLite: it takes the write
        # lock straight away, so no read snapshot can go stale under a concurrent rotation).
        if await repo.claim_for_rotation(claims.jti, user_id, pair.refresh.jti, now):
            user = await UserRepository(db).get(user_id)
            if user is not None and user.disabled_at is not None:
                raise AppError(ErrorCode.ACCOUNT_DISABLED)  # the claim rolls back with the request
            if user is not None and user.role != USER_ROLE:
                # The role as it is now: a promotion (or demotion) reaches the tokens at the next refresh.
                pair = self._issue_pair(str(user_id), claims.email, claims.family, user.role)
                await repo.replace_claim(claims.jti, pair.refresh.jti)
            await repo.add(self._row(user_id, claims.family, pair, parent=claims.jti, now=now))
            return pair
        row = await repo.get(claims.jti)
        if row is None or row.user_id != user_id or row.family_id != claims.family:
            # Signed by us but never recorded (or its user is gone): nothing to revoke.
            raise AppError(ErrorCode.INVALID_TOKEN)
        if row.replaced_by is None and row.revoked_at is None:
            # Alive but past its recorded expiry: just expired.
            raise AppError(ErrorCode.INVALID_TOKEN)
        log.warning(
            "refresh token reuse detected; revoking its family",
            extra={"user_id": str(user_id), "family_id": claims.family},
        )
        await self._revoke_family(repo, claims.family, now)
        raise CommittedAppError(ErrorCode.INVALID_TOKEN)

    async def logout(self, db: AsyncSession, principal: Principal, refresh_token: str | None) -> None:
        """Revoke the access token now; with a refresh token of the same user, its family too."""
        family: str | None = None
        if refresh_token is not None:
            claims = self._tokens.verify(refresh_token, TokenType.REFRESH)
            row = await RefreshTokenRepository(db).get(claims.jti)
            if (
                claims.user_id != principal.user_id
                or row is None
                or str(row.user_id) != principal.user_id
                or row.family_id != claims.family
            ):
                raise AppError(ErrorCode.INVALID_TOKEN)
            family = row.family_id
        # Validation is done: from here on everything is revoked, nothing before.
        if family is not None:
            await self._revoke_family(RefreshTokenRepository(db), family, self._clock())
        await self._revocations.revoke(principal.jti, principal.expires_at)

    async def me(self, db: AsyncSession, principal: Principal) -> UserView:
        """The signed-in user's profile; USER_NOT_FOUND when the account is gone."""
        view = await UserRepository(db).view(_user_uuid(principal, ErrorCode.USER_NOT_FOUND))
        if view is None:
            raise AppError(ErrorCode.USER_NOT_FOUND)
        return view

    async def _start_family(self, db: AsyncSession, user: User) -> TokenPair:
        family = uuid.uuid4().hex
        pair = self._issue_pair(str(user.id), user.email, family, user.role)
        row = self._row(user.id, family, pair, parent=None, now=self._clock())
        await RefreshTokenRepository(db).add(row)
        return pair

    def _issue_pair(self, user_id: str, email: str, family: str, role: str) -> TokenPair:
        access = self._tokens.issue(TokenType.ACCESS, user_id=user_id, email=email, role=role)
        refresh = self._tokens.issue(TokenType.REFRESH, user_id=user_id, email=email, family=family)
        return TokenPair(access, refresh)

    @staticmethod
    def _row(
        user_id: uuid.UUID, family: str, pair: TokenPair, *, parent: str | None, now: datetime
    ) -> RefreshToken:
        return RefreshToken(
            jti=pair.refresh.jti,
            user_id=user_id,
            family_id=family,
            parent_jti=parent,
            access_jti=pair.access.jti,
            access_expires_at=pair.access.expires_at,
            expires_at=pair.refresh.expires_at,
            created_at=now,
        )

    async def _revoke_family(self, repo: RefreshTokenRepository, family: str, now: datetime) -> None:
        for access in await repo.revoke_family(family, now):
            await self._revocations.revoke(access.jti, access.expires_at)


def _user_uuid(claims: Principal, code: ErrorCode = ErrorCode.INVALID_TOKEN) -> uuid.UUID:
    try:
        return uuid.UUID(claims.user_id)
    except ValueError:
        raise AppError(code) from None
