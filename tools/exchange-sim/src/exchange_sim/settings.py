"""Settings of the exchange simulator (environment variables with the SIM_ prefix)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.testing.shared import shared_dir

CANDLE_FILE_NAME = "binance_BTCUSDT_1m_2024-12.csv"
# A year of minutes (366 days), as long as a backtest may be; a candle file caps it at its own length.
MAX_HISTORY_MINUTES = 527_040

ReplaySpeed = float | Literal["max"]


class SimSettings(BaseSettings):
    """Everything the simulator can be told; every field is SIM_<NAME> in the environment."""

    model_config = SettingsConfigDict(env_prefix="SIM_", extra="ignore", case_sensitive=False)

    host: str = "127.0.0.1"
    port: int = Field(default=8900, ge=0, le=65535)
    log_level: str = "INFO"

    # None means: the shared folder's candle file (beside the checkout, or GRIDBOT_SHARED_DIR), else
    # random walk only.
    candle_file: Path | None = None
    # Candles replayed per second (each candle is 4 ticks); 0 = paused; "max" = as fast as possible.
    replay_speed: ReplaySpeed = 1.0
    # Candles of the file (or walk) shown as history before the replay starts (24h stats, klines, backtests);
    # with a candle file, at most its length: more is clamped to the whole file (with a warning). Unset: 30
    # days, or the whole candle file when it is shorter, so a 30-day backtest works in every mode.
    history_minutes: int | None = Field(default=None, ge=1, le=MAX_HISTORY_MINUTES)
    seed: int = 42
    # KRW per USDT: KRW markets follow the USDT ones through this rate, rounded to Upbit's KRW tick.
    krw_rate: Decimal = Field(default=Decimal("1400"), gt=0)

    upbit_fee: Decimal = Field(default=Decimal("0.0005"), ge=0, lt=1)
    upbit_min_total: Decimal = Field(default=Decimal("5000"), ge=0)
    binance_maker_fee: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1)
    binance_taker_fee: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1)

    # With partial fills on, each crossing tick fills this share of what an order has left.
    partial_fills: bool = False
    partial_fill_ratio: Decimal = Field(default=Decimal("0.5"), gt=0, le=1)

    # Binance pushes <symbol>@miniTicker / @ticker once a second; 0 pushes on every trade.
    ticker_interval_ms: int = Field(default=1000, ge=0)
    ws_ping_interval: float = Field(default=20.0, gt=0)
    ws_ping_timeout: float = Field(default=60.0, gt=0)
    # How long a request hit by a "timeout" fault is held before the server gives up on it.
    fault_timeout_seconds: float = Field(default=30.0, gt=0)
    # Accounts, balances and orders kept here across restarts (persist.py); None keeps them in memory only.
    state_file: Path | None = None

    @field_validator("replay_speed")
    @classmethod
    def _non_negative_speed(cls, value: ReplaySpeed) -> ReplaySpeed:
        if value != "max" and value < 0:
            raise ValueError("replay_speed must be >= 0 or 'max'")
        return value

    def resolved_candle_file(self) -> Path | None:
        """The candle file to replay, or None when there is none (random walk only)."""
        if self.candle_file is not None:
            return self.candle_file if self.candle_file.is_file() else None
        default = shared_dir() / "data" / CANDLE_FILE_NAME
        return default if default.is_file() else None


DEFAULT_HISTORY_MINUTES = 30 * 24 * 60
