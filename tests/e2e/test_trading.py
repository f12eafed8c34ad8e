"""Bots that trade by themselves, seen through the gateway only, in `make run` and `make dev`.

The simulator is the market: `PUT /_sim/prices` moves (and pins) a price, the replay drives the rest, and
`GET /_sim/orders` is the exchange's own record that a live bot's trades must agree with one for one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from common.testing.wait import eventually
from launcher.testing import (
    POLL,
    System,
    body,
    clients,
    grid_around,
    move,
    pending,
    register,
    sim_account,
    sim_orders,
    sim_price,
)

pytestmark = pytest.mark.e2e

D = Decimal
UPBIT_FEE = D("0.0005")  # the simulator's (and Upbit's) KRW-market fee, charged in KRW both ways


async def trades_of(api: httpx.AsyncClient, auth: dict[str, str], bot_id: str) -> list[dict[str, Any]]:
    """Every trade of the bot, oldest first."""
    data = body(await api.get(f"/api/bots/{bot_id}/trades?limit=500", headers=auth))
    assert data["pagination"]["hasMore"] is False
    return list(reversed(data["trades"]))


async def connect_keys(
    api: httpx.AsyncClient, sim: httpx.AsyncClient, auth: dict[str, str], exchange: str
) -> str:
    """Simulator keys stored as the user's credential for `exchange`; returns the API key."""
    keys = await sim_account(str(sim.base_url), KRW="2000000", USDT="5000")
    r = await api.post("/api/credentials", headers=auth, json={"exchange": exchange, **keys})
    assert r.status_code == 201, r.text
    return keys["apiKey"]


def as_fills(trades: list[dict[str, Any]]) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """(exchange order id, price, amount, fee) of our trades, sorted."""
    return sorted((t["orderId"], t["price"], t["amount"], t["fee"]) for t in trades)


def exchange_fills(orders: list[dict[str, Any]]) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """The same tuples from the simulator's fills."""
    return sorted(
        (o["orderId"], D(f["price"]), D(f["quantity"]), D(f["fee"])) for o in orders for f in o["fills"]
    )


# pytest's default 120 s is below what these tests may wait by design: each gets a timeout covering its own
# waits plus STARTUP_SECONDS for starting the system under test (when it is the first test to need it) and
# its plain requests, so a wait that runs out fails with its own message rather than pytest's.
STARTUP_SECONDS = 120
STEP_SECONDS = 15  # one grid move to show as a trade, or orders to rest
ROUND_TRIP_SECONDS = 150  # the replayed market taking both bots through a round trip
AGREE_SECONDS = 20  # every view of a bot catching up with the others


@pytest.mark.timeout(STARTUP_SECONDS + 9 * STEP_SECONDS)
@pytest.mark.parametrize("mode", ["paper", "live"])
async def test_three_levels_down_and_back_up_give_three_buys_then_three_sells(
    system: System, client_ip: str, mode: str
) -> None:
    exchange, symbol = "upbit", "KRW-ETH"
    async with clients(system, client_ip) as (api, sim):
        auth = await register(api)
        api_key = await connect_keys(api, sim, auth, exchange) if mode == "live" else None
        start = await sim_price(sim, exchange, symbol)
        await move(sim, exchange, symbol, start)  # pinned: the random walk no longer moves it
        spec = grid_around(exchange, symbol, start, "0.05", 1, 10000, mode=mode)
        r = await api.post("/api/bots", headers=auth, json=spec)
        bot = body(r)
        assert r.status_code == 201 and bot["status"] == "running"
        bot_id = bot["botId"]
        try:
            levels = [
                level["price"]
                for level in body(await api.get(f"/api/bots/{bot_id}/grid-levels", headers=auth))[
                    "gridLevels"
                ]
            ]
            k = max(i for i, price in enumerate(levels) if price < start)  # the highest buy the start placed

            async def resting(side: str, count: int) -> bool:
                return await pending(api, auth, bot_id, side) == count

            await eventually(
                lambda: resting("buy", k + 1),
                timeout=STEP_SECONDS,
                interval=POLL,
                message="buys never rested",
            )

            async def traded(count: int) -> bool:
                return len(await trades_of(api, auth, bot_id)) == count

            # Down through L(k), L(k-1), L(k-2): one buy each; then back up: one sell each, one level higher.
            for n, price in enumerate(
                [levels[k], levels[k - 1], levels[k - 2], levels[k - 1], levels[k], levels[k + 1]]
            ):
                await move(sim, exchange, symbol, price)
                await eventually(
                    lambda n=n: traded(n + 1),
                    timeout=STEP_SECONDS,
                    interval=POLL,
                    message=f"move {n} traded nothing",
                )
            trades = await trades_of(api, auth, bot_id)
            assert [t["type"] for t in trades] == ["buy"] * 3 + ["sell"] * 3
            assert [t["price"] for t in trades] == [
                levels[k],
                levels[k - 1],
                levels[k - 2],
                levels[k - 1],
                levels[k],
                levels[k + 1],
            ]

            # Each sell closes the buy one level below it: q·L(i+1)·(1−f) − q·L(i)·(1+f), fees in KRW both ways.
            buys = {t["price"]: t for t in trades if t["type"] == "buy"}
            total = D(0)
            for sell in trades[3:]:
                buy = buys[levels[levels.index(sell["price"]) - 1]]
                q = buy["amount"]
                # Upbit locks a bid's fee too: the buy is sized so that price·q·(1+f) stays within orderAmount.
                cap = D(10000) / (buy["price"] * (1 + UPBIT_FEE))
                assert sell["amount"] == q == cap.quantize(D("1e-8"), rounding="ROUND_DOWN")
                for trade in (buy, sell):
                    assert trade["total"] == trade["price"] * q
                    assert abs(trade["fee"] - trade["total"] * UPBIT_FEE) < D("1e-8")
                assert sell["profit"] == sell["total"] - sell["fee"] - (buy["total"] + buy["fee"])
                assert abs(
                    sell["profit"]
                    - (q * sell["price"] * (1 - UPBIT_FEE) - q * buy["price"] * (1 + UPBIT_FEE))
                ) < D("2e-8")
                assert sell["profit"] > 0
                total += sell["profit"]
            assert not any("profit" in t for t in trades[:3])

            async def booked() -> bool:
                shown = body(await api.get(f"/api/bots/{bot_id}", headers=auth))
                return shown["currentProfit"] == total and shown["totalTrades"] == 6

            await eventually(booked, timeout=10, interval=POLL, message="the bot's figures never caught up")
            figures = body(await api.get(f"/api/bots/{bot_id}/performance", headers=auth))
            assert (figures["totalProfit"], figures["buyTrades"], figures["sellTrades"]) == (total, 3, 3)
            assert abs(figures["avgProfitPerTrade"] - total / 3) < D("0.01")
            # Back where it started: the same buys rest again and nothing is held.
            await eventually(lambda: resting("buy", k + 1), timeout=15, interval=POLL)
            await eventually(lambda: resting("sell", 0), timeout=5, interval=POLL)
            if api_key is not None:
                orders = await sim_orders(sim, api_key, exchange)
                assert as_fills(trades) == exchange_fills(orders)
                assert len({o["clientOrderId"] for o in orders}) == len(orders)
        finally:
            r = await api.delete(f"/api/bots/{bot_id}", headers=auth)
            assert r.status_code == 200, r.text
        if api_key is not None:
            # Deleting cancelled every order it had at the exchange.
            assert not [o for o in await sim_orders(sim, api_key, exchange) if o["status"] == "wait"]


@pytest.mark.timeout(STARTUP_SECONDS + ROUND_TRIP_SECONDS + 2 * AGREE_SECONDS)
async def test_a_paper_and_a_live_bot_trade_the_replayed_month_by_themselves(
    system: System, client_ip: str
) -> None:
    exchange, symbol = "binance", "BTCUSDT"
    async with clients(system, client_ip) as (api, sim):
        # The real BTC/USDT month drives the market, five minutes of it a second.
        assert (await sim.delete(f"/_sim/prices/{exchange}/{symbol}")).status_code == 200
        assert (await sim.put("/_sim/replay", json={"speed": 5})).status_code == 200
        auth = await register(api)
        api_key = await connect_keys(api, sim, auth, exchange)
        start = await sim_price(sim, exchange, symbol)
        spec = grid_around(exchange, symbol, start, "0.03", 0.25, 10)
        bot_ids = []
        try:
            for mode in ("paper", "live"):
                r = await api.post("/api/bots", headers=auth, json={**spec, "mode": mode})
                bot_ids.append(body(r)["botId"])

            async def both_sold() -> bool:
                listed = body(await api.get("/api/bots", headers=auth))["bots"]
                # A sell is the only trade that books profit: both bots completed a round trip.
                return len(listed) == 2 and all(b["currentProfit"] != 0 for b in listed)

            await eventually(
                both_sold,
                timeout=ROUND_TRIP_SECONDS,
                interval=POLL,
                message="a bot never completed a round trip",
            )
            # Freeze the market where it is, then every view of each bot must agree with the others.
            await move(sim, exchange, symbol, await sim_price(sim, exchange, symbol))
            for bot_id, key in zip(bot_ids, (None, api_key), strict=True):
                await eventually(
                    lambda bot_id=bot_id, key=key: agrees(api, sim, auth, bot_id, key),
                    timeout=AGREE_SECONDS,
                    interval=4 * POLL,  # four gateway requests a round
                    message=f"bot {bot_id}'s trades, levels and figures never agreed",
                )
        finally:
            await sim.put("/_sim/replay", json={"speed": 1})
            await sim.delete(f"/_sim/prices/{exchange}/{symbol}")
            for bot_id in bot_ids:
                assert (await api.delete(f"/api/bots/{bot_id}", headers=auth)).status_code == 200
        assert not [
            o for o in await sim_orders(sim, api_key, exchange) if o["status"] in ("NEW", "PARTIALLY_FILLED")
        ]


async def agrees(
    api: httpx.AsyncClient, sim: httpx.AsyncClient, auth: dict[str, str], bot_id: str, api_key: str | None
) -> bool:
    """Trades, grid levels, the bot's figures and (live) the exchange's record tell one story."""
    trades = await trades_of(api, auth, bot_id)
    levels = body(await api.get(f"/api/bots/{bot_id}/grid-levels?status=pending", headers=auth))["gridLevels"]
    shown = body(await api.get(f"/api/bots/{bot_id}", headers=auth))
    figures = body(await api.get(f"/api/bots/{bot_id}/performance", headers=auth))
    buys = [t for t in trades if t["type"] == "buy"]
    sells = [t for t in trades if t["type"] == "sell"]
    profit = sum((t["profit"] for t in sells), D(0))
    story = [
        len(sells) >= 1,
        # Every slot that bought and has not sold yet holds a sell one level up, and nothing else does.
        sum(1 for level in levels if level["type"] == "sell") == len(buys) - len(sells),
        shown["totalTrades"] == figures["totalTrades"] == len(trades),
        (figures["buyTrades"], figures["sellTrades"]) == (len(buys), len(sells)),
        shown["currentProfit"] == figures["totalProfit"] == profit,
    ]
    if api_key is not None:
        orders = await sim_orders(sim, api_key, "binance")
        resting = {o["clientOrderId"] for o in orders if o["status"] in ("NEW", "PARTIALLY_FILLED")}
        story += [
            # One for one: every exchange fill is one of our trades and the other way round.
            as_fills(trades) == exchange_fills(orders),
            len({o["clientOrderId"] for o in orders}) == len(orders),
            resting == {level["orderId"] for level in levels},
        ]
    return all(story)
