"""A simulator on a free loopback port, shared by the session, plus ccxt clients pointed at it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt
import pytest

from common.testing.shared import shared_dir
from exchange_sim import SimServer, ccxt_overrides
from exchange_sim.testing import control_fixtures, sim_fixtures

Keys = dict[str, str]
WIRE_DIR = shared_dir() / "wire"


class Wire:
    """The real exchange messages in shared/wire; a missing sample fails the test, never skips it."""

    def path(self, name: str) -> Path:
        """A sample file."""
        assert WIRE_DIR.is_dir(), (
            f"wire samples not found at {WIRE_DIR} (../shared/wire beside the checkout, or GRIDBOT_SHARED_DIR)"
        )
        path = WIRE_DIR / name
        assert path.is_file(), f"wire sample {path} is missing"
        return path

    def json(self, name: str) -> Any:
        """A parsed JSON sample."""
        return json.loads(self.path(name).read_text(encoding="utf-8"))

    def ndjson(self, name: str) -> list[Any]:
        """Every object of an ndjson sample (leading spaces allowed, as published)."""
        lines = self.path(name).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="session")
def wire() -> Wire:
    """Access to the shared wire samples."""
    return Wire()


sim, http = sim_fixtures("http", ticker_interval_ms=0, fault_timeout_seconds=30)


new_account, set_price = control_fixtures("http")


@pytest.fixture
async def clients(sim: SimServer) -> AsyncIterator[Callable[[str, Keys | None], Any]]:
    """Make ccxt async clients for the simulator exactly as our services will; all are closed after."""
    made: list[Any] = []

    def make(exchange_id: str, keys: Keys | None = None, **extra: Any) -> Any:
        # timeout_on_exit: ccxt otherwise sleeps 250 ms in close(); nothing else differs from production use.
        config: dict[str, Any] = {**ccxt_overrides(exchange_id, sim.url), "timeout_on_exit": 0, **extra}
        if keys is not None:
            config.update({"apiKey": keys["apiKey"], "secret": keys["secretKey"]})
        client = getattr(ccxt, exchange_id)(config)
        made.append(client)
        return client

    yield make
    await asyncio.gather(*(client.close() for client in made))
