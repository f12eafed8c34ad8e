"""Initial bots schema: bots, grid_levels, orders, trades, engine_states, bots_inbox, bots_outbox.

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-23 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from common.dbtypes import Money, UtcDateTime

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the bots schema's tables: bots, grid levels, orders, trades, engine state, inbox, outbox."""
    op.create_table(
        "bots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("exchange", sa.String(length=16), nullable=False),
        sa.Column("ticker", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("grid_type", sa.String(length=12), nullable=False),
        sa.Column("lower_price", Money(), nullable=False),
        sa.Column("upper_price", Money(), nullable=False),
        sa.Column("price_change_percent", Money(), nullable=False),
        sa.Column("grid_count", sa.Integer(), nullable=False),
        sa.Column("order_amount", Money(), nullable=False),
        sa.Column("investment_amount", Money(), nullable=False),
        sa.Column("stop_at_max", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(length=40), nullable=True),
        sa.Column("stop_command_id", sa.String(length=64), nullable=True),
        sa.Column("stop_requested_at", UtcDateTime(), nullable=True),
        sa.Column("market_rules", sa.JSON(), nullable=False),
        sa.Column("config_version", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("first_started_at", UtcDateTime(), nullable=True),
        sa.Column("last_executed_at", UtcDateTime(), nullable=True),
        sa.Column("deleted_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint("grid_type IN ('geometric', 'arithmetic')", name=op.f("ck_bots_grid_type")),
        sa.CheckConstraint("mode IN ('paper', 'live')", name=op.f("ck_bots_mode")),
        sa.CheckConstraint("status IN ('running', 'stopped', 'error')", name=op.f("ck_bots_status")),
        sa.CheckConstraint("grid_count >= 1", name=op.f("ck_bots_grid_count")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bots")),
        schema="bots",
    )
    op.create_index(
        "ix_bots_exchange_ticker_status",
        "bots",
        ["exchange", "ticker", "status"],
        unique=False,
        schema="bots",
    )
    op.create_index("ix_bots_user_id_status", "bots", ["user_id", "status"], unique=False, schema="bots")
    op.create_table(
        "bots_inbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("processed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bots_inbox")),
        sa.UniqueConstraint("consumer", "message_id", name=op.f("uq_bots_inbox_consumer")),
        schema="bots",
    )
    op.create_table(
        "bots_outbox",
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bots_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_bots_outbox_message_id")),
        schema="bots",
    )
    op.create_index(
        "ix_bots_outbox_unpublished",
        "bots_outbox",
        ["id"],
        unique=False,
        schema="bots",
        postgresql_where=sa.text("published_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "engine_states",
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bots.bots.id"], name=op.f("fk_engine_states_bot_id_bots"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("bot_id", name=op.f("pk_engine_states")),
        schema="bots",
    )
    op.create_table(
        "grid_levels",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("level_index", sa.Integer(), nullable=False),
        sa.Column("price", Money(), nullable=False),
        sa.Column("type", sa.String(length=4), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("filled_at", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('available', 'pending', 'filled')", name=op.f("ck_grid_levels_status")
        ),
        sa.CheckConstraint("type IN ('buy', 'sell')", name=op.f("ck_grid_levels_type")),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bots.bots.id"], name=op.f("fk_grid_levels_bot_id_bots"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grid_levels")),
        sa.UniqueConstraint("bot_id", "level_index", name=op.f("uq_grid_levels_bot_id")),
        schema="bots",
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("exchange", sa.String(length=16), nullable=False),
        sa.Column("client_order_id", sa.String(length=64), nullable=False),
        sa.Column("exchange_order_id", sa.String(length=64), nullable=True),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("price", Money(), nullable=False),
        sa.Column("quantity", Money(), nullable=False),
        sa.Column("filled_quantity", Money(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f("ck_orders_side")),
        sa.CheckConstraint(
            "status IN ('new', 'open', 'filled', 'canceled', 'rejected')", name=op.f("ck_orders_status")
        ),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bots.bots.id"], name=op.f("fk_orders_bot_id_bots"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("client_order_id", name=op.f("uq_orders_client_order_id")),
        sa.UniqueConstraint("exchange", "exchange_order_id", name=op.f("uq_orders_exchange")),
        schema="bots",
    )
    op.create_index("ix_orders_bot_id_status", "orders", ["bot_id", "status"], unique=False, schema="bots")
    op.create_table(
        "trades",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("fill_id", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("price", Money(), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("total", Money(), nullable=False),
        sa.Column("fee", Money(), nullable=False),
        sa.Column("fee_currency", sa.String(length=16), nullable=False),
        sa.Column("profit", Money(), nullable=True),
        sa.Column("executed_at", UtcDateTime(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f("ck_trades_side")),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bots.bots.id"], name=op.f("fk_trades_bot_id_bots"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["bots.orders.id"], name=op.f("fk_trades_order_id_orders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trades")),
        sa.UniqueConstraint("order_id", "fill_id", name=op.f("uq_trades_order_id")),
        schema="bots",
    )
    op.create_index(
        "ix_trades_bot_id_executed_at", "trades", ["bot_id", "executed_at"], unique=False, schema="bots"
    )


def downgrade() -> None:
    """Drop the bots schema's tables."""
    op.drop_index("ix_trades_bot_id_executed_at", table_name="trades", schema="bots")
    op.drop_table("trades", schema="bots")
    op.drop_index("ix_orders_bot_id_status", table_name="orders", schema="bots")
    op.drop_table("orders", schema="bots")
    op.drop_table("grid_levels", schema="bots")
    op.drop_table("engine_states", schema="bots")
    op.drop_index(
        "ix_bots_outbox_unpublished",
        table_name="bots_outbox",
        schema="bots",
        postgresql_where=sa.text("published_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL"),
    )
    op.drop_table("bots_outbox", schema="bots")
    op.drop_table("bots_inbox", schema="bots")
    op.drop_index("ix_bots_user_id_status", table_name="bots", schema="bots")
    op.drop_index("ix_bots_exchange_ticker_status", table_name="bots", schema="bots")
    op.drop_table("bots", schema="bots")
