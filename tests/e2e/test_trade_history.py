"""Paging and date filters of `GET /api/bots/:id/trades` over a bot's real trades, in `make run` and `make dev`."""

from __future__ import annotations

from datetime import date, timedelta
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
    level_prices,
    move,
    pending,
    refusal,
    register,
    sim_price,
    trades_of,
)

pytestmark = pytest.mark.e2e


async def page(api: httpx.AsyncClient, auth: dict[str, str], bot_id: str, **query: Any) -> dict[str, Any]:
    """One answer of the trades route with these query parameters."""
    return dict(body(await api.get(f"/api/bots/{bot_id}/trades", headers=auth, params=query)))


def ids(trades: list[dict[str, Any]]) -> list[str]:
    """The trades' ids, in the order given."""
    return [t["_id"] for t in trades]


async def test_trades_page_newest_first_and_filter_by_date(system: System, client_ip: str) -> None:
    exchange, symbol = "upbit", "KRW-ETH"
    async with clients(system, client_ip) as (api, sim):
        auth = await register(api)
        start = await sim_price(sim, exchange, symbol)
        await move(sim, exchange, symbol, start)
        spec = grid_around(exchange, symbol, start, "0.05", 1, 10000, mode="paper")
        bot_id = body(await api.post("/api/bots", headers=auth, json=spec))["botId"]
        try:
            levels = await level_prices(api, auth, bot_id)
            k = max(i for i, price in enumerate(levels) if price < start)

            async def resting() -> bool:
                return await pending(api, auth, bot_id, "buy") == k + 1

            await eventually(resting, timeout=15, interval=POLL, message="buys never rested")
            # Three buys down, three sells back up: six trades, one after the other.
            for n, price in enumerate(
                [levels[k], levels[k - 1], levels[k - 2], levels[k - 1], levels[k], levels[k + 1]]
            ):
                await move(sim, exchange, symbol, price)

                async def traded(n: int = n) -> bool:
                    return len(await trades_of(api, auth, bot_id)) == n + 1

                await eventually(traded, timeout=15, interval=POLL, message=f"move {n} traded nothing")

            newest = list(reversed(await trades_of(api, auth, bot_id)))
            assert [t["type"] for t in newest] == ["sell"] * 3 + ["buy"] * 3
            times = [t["executedAt"] for t in newest]
            assert times == sorted(times, reverse=True) and len(set(times)) == 6

            # The default page, then pages of two: each the next slice, and only the last says no more.
            assert await page(api, auth, bot_id) == {
                "trades": newest,
                "pagination": {"total": 6, "limit": 50, "offset": 0, "hasMore": False},
            }
            for offset, more in ((0, True), (2, True), (4, False), (6, False)):
                got = await page(api, auth, bot_id, limit=2, offset=offset)
                assert ids(got["trades"]) == ids(newest[offset : offset + 2])
                assert got["pagination"] == {"total": 6, "limit": 2, "offset": offset, "hasMore": more}
            got = await page(api, auth, bot_id, limit=4, offset=3)
            assert ids(got["trades"]) == ids(newest[3:])
            assert got["pagination"] == {"total": 6, "limit": 4, "offset": 3, "hasMore": False}

            # Date-time bounds include the trades at them: a client filters with the times it was shown.
            got = await page(api, auth, bot_id, startDate=times[4], endDate=times[1])
            assert ids(got["trades"]) == ids(newest[1:5])
            assert got["pagination"]["total"] == 4
            got = await page(api, auth, bot_id, startDate=times[2], limit=2)
            assert ids(got["trades"]) == ids(newest[:2])
            assert got["pagination"] == {"total": 3, "limit": 2, "offset": 0, "hasMore": True}
            got = await page(api, auth, bot_id, endDate=times[3], offset=1)
            assert ids(got["trades"]) == ids(newest[4:])
            assert got["pagination"] == {"total": 3, "limit": 50, "offset": 1, "hasMore": False}

            # Bare dates cover whole UTC days.
            first_day, last_day = date.fromisoformat(times[-1][:10]), date.fromisoformat(times[0][:10])
            got = await page(api, auth, bot_id, startDate=first_day.isoformat(), endDate=last_day.isoformat())
            assert ids(got["trades"]) == ids(newest)
            got = await page(api, auth, bot_id, endDate=(first_day - timedelta(days=1)).isoformat())
            assert got == {
                "trades": [],
                "pagination": {"total": 0, "limit": 50, "offset": 0, "hasMore": False},
            }

            for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"startDate": "yesterday"}):
                r = await api.get(f"/api/bots/{bot_id}/trades", headers=auth, params=bad)
                assert refusal(r)[:2] == (400, "VALIDATION_ERROR"), bad
        finally:
            r = await api.delete(f"/api/bots/{bot_id}", headers=auth)
            assert r.status_code == 200, r.text
