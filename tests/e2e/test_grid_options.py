"""The grid options through the gateway, in `make run` and `make dev` (API.md "Grid options"): a trigger holds
a bot until the market trades through it, a stop-loss under the range stops it and sells what it holds at
market (the simulator's own record shows the sale, the trades book it, the profit adds up), trailing up moves
the grid a step when the price rises a step above the top, and a take-profit above the range stops it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

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
    until,
)

pytestmark = pytest.mark.e2e

D = Decimal
EXCHANGE, SYMBOL = "upbit", "KRW-ETH"
STARTUP_SECONDS = 120
STEP_SECONDS = 20  # a move to show in the bot's orders, trades or status


async def _bot(api: httpx.AsyncClient, auth: dict[str, str], bot_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = body(await api.get(f"/api/bots/{bot_id}", headers=auth))
    return shown


async def _create(api: httpx.AsyncClient, auth: dict[str, str], spec: dict[str, Any]) -> str:
    r = await api.post("/api/bots", headers=auth, json=spec)
    assert r.status_code == 201, r.text
    bot_id: str = body(r)["botId"]
    return bot_id


@pytest.mark.timeout(STARTUP_SECONDS + 8 * STEP_SECONDS)
@pytest.mark.parametrize("mode", ["paper", "live"])
async def test_a_trigger_holds_the_bot_and_a_stop_loss_sells_what_it_holds(
    system: System, client_ip: str, mode: str
) -> None:
    async with clients(system, client_ip) as (api, sim):
        auth = await register(api)
        api_key = await connect_keys(api, sim, auth, EXCHANGE) if mode == "live" else None
        start = await sim_price(sim, EXCHANGE, SYMBOL)
        await move(sim, EXCHANGE, SYMBOL, start)
        plain = grid_around(EXCHANGE, SYMBOL, start, "0.05", 1, 10000, mode=mode)
        lower = D(plain["lowerPrice"])
        trigger = int(start * D("0.985"))
        stop_loss = int(lower * D("0.98"))
        control = await _create(api, auth, plain)
        token = auth["authorization"].removeprefix("Bearer ")
        ws_url = system.gateway.replace("http://", "ws://", 1) + "/api/ws"
        async with connect(f"{ws_url}?token={token}") as ws:
            bot_id = await _create(
                api,
                auth,
                {**plain, "triggerPrice": trigger, "stopLossPrice": stop_loss, "sellBaseOnStop": True},
            )
            # Only the engine tells a status: `running` is its start applied, at the price before the moves
            # below (a start at a price under the trigger would wait for the market to rise to it).
            seen: list[dict[str, Any]] = []
            await until(ws, seen, lambda s: _running(s, bot_id), STEP_SECONDS, "the bot never started")
        try:
            shown = await _bot(api, auth, bot_id)
            assert (shown["status"], shown["triggered"], shown["stopLossPrice"]) == (
                "running",
                False,
                stop_loss,
            )

            # The plain bot beside it rests its buys: the engine started both on this market's price; the
            # triggered one places nothing.
            await eventually(
                lambda: _pending_over(api, auth, control, "buy", 0),
                timeout=STEP_SECONDS,
                interval=POLL,
                message="the plain bot never rested its buys",
            )
            assert await pending(api, auth, bot_id, "buy") == 0
            assert (await _bot(api, auth, bot_id))["triggered"] is False

            # The market trades at the trigger: the bot starts there, its buys rest below it.
            # (A little past each price: the simulator puts a trade on its tick grid, maybe the far side.)
            await move(sim, EXCHANGE, SYMBOL, D(trigger) * D("0.998"))
            await eventually(
                lambda: _pending_over(api, auth, bot_id, "buy", 0),
                timeout=STEP_SECONDS,
                interval=POLL,
                message="the trigger never started the grid",
            )
            assert (await _bot(api, auth, bot_id))["triggered"] is True
            levels = await level_prices(api, auth, bot_id)
            assert all(D(price) < trigger for price in levels[: await pending(api, auth, bot_id, "buy")])
            if api_key is not None:
                # A live order rests once the engine has placed it, after its row was committed: the move down
                # must find the buys on the book. One still unplaced when the stop-loss comes is canceled
                # before it reaches the exchange (right, but then there is nothing bought to sell).
                async def resting() -> bool:
                    shown = body(
                        await api.get(f"/api/bots/{bot_id}/grid-levels?status=pending", headers=auth)
                    )
                    buys = {level.get("orderId") for level in shown["gridLevels"] if level["type"] == "buy"}
                    on_book = {
                        key
                        for o in await sim_orders(sim, api_key, EXCHANGE)
                        if o["status"] == "wait" and o["side"] == "BUY"
                        for key in (o["orderId"], o["clientOrderId"])
                    }
                    return bool(buys) and buys <= on_book

                await eventually(
                    resting,
                    timeout=STEP_SECONDS,
                    interval=POLL,
                    message="the buys never rested on the exchange",
                )

            # Down under the range to the stop-loss: every buy fills on the way, then the bot stops and
            # sells what its slots hold at market.
            await move(sim, EXCHANGE, SYMBOL, D(stop_loss) * D("0.998"))
            await eventually(
                lambda: _stopped_with(api, auth, bot_id, "stopLoss"),
                timeout=STEP_SECONDS,
                interval=POLL,
                message="the stop-loss never stopped the bot",
            )
            trades = await trades_of(api, auth, bot_id)
            buys = [t for t in trades if t["type"] == "buy"]
            sells = [t for t in trades if t["type"] == "sell"]
            assert buys and sells and all(D(t["price"]) < stop_loss for t in sells)
            # Everything bought is sold (Upbit's fees are in KRW: the base bought is the base held).
            assert sum(D(t["amount"]) for t in sells) == sum(D(t["amount"]) for t in buys)
            # The round trips' profit: what the sale brought net of its fee, minus what the buys cost.
            total = sum(D(t["profit"]) for t in sells)
            spent = sum(D(t["total"]) + D(t["fee"]) for t in buys)
            assert total == sum(D(t["total"]) - D(t["fee"]) for t in sells) - spent
            assert total < 0  # bought on the way down, sold under the range

            async def booked() -> bool:
                shown = await _bot(api, auth, bot_id)
                return D(shown["currentProfit"]) == total and D(shown["heldBase"]) == 0

            await eventually(booked, timeout=STEP_SECONDS, interval=POLL, message="figures never caught up")
            assert await pending(api, auth, bot_id, "buy") == await pending(api, auth, bot_id, "sell") == 0
            if api_key is not None:
                orders = await sim_orders(sim, api_key, EXCHANGE)
                market = [o for o in orders if o["type"] == "market"]
                # The simulator sold once (one market order, under the bot's own client order id); every
                # exchange fill of the bot's orders is one trade of the bot, and nothing of it rests.
                assert len(market) == 1 and market[0]["side"] == "SELL" and market[0]["clientOrderId"]
                assert sum(D(f["quantity"]) for f in market[0]["fills"]) == sum(D(t["amount"]) for t in sells)
                control_orders = {o["orderId"] for o in orders if o["status"] == "wait"}
                assert {t["orderId"] for t in trades}.isdisjoint(control_orders)
        finally:
            for bot in (bot_id, control):
                r = await api.delete(f"/api/bots/{bot}", headers=auth)
                assert r.status_code == 200, r.text


@pytest.mark.timeout(STARTUP_SECONDS + 6 * STEP_SECONDS)
async def test_trailing_up_moves_the_grid_and_a_take_profit_stops_it(system: System, client_ip: str) -> None:
    async with clients(system, client_ip) as (api, sim):
        auth = await register(api)
        start = await sim_price(sim, EXCHANGE, SYMBOL)
        await move(sim, EXCHANGE, SYMBOL, start)
        spec = grid_around(EXCHANGE, SYMBOL, start, "0.02", 1, 10000, mode="paper")
        take_profit = int(start * D("1.10"))
        bot_id = await _create(api, auth, {**spec, "trailingUp": True, "takeProfitPrice": take_profit})
        try:
            await eventually(
                lambda: _pending_over(api, auth, bot_id, "buy", 0),
                timeout=STEP_SECONDS,
                interval=POLL,
                message="buys never rested",
            )
            before = [D(price) for price in await level_prices(api, auth, bot_id)]
            step = before[-1] / before[-2]
            # One and a half steps above the top: the grid gains one level on top and drops its lowest.
            await move(sim, EXCHANGE, SYMBOL, (before[-1] * (1 + (step - 1) * D("1.5"))).to_integral_value())

            async def moved() -> bool:
                now = [D(price) for price in await level_prices(api, auth, bot_id)]
                return len(now) == len(before) and now[:-1] == before[1:] and now[-1] > before[-1]

            await eventually(moved, timeout=STEP_SECONDS, interval=POLL, message="the grid never moved up")
            after = [D(price) for price in await level_prices(api, auth, bot_id)]
            # The new level is one grid step above the old top, on the exchange's price grid.
            assert abs(after[-1] / before[-1] - step) < D("0.002")

            await move(sim, EXCHANGE, SYMBOL, D(take_profit) * D("1.002"))
            await eventually(
                lambda: _stopped_with(api, auth, bot_id, "takeProfit"),
                timeout=STEP_SECONDS,
                interval=POLL,
                message="the take-profit never stopped the bot",
            )
            assert await pending(api, auth, bot_id, "buy") == 0
        finally:
            r = await api.delete(f"/api/bots/{bot_id}", headers=auth)
            assert r.status_code == 200, r.text


def _running(seen: list[dict[str, Any]], bot_id: str) -> bool:
    return any(
        e["type"] == "bot_status" and e.get("botId") == bot_id and e["status"] == "running" for e in seen
    )


async def _pending_over(
    api: httpx.AsyncClient, auth: dict[str, str], bot_id: str, side: str, count: int
) -> bool:
    return await pending(api, auth, bot_id, side) > count


async def _stopped_with(api: httpx.AsyncClient, auth: dict[str, str], bot_id: str, reason: str) -> bool:
    shown = await _bot(api, auth, bot_id)
    return bool(shown["status"] == "stopped" and shown.get("stopReason") == reason)
