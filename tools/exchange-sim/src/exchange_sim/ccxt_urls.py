"""Pointing ccxt (and ccxt.pro) at the simulator: constructor overrides per exchange id.

Usage::

    import ccxt.async_support as ccxt
    from exchange_sim.ccxt_urls import ccxt_overrides

    exchange = ccxt.binance({"apiKey": key, "secret": secret, **ccxt_overrides("binance", "http://127.0.0.1:8900")})

What the overrides do:

* ``urls.api``: every REST base URL of the exchange is moved onto the simulator, keeping its path
  (``https://api.binance.com/api/v3`` -> ``<base>/binance/api/v3``, ``https://{hostname}`` ->
  ``<base>/upbit``), so no call can leave the machine; ccxt.pro's ``ws`` URLs are rewritten too
  (``<ws-base>/binance/ws``, ``<ws-base>/binance/ws-api/v3``, ``<ws-base>/upbit/websocket/v1``).
* Binance ``options`` keep ccxt on the spot ``/api/v3`` endpoints:
  ``fetchCurrencies: False`` (load_markets would call ``sapi/v1/capital/config/getall``),
  ``fetchMargins: False`` (it would call ``sapi/v1/margin/allPairs`` and ``isolated/allPairs``),
  ``fetchMarkets: {"types": ["spot"]}`` (no ``fapi``/``dapi`` exchangeInfo),
  ``defaultType: "spot"``.
* Binance ``exceptions``: ccxt looks up its spot error table only for URLs starting with
  ``https://api.binance.com/``; merging that table into the top-level one makes ccxt raise the same
  exception classes for the simulator as for the real exchange.
"""

from __future__ import annotations

import copy
import functools
from typing import Any
from urllib.parse import urlsplit

SUPPORTED = ("binance", "upbit")

BINANCE_OPTIONS: dict[str, Any] = {
    "fetchCurrencies": False,
    "fetchMargins": False,
    "fetchMarkets": {"types": ["spot"]},
    "defaultType": "spot",
}


def _ws_base(base_url: str) -> str:
    if base_url.startswith("https://"):
        return "wss://" + base_url[len("https://") :]
    if base_url.startswith("http://"):
        return "ws://" + base_url[len("http://") :]
    return base_url


@functools.lru_cache(maxsize=4)
def _describe(exchange_id: str) -> dict[str, Any] | None:
    # Callers deep-copy what they keep: the cached description is shared.
    try:
        import ccxt
    except ImportError:  # pragma: no cover - ccxt is installed wherever ccxt is pointed at us
        return None
    described: dict[str, Any] = getattr(ccxt, exchange_id)().describe()
    return described


def _rewrite(value: Any, base: str) -> Any:
    if isinstance(value, dict):
        return {key: _rewrite(item, base) for key, item in value.items()}
    if isinstance(value, str) and value.startswith("http"):
        path = urlsplit(value.replace("{hostname}", "host")).path
        return base + path
    return value


def _binance(base: str, ws: str) -> dict[str, Any]:
    described = _describe("binance")
    api: dict[str, Any] = {}
    exceptions: dict[str, Any] = {}
    if described is not None:
        api = {
            k: v
            for k, v in _rewrite(described["urls"]["api"], base + "/binance").items()
            if isinstance(v, str)
        }
        spot = described.get("exceptions", {}).get("spot", {})
        exceptions = {"exact": dict(spot.get("exact", {})), "broad": dict(spot.get("broad", {}))}
    api.update(
        {
            "public": f"{base}/binance/api/v3",
            "private": f"{base}/binance/api/v3",
            "v1": f"{base}/binance/api/v1",
            "sapi": f"{base}/binance/sapi/v1",
            "ws": {
                "spot": f"{ws}/binance/ws",
                "margin": f"{ws}/binance/ws",
                "ws-api": {"spot": f"{ws}/binance/ws-api/v3"},
            },
        }
    )
    overrides: dict[str, Any] = {"urls": {"api": api}, "options": copy.deepcopy(BINANCE_OPTIONS)}
    if exceptions:
        overrides["exceptions"] = exceptions
    return overrides


def _upbit(base: str, ws: str) -> dict[str, Any]:
    return {
        "urls": {
            "api": {
                "public": f"{base}/upbit",
                "private": f"{base}/upbit",
                "ws": f"{ws}/upbit/websocket/v1",
            }
        }
    }


def ccxt_overrides(exchange_id: str, base_url: str) -> dict[str, Any]:
    """Constructor config that points ccxt's `exchange_id` client at a simulator at `base_url`."""
    base = base_url.rstrip("/")
    ws = _ws_base(base)
    if exchange_id == "binance":
        return _binance(base, ws)
    if exchange_id == "upbit":
        return _upbit(base, ws)
    raise ValueError(f"the simulator speaks {', '.join(SUPPORTED)}, not {exchange_id!r}")
