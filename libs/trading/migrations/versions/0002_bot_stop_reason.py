"""Bots carry why they stopped: `stop_reason` (API.md `stopReason`), NULL while running.

Revision ID: 0002_bot_stop_reason
Revises: 0001_initial
Create Date: 2025-02-10 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_bot_stop_reason"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REASONS = "'user', 'stopAtMax', 'takeProfit', 'stopLoss', 'credentialRemoved', 'error'"


def upgrade() -> None:
    """Add bots.stop_reason (nullable, one of the API's reasons)."""
    check = f"stop_reason IN ({_REASONS})"
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with its CHECK in place; a batch rebuild of `bots` would copy every row and
        # recreate a table other tables reference, for nothing.
        op.execute(
            f"ALTER TABLE bots ADD COLUMN stop_reason VARCHAR(24) CONSTRAINT ck_bots_stop_reason CHECK ({check})"
        )
        return
    op.add_column("bots", sa.Column("stop_reason", sa.String(length=24), nullable=True), schema="bots")
    op.create_check_constraint(op.f("ck_bots_stop_reason"), "bots", check, schema="bots")


def downgrade() -> None:
    """Drop bots.stop_reason."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE bots DROP COLUMN stop_reason")
        return
    op.drop_constraint(op.f("ck_bots_stop_reason"), "bots", type_="check", schema="bots")
    op.drop_column("bots", "stop_reason", schema="bots")
