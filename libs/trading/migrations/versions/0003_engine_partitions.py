"""Engine replicas: membership (`engine_replicas`) and partition ownership with a fencing epoch
(`engine_partitions`, one row per partition); the per-bot lease columns of `engine_states` go.

Revision ID: 0003_engine_partitions
Revises: 0002_bot_stop_reason
Create Date: 2026-12-02 00:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from common.dbtypes import UtcDateTime

revision: str = "0003_engine_partitions"
down_revision: str | None = "0002_bot_stop_reason"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As trading.models.ENGINE_PARTITIONS at this revision (a migration never follows the code's constant).
_PARTITIONS = 64


def upgrade() -> None:
    """Create the membership and ownership tables, seed every partition unowned, drop the old lease."""
    op.create_table(
        "engine_replicas",
        sa.Column("replica_id", sa.String(length=64), nullable=False),
        sa.Column("incarnation", sa.String(length=32), nullable=False),
        sa.Column("heartbeat_at", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("stopping", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("replica_id", name=op.f("pk_engine_replicas")),
        schema="bots",
    )
    partitions = op.create_table(
        "engine_partitions",
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("partition", name=op.f("pk_engine_partitions")),
        schema="bots",
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        partitions,
        [{"partition": n, "owner": None, "epoch": 0, "updated_at": now} for n in range(_PARTITIONS)],
    )
    if op.get_bind().dialect.name == "sqlite":
        # In place (SQLite 3.35+): a batch rebuild would copy every state and recreate a referenced table.
        op.execute("ALTER TABLE engine_states DROP COLUMN lease_expires_at")
        op.execute("ALTER TABLE engine_states DROP COLUMN owner")
        return
    op.drop_column("engine_states", "lease_expires_at", schema="bots")
    op.drop_column("engine_states", "owner", schema="bots")


def downgrade() -> None:
    """Back to the per-bot lease."""
    op.add_column("engine_states", sa.Column("owner", sa.String(length=64), nullable=True), schema="bots")
    op.add_column("engine_states", sa.Column("lease_expires_at", UtcDateTime(), nullable=True), schema="bots")
    op.drop_table("engine_partitions", schema="bots")
    op.drop_table("engine_replicas", schema="bots")
