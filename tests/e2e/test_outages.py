"""Processes of `make dev` dying under a running system and coming back, seen through the gateway only.

They kill processes of the session's dev stack, so they run after every other test of it (the `outage`
marker) and leave it whole again. The launcher starts a dead process again, as compose's restart policy
would; a test holds one down (`kill(..., hold=True)`) while it looks at the outage, then lets the launcher
start it again (`restart`), which an engine restarted under its own ENGINE_ID takes over at once.
"""

from __future__ import annotations

import asyncio
import signal
from decimal import Decimal
from typing import Any

import httpx
import pytest

from common.testing.wait import eventually
from launcher.dev import Stack
from launcher.testing import (
    POLL,
    System,
    as_fills,
    body,
    clients,
    connect_keys,
    exchange_fills,
    grid_around,
    level_prices,
    move,
    pending,
    refusal,
    register,
    sim_orders,
    sim_price,
    trades_of,
)

pytestmark = [pytest.mark.e2e, pytest.mark.outage]

EXCHANGE = "upbit"


class Grid:
    """One running bot of the test on its own market, with the levels it was built on."""

    def __init__(self, bot_id: str, symbol: str, levels: list[Decimal], k: int) -> None:
        self.bot_id, self.symbol, self.levels, self.k = bot_id, symbol, levels, k


async def running_grid(
    api: httpx.AsyncClient, sim: httpx.AsyncClient, auth: dict[str, str], symbol: str, mode: str
) -> Grid:
    """A bot ±5 % around the pinned price of `symbol`, started, with its buys resting."""
    start = await sim_price(sim, EXCHANGE, symbol)
    await move(sim, EXCHANGE, symbol, start)

    async def seen_by_market_data() -> bool:
        # A bot starts at market-data's latest price: on a market that was moving a moment ago that can
        # still be the price before the pin, one grid level away from `start`.
        url = f"/api/exchange/candles/{EXCHANGE}/{symbol}?interval=1m&count=1"
        candles = body(await api.get(url, headers=auth))["candles"]
        if candles and Decimal(str(candles[-1]["close"])) == start:
            return True
        await move(sim, EXCHANGE, symbol, start)
        return False

    await eventually(seen_by_market_data, timeout=20, interval=POLL, message="market-data never saw the pin")
    spec = grid_around(EXCHANGE, symbol, start, "0.05", 1, 10000, mode=mode)
    bot_id = body(await api.post("/api/bots", headers=auth, json=spec))["botId"]
    levels = await level_prices(api, auth, bot_id)
    grid = Grid(bot_id, symbol, levels, max(i for i, price in enumerate(levels) if price < start))

    async def resting() -> bool:
        if mode == "paper":
            # A paper bot places on the first tick after its start; a pinned market that traded before the
            # bot existed sends none, so the market trades again at the same price (as a live one would).
            await move(sim, EXCHANGE, symbol, start)
        return await pending(api, auth, bot_id, "buy") == grid.k + 1

    await eventually(resting, timeout=20, interval=POLL, message=f"{mode} bot's buys never rested")
    return grid


async def trade_at(
    api: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    auth: dict[str, str],
    grid: Grid,
    price: Decimal,
    count: int,
) -> None:
    """Move the bot's market to `price` and wait until the bot shows `count` trades."""
    await move(sim, EXCHANGE, grid.symbol, price)

    async def traded() -> bool:
        return len(await trades_of(api, auth, grid.bot_id)) == count

    await eventually(traded, timeout=30, interval=POLL, message=f"no trade {count} at {price}")


def open_orders(orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The simulator's orders of an account still resting."""
    return [o for o in orders if o["status"] == "wait"]


async def test_a_killed_engine_comes_back_and_its_bots_trade_on_with_nothing_placed_twice(
    dev_stack: Stack, dev_system: System, client_ip: str
) -> None:
    async with clients(dev_system, client_ip) as (api, sim):
        auth = await register(api)
        api_key = await connect_keys(api, sim, auth, EXCHANGE)
        live = await running_grid(api, sim, auth, "KRW-ETH", "live")
        paper = await running_grid(api, sim, auth, "KRW-BTC", "paper")
        try:
            for grid in (live, paper):
                await trade_at(api, sim, auth, grid, grid.levels[grid.k], 1)

            async def live_sell_rests() -> bool:
                orders = open_orders(await sim_orders(sim, api_key, EXCHANGE))
                return [o["side"] for o in orders].count("SELL") == 1

            await eventually(live_sell_rests, timeout=20, interval=POLL, message="the sell never rested")

            await asyncio.to_thread(dev_stack.kill, "engine-1", signal.SIGKILL, True)
            # While the engine is dead the live bot's next buy fills at the exchange.
            below = live.levels[live.k - 1]
            await move(sim, EXCHANGE, live.symbol, below)
            filled = [
                o
                for o in await sim_orders(sim, api_key, EXCHANGE)
                if o["side"] == "BUY" and Decimal(o["price"]) == below
            ]
            assert [o["status"] for o in filled] == ["done"]

            await asyncio.to_thread(dev_stack.restart, "engine-1", 120.0)  # the launcher starts it

            # The fill it missed is folded in once; then both bots trade on from the state they had.
            async def caught_up() -> bool:
                return len(await trades_of(api, auth, live.bot_id)) == 2

            await eventually(caught_up, timeout=30, interval=POLL, message="the missed fill never arrived")
            await trade_at(api, sim, auth, live, live.levels[live.k], 3)
            await trade_at(api, sim, auth, live, live.levels[live.k + 1], 4)
            await trade_at(api, sim, auth, paper, paper.levels[paper.k + 1], 2)

            for grid, sides in ((live, ["buy", "buy", "sell", "sell"]), (paper, ["buy", "sell"])):
                trades = await trades_of(api, auth, grid.bot_id)
                k = grid.k
                prices = [grid.levels[i] for i in ((k, k - 1, k, k + 1) if grid is live else (k, k + 1))]
                assert [(t["type"], t["price"]) for t in trades] == list(zip(sides, prices, strict=True))
                shown = body(await api.get(f"/api/bots/{grid.bot_id}", headers=auth))
                assert (shown["status"], shown["totalTrades"]) == ("running", len(sides))
                assert shown["currentProfit"] == sum(
                    (t["profit"] for t in trades if "profit" in t), Decimal(0)
                )

            # Nothing placed twice: one exchange order per client order id, every fill one trade, and the
            # orders resting are exactly the levels the bot shows pending.
            orders = await sim_orders(sim, api_key, EXCHANGE)
            assert len({o["clientOrderId"] for o in orders}) == len(orders)
            assert as_fills(await trades_of(api, auth, live.bot_id)) == exchange_fills(orders)

            async def books_agree() -> bool:
                shown = body(
                    await api.get(f"/api/bots/{live.bot_id}/grid-levels?status=pending", headers=auth)
                )
                resting = {o["clientOrderId"] for o in open_orders(await sim_orders(sim, api_key, EXCHANGE))}
                return resting == {level["orderId"] for level in shown["gridLevels"]}

            await eventually(books_agree, timeout=20, interval=POLL, message="exchange and levels disagree")
        finally:
            for grid in (live, paper):
                r = await api.delete(f"/api/bots/{grid.bot_id}", headers=auth)
                assert r.status_code == 200, r.text
        assert open_orders(await sim_orders(sim, api_key, EXCHANGE)) == []


async def test_a_dead_bots_replica_is_passed_over_and_a_dead_bots_service_answers_503_until_it_is_back(
    dev_stack: Stack, dev_system: System, client_ip: str
) -> None:
    async with clients(dev_system, client_ip) as (api, _):
        auth = await register(api)
        spec = {
            "exchange": EXCHANGE,
            "ticker": "KRW-BTC",
            "lowerPrice": 50000000,
            "upperPrice": 70000000,
            "priceChangePercent": 2,
            "orderAmount": 10000,
            "stopAtMax": False,
            "autoStart": False,
            "mode": "paper",
        }
        bot_id = body(await api.post("/api/bots", headers=auth, json=spec))["botId"]

        # One replica dead: the gateway sends everything to the other, writes included (a refused connect
        # delivered nothing), and the system stays ready.
        await asyncio.to_thread(dev_stack.kill, "bots-1", signal.SIGKILL, True)  # held down meanwhile
        for _ in range(5):
            listing = body(await api.get("/api/bots", headers=auth))
            assert [b["_id"] for b in listing["bots"]] == [bot_id]
        r = await api.put(f"/api/bots/{bot_id}", headers=auth, json={"orderAmount": 20000})
        assert body(r)["orderAmount"] == 20000, r.text
        assert (await api.get("/health/ready")).status_code == 200

        # Both dead: the service is down.
        await asyncio.to_thread(dev_stack.kill, "bots-2", signal.SIGKILL, True)
        for method, path in (
            ("GET", "/api/bots"),
            ("GET", f"/api/bots/{bot_id}/trades"),
            ("POST", f"/api/bots/{bot_id}/start"),
        ):
            r = await api.request(method, path, headers=auth)
            assert refusal(r) == (503, "SERVICE_UNAVAILABLE", {"service": "bots"}), path
        # The rest of the system answers all the same.
        assert (await api.get("/api/auth/me", headers=auth)).status_code == 200
        assert body(await api.get("/api/credentials", headers=auth)) == {"credentials": []}

        async def not_ready() -> bool:  # the gateway reuses a readiness answer for a second or so
            return (await api.get("/health/ready")).status_code == 503

        await eventually(not_ready, timeout=30, interval=POLL, message="readiness never noticed")
        code, error, details = refusal(await api.get("/health/ready"))
        assert (code, error, details["checks"]["bots"]) == (503, "SERVICE_UNAVAILABLE", "down")
        assert "bots" in details["down"] and details["checks"]["auth"] == "ok"

        for replica in ("bots-1", "bots-2"):
            await asyncio.to_thread(dev_stack.restart, replica, 120.0)

        async def ready() -> bool:
            return (await api.get("/health/ready")).status_code == 200

        await eventually(ready, timeout=30, interval=POLL, message="the system never became ready again")
        listing = body(await api.get("/api/bots", headers=auth))
        assert [b["_id"] for b in listing["bots"]] == [bot_id]
        # Back on the bus too: a start reaches the engine, and a stop waits for its confirmation.
        for action, status in (("start", "running"), ("stop", "stopped")):
            r = await api.post(f"/api/bots/{bot_id}/{action}", headers=auth)
            assert body(r) == {"botId": bot_id, "status": status}
