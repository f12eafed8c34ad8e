"""Configuration of the bots service, read from environment variables (field names upper-cased)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from common.exchanges import ExchangeSettings
from common.settings import (
    BalanceTokenSettings,
    BusSettings,
    CacheSettings,
    DatabaseSettings,
    JwtSettings,
    TickersTokenSettings,
)
from trading.models import BotMode


class Settings(
    BalanceTokenSettings,
    TickersTokenSettings,
    DatabaseSettings,
    CacheSettings,
    BusSettings,
    JwtSettings,
    ExchangeSettings,
):
    """Everything the bots service reads: database, cache, bus, JWT, exchanges, peers and timeouts.

    INTERNAL_BALANCE_TOKEN is presented to the credentials service's balance route (never the keys route);
    INTERNAL_TICKERS_TOKEN is what market-data must present on GET /internal/bots/running-tickers.
    """

    # Never echo a rejected value (an internal token) in a validation error.
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    port: int = Field(default=3003, ge=0, le=65535)
    # The mode of a bot created without `mode` (API.md: paper unless set).
    default_bot_mode: BotMode = BotMode.PAPER
    # The credentials service (internal routes: quote balance and validity of a user's keys).
    credentials_url: str = "http://127.0.0.1:3002"
    credentials_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # How long stop/delete wait for the engine to confirm that the bot's open orders are cancelled. Keep it
    # below the gateway's UPSTREAM_TIMEOUT_SECONDS (10 s by default), so the client hears our answer.
    stop_confirm_timeout_seconds: float = Field(default=8.0, gt=0, le=300)
    # Exchange market rules (tick size, lot step, minimums) are reloaded this often.
    market_rules_ttl_seconds: float = Field(default=3600.0, gt=0)
    # The outbox relay polls this often besides being nudged after each commit.
    outbox_poll_seconds: float = Field(default=5.0, gt=0, le=3600)
    # Where clients reach the API (the gateway's public origin, with any path prefix before /api): the URL
    # POST /api/bots/:id/signal-token hands out for TradingView is built on it.
    public_api_url: str = "http://localhost:3000"
    # TradingView signals accepted per token within a minute of the first (API.md: 10/min); more: 429.
    signal_rate_limit_per_minute: int = Field(default=10, ge=1, le=10_000)
    # Apply the Alembic migrations when the app starts (embedded mode; the real topology migrates first).
    migrate_on_start: bool = False

    @field_validator("public_api_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("PUBLIC_API_URL must be http(s)://host[:port][/path]")
        return value.strip().rstrip("/")
