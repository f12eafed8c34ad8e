"""Tables of the `auth` schema: users and the refresh tokens issued to them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime, ForeignKey, Index, String, Uuid
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from common.db import make_base

SCHEMA = "auth"

if TYPE_CHECKING:
    # mypy cannot subclass a base returned by a function; it only needs to see a DeclarativeBase.
    from sqlalchemy.orm import DeclarativeBase

    class Base(DeclarativeBase):
        """The auth schema's declarative base (built by make_base at runtime)."""

else:
    Base = make_base(SCHEMA)

# A uuid4().hex from TokenService; room to spare should the format change.
JTI_LENGTH = 64
EMAIL_LENGTH = 320
NAME_LENGTH = 100


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """`DateTime(timezone=True)` that always hands back aware UTC datetimes.

    SQLite stores no offset and returns naive values; PostgreSQL returns aware ones. Normalising
    here means no naive datetime ever reaches `.timestamp()` (which reads it as local time).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store UTC (SQLite drops the offset, so it must already be UTC)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return aware UTC."""
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class User(Base):
    """A registered user; the email is stored normalised (lower case) and unique."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(EMAIL_LENGTH), unique=True)
    password_hash: Mapped[str] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, onupdate=utc_now)


class RefreshToken(Base):
    """One issued refresh token; its row is the truth about rotation and revocation."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        # Family revocation (reuse detection, logout) selects and updates by family.
        Index("ix_refresh_tokens_family_id", "family_id"),
        # Deleting a user cascades here; without an index that is a scan per user.
        Index("ix_refresh_tokens_user_id", "user_id"),
    )

    jti: Mapped[str] = mapped_column(String(JTI_LENGTH), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    family_id: Mapped[str] = mapped_column(String(JTI_LENGTH))
    parent_jti: Mapped[str | None] = mapped_column(String(JTI_LENGTH), nullable=True)
    # The access token issued together with this refresh token: revoked with the family.
    access_jti: Mapped[str] = mapped_column(String(JTI_LENGTH))
    access_expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    replaced_by: Mapped[str | None] = mapped_column(String(JTI_LENGTH), nullable=True)
