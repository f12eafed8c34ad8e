"""Configuration of the backtest service and its worker, read from environment variables (field names upper-cased)."""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.exchanges import ExchangeSettings
from common.parking import ParkSettings
from common.settings import BusSettings, CacheSettings, DatabaseSettings, JwtSettings


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(ParkSettings, DatabaseSettings, CacheSettings, BusSettings, JwtSettings, ExchangeSettings):
    """Everything the backtest API and its worker read: database, cache, bus, JWT, exchanges and limits.

    The same class configures both processes (`python -m backtest` and `python -m backtest.worker`); each
    listens on its own PORT.
    """

    model_config = SettingsConfigDict(hide_input_in_errors=True)

    port: int = Field(default=3007, ge=0, le=65535)
    # API.md: startDate and endDate at most this many days apart.
    max_days: int = Field(default=366, ge=1, le=366)
    # Exchange market rules (tick size, lot step, minimums) are reloaded this often.
    market_rules_ttl_seconds: float = Field(default=3600.0, gt=0)
    # The outbox relay polls this often besides being nudged after each commit.
    outbox_poll_seconds: float = Field(default=5.0, gt=0, le=3600)
    # Apply the Alembic migrations when the app starts (embedded mode; the real topology migrates first).
    migrate_on_start: bool = False
    # This worker's name in the jobs it claims (diagnostics only: ownership is the attempt counter).
    worker_id: str = Field(default_factory=_default_worker_id, min_length=1, max_length=128)
    # Jobs one worker runs at once (each is CPU-bound once its candles are in: one per core is plenty).
    worker_concurrency: int = Field(default=1, ge=1, le=16)
    # A job claimed this many times (its workers died or it kept failing on infrastructure) is failed
    # rather than tried again; below the bus's own redelivery limit, so it never ends in a dead letter.
    max_attempts: int = Field(default=3, ge=1, le=4)
    # How often progress is written and pushed while a job runs (at most every this many percent).
    progress_step_percent: int = Field(default=5, ge=1, le=50)
    # POST /backtests/recommend answers with this many configurations.
    recommendations: int = Field(default=5, ge=1, le=20)
    # Crash tests only (ENVIRONMENT=test): a job reaching this point notes itself in TEST_PARK_FILE and waits
    # there for good, so the test can SIGKILL the worker at that very moment.
    test_park_at: Literal["after_claim", "before_result"] | None = None  # type: ignore[assignment]
