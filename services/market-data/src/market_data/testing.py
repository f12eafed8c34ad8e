"""Test support for market-data (fixtures live in services/market-data/tests/conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from common.contracts.envelope import Envelope
from common.contracts.market import PriceTick
from common.exchanges import sim_exchange_env
from common.testing.shared import shared_dir
from common.testing.wait import eventually
from market_data.settings import Settings

JWT_SECRET = "market-data-tests-jwt-secret-0123456789abcdef-0123456789abcdef"
WIRE_DIR = shared_dir() / "wire"

PriceMover = Callable[[str, str, str], Awaitable[None]]


class Wire:
    """The exchanges' real messages in shared/wire; a missing sample fails the test."""

    def path(self, name: str) -> Path:
        """A sample file."""
        path = WIRE_DIR / name
        assert path.is_file(), f"wire sample {path} is missing"
        return path

    def json(self, name: str) -> Any:
        """A parsed JSON sample."""
        return json.loads(self.path(name).read_text(encoding="utf-8"))

    def ndjson(self, name: str) -> list[Any]:
        """Every object of an ndjson sample."""
        lines = self.path(name).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def raw_lines(self, name: str) -> list[bytes]:
        """Every line of an ndjson sample as the bytes a WebSocket frame would carry."""
        return [line.strip() for line in self.path(name).read_bytes().splitlines() if line.strip()]


def make_settings(
    sim_url: str, redis_url: str, rabbitmq_url: str, namespace: str, **overrides: Any
) -> Settings:
    """Settings for one app under test: its own namespaces, the simulator, quick timings."""
    values: dict[str, Any] = {key.lower(): value for key, value in sim_exchange_env(sim_url).items()}
    values.update(
        environment="test",
        log_json=False,
        redis_url=redis_url,
        cache_namespace=namespace,
        rabbitmq_url=rabbitmq_url,
        bus_namespace=namespace,
        jwt_secret=JWT_SECRET,
        # Generous: on a loaded machine ccxt's own parsing counts against it; the tests of bounded answers
        # set a short one themselves.
        exchange_timeout_seconds=5.0,
        stream_debounce_ms=20,
        stream_backoff_initial_seconds=0.2,
        stream_backoff_max_seconds=1.0,
        stream_probe_timeout_seconds=2.0,
    )
    values.update(overrides)
    return Settings(**values)


class TickSink:
    """A consumer of the `market` exchange keeping every PriceTick it received."""

    def __init__(self) -> None:
        self.ticks: list[PriceTick] = []

    async def handle(self, envelope: Envelope) -> None:
        """Bus handler."""
        self.ticks.append(envelope.payload_as(PriceTick))

    def of(self, exchange: str, ticker: str) -> list[PriceTick]:
        """Ticks of one ticker, in arrival order."""
        return [t for t in self.ticks if t.exchange == exchange and t.ticker == ticker]

    async def wait_for(self, predicate: Callable[[PriceTick], bool], within: float = 5.0) -> PriceTick:
        """The first tick (already received or arriving before the deadline) matching `predicate`."""
        await eventually(lambda: any(predicate(t) for t in self.ticks), timeout=within)
        return next(t for t in self.ticks if predicate(t))


async def wait_for_topics(
    sim_http: httpx.AsyncClient, *topics: str, present: bool = True, within: float = 5.0
) -> None:
    """Until the simulator shows (or no longer shows) WebSocket subscriptions to these topics."""

    async def check() -> bool:
        current = (await sim_http.get("/_sim/health")).json()["websocketTopics"]
        return all((topic in current) is present for topic in topics)

    await eventually(check, timeout=within, interval=0.02)


def error_code(response: httpx.Response) -> str:
    """The error code of an error envelope (asserting the envelope's shape)."""
    body = response.json()
    assert body["success"] is False and set(body["error"]) == {"code", "message", "details"}, body
    code: str = body["error"]["code"]
    return code
