"""A request signed after the replica's authority ran out is withheld (live/client.py ACT_DEADLINE).

The case it closes: a replica paused (GC, SIGSTOP) while its order request waited in ccxt's throttle sent it
on waking, after another replica had taken the bot over and its own placement of the same client order id
had filled; the exchange, which keeps client order ids unique among open orders only, took a second order.
"""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import pytest

from common.cache.memory import InMemoryCache
from common.exchanges import (
    Exchange,
    ExchangeBudget,
    ExchangeSettings,
    RequestWithheldError,
    call,
    sim_exchange_env,
)
from engine.live.client import ACT_DEADLINE, ExchangeClient
from engine.live.credentials import Keys
from exchange_sim import SimServer
from gridcore import Side

PRICE, QTY = Decimal("90000"), Decimal("0.0002")


async def _client(sim: SimServer, sim_http: httpx.AsyncClient) -> tuple[ExchangeClient, str]:
    created = (await sim_http.post("/_sim/accounts", json={"balances": {"USDT": "1000"}})).json()
    settings = ExchangeSettings.model_validate({k.lower(): v for k, v in sim_exchange_env(sim.url).items()})
    keys = Keys(created["apiKey"], created["secretKey"])
    return ExchangeClient(Exchange.BINANCE, settings, keys, ExchangeBudget(InMemoryCache())), keys.api_key


async def _orders(sim_http: httpx.AsyncClient, api_key: str) -> list[tuple[str, str]]:
    response = await sim_http.get("/_sim/orders", params={"apiKey": api_key, "exchange": "binance"})
    return [(o["clientOrderId"], o["status"]) for o in response.json()]


async def test_a_place_or_cancel_past_the_deadline_never_reaches_the_exchange(
    sim: SimServer, sim_http: httpx.AsyncClient
) -> None:
    client, api_key = await _client(sim, sim_http)
    try:
        token = ACT_DEADLINE.set(time.monotonic() - 0.001)
        try:
            with pytest.raises(RequestWithheldError):
                await client.place("BTCUSDT", Side.BUY, PRICE, QTY, "withheld-b1")
        finally:
            ACT_DEADLINE.reset(token)
        assert await _orders(sim_http, api_key) == []

        # Within its authority the same request goes out; a cancel past it does not (and is not retried).
        token = ACT_DEADLINE.set(time.monotonic() + 60)
        try:
            await client.place("BTCUSDT", Side.BUY, PRICE, QTY, "withheld-b1")
        finally:
            ACT_DEADLINE.reset(token)
        token = ACT_DEADLINE.set(time.monotonic() - 0.001)
        try:
            with pytest.raises(RequestWithheldError):
                await call(client.cancel, "BTCUSDT", "withheld-b1", None, attempts=3)
        finally:
            ACT_DEADLINE.reset(token)
        assert await _orders(sim_http, api_key) == [("withheld-b1", "NEW")]
        # Reads and requests outside any deadline are not concerned.
        assert await client.cancel("BTCUSDT", "withheld-b1", None) is True
    finally:
        await client.close()


def test_a_never_seen_order_another_process_committed_waits_out_the_recv_window_on_binance() -> None:
    from engine.live.inherited import InheritedPlacements

    inherited = InheritedPlacements(wait_seconds=60)
    # Another process's order: not before its request (signed with that recvWindow) can no longer land.
    assert not inherited.may_place("binance", "theirs-b1")
    assert not inherited.may_place("binance", "theirs-b1")
    assert InheritedPlacements(wait_seconds=0).may_place("binance", "theirs-b1")
    # Our own attempt, or Upbit's identifiers (unique for good): at once.
    inherited.trying("mine-b1")
    assert inherited.may_place("binance", "mine-b1")
    assert inherited.may_place("upbit", "theirs-b2")
