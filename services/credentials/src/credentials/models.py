"""Tables of the `credentials` schema: the encrypted credentials and the outbox of their events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from common.db import make_base
from common.dbtypes import UtcDateTime, utc_now
from common.outbox import outbox_table

SCHEMA = "credentials"

if TYPE_CHECKING:
    # mypy cannot subclass a base returned by a function; it only needs to see a DeclarativeBase.
    from sqlalchemy.orm import DeclarativeBase

    class Base(DeclarativeBase):
        """The credentials schema's declarative base (built by make_base at runtime)."""

else:
    Base = make_base(SCHEMA)

USER_ID_LENGTH = 64
EXCHANGE_LENGTH = 16
IP_WHITELIST_LENGTH = 1000

__all__ = ["OUTBOX", "SCHEMA", "Base", "Credential", "UtcDateTime", "utc_now"]


class Credential(Base):
    """One user's API keys for one exchange; the key and secret are sealed tokens (common.crypto)."""

    __tablename__ = "credentials"
    __table_args__ = (
        UniqueConstraint("user_id", "exchange", name="uq_credentials_user_id_exchange"),
        # Rotation selects the rows not yet under the current key version.
        Index("ix_credentials_key_version", "key_version"),
        # Re-validation selects the rows validated longest ago.
        Index("ix_credentials_last_validated_at", "last_validated_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH))
    exchange: Mapped[str] = mapped_column(String(EXCHANGE_LENGTH))
    # `v<version>.<nonce>.<ciphertext>`, AAD = (purpose, user_id, exchange, field): see credentials.vault.
    api_key: Mapped[str] = mapped_column(Text)
    secret_key: Mapped[str] = mapped_column(Text)
    # The version both tokens are sealed under, as a column so that rotation can find rows by it.
    key_version: Mapped[int] = mapped_column(Integer)
    # The last 4 characters of the API key, so every read can mask it without decrypting anything.
    key_last4: Mapped[str] = mapped_column(String(4))
    ip_whitelist: Mapped[str | None] = mapped_column(String(IP_WHITELIST_LENGTH), nullable=True)
    is_valid: Mapped[bool] = mapped_column(Boolean, default=True)
    last_validated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


# On SQLite (embedded mode) every service shares one namespace: the table name carries the service's.
OUTBOX = outbox_table(Base.metadata, "credentials_outbox")
