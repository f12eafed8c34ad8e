"""Keys replaced or deleted under a live bot, through the gateway only, in `make run` and `make dev`.

The simulator is the exchange: `GET /_sim/orders` is its record of each account's orders and
`GET /_sim/user-streams` shows which keys still hold a private stream open.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from common.testing.wait import eventually
from launcher.testing import (
    System,
    body,
    clients,
    grid_around,
    move,
    register,
    sim_account,
    sim_orders,
    sim_price,
)

pytestmark = pytest.mark.e2e

EXCHANGE = "upbit"
RESTING = "wait"  # Upbit's word for an order on the book
# Polls through the gateway count against the user's rate limit: every half second is plenty here.
POLL = 0.5


async def resting(sim: httpx.AsyncClient, api_key: str, symbol: str) -> list[dict[str, Any]]:
    """The account's orders on the book of that market."""
    return [
        o
        for o in await sim_orders(sim, api_key, EXCHANGE)
        if o["status"] == RESTING and o["symbol"] == symbol
    ]


async def user_streams(sim: httpx.AsyncClient, api_key: str) -> int:
    """Private connections the key holds open at the simulator."""
    r = await sim.get("/_sim/user-streams", params={"apiKey": api_key, "exchange": EXCHANGE})
    assert r.status_code == 200, r.text
    return sum(int(row["connections"]) for row in r.json())


async def live_bot(
    api: httpx.AsyncClient, sim: httpx.AsyncClient, auth: dict[str, str], symbol: str, api_key: str
) -> tuple[str, int]:
    """A running live bot around the pinned market price; its id and how many buys it rests."""
    price = await sim_price(sim, EXCHANGE, symbol)
    await move(sim, EXCHANGE, symbol, price)  # pinned: the replay no longer moves it
    r = await api.post(
        "/api/bots", headers=auth, json=grid_around(EXCHANGE, symbol, price, "0.05", 1, 10000, mode="live")
    )
    bot = body(r)
    assert r.status_code == 201 and bot["status"] == "running"
    levels = body(await api.get(f"/api/bots/{bot['botId']}/grid-levels", headers=auth))["gridLevels"]
    buys = sum(1 for level in levels[:-1] if level["price"] < price)

    async def placed() -> bool:
        return len(await resting(sim, api_key, symbol)) == buys

    await eventually(placed, timeout=20, interval=POLL, message="the bot's buys never rested")
    return bot["botId"], buys


async def shown(api: httpx.AsyncClient, auth: dict[str, str], bot_id: str) -> dict[str, Any]:
    """GET /api/bots/:id."""
    found: dict[str, Any] = body(await api.get(f"/api/bots/{bot_id}", headers=auth))
    return found


async def test_replaced_keys_of_another_account_trade_from_the_next_start(
    system: System, client_ip: str
) -> None:
    symbol = "KRW-XRP"
    async with clients(system, client_ip) as (api, sim):
        auth = await register(api)
        old = await sim_account(system.sim, KRW="2000000")
        r = await api.post("/api/credentials", headers=auth, json={"exchange": EXCHANGE, **old})
        assert r.status_code == 201, r.text
        bot_id, buys = await live_bot(api, sim, auth, symbol, old["apiKey"])
        try:
            r = await api.post(f"/api/bots/{bot_id}/stop", headers=auth)
            assert r.status_code == 200, r.text
            stopped = await shown(api, auth, bot_id)
            assert (stopped["status"], stopped["stopReason"]) == ("stopped", "user")
            assert await resting(sim, old["apiKey"], symbol) == []
            on_old = len(await sim_orders(sim, old["apiKey"], EXCHANGE))

            new = await sim_account(system.sim, KRW="2000000")
            r = await api.put(f"/api/credentials/{EXCHANGE}", headers=auth, json=new)
            assert r.status_code == 200, r.text

            async def old_stream_closed() -> bool:
                return await user_streams(sim, old["apiKey"]) == 0

            await eventually(
                old_stream_closed, timeout=15, message="the old keys' private stream stayed open"
            )
            r = await api.post(f"/api/bots/{bot_id}/start", headers=auth)
            assert r.status_code == 200, r.text

            async def on_the_new_account() -> bool:
                return len(await resting(sim, new["apiKey"], symbol)) == buys

            await eventually(
                on_the_new_account, timeout=20, interval=POLL, message="no order on the new account"
            )
            assert (
                len(await sim_orders(sim, old["apiKey"], EXCHANGE)) == on_old
            )  # nothing more on the old one
            running = await shown(api, auth, bot_id)
            assert (running["status"], running["stopReason"]) == ("running", None)
        finally:
            await sim.delete(f"/_sim/prices/{EXCHANGE}/{symbol}")
            r = await api.delete(f"/api/bots/{bot_id}", headers=auth)
            assert r.status_code == 200, r.text
        assert await resting(sim, new["apiKey"], symbol) == []


async def test_deleted_keys_stop_a_running_bot_cancel_its_orders_and_close_its_stream(
    system: System, client_ip: str
) -> None:
    symbol = "KRW-SOL"
    async with clients(system, client_ip) as (api, sim):
        auth = await register(api)
        keys = await sim_account(system.sim, KRW="2000000")
        r = await api.post("/api/credentials", headers=auth, json={"exchange": EXCHANGE, **keys})
        assert r.status_code == 201, r.text
        bot_id, _ = await live_bot(api, sim, auth, symbol, keys["apiKey"])
        try:

            async def stream_open() -> bool:
                return await user_streams(sim, keys["apiKey"]) >= 1

            await eventually(stream_open, timeout=15, message="the bot's private stream never opened")
            r = await api.delete(f"/api/credentials/{EXCHANGE}", headers=auth)
            assert r.status_code == 200, r.text

            async def stopped() -> bool:
                return (await shown(api, auth, bot_id))["status"] == "stopped"

            await eventually(stopped, timeout=20, interval=POLL, message="the bot never stopped")
            bot = await shown(api, auth, bot_id)
            assert bot["stopReason"] == "credentialRemoved" and bot["errorMessage"] is None
            listed = body(await api.get("/api/bots", headers=auth))["bots"]
            assert [(b["_id"], b["stopReason"]) for b in listed] == [(bot_id, "credentialRemoved")]
            # Cancelled at the exchange with the keys the engine still held, then the stream was closed.
            assert await resting(sim, keys["apiKey"], symbol) == []
            assert {o["status"] for o in await sim_orders(sim, keys["apiKey"], EXCHANGE)} == {"cancel"}

            async def stream_closed() -> bool:
                return await user_streams(sim, keys["apiKey"]) == 0

            await eventually(
                stream_closed, timeout=15, message="the deleted keys' private stream stayed open"
            )
        finally:
            await sim.delete(f"/_sim/prices/{EXCHANGE}/{symbol}")
            r = await api.delete(f"/api/bots/{bot_id}", headers=auth)
            assert r.status_code == 200, r.text
