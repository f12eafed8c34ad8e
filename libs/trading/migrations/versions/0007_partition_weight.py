"""Engine partitions carry a weight (the bots their owner drives there), by which replicas balance them.

Revision ID: 0007_partition_weight
Revises: 0006_outbox_traceparent
Create Date: 2026-12-03 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_partition_weight"
down_revision: str | None = "0006_outbox_traceparent"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    # On SQLite (embedded mode) the tables live unqualified.
    return None if op.get_bind().dialect.name == "sqlite" else "bots"


def upgrade() -> None:
    """Add engine_partitions.weight (0 until an owner reports its bots: rendezvous hashing alone then)."""
    op.add_column(
        "engine_partitions",
        sa.Column("weight", sa.Integer(), nullable=False, server_default="0"),
        schema=_schema(),
    )


def downgrade() -> None:
    """Drop engine_partitions.weight."""
    op.drop_column("engine_partitions", "weight", schema=_schema())
