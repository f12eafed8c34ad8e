"""Configuration of the engine, read from environment variables (field names upper-cased)."""

from __future__ import annotations

import socket
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from common.exchanges import ExchangeSettings
from common.parking import ParkSettings
from common.settings import BusSettings, CacheSettings, DatabaseSettings, KeysTokenSettings

ParkPoint = Literal["before_place", "after_place"]


def default_engine_id() -> str:
    """The host's name: stable across restarts of a container or pod, so a restarted replica takes its own
    partitions back at once (set ENGINE_ID per replica when several run on one host)."""
    return socket.gethostname()[:64] or "engine"


class Settings(
    ParkSettings, KeysTokenSettings, DatabaseSettings, CacheSettings, BusSettings, ExchangeSettings
):
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
    # Replica membership: a heartbeat this often; a replica silent for ENGINE_REPLICA_TTL_SECONDS is dead
    # and its partitions are taken over (exchange calls stop a margin before that). 2 s = four heartbeats:
    # loads run beside the rounds and yield every 200 bots, and the loaded bots are frozen out of full
    # collections, so a survivor taking 5,000 bots over stalled its loop 100-250 ms at worst (bench/takeover.py).
    engine_heartbeat_seconds: float = Field(default=0.5, gt=0, le=60)
    engine_replica_ttl_seconds: float = Field(default=2.0, gt=0.5, le=600)
    # Bots' rows are compared with what their cores did this often (a command no replica heard).
    resume_interval_seconds: float = Field(default=5.0, gt=0)
    outbox_poll_seconds: float = Field(default=1.0, gt=0, le=3600)
    # Transient exchange errors of one call are retried this many times (with backoff) before giving up.
    exchange_attempts: int = Field(default=4, ge=1, le=20)
    # Crash tests only (ENVIRONMENT=test): an order reaching this point of placing notes itself in
    # TEST_PARK_FILE and waits there for good, so the test can SIGKILL the process at that very moment.
    test_park_at: ParkPoint | None = None  # type: ignore[assignment]  # narrowed to the engine's points

    @model_validator(mode="after")
    def _heartbeat_within_ttl(self) -> Self:
        if self.engine_heartbeat_seconds * 3 > self.engine_replica_ttl_seconds:
            raise ValueError("ENGINE_REPLICA_TTL_SECONDS must be at least three heartbeats")
        return self
