"""ccxt clients (async) configured from ExchangeSettings: the shared call budget, timeouts, URL overrides.

When an exchange's REST URL is not the real one (the simulator, a proxy), every REST base URL of the ccxt
client is moved onto it, keeping each URL's path, so that no call can leave for the real exchange. Binance
also gets options that keep ccxt on the spot `/api/v3` endpoints, and its spot error table merged into the
top-level one (ccxt consults the spot table only for URLs on api.binance.com), so errors map to the same
exception classes as on the real exchange.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import time
from typing import Any
from urllib.parse import urlsplit

from common import metrics
from common.exchanges.budget import ExchangeBudget, account_id, charges
from common.exchanges.errors import ExchangeBudgetExhaustedError, PermanentExchangeError, classify
from common.exchanges.ids import Exchange
from common.exchanges.settings import ExchangeSettings
from common.logging import quiet_wire_loggers

# Whatever the process's logging setup, ccxt's and websockets' DEBUG lines (keys, signatures) stay off.
quiet_wire_loggers()

# Without these, load_markets/fetch_balance reach sapi/fapi/dapi endpoints that a spot bot never needs
# (and that need keys or another host).
BINANCE_OPTIONS: dict[str, Any] = {
    "fetchCurrencies": False,
    "fetchMargins": False,
    "fetchMarkets": {"types": ["spot"]},
    "defaultType": "spot",
}


@functools.lru_cache(maxsize=4)
def _describe(exchange_id: str) -> dict[str, Any]:
    # Callers deep-copy what they keep: the cached description is shared.
    import ccxt

    described: dict[str, Any] = getattr(ccxt, exchange_id)().describe()
    return described


def _rewrite(value: Any, base: str) -> Any:
    if isinstance(value, dict):
        return {key: _rewrite(item, base) for key, item in value.items()}
    if isinstance(value, str) and value.startswith("http"):
        return base + urlsplit(value.replace("{hostname}", "host")).path
    return value


def _binance(rest: str, ws: str | None, ws_api: str | None) -> dict[str, Any]:
    described = _describe("binance")
    api: dict[str, Any] = {
        key: value
        for key, value in _rewrite(described["urls"]["api"], rest).items()
        if isinstance(value, str)
    }
    api.update(
        {
            "public": f"{rest}/api/v3",
            "private": f"{rest}/api/v3",
            "v1": f"{rest}/api/v1",
            "sapi": f"{rest}/sapi/v1",
        }
    )
    if ws is not None:
        ws_urls: dict[str, Any] = {"spot": f"{ws}/ws", "margin": f"{ws}/ws"}
        if ws_api is not None:
            ws_urls["ws-api"] = {"spot": ws_api}
        api["ws"] = ws_urls
    spot = described.get("exceptions", {}).get("spot", {})
    return {
        "urls": {"api": api},
        "options": copy.deepcopy(BINANCE_OPTIONS),
        "exceptions": {"exact": dict(spot.get("exact", {})), "broad": dict(spot.get("broad", {}))},
    }


def _upbit(rest: str, ws: str | None) -> dict[str, Any]:
    api: dict[str, Any] = {"public": rest, "private": rest}
    if ws is not None:
        api["ws"] = ws
    return {"urls": {"api": api}}


def ccxt_overrides(
    exchange: Exchange | str,
    rest_url: str,
    *,
    ws_url: str | None = None,
    ws_api_url: str | None = None,
) -> dict[str, Any]:
    """Constructor config moving a ccxt client's REST (and ccxt.pro WebSocket) URLs onto other bases.

    `rest_url` is the exchange's REST root as our settings name it (e.g. `http://127.0.0.1:8900/binance`);
    `ws_url` the market-stream root (`ws://…/binance`, `ws://…/upbit/websocket/v1`); `ws_api_url` the
    Binance WebSocket API URL.
    """
    exchange = Exchange(exchange)
    rest = rest_url.rstrip("/")
    ws = ws_url.rstrip("/") if ws_url else None
    if exchange is Exchange.BINANCE:
        return _binance(rest, ws, ws_api_url)
    return _upbit(rest, ws)


def ccxt_config(
    exchange: Exchange,
    settings: ExchangeSettings,
    *,
    api_key: str | None = None,
    secret: str | None = None,
) -> dict[str, Any]:
    """The constructor config create_ccxt uses (exposed for ccxt.pro clients)."""
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": int(settings.exchange_timeout_seconds * 1000),
    }
    if not settings.uses_real_exchange(exchange):
        ws_api = settings.binance_ws_api_url if exchange is Exchange.BINANCE else None
        config.update(
            ccxt_overrides(
                exchange, settings.rest_url(exchange), ws_url=settings.ws_url(exchange), ws_api_url=ws_api
            )
        )
    elif exchange is Exchange.BINANCE:
        config["options"] = copy.deepcopy(BINANCE_OPTIONS)
    if settings.rest_url(exchange).startswith("http://"):
        # ccxt waits 250 ms on close so TLS transports can shut down cleanly; plain HTTP has none.
        config["timeout_on_exit"] = 0
    if api_key is not None:
        config["apiKey"] = api_key
    if secret is not None:
        config["secret"] = secret
    return config


def call_outcome(exc: BaseException, exchange: str) -> tuple[str, str]:
    """The (outcome, kind) labels of a failed call: transient (budget_exhausted, cancelled, network) or
    permanent (the error's kind)."""
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled", ""
    error = classify(exc, exchange) if isinstance(exc, Exception) else None
    if isinstance(error, PermanentExchangeError):
        return "permanent", error.kind.value
    return "transient", "budget_exhausted" if isinstance(error, ExchangeBudgetExhaustedError) else "network"


@functools.lru_cache(maxsize=4)
def _budgeted_class(exchange: Exchange) -> Any:
    """ccxt's async client class of `exchange`, every REST call of which is charged to a budget first."""
    import ccxt.async_support as ccxt_async

    base: Any = getattr(ccxt_async, exchange.value)

    async def fetch2(
        self: Any,
        path: str,
        api: Any = "public",
        method: str = "GET",
        params: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> Any:
        params, config = params if params is not None else {}, config if config is not None else {}
        # ccxt's path template ("order", "ticker/price"), never the filled-in URL: a bounded label.
        endpoint = f"{method} {path}"
        try:
            cost = self.calculate_rate_limiter_cost(api, method, path, params, config)
            await self.gridbot_budget.spend(
                exchange, charges(exchange, api, method, path, cost), self.gridbot_account
            )
            began = time.perf_counter()
            try:
                result = await base.fetch2(self, path, api, method, params, config)
            finally:
                metrics.EXCHANGE_DURATION.labels(exchange.value, endpoint).observe(
                    time.perf_counter() - began
                )
        except BaseException as exc:
            metrics.EXCHANGE_CALLS.labels(exchange.value, endpoint, *call_outcome(exc, exchange.value)).inc()
            raise
        metrics.EXCHANGE_CALLS.labels(exchange.value, endpoint, "ok", "").inc()
        return result

    return type(f"Budgeted{base.__name__}", (base,), {"fetch2": fetch2})


def create_ccxt(
    exchange: Exchange,
    settings: ExchangeSettings,
    *,
    budget: ExchangeBudget,
    api_key: str | None = None,
    secret: str | None = None,
) -> Any:
    """A `ccxt.async_support` client for `exchange` whose every call is charged to `budget` first.

    Close it with `await client.close()`.
    """
    config = ccxt_config(exchange, settings, api_key=api_key, secret=secret)
    client = _budgeted_class(exchange)(config)
    client.gridbot_budget = budget
    client.gridbot_account = account_id(api_key)
    return client
