"""Outbox rows carry the W3C traceparent of the span that enqueued them (common.tracing): a message published
after the commit continues the request's trace.

Revision ID: 0006_outbox_traceparent
Revises: 0005_signals
Create Date: 2026-12-03 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_outbox_traceparent"
down_revision: str | None = "0005_signals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    # On SQLite (embedded mode) the tables live unqualified.
    return None if op.get_bind().dialect.name == "sqlite" else "bots"


def upgrade() -> None:
    """Add bots_outbox.traceparent (nullable: rows enqueued while tracing is off have none)."""
    op.add_column(
        "bots_outbox", sa.Column("traceparent", sa.String(length=255), nullable=True), schema=_schema()
    )


def downgrade() -> None:
    """Drop bots_outbox.traceparent."""
    op.drop_column("bots_outbox", "traceparent", schema=_schema())
