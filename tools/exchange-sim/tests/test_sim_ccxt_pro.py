"""ccxt.pro's stream clients (a second, independent client implementation) against the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import ccxt.pro as ccxtpro
import pytest

from exchange_sim import ccxt_overrides
from exchange_sim.testing import eventually, wait_for_topic


@pytest.fixture
async def pro(sim) -> AsyncIterator[Callable[..., Any]]:
    """ccxt.pro clients pointed at the simulator; closed after the test."""
    made: list[Any] = []

    def make(exchange_id: str, keys: dict[str, str] | None = None) -> Any:
        config: dict[str, Any] = {**ccxt_overrides(exchange_id, sim.url), "timeout_on_exit": 0}
        if keys:
            config.update({"apiKey": keys["apiKey"], "secret": keys["secretKey"]})
        client = getattr(ccxtpro, exchange_id)(config)
        made.append(client)
        return client

    yield make
    await asyncio.gather(*(client.close() for client in made))


async def _topics(http) -> dict[str, int]:
    return dict((await http.get("/_sim/health")).json()["websocketTopics"])


async def test_binance_watch_ticker_and_orders(pro, http, new_account, set_price) -> None:
    await set_price("binance", "BTCUSDT", "100000")
    keys = await new_account(USDT=10000)
    exchange = pro("binance", keys)
    ticker_task = asyncio.create_task(exchange.watch_ticker("BTC/USDT"))

    async def ticker_subscribed() -> bool:
        return any(topic.startswith("binance:btcusdt@") for topic in await _topics(http))

    await eventually(ticker_subscribed)
    await set_price("binance", "BTCUSDT", "100700")
    assert (await asyncio.wait_for(ticker_task, 5))["last"] == 100700

    orders_task = asyncio.create_task(exchange.watch_orders("BTC/USDT"))
    await wait_for_topic(http, "binance:userDataStream")
    placed = await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 99000, {"clientOrderId": "pro-1"})
    orders = await asyncio.wait_for(orders_task, 5)
    assert [(o["id"], o["clientOrderId"], o["status"]) for o in orders] == [(placed["id"], "pro-1", "open")]


async def test_upbit_watch_ticker_and_orders(pro, http, new_account, set_price) -> None:
    await set_price("upbit", "KRW-BTC", "140000000")
    keys = await new_account(KRW=1000000)
    exchange = pro("upbit", keys)
    ticker_task = asyncio.create_task(exchange.watch_ticker("BTC/KRW"))
    await wait_for_topic(http, "upbit:ticker:KRW-BTC")
    ticker = await asyncio.wait_for(ticker_task, 5)  # the SNAPSHOT frame
    assert ticker["last"] == 140000000 and ticker["info"]["stream_type"] == "SNAPSHOT"

    orders_task = asyncio.create_task(exchange.watch_orders("BTC/KRW"))
    await wait_for_topic(http, "upbit:myOrder:KRW-BTC")
    placed = await exchange.create_order(
        "BTC/KRW", "limit", "buy", 0.001, 139000000, {"clientOrderId": "pro-u1"}
    )
    orders = await asyncio.wait_for(orders_task, 5)
    assert [(o["id"], o["clientOrderId"], o["status"]) for o in orders] == [(placed["id"], "pro-u1", "open")]
