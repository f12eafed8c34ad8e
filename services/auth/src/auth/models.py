"""Tables of the `auth` schema: users and the refresh tokens issued to them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from common.db import make_base
from common.dbtypes import UtcDateTime, utc_now

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


class User(Base):
    """A registered user; the email is stored normalised (lower case) and unique."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('user', 'admin')", name="role"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(EMAIL_LENGTH), unique=True)
    password_hash: Mapped[str] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    # "user" or "admin" (API.md "Roles and administration"); carried in the access token's `role` claim.
    role: Mapped[str] = mapped_column(String(8), default="user")
    # Set by an administrator: every token refused (ACCOUNT_DISABLED), login and refresh too, bots stopped.
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
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
