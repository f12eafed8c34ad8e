"""Settings base for every service: environment variables, secrets as SecretStr, no placeholders in production.

The repository's development secrets are accepted only in development (or test) on a loopback HOST.
"""

from __future__ import annotations

import ipaddress
import json
import os
from enum import StrEnum
from typing import Any, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Secrets that ship in the repository for development; refused anywhere else.
DEV_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me-0000"
DEV_ENCRYPTION_KEY = "ZGV2LW9ubHktaW5zZWN1cmUtZW5jcnlwdGlvbi1rZXk="
# One token per internal route, each held only by the route's server and its one caller; development
# placeholders differ too, so that even `make dev` never lets one route's token open another.
DEV_INTERNAL_KEYS_TOKEN = "dev-only-insecure-internal-keys-token-change-me"
DEV_INTERNAL_BALANCE_TOKEN = "dev-only-insecure-internal-balance-token-change-me"
DEV_INTERNAL_TICKERS_TOKEN = "dev-only-insecure-internal-tickers-token-change-me"
_PLACEHOLDER_MARKERS = ("change-me", "changeme", "change_me", "placeholder", "dev-only", "insecure")
_PLACEHOLDER_VALUES = {"", "secret", "password", "jwt_secret", "your-secret", "test", "dev"}
MIN_SECRET_BYTES = 32
# The dotenv file every service also reads (the environment wins over it): GRIDBOT_ENV_FILE names another one,
# or none at all when empty, as the test suite sets it, so that a developer's .env (such as the deployment
# secrets `make secrets` writes for compose) never changes what a test sees.
ENV_FILE = os.environ.get("GRIDBOT_ENV_FILE", ".env") or None


def split_list(value: Any) -> Any:
    """A list setting from the environment, as JSON or comma separated ("10.0.0.0/8, 127.0.0.1").

    For fields annotated `Annotated[list[str], NoDecode]` (a `mode="before"` validator's body).
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class Environment(StrEnum):
    """Where the process runs; only development and test accept placeholder secrets."""

    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


def is_placeholder(value: str) -> bool:
    """True for an empty, known-default or too short secret."""
    lowered = value.strip().lower()
    if lowered in _PLACEHOLDER_VALUES:
        return True
    if any(marker in lowered for marker in _PLACEHOLDER_MARKERS):
        return True
    return len(value.encode()) < MIN_SECRET_BYTES


def is_loopback_host(host: str) -> bool:
    """True when a listen address admits this machine only (127.0.0.0/8, ::1, localhost)."""
    text = host.strip().strip("[]").lower()
    if text == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        # 0.0.0.0 parses (and is not loopback); a hostname other than localhost may resolve anywhere.
        return False


class ServiceSettings(BaseSettings):
    """Fields every service reads; subclasses add their own."""

    # hide_input_in_errors: a rejected value (a secret, say) must never be quoted in an error message.
    model_config = SettingsConfigDict(
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    environment: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"
    log_json: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Tracing and error tracking (docs/observability.md), off while unset. Read here so that deployments pass
    # them like any setting; `observability_env()` hands them to the OpenTelemetry SDK and the Sentry hook,
    # which read the process environment (an empty value is unset: compose passes one that .env leaves out).
    otel_traces_exporter: str = ""
    otel_exporter_otlp_endpoint: str = ""
    otel_service_name: str = ""
    otel_traces_sampler: str = ""
    otel_traces_sampler_arg: str = ""
    sentry_dsn: SecretStr | None = None
    sentry_environment: str = ""
    sentry_release: str = ""

    @field_validator("sentry_dsn", mode="before")
    @classmethod
    def _empty_dsn_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    def observability_env(self) -> dict[str, str | None]:
        """The OTEL_* and SENTRY_* variables as read: name → value, None where unset or empty."""
        values: dict[str, str | None] = {}
        for name in type(self).model_fields:
            if name.startswith(("otel_", "sentry_")):
                value = getattr(self, name)
                text = value.get_secret_value() if isinstance(value, SecretStr) else (value or "")
                values[name.upper()] = text.strip() or None
        return values

    @property
    def is_development(self) -> bool:
        """Development or test: loopback defaults allowed (placeholder secrets only on loopback too)."""
        return self.environment in (Environment.DEVELOPMENT, Environment.TEST)

    @property
    def accepts_dev_secrets(self) -> bool:
        """Development or test listening on loopback: the only case where the repository's secrets do."""
        # Whatever ENVIRONMENT says, a process reachable from other machines must not accept tokens that
        # anyone who reads this repository can sign.
        return self.is_development and is_loopback_host(self.host)

    def dev_secrets_refused_because(self) -> str:
        """Why the development placeholders are refused here (for error messages)."""
        if not self.is_development:
            return f"ENVIRONMENT={self.environment.value}"
        return f"HOST={self.host} is not a loopback address"

    def secret_fields(self) -> dict[str, SecretStr]:
        """Every SecretStr field of this settings object, by name."""
        found: dict[str, SecretStr] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                found[name] = value
            elif isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, SecretStr):
                        found[f"{name}[{key}]"] = item
        # Sentry's DSN is kept out of logs, but it is an address Sentry issued, not a key of ours to judge.
        found.pop("sentry_dsn", None)
        return found

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Self:
        if self.accepts_dev_secrets:
            return self
        bad = [
            name for name, secret in self.secret_fields().items() if is_placeholder(secret.get_secret_value())
        ]
        if bad:
            raise ValueError(
                f"placeholder or weak secrets are refused ({self.dev_secrets_refused_because()}): "
                f"{', '.join(sorted(bad))}"
            )
        return self


class DatabaseSettings(ServiceSettings):
    """A service that owns a schema in the database."""

    database_url: SecretStr = SecretStr("postgresql+asyncpg://postgres@127.0.0.1:5432/gridbot")
    # Connections per process, at most, each kept once opened (common.db.create_engine: no overflow).
    database_pool_size: int = Field(default=10, ge=1, le=200)

    def secret_fields(self) -> dict[str, SecretStr]:
        """Secrets minus the database URL, whose strength is the database's business."""
        fields = super().secret_fields()
        fields.pop("database_url", None)
        return fields


class CacheSettings(ServiceSettings):
    """A service that talks to Redis (or the in-memory stand-in: REDIS_URL=memory://)."""

    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    # Prefix of every key this deployment writes, so that several deployments can share one Redis.
    cache_namespace: str = "gridbot"

    def secret_fields(self) -> dict[str, SecretStr]:
        """Secrets minus the Redis URL."""
        fields = super().secret_fields()
        fields.pop("redis_url", None)
        return fields


class BusSettings(ServiceSettings):
    """A service on the message bus (RABBITMQ_URL=memory:// selects the in-process bus)."""

    rabbitmq_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    bus_namespace: str = ""

    def secret_fields(self) -> dict[str, SecretStr]:
        """Secrets minus the broker URL."""
        fields = super().secret_fields()
        fields.pop("rabbitmq_url", None)
        return fields


class InternalApiSettings(ServiceSettings):
    """A service that calls or serves internal routes: each route has a bearer token of its own."""

    def internal_tokens(self) -> dict[str, SecretStr]:
        """Every internal route token of this settings object, by field name."""
        return {
            name: secret
            for name, secret in self.secret_fields().items()
            if name.startswith("internal_") and name.endswith("_token")
        }

    @model_validator(mode="after")
    def _separate_route_tokens(self) -> Self:
        # A token opens one route; two routes sharing one would let either caller into both.
        if self.accepts_dev_secrets:
            return self
        seen: dict[str, str] = {}
        for name, secret in sorted(self.internal_tokens().items()):
            other = seen.setdefault(secret.get_secret_value(), name)
            if other != name:
                raise ValueError(
                    f"{other.upper()} and {name.upper()} must differ (one token per internal route)"
                )
        return self


class KeysTokenSettings(InternalApiSettings):
    """Token of `GET /internal/credentials/{user}/{exchange}` (keys): credentials checks, the engine calls."""

    internal_keys_token: SecretStr = SecretStr(DEV_INTERNAL_KEYS_TOKEN)


class BalanceTokenSettings(InternalApiSettings):
    """Token of `GET /internal/credentials/{user}/{exchange}/balance`: credentials checks, bots calls."""

    internal_balance_token: SecretStr = SecretStr(DEV_INTERNAL_BALANCE_TOKEN)


class TickersTokenSettings(InternalApiSettings):
    """`GET /internal/bots/running-tickers`: served by the bots service, called by market-data."""

    internal_tickers_token: SecretStr = SecretStr(DEV_INTERNAL_TICKERS_TOKEN)


class JwtSettings(ServiceSettings):
    """A service that verifies (or issues) JWTs."""

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_kid: str = "k1"
    # Older keys still accepted for verification during a rotation: {"k0": "..."}.
    jwt_previous_keys: dict[str, SecretStr] = Field(default_factory=dict)
    jwt_issuer: str = "gridbot"
    access_token_ttl_seconds: int = Field(default=3600, ge=60)
    refresh_token_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=300)

    def jwt_keys(self) -> dict[str, SecretStr]:
        """Every verification key by kid, the active one included."""
        keys = dict(self.jwt_previous_keys)
        keys[self.jwt_kid] = self.jwt_secret
        return keys


def redact_settings(settings: ServiceSettings) -> dict[str, Any]:
    """Settings as a dict with every secret masked, safe to log."""
    dumped = settings.model_dump(mode="json")
    return {
        k: ("**********" if isinstance(getattr(settings, k), SecretStr) else v) for k, v in dumped.items()
    }
