"""Alembic environment of the credentials schema (the shared kit does the work)."""

from common.migrations import run_env
from credentials.models import Base

run_env(Base.metadata, "credentials")
