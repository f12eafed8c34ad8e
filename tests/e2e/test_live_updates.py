"""Live updates through the gateway's WebSocket, in `make run` and `make dev`: a paper bot's buy is pushed.

The socket connects before the bot exists, so its ticker reaches the gateway through the bot lifecycle on
the bus; the simulator's price moves through a buy level, and the socket receives the price, the trade and
the grid levels it changed. A logout closes the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from common.testing.wait import eventually
from launcher.testing import (
    POLL,
    System,
    body,
    clients,
    grid_around,
    level_prices,
    move,
    pending,
    register,
    sim_price,
    until,
)

pytestmark = pytest.mark.e2e

D = Decimal


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


def status_events(seen: list[dict[str, Any]], bot_id: str) -> list[str]:
    """The statuses pushed for one bot, in order."""
    return [e["status"] for e in seen if e["type"] == "bot_status" and e["botId"] == bot_id]


async def test_each_user_hears_only_their_own_bots_and_every_start_and_stop(
    system: System, client_ip: str
) -> None:
    async with clients(system, client_ip) as (api, sim):
        alice, bob = await register(api), await register(api)
        ws_url = system.gateway.replace("http://", "ws://", 1) + "/api/ws"
        token = alice["authorization"].removeprefix("Bearer ")
        # Alice's token travels as a browser sends it: in the Sec-WebSocket-Protocol header, after "bearer".
        async with (
            connect(ws_url, subprotocols=[Subprotocol("bearer"), Subprotocol(token)]) as ws_a,
            connect(f"{ws_url}?token={bob['authorization'].removeprefix('Bearer ')}") as ws_b,
        ):
            assert ws_a.subprotocol == "bearer" and ws_b.subprotocol is None
            bots: dict[str, str] = {}
            for who, auth, symbol in (("alice", alice, "KRW-ETH"), ("bob", bob, "KRW-XRP")):
                start = await sim_price(sim, "upbit", symbol)
                await move(sim, "upbit", symbol, start)
                spec = grid_around("upbit", symbol, start, "0.05", 1, 10000, mode="paper", autoStart=False)
                bots[who] = body(await api.post("/api/bots", headers=auth, json=spec))["botId"]
            a_seen: list[dict[str, Any]] = []
            b_seen: list[dict[str, Any]] = []
            try:
                # Alice starts her bot, it trades, she stops it: each status reaches her socket.
                assert (
                    body(await api.post(f"/api/bots/{bots['alice']}/start", headers=alice))["status"]
                    == "running"
                )
                await until(
                    ws_a, a_seen, lambda s: "running" in status_events(s, bots["alice"]), 30, "no running"
                )
                levels = await level_prices(api, alice, bots["alice"])
                start = await sim_price(sim, "upbit", "KRW-ETH")
                k = max(i for i, price in enumerate(levels) if price < start)

                async def resting() -> bool:
                    return await pending(api, alice, bots["alice"], "buy") == k + 1

                await eventually(resting, timeout=15, interval=POLL, message="buys never rested")
                await move(sim, "upbit", "KRW-ETH", levels[k])
                await until(ws_a, a_seen, lambda s: any(e["type"] == "trade" for e in s), 30, "no trade")
                assert (
                    body(await api.post(f"/api/bots/{bots['alice']}/stop", headers=alice))["status"]
                    == "stopped"
                )
                await until(
                    ws_a, a_seen, lambda s: "stopped" in status_events(s, bots["alice"]), 30, "no stop"
                )

                # Bob's own start and stop come after all of Alice's events on the gateway's one queue of
                # user events: once his stop has reached him, any of hers sent his way would have too.
                for action, status in (("start", "running"), ("stop", "stopped")):
                    r = await api.post(f"/api/bots/{bots['bob']}/{action}", headers=bob)
                    assert body(r)["status"] == status

                    def heard(s: list[dict[str, Any]], status: str = status) -> bool:
                        return status in status_events(s, bots["bob"])

                    await until(ws_b, b_seen, heard, 30, f"bob's bot never pushed {status}")
                # The same barrier the other way: Alice starts again after Bob's events.
                assert (await api.post(f"/api/bots/{bots['alice']}/start", headers=alice)).status_code == 200
                await until(
                    ws_a,
                    a_seen,
                    lambda s: status_events(s, bots["alice"]).count("running") == 2,
                    30,
                    "no restart",
                )
            finally:
                for who, auth in (("alice", alice), ("bob", bob)):
                    assert (await api.delete(f"/api/bots/{bots[who]}", headers=auth)).status_code == 200

            assert status_events(a_seen, bots["alice"]) == ["running", "stopped", "running"]
            assert status_events(b_seen, bots["bob"]) == ["running", "stopped"]
            assert next(e for e in a_seen if e["type"] == "bot_status") == {
                "type": "bot_status",
                "botId": bots["alice"],
                "status": "running",
            }
            # Nobody heard a word about the other's bot, nor the other's market.
            assert {e["botId"] for e in a_seen if "botId" in e} == {bots["alice"]}
            assert {e["botId"] for e in b_seen if "botId" in e} == {bots["bob"]}
            assert {e["ticker"] for e in a_seen if e["type"] == "price"} <= {"KRW-ETH"}
            assert {e["ticker"] for e in b_seen if e["type"] == "price"} <= {"KRW-XRP"}
