"""Tables of the `notifier` schema: each user's settings and channels, deliveries, the inbox, profit targets hit.

Table names carry the service's name: on SQLite (embedded mode) every service's tables share one namespace.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Index, Integer, PrimaryKeyConstraint, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from common.db import make_base
from common.dbtypes import Money, UtcDateTime, utc_now

SCHEMA = "notifier"

if TYPE_CHECKING:
    from sqlalchemy.orm import DeclarativeBase

    class Base(DeclarativeBase):
        """The notifier schema's declarative base (built by make_base at runtime)."""

else:
    Base = make_base(SCHEMA)

__all__ = [
    "SCHEMA",
    "Base",
    "Channel",
    "Delivery",
    "DeliveryStatus",
    "InboxMessage",
    "NotificationSettings",
    "ProfitTargetHit",
]


class DeliveryStatus(StrEnum):
    """Where a delivery is: waiting to be (re)sent, acknowledged, refused for good, or out of attempts."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"


class NotificationSettings(Base):
    """A user's event choices and profit target (their channels are rows of `Channel`)."""

    __tablename__ = "notifier_settings"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    events: Mapped[list[str]] = mapped_column(JSON)
    profit_target_percent: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class Channel(Base):
    """One place a user's notifications go: its kind, its public fields, and its secret sealed (or none)."""

    __tablename__ = "notifier_channels"
    __table_args__ = (Index("ix_notifier_channels_user_id", "user_id", "position"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    position: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(16))
    # What reads show (a webhook's URL, a Telegram chat id): never a secret.
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The secret (webhook secret, bot token, a Slack/Discord hook URL) as a common.crypto token, AAD-bound
    # to the user, this channel and the field.
    secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class Delivery(Base):
    """One notification to one channel; its id is the `X-Gridbot-Delivery` of every attempt."""

    __tablename__ = "notifier_deliveries"
    __table_args__ = (
        Index("ix_notifier_deliveries_user_id_created_at", "user_id", "created_at"),
        Index("ix_notifier_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # No foreign key: a delivery outlives the channel it was for (its channel type stays readable).
    channel_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    channel_type: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(32))
    # The notification as the webhook body carries it (decimals as exact text, as on the bus).
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # When a pending delivery is due; while an attempt runs, the end of its claim (a process that died
    # mid-attempt leaves it to be tried again then, under the same id).
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class InboxMessage(Base):
    """A consumed message id: written in the handler's transaction, so a redelivery changes nothing."""

    __tablename__ = "notifier_inbox"
    __table_args__ = (PrimaryKeyConstraint("consumer", "message_id", name="pk_notifier_inbox"),)

    consumer: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(String(255))
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class ProfitTargetHit(Base):
    """A bot whose user was told it reached their profit target (once per bot; cleared when the target changes)."""

    __tablename__ = "notifier_profit_targets"
    __table_args__ = (PrimaryKeyConstraint("user_id", "bot_id", name="pk_notifier_profit_targets"),)

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    bot_id: Mapped[str] = mapped_column(String(64))
    reached_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
