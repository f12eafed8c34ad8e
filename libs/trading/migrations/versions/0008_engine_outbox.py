"""The engine's own outbox (`engine_outbox`): user events and stop confirmations, relayed by the engine alone.

A relay publishes every row of its table, so with one table for both writers the bots service's relay, in
the event loop that serves the API, took its turn at the engine's bursts of user events. Rows the engine
wrote to `bots_outbox` before this revision are still relayed from there by the bots service.

Revision ID: 0008_engine_outbox
Revises: 0007_partition_weight
Create Date: 2026-12-04 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from common.dbtypes import UtcDateTime
from common.migrations import migration_schema

revision: str = "0008_engine_outbox"
down_revision: str | None = "0007_partition_weight"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    return migration_schema("bots")


def upgrade() -> None:
    """Create engine_outbox (common.outbox's columns as of this revision) and its unpublished-rows index."""
    op.create_table(
        "engine_outbox",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("exchange", sa.String(length=255), nullable=False),
        sa.Column("routing_key", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("request_id", sa.String(length=255), nullable=True),
        sa.Column("traceparent", sa.String(length=255), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("published_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engine_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_engine_outbox_message_id")),
        schema=_schema(),
    )
    op.create_index(
        "ix_engine_outbox_unpublished",
        "engine_outbox",
        ["id"],
        unique=False,
        schema=_schema(),
        postgresql_where=sa.text("published_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL"),
    )


def downgrade() -> None:
    """Drop engine_outbox (its unpublished rows with it: publish them before downgrading)."""
    op.drop_index("ix_engine_outbox_unpublished", table_name="engine_outbox", schema=_schema())
    op.drop_table("engine_outbox", schema=_schema())
