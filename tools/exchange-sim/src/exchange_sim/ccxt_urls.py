"""Pointing ccxt (and ccxt.pro) at the simulator: constructor overrides per exchange id.

Usage::

    import ccxt.async_support as ccxt
    from exchange_sim.ccxt_urls import ccxt_overrides

    exchange = ccxt.binance({"apiKey": key, "secret": secret, **ccxt_overrides("binance", "http://127.0.0.1:8900")})

A thin wrapper over `common.exchanges.ccxt_overrides` (the one recipe the services use too), with the
simulator's venue paths filled in:

* ``urls.api``: every REST base URL is moved onto ``<base>/binance`` or ``<base>/upbit`` keeping its path;
  ccxt.pro's ``ws`` URLs become ``<ws-base>/binance/ws``, ``<ws-base>/binance/ws-api/v3`` and
  ``<ws-base>/upbit/websocket/v1``.
* Binance ``options`` keep ccxt on the spot ``/api/v3`` endpoints, and its spot error table is merged into
  the top-level one so that errors map to the same exception classes as on the real exchange.
"""

from __future__ import annotations

from typing import Any

from common.exchanges import ccxt_client
from common.exchanges.ccxt_client import BINANCE_OPTIONS
from common.exchanges.settings import sim_exchange_env

SUPPORTED = ("binance", "upbit")
__all__ = ["BINANCE_OPTIONS", "SUPPORTED", "ccxt_overrides"]


def ccxt_overrides(exchange_id: str, base_url: str) -> dict[str, Any]:
    """Constructor config that points ccxt's `exchange_id` client at a simulator at `base_url`."""
    if exchange_id not in SUPPORTED:
        raise ValueError(f"the simulator speaks {', '.join(SUPPORTED)}, not {exchange_id!r}")
    env = sim_exchange_env(base_url)
    prefix = exchange_id.upper()
    return ccxt_client.ccxt_overrides(
        exchange_id,
        env[f"{prefix}_REST_URL"],
        ws_url=env[f"{prefix}_WS_URL"],
        ws_api_url=env.get(f"{prefix}_WS_API_URL"),
    )
