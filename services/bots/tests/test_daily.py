"""GET /bots/:id/performance/daily: per UTC day from the trades table, adding up to /performance exactly."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bots.testing import Fill, User, error_code, seed_fills
from common.testing.service import exact_json

CreateBot = Callable[..., Awaitable[dict[str, Any]]]
SetPrice = Callable[[str, str, str], Awaitable[None]]
D = Decimal


def _at(day: int, hour: int, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(2025, 1, day, hour, minute, second, micro, tzinfo=UTC)


# Fills on both sides of three UTC midnights; one buy's fee taken in base (BTC), as Binance takes it.
FILLS = [
    Fill("buy", D(50000000), D("0.0002"), D(5), "KRW", _at(20, 23, 59, 59, 999999)),
    Fill("sell", D(51000000), D("0.0002"), D("5.1"), "KRW", _at(21, 0), profit=D("189.9")),
    Fill("buy", D(51000000), D("0.0002"), D("0.0000001"), "BTC", _at(21, 23, 59, 59, 999000)),
    Fill("sell", D(52000000), D("0.0001999"), D("5.1974"), "KRW", _at(22, 0, 0, 0, 1), profit=D("178.3")),
    Fill("buy", D(52020000), D("0.00019"), D("4.9419"), "KRW", _at(23, 10)),
]
DAYS = [
    {"date": "2025-01-20", "profit": 0, "trades": 1, "buyTrades": 1, "sellTrades": 0, "fees": 5},
    # 5.1 KRW, and 0.0000001 BTC at the buy's price of 51,000,000: 5.1 KRW more.
    {
        "date": "2025-01-21",
        "profit": D("189.9"),
        "trades": 2,
        "buyTrades": 1,
        "sellTrades": 1,
        "fees": D("10.2"),
    },
    {
        "date": "2025-01-22",
        "profit": D("178.3"),
        "trades": 1,
        "buyTrades": 0,
        "sellTrades": 1,
        "fees": D("5.1974"),
    },
    {"date": "2025-01-23", "profit": 0, "trades": 1, "buyTrades": 1, "sellTrades": 0, "fees": D("4.9419")},
]


@pytest.fixture
async def seeded(app: FastAPI, create_bot: CreateBot) -> str:
    """A spec-example bot with FILLS recorded as the engine records them."""
    bot_id: str = (await create_bot())["botId"]
    await seed_fills(app.state.session_factory, bot_id, "upbit", FILLS)
    return bot_id


async def _daily(client: httpx.AsyncClient, user: User, bot_id: str, **params: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/bots/{bot_id}/performance/daily", params=params, headers=user.auth)
    assert response.status_code == 200, response.text
    days: list[dict[str, Any]] = exact_json(response)["data"]["days"]
    return days


async def test_days_split_at_utc_midnight_and_add_up_to_the_performance(
    client: httpx.AsyncClient, user: User, seeded: str, set_price: SetPrice
) -> None:
    await set_price("upbit", "KRW-BTC", "55000000")
    days = await _daily(client, user, seeded)
    assert days == DAYS
    response = await client.get(f"/api/bots/{seeded}/performance", headers=user.auth)
    perf = exact_json(response)["data"]
    assert sum(D(d["profit"]) for d in days) == perf["totalProfit"] == D("368.2")
    assert sum(d["trades"] for d in days) == perf["totalTrades"] == 5
    assert sum(d["buyTrades"] for d in days) == perf["buyTrades"]
    assert sum(d["sellTrades"] for d in days) == perf["sellTrades"]


async def test_bounds_are_taken_as_the_trades_route_takes_them(
    client: httpx.AsyncClient, user: User, seeded: str
) -> None:
    # A bare endDate covers its whole day; a date-time bound is inclusive to its millisecond.
    assert await _daily(client, user, seeded, startDate="2025-01-21", endDate="2025-01-22") == DAYS[1:3]
    assert await _daily(client, user, seeded, startDate="2025-01-21T23:59:59.999Z") == [
        {**DAYS[1], "profit": 0, "trades": 1, "sellTrades": 0, "fees": D("5.1")},
        *DAYS[2:],
    ]
    assert await _daily(client, user, seeded, endDate="2025-01-19") == []
    bad = await client.get(
        f"/api/bots/{seeded}/performance/daily",
        params={"startDate": "2025-01-22", "endDate": "2025-01-21"},
        headers=user.auth,
    )
    assert (bad.status_code, error_code(bad)) == (400, "VALIDATION_ERROR")
    garbled = await client.get(
        f"/api/bots/{seeded}/performance/daily", params={"startDate": "yesterday"}, headers=user.auth
    )
    assert (garbled.status_code, error_code(garbled)) == (400, "VALIDATION_ERROR")


async def test_another_users_bot_is_not_found(
    client: httpx.AsyncClient, seeded: str, new_user: Callable[[], User], create_bot: CreateBot
) -> None:
    stranger = new_user()
    response = await client.get(f"/api/bots/{seeded}/performance/daily", headers=stranger.auth)
    assert (response.status_code, error_code(response)) == (404, "BOT_NOT_FOUND")
    own = (await create_bot(owner=stranger))["botId"]
    assert await _daily(client, stranger, own) == []
