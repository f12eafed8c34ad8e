"""Configuration of the market-data service, read from environment variables (field names upper-cased)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from common.exchanges.settings import ExchangeSettings
from common.settings import BusSettings, CacheSettings, JwtSettings, TickersTokenSettings

DAY_SECONDS = 24 * 3600


class Settings(TickersTokenSettings, CacheSettings, BusSettings, JwtSettings, ExchangeSettings):
    """Everything market-data reads: cache, bus, JWT keys, exchange URLs, and its own timing.

    It parses untrusted exchange feeds, so it holds one internal token only: INTERNAL_TICKERS_TOKEN, which
    opens the bots service's running-tickers route and nothing that reveals keys or balances.
    """

    port: int = Field(default=3005, ge=0, le=65535)
    # At most one price tick per ticker per interval on the bus, and one price-cache write.
    price_tick_ms: int = Field(default=100, ge=1, le=60_000)
    # The same ticks folded to at most one per ticker per interval (display.price.*): what sockets show.
    display_tick_ms: int = Field(default=1000, ge=1, le=60_000)
    # Closed 1-minute candles kept per ticker in Redis.
    candle_cache_size: int = Field(default=500, ge=10, le=10_000)
    # How long a ticker asked for through the API keeps being streamed.
    recent_ticker_ttl_seconds: float = Field(default=600.0, gt=0)
    # The bots service, asked at start-up (and now and then) which tickers running bots trade.
    bots_url: str | None = None
    bots_sync_seconds: float = Field(default=300.0, gt=0)
    # A stream without a frame for this long is probed (ping); no answer within the probe timeout: reconnect.
    stream_silent_seconds: float = Field(default=10.0, gt=0)
    stream_probe_timeout_seconds: float = Field(default=5.0, gt=0)
    stream_backoff_initial_seconds: float = Field(default=0.5, gt=0)
    stream_backoff_max_seconds: float = Field(default=30.0, gt=0)
    stream_debounce_ms: int = Field(default=200, ge=0, le=10_000)
    # Binance closes a connection after 24 h: replace it proactively before that.
    binance_rotate_seconds: float = Field(default=23 * 3600, gt=0, lt=DAY_SECONDS)
    upbit_ws_format: Literal["DEFAULT", "SIMPLE"] = "DEFAULT"
    # Gap backfill: trades older than this are not replayed; pages of REST trades per ticker per gap.
    backfill_max_age_seconds: float = Field(default=3600.0, gt=0)
    backfill_max_pages: int = Field(default=5, ge=1, le=50)
    # After a restart, resume (backfill) from the last trade the previous process cached if it is this recent.
    backfill_restart_seconds: float = Field(default=300.0, ge=0)
    markets_ttl_seconds: float = Field(default=3600.0, gt=0)
    # Candles of intervals other than 1m are cached this long.
    candles_ttl_seconds: float = Field(default=10.0, gt=0)
    # A cached price older than this, of a ticker no longer streamed, is refreshed over REST.
    price_stale_seconds: float = Field(default=60.0, gt=0)
    # Off: serve REST only (no exchange WebSockets), e.g. for a read-only replica.
    streams_enabled: bool = True
