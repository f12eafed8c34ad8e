"""Configuration of the credentials service, read from environment variables (field names upper-cased)."""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from common.crypto import EncryptionSettings
from common.exchanges import ExchangeSettings
from common.settings import (
    BalanceTokenSettings,
    BusSettings,
    CacheSettings,
    DatabaseSettings,
    JwtSettings,
    KeysTokenSettings,
)


class Settings(
    KeysTokenSettings,
    BalanceTokenSettings,
    DatabaseSettings,
    CacheSettings,
    BusSettings,
    JwtSettings,
    ExchangeSettings,
    EncryptionSettings,
):
    """Everything the credentials service reads: database, cache, bus, JWT, exchanges, keys, route tokens.

    INTERNAL_KEYS_TOKEN opens the keys route only (the engine's); INTERNAL_BALANCE_TOKEN the balance route
    only (the bots service's); outside development they must differ.
    """

    # Never echo a rejected value (ENCRYPTION_KEY, an internal token) in a validation error.
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    port: int = Field(default=3002, ge=0, le=65535)
    # This server's public egress IP, checked against a credential's ipWhitelist (warnings only).
    egress_ip: str | None = None
    # Stored keys not validated for this long are re-validated in the background (0 disables).
    revalidate_interval_seconds: float = Field(default=3600.0, ge=0)
    revalidate_concurrency: int = Field(default=4, ge=1, le=64)
    revalidate_batch_size: int = Field(default=200, ge=1, le=10_000)
    # The outbox relay polls this often besides being nudged after each commit.
    outbox_poll_seconds: float = Field(default=5.0, gt=0, le=3600)
    # Apply the Alembic migrations when the app starts (embedded mode; the real topology migrates first).
    migrate_on_start: bool = False

    @field_validator("egress_ip")
    @classmethod
    def _check_egress_ip(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise ValueError("EGRESS_IP must be an IPv4 or IPv6 address") from None


def load_settings() -> Settings:
    """Settings from the environment; a configuration error exits with a message that quotes no value."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        # hide_input_in_errors: the text names fields and reasons, never the rejected values.
        raise SystemExit(f"credentials: invalid configuration\n{exc}") from None
