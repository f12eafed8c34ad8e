"""Alembic environment of the auth schema (the shared kit does the work)."""

from auth.models import Base
from common.migrations import run_env

run_env(Base.metadata, "auth")
