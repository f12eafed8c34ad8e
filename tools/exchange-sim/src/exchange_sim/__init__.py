"""A local exchange speaking Upbit's and Binance's REST and WebSocket APIs (dev and tests)."""

from exchange_sim.app import create_app
from exchange_sim.ccxt_urls import ccxt_overrides
from exchange_sim.server import SimServer, running_sim, serve_in_background
from exchange_sim.settings import SimSettings

__all__ = [
    "SimServer",
    "SimSettings",
    "ccxt_overrides",
    "create_app",
    "running_sim",
    "serve_in_background",
]
