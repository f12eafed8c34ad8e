"""Test support for the backtest service (and the e2e tests): settings of an app under test."""

from __future__ import annotations

from typing import Any

from backtest.settings import Settings
from common.exchanges.settings import sim_exchange_env
from common.testing.service import Backend

JWT_SECRET = "backtest-tests-jwt-secret-0123456789abcdef-0123456789abcdef-0123"


def make_settings(backend: Backend, sim_url: str, namespace: str, **overrides: Any) -> Settings:
    """Settings for one app under test: its namespaces, the simulator, quick timings."""
    values: dict[str, Any] = {key.lower(): value for key, value in sim_exchange_env(sim_url).items()}
    values.update(backend.values(namespace))
    values.update(jwt_secret=JWT_SECRET, exchange_timeout_seconds=2.0, outbox_poll_seconds=0.5)
    values.update(overrides)
    return Settings(**values)
