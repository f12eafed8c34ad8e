"""Engine partition weights (the bots each partition's owner drives there), by which replicas balance them:
a table of their own, apart from the `engine_partitions` rows that every batch locks `FOR SHARE`.

Revision ID: 0007_partition_weight
Revises: 0006_outbox_traceparent
Create Date: 2026-12-03 00:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from common.dbtypes import UtcDateTime
from common.migrations import migration_schema

revision: str = "0007_partition_weight"
down_revision: str | None = "0006_outbox_traceparent"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As trading.models.ENGINE_PARTITIONS at this revision (a migration never follows the code's constant).
_PARTITIONS = 64


def _schema() -> str | None:
    return migration_schema("bots")


def upgrade() -> None:
    """Create engine_partition_weights with every partition at 0 (rendezvous hashing alone until reported)."""
    weights = op.create_table(
        "engine_partition_weights",
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("partition", name=op.f("pk_engine_partition_weights")),
        schema=_schema(),
    )
    now = datetime.now(UTC)
    op.bulk_insert(weights, [{"partition": n, "weight": 0, "updated_at": now} for n in range(_PARTITIONS)])


def downgrade() -> None:
    """Drop engine_partition_weights."""
    op.drop_table("engine_partition_weights", schema=_schema())
