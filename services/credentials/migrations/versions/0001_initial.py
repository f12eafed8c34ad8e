"""Initial credentials schema: credentials and credentials_outbox.

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-23 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "credentials"


def upgrade() -> None:
    """Create credentials and credentials_outbox in the credentials schema."""
    op.create_table(
        "credentials",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("exchange", sa.String(length=16), nullable=False),
        sa.Column("api_key", sa.Text(), nullable=False),
        sa.Column("secret_key", sa.Text(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("key_last4", sa.String(length=4), nullable=False),
        sa.Column("ip_whitelist", sa.String(length=1000), nullable=True),
        sa.Column("is_valid", sa.Boolean(), nullable=False),
        sa.Column("last_validated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_credentials"),
        sa.UniqueConstraint("user_id", "exchange", name="uq_credentials_user_id_exchange"),
        schema=SCHEMA,
    )
    op.create_index("ix_credentials_key_version", "credentials", ["key_version"], schema=SCHEMA)
    op.create_index("ix_credentials_last_validated_at", "credentials", ["last_validated_at"], schema=SCHEMA)
    op.create_table(
        "credentials_outbox",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("exchange", sa.String(length=255), nullable=False),
        sa.Column("routing_key", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("request_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_credentials_outbox"),
        sa.UniqueConstraint("message_id", name="uq_credentials_outbox_message_id"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_credentials_outbox_unpublished",
        "credentials_outbox",
        ["id"],
        schema=SCHEMA,
        postgresql_where=sa.text("published_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL"),
    )


def downgrade() -> None:
    """Drop the credentials tables."""
    op.drop_index("ix_credentials_outbox_unpublished", table_name="credentials_outbox", schema=SCHEMA)
    op.drop_table("credentials_outbox", schema=SCHEMA)
    op.drop_index("ix_credentials_last_validated_at", table_name="credentials", schema=SCHEMA)
    op.drop_index("ix_credentials_key_version", table_name="credentials", schema=SCHEMA)
    op.drop_table("credentials", schema=SCHEMA)
