"""Initial notifier schema: settings, channels, deliveries, inbox and profit targets hit.

Revision ID: 0001_initial
Revises:
Create Date: 2026-12-03 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from common.dbtypes import Money, UtcDateTime

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifier"


def upgrade() -> None:
    """Create the notifier tables."""
    op.create_table(
        "notifier_settings",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("profit_target_percent", Money(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_notifier_settings"),
        schema=SCHEMA,
    )
    op.create_table(
        "notifier_channels",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notifier_channels"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_notifier_channels_user_id", "notifier_channels", ["user_id", "position"], schema=SCHEMA
    )
    op.create_table(
        "notifier_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("channel_type", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("delivered_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notifier_deliveries"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_notifier_deliveries_user_id_created_at",
        "notifier_deliveries",
        ["user_id", "created_at"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_notifier_deliveries_due", "notifier_deliveries", ["status", "next_attempt_at"], schema=SCHEMA
    )
    op.create_table(
        "notifier_inbox",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("processed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id", name="pk_notifier_inbox"),
        schema=SCHEMA,
    )
    op.create_table(
        "notifier_profit_targets",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("bot_id", sa.String(length=64), nullable=False),
        sa.Column("reached_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "bot_id", name="pk_notifier_profit_targets"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    """Drop the notifier tables."""
    op.drop_table("notifier_profit_targets", schema=SCHEMA)
    op.drop_table("notifier_inbox", schema=SCHEMA)
    op.drop_index("ix_notifier_deliveries_due", table_name="notifier_deliveries", schema=SCHEMA)
    op.drop_index(
        "ix_notifier_deliveries_user_id_created_at", table_name="notifier_deliveries", schema=SCHEMA
    )
    op.drop_table("notifier_deliveries", schema=SCHEMA)
    op.drop_index("ix_notifier_channels_user_id", table_name="notifier_channels", schema=SCHEMA)
    op.drop_table("notifier_channels", schema=SCHEMA)
    op.drop_table("notifier_settings", schema=SCHEMA)
