"""Live updates through the gateway's WebSocket, in `make run` and `make dev`: a paper bot's buy is pushed.

The socket connects before the bot exists, so its ticker reaches the gateway through the bot lifecycle on
the bus; the simulator's price moves through a buy level, and the socket receives the price, the trade and
the grid levels it changed. A logout closes the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from common.testing.wait import eventually
from launcher.testing import POLL, System, body, clients, grid_around, move, pending, register, sim_price

pytestmark = pytest.mark.e2e

D = Decimal


async def until(
    ws: ClientConnection, seen: list[dict[str, Any]], done: Any, within: float, what: str
) -> None:
    """Collect messages into `seen` until `done(seen)` holds; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not done(seen):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{what}; received {seen}")
        try:
            async with asyncio.timeout(remaining):
                seen.append(json.loads(await ws.recv(), parse_float=Decimal))
        except TimeoutError:
            continue


async def test_a_paper_bots_buy_is_pushed_to_its_users_socket(system: System, client_ip: str) -> None:
    exchange, symbol = "upbit", "KRW-ETH"
    async with clients(system, client_ip) as (api, sim):
        auth = await register(api)
        token = auth["authorization"].removeprefix("Bearer ")
        ws_url = system.gateway.replace("http://", "ws://", 1) + "/api/ws"
        async with connect(f"{ws_url}?token={token}") as ws:
            start = await sim_price(sim, exchange, symbol)
            await move(sim, exchange, symbol, start)  # pinned: only our moves trade from now on
            spec = grid_around(exchange, symbol, start, "0.05", 1, 10000, mode="paper")
            bot_id = body(await api.post("/api/bots", headers=auth, json=spec))["botId"]
            try:
                shown = body(await api.get(f"/api/bots/{bot_id}/grid-levels", headers=auth))["gridLevels"]
                levels = [level["price"] for level in shown]
                k = max(i for i, price in enumerate(levels) if price < start)

                async def resting() -> bool:
                    return await pending(api, auth, bot_id, "buy") == k + 1

                await eventually(resting, timeout=15, interval=POLL, message="buys never rested")
                await move(sim, exchange, symbol, levels[k])

                def pushed(seen: list[dict[str, Any]]) -> bool:
                    kinds = {(e["type"], e.get("side"), e.get("price")) for e in seen}
                    return ("trade", "buy", levels[k]) in kinds and (
                        any(e["type"] == "grid_level" for e in seen) and ("price", None, levels[k]) in kinds
                    )

                seen: list[dict[str, Any]] = []
                await until(ws, seen, pushed, 30, "the buy was not pushed")
                buy = next(e for e in seen if e["type"] == "trade")
                assert buy["botId"] == bot_id and buy["amount"] > 0 and buy["executedAt"].endswith("Z")
                changed = [e for e in seen if e["type"] == "grid_level"]
                assert all(e["botId"] == bot_id and e["side"] in ("buy", "sell") for e in changed)
                assert {e["price"] for e in changed} <= set(levels)
                price = next(e for e in seen if e["type"] == "price" and e["price"] == levels[k])
                assert (price["exchange"], price["ticker"]) == (exchange, symbol)
            finally:
                r = await api.delete(f"/api/bots/{bot_id}", headers=auth)
                assert r.status_code == 200, r.text

            r = await api.post("/api/auth/logout", headers=auth)
            assert r.status_code == 200, r.text
            # Read on (the delete pushed its own events) until the revocation sweep closes the socket.
            with contextlib.suppress(ConnectionClosed):
                async with asyncio.timeout(20):
                    while True:
                        await ws.recv()
            assert (ws.close_code, ws.close_reason) == (1008, "INVALID_TOKEN")
