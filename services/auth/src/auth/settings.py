"""Configuration of the auth service, read from environment variables (field names upper-cased)."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from common.settings import CacheSettings, DatabaseSettings, Environment, JwtSettings, split_list

# OWASP's floor for bcrypt today; lower costs are only for the test suite's speed.
MIN_PRODUCTION_BCRYPT_ROUNDS = 12
MIN_TEST_BCRYPT_ROUNDS = 4


class Settings(DatabaseSettings, CacheSettings, JwtSettings):
    """Everything the auth service reads: database, cache, JWT keys and password hashing cost."""

    port: int = Field(default=3001, ge=0, le=65535)
    bcrypt_rounds: int = Field(default=12, ge=MIN_TEST_BCRYPT_ROUNDS, le=31)
    # Apply the Alembic migrations when the app starts (the embedded one-process mode wants this;
    # the real topology runs `python -m auth.migrate` as its own step).
    migrate_on_start: bool = False
    # Emails that are administrators (JSON list or comma separated): at registration, and promoted at start.
    admin_emails: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The bots service (its admin route stops a disabled user's bots, authorised by the admin's own token).
    bots_url: str = "http://127.0.0.1:3004"
    bots_timeout_seconds: float = Field(default=60.0, gt=0)
    # How often the disabled users' markers are written to the cache again (Redis keeps nothing on disk).
    disabled_refresh_seconds: float = Field(default=60.0, gt=0)

    @field_validator("admin_emails", mode="before")
    @classmethod
    def _admin_list(cls, value: Any) -> Any:
        listed = split_list(value)
        return [str(email).strip().lower() for email in listed] if isinstance(listed, list) else listed

    @model_validator(mode="after")
    def _refuse_weak_bcrypt(self) -> Self:
        if self.environment is not Environment.TEST and self.bcrypt_rounds < MIN_PRODUCTION_BCRYPT_ROUNDS:
            raise ValueError(
                f"bcrypt_rounds must be at least {MIN_PRODUCTION_BCRYPT_ROUNDS} outside the test environment"
            )
        return self
