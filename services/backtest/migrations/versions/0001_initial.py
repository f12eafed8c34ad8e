"""Initial backtest schema: backtests, candles, candle_spans and backtest_outbox.

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

SCHEMA = "backtest"


def upgrade() -> None:
    """Create the backtest tables."""
    op.create_table(
        "backtests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("exchange", sa.String(length=16), nullable=False),
        sa.Column("ticker", sa.String(length=40), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("grid", sa.JSON(), nullable=False),
        sa.Column("start_at", UtcDateTime(), nullable=False),
        sa.Column("end_at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_backtests"),
        schema=SCHEMA,
    )
    op.create_index("ix_backtests_user_id_created_at", "backtests", ["user_id", "created_at"], schema=SCHEMA)
    op.create_table(
        "candles",
        sa.Column("exchange", sa.String(length=16), nullable=False),
        sa.Column("ticker", sa.String(length=40), nullable=False),
        sa.Column("open_time", sa.BigInteger(), nullable=False),
        sa.Column("open", Money(), nullable=False),
        sa.Column("high", Money(), nullable=False),
        sa.Column("low", Money(), nullable=False),
        sa.Column("close", Money(), nullable=False),
        sa.Column("volume", Money(), nullable=False),
        sa.PrimaryKeyConstraint("exchange", "ticker", "open_time", name="pk_candles"),
        schema=SCHEMA,
    )
    op.create_table(
        "candle_spans",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("exchange", sa.String(length=16), nullable=False),
        sa.Column("ticker", sa.String(length=40), nullable=False),
        sa.Column("start_time", sa.BigInteger(), nullable=False),
        sa.Column("end_time", sa.BigInteger(), nullable=False),
        sa.Column("fetched_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_candle_spans"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_candle_spans_market", "candle_spans", ["exchange", "ticker", "start_time"], schema=SCHEMA
    )
    op.create_table(
        "backtest_outbox",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("exchange", sa.String(length=255), nullable=False),
        sa.Column("routing_key", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("request_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("published_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_backtest_outbox"),
        sa.UniqueConstraint("message_id", name="uq_backtest_outbox_message_id"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_backtest_outbox_unpublished",
        "backtest_outbox",
        ["id"],
        schema=SCHEMA,
        postgresql_where=sa.text("published_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL"),
    )


def downgrade() -> None:
    """Drop the backtest tables."""
    op.drop_index("ix_backtest_outbox_unpublished", table_name="backtest_outbox", schema=SCHEMA)
    op.drop_table("backtest_outbox", schema=SCHEMA)
    op.drop_index("ix_candle_spans_market", table_name="candle_spans", schema=SCHEMA)
    op.drop_table("candle_spans", schema=SCHEMA)
    op.drop_table("candles", schema=SCHEMA)
    op.drop_index("ix_backtests_user_id_created_at", table_name="backtests", schema=SCHEMA)
    op.drop_table("backtests", schema=SCHEMA)
