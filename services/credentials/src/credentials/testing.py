"""Test support for the credentials service (fixtures live in services/credentials/tests/conftest.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from common.exchanges import sim_exchange_env
from common.logging import JsonFormatter
from common.testing.service import Backend as Backend
from common.testing.service import EnvelopeSink
from common.testing.service import User as User
from common.testing.service import error_code as error_code
from credentials.settings import Settings

JWT_SECRET = "credentials-tests-jwt-secret-0123456789abcdef-0123456789abcdef"
# Fixed test keys (random bytes, base64): version 1 and the rotation target, version 2.
ENCRYPTION_KEY_V1 = "Wys6RTs+fDrrqvVOUDoAOqgVxMnVCSUptVjtyPnErnI="
ENCRYPTION_KEY_V2 = "z7JoXBBxV6du0AdXZleHQDsU1vnRG0IsBjheqG63oUU="
# The engine's token (keys route) and the bots service's (balance route).
KEYS_TOKEN = "credentials-tests-keys-token-0123456789abcdef-0123456789abcd"
BALANCE_TOKEN = "credentials-tests-balance-token-0123456789abcdef-0123456789"


# Credential events (credential.invalidated, credential.deleted) as the tests receive them.
EventSink = EnvelopeSink


@dataclass(frozen=True)
class SimKeys:
    """Keys minted by the exchange simulator (valid on both venues)."""

    api_key: str
    secret_key: str

    def body(self, exchange: str, **extra: Any) -> dict[str, Any]:
        """A POST /credentials (or validate-credentials) body with these keys."""
        return {"exchange": exchange, "apiKey": self.api_key, "secretKey": self.secret_key, **extra}


def make_settings(backend: Backend, sim_url: str, namespace: str, **overrides: Any) -> Settings:
    """Settings for one app under test: its namespaces, the simulator, quick timings, no background pass."""
    values: dict[str, Any] = {key.lower(): value for key, value in sim_exchange_env(sim_url).items()}
    values.update(backend.values(namespace))
    values.update(
        jwt_secret=JWT_SECRET,
        encryption_key=ENCRYPTION_KEY_V1,
        encryption_key_version=1,
        internal_keys_token=KEYS_TOKEN,
        internal_balance_token=BALANCE_TOKEN,
        # Generous for a loaded CI machine; the tests of timeouts lower it.
        exchange_timeout_seconds=3.0,
        # Tests drive re-validation passes themselves (Revalidator.run_once).
        revalidate_interval_seconds=0,
        outbox_poll_seconds=0.5,
    )
    values.update(overrides)
    return Settings(**values)


class LogRecorder(logging.Handler):
    """Every log record rendered as the service would write it (JSON with extras, and raw)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._json = JsonFormatter("test")

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the JSON line, the raw message and its arguments (redaction must not be what saves us)."""
        try:
            self.lines.append(self._json.format(record))
            self.lines.append(record.getMessage())
            self.lines.append(repr(record.args))
            self.lines.append(repr({k: v for k, v in record.__dict__.items() if k not in ("args", "msg")}))
        except Exception as exc:  # a record that cannot be rendered is still inspected by its repr
            self.lines.append(f"{type(exc).__name__}: {record.msg!r} {record.args!r}")

    def leaks(self, secrets: Iterable[str]) -> list[str]:
        """Lines that contain any of the secrets (empty when none does)."""
        wanted = [s for s in secrets if s]
        return [line for line in self.lines if any(secret in line for secret in wanted)]
