"""Alembic environment of the backtest schema (the shared kit does the work)."""

from backtest.models import Base
from common.migrations import run_env

run_env(Base.metadata, "backtest")
