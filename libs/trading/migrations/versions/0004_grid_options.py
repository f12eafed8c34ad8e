"""Grid options (API.md "Grid options") on bots, and `grid_levels.active` for the grid that trailing up moved.

Revision ID: 0004_grid_options
Revises: 0003_engine_partitions
Create Date: 2026-12-03 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from common.dbtypes import Money
from common.migrations import migration_schema

revision: str = "0004_grid_options"
down_revision: str | None = "0003_engine_partitions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PRICES = ("trigger_price", "take_profit_price", "stop_loss_price", "trailing_up_limit")
# Existing bots have every option off: no trigger (so triggered), nothing sold on a stop, no trailing.
_FLAGS = (("sell_base_on_stop", False), ("trailing_up", False), ("triggered", True))


def _schema() -> str | None:
    return migration_schema("bots")


def upgrade() -> None:
    """Add the option columns to bots (all off for existing bots) and grid_levels.active (true)."""
    schema = _schema()
    # Plain ADD COLUMNs with a server default: in place on PostgreSQL (no rewrite) and on SQLite alike.
    for name in _PRICES:
        op.add_column("bots", sa.Column(name, Money(), nullable=True), schema=schema)
    for name, default in _FLAGS:
        op.add_column(
            "bots",
            sa.Column(
                name, sa.Boolean(), nullable=False, server_default=sa.true() if default else sa.false()
            ),
            schema=schema,
        )
    op.add_column(
        "grid_levels",
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        schema=schema,
    )


def downgrade() -> None:
    """Drop the option columns and grid_levels.active."""
    schema = _schema()
    with op.batch_alter_table("grid_levels", schema=schema) as batch:
        batch.drop_column("active")
    with op.batch_alter_table("bots", schema=schema) as batch:
        for name, _ in reversed(_FLAGS):
            batch.drop_column(name)
        for name in reversed(_PRICES):
            batch.drop_column(name)
