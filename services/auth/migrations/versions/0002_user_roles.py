"""Users get a role ("user" or "admin") and may be disabled by an administrator.

Revision ID: 0002_user_roles
Revises: 0001_initial
Create Date: 2026-12-03 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from common.dbtypes import UtcDateTime

revision: str = "0002_user_roles"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "auth"


def upgrade() -> None:
    """Add users.role (every existing user a plain user) and users.disabled_at."""
    check = "role IN ('user', 'admin')"
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # SQLite adds a column with its CHECK in place; its tables are unqualified there (as in trading's 0002).
        op.execute(
            "ALTER TABLE users ADD COLUMN role VARCHAR(8) DEFAULT 'user' NOT NULL "
            f"CONSTRAINT ck_users_role CHECK ({check})"
        )
    else:
        op.add_column(
            "users",
            sa.Column("role", sa.String(length=8), nullable=False, server_default="user"),
            schema=SCHEMA,
        )
        op.create_check_constraint(op.f("ck_users_role"), "users", check, schema=SCHEMA)
    op.add_column(
        "users", sa.Column("disabled_at", UtcDateTime(), nullable=True), schema=None if sqlite else SCHEMA
    )


def downgrade() -> None:
    """Drop users.role and users.disabled_at."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE users DROP COLUMN disabled_at")
        op.execute("ALTER TABLE users DROP COLUMN role")
        return
    op.drop_column("users", "disabled_at", schema=SCHEMA)
    op.drop_constraint(op.f("ck_users_role"), "users", type_="check", schema=SCHEMA)
    op.drop_column("users", "role", schema=SCHEMA)
