"""Configuration of the engine, read from environment variables (field names upper-cased)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from common.exchanges import ExchangeSettings
from common.settings import BusSettings, CacheSettings, DatabaseSettings, Environment, KeysTokenSettings

ParkPoint = Literal["before_place", "after_place"]


def default_engine_id() -> str:
    """hostname-pid: unique per process, readable in the engine_states.owner column."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}"


class Settings(KeysTokenSettings, DatabaseSettings, CacheSettings, BusSettings, ExchangeSettings):
    """Everything the engine reads: database, cache, bus, exchanges, the credentials service, timings."""

    model_config = SettingsConfigDict(hide_input_in_errors=True)

    port: int = Field(default=3004, ge=0, le=65535)
    # The credentials service's keys route hands the engine a user's exchange keys (INTERNAL_KEYS_TOKEN).
    credentials_url: str = "http://127.0.0.1:3002"
    credentials_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    engine_id: str = Field(default_factory=default_engine_id, min_length=1, max_length=64)
    # Writers that each commit their bots' events in batches; every bot always goes to the same one.
    engine_shards: int = Field(default=2, ge=1, le=64)
    # The most events one transaction carries (a tick crossing many bots is split beyond this).
    engine_batch_size: int = Field(default=200, ge=1, le=5000)
    # Live orders are checked against the exchange this often, whatever the streams said.
    reconcile_interval_seconds: float = Field(default=60.0, gt=0)
    # A tick crossing a live order's price asks the exchange about it at most this often per order.
    order_check_min_interval_seconds: float = Field(default=1.0, ge=0)
    # Private exchange streams (Upbit myOrder, Binance executionReport) for fill detection.
    private_streams: bool = True
    # How long an engine owns the bots it drives without renewing its lease.
    lease_seconds: float = Field(default=30.0, gt=1)
    outbox_poll_seconds: float = Field(default=1.0, gt=0, le=3600)
    # Transient exchange errors of one call are retried this many times (with backoff) before giving up.
    exchange_attempts: int = Field(default=4, ge=1, le=20)
    # Crash tests only (ENVIRONMENT=test): an order reaching this point of placing notes itself in
    # TEST_PARK_FILE and waits there for good, so the test can SIGKILL the process at that very moment.
    test_park_at: ParkPoint | None = None
    test_park_file: Path | None = None

    @model_validator(mode="after")
    def _parking_is_for_tests(self) -> Self:
        if self.test_park_at is not None and (
            self.environment is not Environment.TEST or self.test_park_file is None
        ):
            raise ValueError("TEST_PARK_AT needs ENVIRONMENT=test and TEST_PARK_FILE")
        return self
