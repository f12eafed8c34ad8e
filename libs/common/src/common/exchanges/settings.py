"""Where the exchanges are: one URL per exchange and protocol (the real ones by default, or the simulator)."""

from __future__ import annotations

from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from common.exchanges.ids import Exchange
from common.exchanges.limits import BUCKETS
from common.settings import ServiceSettings

DEFAULT_URLS: dict[str, str] = {
    "upbit_rest_url": "https://api.upbit.com",
    "upbit_ws_url": "wss://api.upbit.com/websocket/v1",
    "binance_rest_url": "https://api.binance.com",
    "binance_ws_url": "wss://stream.binance.com:9443",
    "binance_ws_api_url": "wss://ws-api.binance.com:443/ws-api/v3",
}
# The scheme each URL must have outside development: keys sign requests, prices drive orders.
_SECURE_SCHEME = {name: "wss" if "_ws" in name else "https" for name in DEFAULT_URLS}


def _ws(base: str) -> str:
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :]
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :]
    return base


def sim_exchange_env(base: str = "http://127.0.0.1:8900") -> dict[str, str]:
    """Environment values that point every exchange URL at an exchange simulator at `base`."""
    root = base.rstrip("/")
    ws = _ws(root)
    return {
        "UPBIT_REST_URL": f"{root}/upbit",
        "UPBIT_WS_URL": f"{ws}/upbit/websocket/v1",
        "BINANCE_REST_URL": f"{root}/binance",
        "BINANCE_WS_URL": f"{ws}/binance",
        "BINANCE_WS_API_URL": f"{ws}/binance/ws-api/v3",
    }


class ExchangeSettings(ServiceSettings):
    """Exchange endpoints and the time an exchange call may take."""

    upbit_rest_url: str = DEFAULT_URLS["upbit_rest_url"]
    upbit_ws_url: str = DEFAULT_URLS["upbit_ws_url"]
    binance_rest_url: str = DEFAULT_URLS["binance_rest_url"]
    # Stream paths are appended: /ws, /ws/<stream>, /stream?streams=...
    binance_ws_url: str = DEFAULT_URLS["binance_ws_url"]
    binance_ws_api_url: str = DEFAULT_URLS["binance_ws_api_url"]
    exchange_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    # How long a call may wait for room in the shared exchange call budget before failing (budget.py).
    exchange_budget_wait_seconds: float = Field(default=3.0, ge=0, le=120)
    # Other limits per window for the budget's buckets, {"<exchange>.<bucket>": units}, e.g.
    # {"binance.weight": 1500} when this IP is shared with another system (or tests want small ones).
    exchange_budget_limits: dict[str, int] = Field(default_factory=dict)

    @field_validator("exchange_budget_limits")
    @classmethod
    def _known_buckets(cls, value: dict[str, int]) -> dict[str, int]:
        known = {f"{exchange.value}.{bucket.name}" for exchange, found in BUCKETS.items() for bucket in found}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown budget buckets {unknown}; known: {sorted(known)}")
        if any(limit < 1 for limit in value.values()):
            raise ValueError("budget limits must be >= 1")
        return value

    @model_validator(mode="after")
    def _refuse_plaintext_exchanges(self) -> Self:
        # The simulator speaks http/ws; outside development a plaintext URL could only be a mistake or a
        # man in the middle: signed orders, API keys in headers and the prices that trigger orders.
        if self.is_development:
            return self
        bad = [
            f"{name.upper()} must be {scheme}://"
            for name, scheme in _SECURE_SCHEME.items()
            if urlsplit(getattr(self, name).strip()).scheme.lower() != scheme
        ]
        if bad:
            raise ValueError(f"exchange URLs outside development: {'; '.join(bad)}")
        return self

    @staticmethod
    def simulator(base: str = "http://127.0.0.1:8900") -> dict[str, str]:
        """Environment values for the exchange simulator at `base` (see sim_exchange_env)."""
        return sim_exchange_env(base)

    def rest_url(self, exchange: Exchange) -> str:
        """The REST base URL of an exchange (no trailing slash)."""
        url = self.upbit_rest_url if exchange is Exchange.UPBIT else self.binance_rest_url
        return url.rstrip("/")

    def ws_url(self, exchange: Exchange) -> str:
        """The public market-stream WebSocket URL of an exchange (no trailing slash)."""
        url = self.upbit_ws_url if exchange is Exchange.UPBIT else self.binance_ws_url
        return url.rstrip("/")

    def uses_real_exchange(self, exchange: Exchange) -> bool:
        """True when the REST URL is the real exchange's (no URL overrides needed)."""
        return self.rest_url(exchange) == DEFAULT_URLS[f"{exchange.value}_rest_url"]
