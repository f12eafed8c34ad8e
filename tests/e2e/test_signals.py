"""TradingView signals and daily statistics through the gateway, in `make run` and `make dev`: a paper bot that
traded is stopped and started by unauthenticated signal POSTs, a replaced token is 404, the eleventh signal in
a minute is 429, and its days add up to its performance."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlsplit

import pytest

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
    refusal,
    register,
    sim_price,
    trades_of,
)

pytestmark = pytest.mark.e2e

EXCHANGE, SYMBOL = "upbit", "KRW-ETH"
TEXT = {"content-type": "text/plain"}  # TradingView sends the alert message as plain text


async def test_signals_stop_and_start_a_paper_bot_and_its_days_add_up(system: System, client_ip: str) -> None:
    async with clients(system, client_ip) as (api, sim):
        auth = await register(api)
        start = await sim_price(sim, EXCHANGE, SYMBOL)
        await move(sim, EXCHANGE, SYMBOL, start)  # pinned: only our moves trade
        spec = grid_around(EXCHANGE, SYMBOL, start, "0.05", 1, 10000, mode="paper")
        bot_id = body(await api.post("/api/bots", headers=auth, json=spec))["botId"]
        try:
            levels = await level_prices(api, auth, bot_id)
            k = max(i for i, price in enumerate(levels) if price < start)

            async def resting() -> bool:
                return await pending(api, auth, bot_id, "buy") == k + 1

            await eventually(resting, timeout=15, interval=POLL, message="buys never rested")
            await move(sim, EXCHANGE, SYMBOL, levels[k])

            async def bought() -> bool:
                return len(await trades_of(api, auth, bot_id)) == 1

            await eventually(bought, timeout=15, interval=POLL, message="the paper buy never filled")
            (trade,) = await trades_of(api, auth, bot_id)
            days = body(await api.get(f"/api/bots/{bot_id}/performance/daily", headers=auth))["days"]
            perf = body(await api.get(f"/api/bots/{bot_id}/performance", headers=auth))
            assert sum(Decimal(d["profit"]) for d in days) == perf["totalProfit"]
            assert sum(d["trades"] for d in days) == perf["totalTrades"] == 1
            assert [(d["buyTrades"], d["fees"]) for d in days] == [(1, trade["fee"])]
            assert trade["feeCurrency"] == "KRW"

            old = urlsplit(body(await api.post(f"/api/bots/{bot_id}/signal-token", headers=auth))["url"]).path
            issued = body(await api.post(f"/api/bots/{bot_id}/signal-token", headers=auth))
            url = urlsplit(issued["url"])
            path = url.path
            # PUBLIC_API_URL: make run and make dev give the bots service their gateway's address.
            assert url.port == urlsplit(system.gateway).port
            assert path == f"/api/signals/tradingview/{issued['token']}" != old

            # No bearer token: the URL's token is the credential.
            stopped = body(await api.post(path, content=b"stop", headers=TEXT))
            assert stopped == {"botId": bot_id, "status": "stopped"}
            assert body(await api.get(f"/api/bots/{bot_id}", headers=auth))["status"] == "stopped"
            assert await pending(api, auth, bot_id, "buy") == 0  # the engine cancelled the resting buys

            assert body(await api.post(path, json={"action": "start"})) == {
                "botId": bot_id,
                "status": "running",
            }
            assert body(await api.get(f"/api/bots/{bot_id}", headers=auth))["status"] == "running"

            assert refusal(await api.post(old, content=b"stop", headers=TEXT))[:2] == (404, "NOT_FOUND")
            assert body(await api.get(f"/api/bots/{bot_id}", headers=auth))["status"] == "running"

            # Two signals so far on this token: eight more are taken, the eleventh is refused.
            for _ in range(8):
                assert (await api.post(path, json={"action": "start"})).status_code == 200
            assert refusal(await api.post(path, content=b"stop", headers=TEXT))[:2] == (
                429,
                "RATE_LIMIT_EXCEEDED",
            )
            assert body(await api.get(f"/api/bots/{bot_id}", headers=auth))["status"] == "running"

            shown = body(await api.get(f"/api/bots/{bot_id}/signals?limit=2", headers=auth))
            assert shown["pagination"]["total"] == 11
            assert [(s["action"], s["outcome"], s["clientIp"]) for s in shown["signals"]] == [
                ("stop", "RATE_LIMIT_EXCEEDED", client_ip),
                ("start", "ok", client_ip),
            ]
        finally:
            r = await api.delete(f"/api/bots/{bot_id}", headers=auth)
            assert r.status_code == 200, r.text
