"""An index on bots.updated_at: every engine replica's resume sweep reads, every few seconds, the bots changed
in the last minute (`engine.persistence.reads.changed_asks`); without it each sweep read the whole table.

Revision ID: 0009_bots_updated_at
Revises: 0008_engine_outbox
Create Date: 2026-12-06 00:00:00
"""

from collections.abc import Sequence

from alembic import op

from common.migrations import migration_schema

revision: str = "0009_bots_updated_at"
down_revision: str | None = "0008_engine_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    return migration_schema("bots")


def upgrade() -> None:
    """Create ix_bots_updated_at."""
    op.create_index("ix_bots_updated_at", "bots", ["updated_at"], unique=False, schema=_schema())


def downgrade() -> None:
    """Drop ix_bots_updated_at."""
    op.drop_index("ix_bots_updated_at", table_name="bots", schema=_schema())
