"""Configuration of the auth service, read from environment variables (field names upper-cased)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from common.settings import CacheSettings, DatabaseSettings, Environment, JwtSettings

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

    @model_validator(mode="after")
    def _refuse_weak_bcrypt(self) -> Self:
        if self.environment is not Environment.TEST and self.bcrypt_rounds < MIN_PRODUCTION_BCRYPT_ROUNDS:
            raise ValueError(
                f"bcrypt_rounds must be at least {MIN_PRODUCTION_BCRYPT_ROUNDS} outside the test environment"
            )
        return self
