"""Outbox rows carry the W3C traceparent of the span that enqueued them (common.tracing): a message published
after the commit continues the request's trace.

Revision ID: 0002_outbox_traceparent
Revises: 0001_initial
Create Date: 2026-12-03 00:00:00
"""

from collections.abc import Sequence

from common.migrations import add_outbox_traceparent, drop_outbox_traceparent

revision: str = "0002_outbox_traceparent"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add backtest_outbox.traceparent."""
    add_outbox_traceparent("backtest_outbox", "backtest")


def downgrade() -> None:
    """Drop backtest_outbox.traceparent."""
    drop_outbox_traceparent("backtest_outbox", "backtest")
