"""Configuration of the notifier service, read from environment variables (field names upper-cased)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.crypto import EncryptionSettings
from common.settings import BusSettings, CacheSettings, DatabaseSettings, JwtSettings


class Settings(DatabaseSettings, CacheSettings, BusSettings, JwtSettings, EncryptionSettings):
    """Everything the notifier reads: database, cache, bus, JWT, the key that seals channel secrets, delivery pace.

    `ENCRYPTION_KEY` here seals channel secrets (bot tokens, webhook secrets) as the credentials service seals
    exchange keys; compose gives the notifier a key of its own (`NOTIFIER_ENCRYPTION_KEY` in .env).
    """

    model_config = SettingsConfigDict(hide_input_in_errors=True)

    port: int = Field(default=3010, ge=0, le=65535)
    # Apply the Alembic migrations when the app starts (embedded mode; the real topology migrates first).
    migrate_on_start: bool = False
    # A delivery tried this many times without a 2xx is dead (kept, listed, never sent again).
    delivery_max_attempts: int = Field(default=8, ge=1, le=50)
    # Retry n waits about min(cap, base * 2**(n-1)) seconds, half of it random (common.retry, Jitter.HALF).
    delivery_retry_base_seconds: float = Field(default=2.0, gt=0, le=3600)
    delivery_retry_cap_seconds: float = Field(default=600.0, gt=0, le=86400)
    # One attempt's bound (connect, send, answer); a claimed delivery is someone else's again after it.
    delivery_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # The delivery worker looks for due deliveries this often (besides being woken by new ones).
    delivery_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # Deliveries sent at once by one process.
    delivery_concurrency: int = Field(default=8, ge=1, le=100)

    @property
    def allows_private_targets(self) -> bool:
        """Webhooks to private, loopback or link-local addresses: only in development and test (local receivers)."""
        return self.is_development
