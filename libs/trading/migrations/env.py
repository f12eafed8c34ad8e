"""Alembic environment of the bots schema (the shared kit does the work)."""

from common.migrations import run_env
from trading.models import Base

run_env(Base.metadata, "bots")
