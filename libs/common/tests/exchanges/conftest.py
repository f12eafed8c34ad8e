"""A paused exchange simulator and ccxt clients made by the kit's create_ccxt, as services make them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from common.cache import InMemoryCache
from common.exchanges import Exchange, ExchangeBudget, ExchangeSettings, create_ccxt, sim_exchange_env
from exchange_sim import SimServer
from exchange_sim.testing import control_fixtures, sim_fixtures

Keys = dict[str, str]


sim, http = sim_fixtures("http", fault_timeout_seconds=10)


@pytest.fixture
async def clean_faults(http: httpx.AsyncClient) -> AsyncIterator[None]:
    """No fault survives its test."""
    yield
    await http.delete("/_sim/faults")


@pytest.fixture
def exchange_settings(sim: SimServer) -> ExchangeSettings:
    """Exchange URLs pointing at the simulator, with a short timeout."""
    env: dict[str, Any] = {key.lower(): value for key, value in sim_exchange_env(sim.url).items()}
    return ExchangeSettings(exchange_timeout_seconds=1.0, **env)


@pytest.fixture
async def ccxt_client(exchange_settings: ExchangeSettings) -> AsyncIterator[Callable[..., Any]]:
    """Make ccxt clients with create_ccxt; all are closed afterwards."""
    made: list[Any] = []
    budget = ExchangeBudget(InMemoryCache())

    def make(exchange: Exchange, keys: Keys | None = None) -> Any:
        client = create_ccxt(
            exchange,
            exchange_settings,
            budget=budget,
            api_key=keys["apiKey"] if keys else None,
            secret=keys["secretKey"] if keys else None,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


new_account, set_price = control_fixtures("http")
