"""`stopAtMax` through the gateway, in `make run` and `make dev`: a price above the grid stops a live bot and
cancels its orders at the exchange."""

from __future__ import annotations

from decimal import Decimal

import pytest

from common.testing.wait import eventually
from launcher.testing import (
    POLL,
    System,
    body,
    clients,
    connect_keys,
    grid_around,
    level_prices,
    move,
    pending,
    register,
    sim_orders,
    sim_price,
    trades_of,
)

pytestmark = pytest.mark.e2e


async def test_a_price_above_the_grid_stops_the_bot_and_cancels_its_orders(
    system: System, client_ip: str
) -> None:
    exchange, symbol = "upbit", "KRW-ETH"
    async with clients(system, client_ip) as (api, sim):
        auth = await register(api)
        api_key = await connect_keys(api, sim, auth, exchange)
        start = await sim_price(sim, exchange, symbol)
        await move(sim, exchange, symbol, start)
        spec = grid_around(exchange, symbol, start, "0.05", 1, 10000, mode="live", stopAtMax=True)
        bot_id = body(await api.post("/api/bots", headers=auth, json=spec))["botId"]
        try:
            levels = await level_prices(api, auth, bot_id)
            k = max(i for i, price in enumerate(levels) if price < start)

            async def resting() -> bool:
                orders = await sim_orders(sim, api_key, exchange)
                return [o["status"] for o in orders] == ["wait"] * (k + 1)

            await eventually(resting, timeout=15, interval=POLL, message="buys never rested at the exchange")

            # One step above the top level (the upper price).
            await move(sim, exchange, symbol, levels[-1] + (levels[-1] - levels[-2]))

            async def stopped() -> bool:
                return body(await api.get(f"/api/bots/{bot_id}", headers=auth))["status"] == "stopped"

            await eventually(stopped, timeout=15, interval=POLL, message="the bot never stopped")
            shown = body(await api.get(f"/api/bots/{bot_id}", headers=auth))
            assert (shown["stopReason"], shown.get("errorMessage"), shown["totalTrades"]) == (
                "stopAtMax",
                None,
                0,
            )

            orders = await sim_orders(sim, api_key, exchange)
            assert sorted((o["side"], o["status"], Decimal(o["price"])) for o in orders) == [
                ("BUY", "cancel", price) for price in levels[: k + 1]
            ]
            assert all(o["fills"] == [] for o in orders)
            assert await pending(api, auth, bot_id, "buy") == 0
            assert await pending(api, auth, bot_id, "sell") == 0
            assert await trades_of(api, auth, bot_id) == []
        finally:
            r = await api.delete(f"/api/bots/{bot_id}", headers=auth)
            assert r.status_code == 200, r.text
