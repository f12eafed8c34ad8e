"""Alembic environment of the notifier schema (the shared kit does the work)."""

from common.migrations import run_env
from notifier.models import Base

run_env(Base.metadata, "notifier")
