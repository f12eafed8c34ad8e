"""Changing a bot and a credential through the gateway (`PUT /api/bots/:id`, `PUT /api/credentials/:exchange`),
in `make run` and `make dev`, with the simulator's order book as the witness of what the engine placed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

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
    refusal,
    register,
    sim_account,
    sim_orders,
    sim_price,
    trades_of,
    upbit_buy_qty,
)

pytestmark = pytest.mark.e2e

D = Decimal
EXCHANGE, SYMBOL = "upbit", "KRW-ETH"


def bids(orders: list[dict[str, Any]], state: str = "wait") -> dict[str, tuple[Decimal, Decimal]]:
    """clientOrderId -> (price, quantity) of the account's bids in that Upbit state."""
    return {
        o["clientOrderId"]: (D(o["price"]), D(o["quantity"]))
        for o in orders
        if o["side"] == "BUY" and o["status"] == state
    }


async def test_order_amount_changes_new_orders_and_geometry_needs_a_stopped_bot(
    system: System, client_ip: str
) -> None:
    async with clients(system, client_ip) as (api, sim):
        auth = await register(api)
        api_key = await connect_keys(api, sim, auth, EXCHANGE)
        start = await sim_price(sim, EXCHANGE, SYMBOL)
        await move(sim, EXCHANGE, SYMBOL, start)  # pinned: only our moves trade
        spec = grid_around(EXCHANGE, SYMBOL, start, "0.05", 1, 10000, mode="live")
        created = body(await api.post("/api/bots", headers=auth, json=spec))
        bot_id, n = created["botId"], created["gridCount"]
        try:
            levels = await level_prices(api, auth, bot_id)
            k = max(i for i, price in enumerate(levels) if price < start)

            async def resting_at_exchange() -> bool:
                return len(bids(await sim_orders(sim, api_key, EXCHANGE))) == k + 1

            await eventually(resting_at_exchange, timeout=15, interval=POLL, message="buys never rested")
            first = bids(await sim_orders(sim, api_key, EXCHANGE))
            assert sorted(first.values()) == [
                (levels[i], upbit_buy_qty(D(10000), levels[i])) for i in range(k + 1)
            ]

            # orderAmount while running: accepted, and only orders placed from now on use it.
            r = await api.put(f"/api/bots/{bot_id}", headers=auth, json={"orderAmount": 20000})
            changed = body(r)
            assert r.json()["message"] == "봇 설정이 업데이트되었습니다"
            assert changed == {
                "_id": bot_id,
                "orderAmount": 20000,
                "gridCount": n,
                "investmentAmount": 20000 * n,
                "updatedAt": changed["updatedAt"],
            }
            shown = body(await api.get(f"/api/bots/{bot_id}", headers=auth))
            assert (shown["orderAmount"], shown["investmentAmount"], shown["status"]) == (
                20000,
                20000 * n,
                "running",
            )

            # Down to L(k): the old-size buy fills; up to L(k+1): its sell fills, and slot k rests a new buy.
            for count, price in ((1, levels[k]), (2, levels[k + 1])):
                await move(sim, EXCHANGE, SYMBOL, price)

                async def traded(count: int = count) -> bool:
                    return len(await trades_of(api, auth, bot_id)) == count

                await eventually(traded, timeout=15, interval=POLL, message=f"no trade at {price}")
            trades = await trades_of(api, auth, bot_id)
            q_old = upbit_buy_qty(D(10000), levels[k])
            assert [(t["type"], t["price"], t["amount"]) for t in trades] == [
                ("buy", levels[k], q_old),
                ("sell", levels[k + 1], q_old),
            ]

            async def rebought() -> bool:
                return len(bids(await sim_orders(sim, api_key, EXCHANGE))) == k + 1

            await eventually(rebought, timeout=15, interval=POLL, message="slot k never bought again")
            now = bids(await sim_orders(sim, api_key, EXCHANGE))
            new = {cid: order for cid, order in now.items() if cid not in first}
            assert list(new.values()) == [(levels[k], upbit_buy_qty(D(20000), levels[k]))]
            # The buys that rested all along keep the size they were placed with.
            assert {cid: now[cid] for cid in now if cid in first} == {
                cid: order for cid, order in first.items() if order[0] != levels[k]
            }

            # Geometry while running: refused, nothing changed.
            r = await api.put(f"/api/bots/{bot_id}", headers=auth, json={"lowerPrice": int(levels[0]) - 1000})
            assert refusal(r)[:2] == (409, "BOT_RUNNING")
            assert await level_prices(api, auth, bot_id) == levels
            assert (
                body(await api.get(f"/api/bots/{bot_id}", headers=auth))["lowerPrice"] == spec["lowerPrice"]
            )

            # Stopped, the grid is rebuilt: 100 → 110 → 121 (×P0) at 10 % is exactly two slots.
            r = await api.post(f"/api/bots/{bot_id}/stop", headers=auth)
            assert body(r)["status"] == "stopped"
            assert bids(await sim_orders(sim, api_key, EXCHANGE)) == {}
            p0 = (start * D("0.9") / 100000).to_integral_value(rounding="ROUND_DOWN") * 100000
            geometry = {"lowerPrice": int(p0), "upperPrice": int(p0 * D("1.21")), "priceChangePercent": 10}
            changed = body(await api.put(f"/api/bots/{bot_id}", headers=auth, json=geometry))
            assert changed == {
                "_id": bot_id,
                **geometry,
                "gridType": "geometric",
                "gridCount": 2,
                "investmentAmount": 40000,
                "updatedAt": changed["updatedAt"],
            }
            rebuilt = body(await api.get(f"/api/bots/{bot_id}/grid-levels", headers=auth))["gridLevels"]
            assert [(lv["price"], lv["type"], lv["status"]) for lv in rebuilt] == [
                (p0, "buy", "available"),
                (p0 * D("1.1"), "buy", "available"),
                (p0 * D("1.21"), "sell", "available"),
            ]
            shown = body(await api.get(f"/api/bots/{bot_id}", headers=auth))
            assert (shown["gridCount"], shown["lowerPrice"], shown["upperPrice"]) == (2, p0, p0 * D("1.21"))
        finally:
            r = await api.delete(f"/api/bots/{bot_id}", headers=auth)
            assert r.status_code == 200, r.text


async def test_a_credential_update_is_validated_and_its_new_keys_trade(
    system: System, client_ip: str
) -> None:
    async with clients(system, client_ip) as (api, sim):
        auth = await register(api)
        old_key = await connect_keys(api, sim, auth, EXCHANGE)
        new = await sim_account(system.sim, KRW="1000000")

        r = await api.put(f"/api/credentials/{EXCHANGE}", headers=auth, json=new)
        updated = body(r)
        assert r.json()["message"] == "인증 정보가 업데이트되었습니다"
        assert updated == {
            "exchange": EXCHANGE,
            "isValid": True,
            "updatedAt": updated["updatedAt"],
            "warnings": [],
        }
        shown = body(await api.get(f"/api/credentials/{EXCHANGE}", headers=auth))
        assert shown["apiKey"].endswith(new["apiKey"][-4:]) and shown["isValid"] is True

        # A secret the exchange refuses (merged with the stored key) is refused and stores nothing.
        r = await api.put(f"/api/credentials/{EXCHANGE}", headers=auth, json={"secretKey": "x" * 64})
        assert refusal(r)[:2] == (400, "INVALID_CREDENTIALS")
        r = await api.put("/api/credentials/binance", headers=auth, json=new)
        assert refusal(r)[:2] == (404, "CREDENTIAL_NOT_FOUND")
        assert body(await api.get(f"/api/credentials/{EXCHANGE}", headers=auth)) == shown

        # The engine trades with the keys the update stored: the new account rests the buys, the old one none.
        start = await sim_price(sim, EXCHANGE, SYMBOL)
        await move(sim, EXCHANGE, SYMBOL, start)
        spec = grid_around(EXCHANGE, SYMBOL, start, "0.05", 1, 10000, mode="live")
        bot_id = body(await api.post("/api/bots", headers=auth, json=spec))["botId"]
        try:
            levels = await level_prices(api, auth, bot_id)
            k = max(i for i, price in enumerate(levels) if price < start)

            async def resting() -> bool:
                return len(bids(await sim_orders(sim, new["apiKey"], EXCHANGE))) == k + 1

            # A level shows `pending` once its order is committed, before the exchange has it: ask the exchange.
            await eventually(resting, timeout=15, interval=POLL, message="buys never rested")
            placed = bids(await sim_orders(sim, new["apiKey"], EXCHANGE))
            assert sorted(price for price, _ in placed.values()) == levels[: k + 1]
            assert await sim_orders(sim, old_key, EXCHANGE) == []
        finally:
            r = await api.delete(f"/api/bots/{bot_id}", headers=auth)
            assert r.status_code == 200, r.text
