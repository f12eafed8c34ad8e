"""TradingView signals: one hashed token per bot (`bot_signal_tokens`) and every signal received (`bot_signals`).

Revision ID: 0005_signals
Revises: 0004_grid_options
Create Date: 2026-12-03 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from common.dbtypes import UtcDateTime

revision: str = "0005_signals"
down_revision: str | None = "0004_grid_options"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create bot_signal_tokens and bot_signals (new tables: nothing existing is rewritten)."""
    op.create_table(
        "bot_signal_tokens",
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bots.bots.id"], name=op.f("fk_bot_signal_tokens_bot_id_bots"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("bot_id", name=op.f("pk_bot_signal_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_bot_signal_tokens_token_hash")),
        schema="bots",
    )
    op.create_table(
        "bot_signals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=True),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bots.bots.id"], name=op.f("fk_bot_signals_bot_id_bots"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_signals")),
        schema="bots",
    )
    op.create_index(
        "ix_bot_signals_bot_id_received_at", "bot_signals", ["bot_id", "received_at"], schema="bots"
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_index("ix_bot_signals_bot_id_received_at", table_name="bot_signals", schema="bots")
    op.drop_table("bot_signals", schema="bots")
    op.drop_table("bot_signal_tokens", schema="bots")
