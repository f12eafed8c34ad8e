"""Reads on seeded trading data: performance, trade pages, the list and its summary all agree."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from bots.testing import Fill, User, error_code, seed_fills
from common.testing.service import exact_json
from trading.models import Bot, GridLevel

CreateBot = Callable[..., Awaitable[dict[str, Any]]]
SetPrice = Callable[[str, str, str], Awaitable[None]]
D = Decimal


def _at(day: int, hour: int) -> datetime:
    return datetime(2025, 1, day, hour, tzinfo=UTC)


# Two round trips and one buy still held, with Upbit's 0.05 % fees in KRW both ways. Profit of a round
# trip = what the sell received net of its fee − what the buy spent with its fee (the engine's rule).
FILLS = [
    Fill("buy", D(50000000), D("0.0002"), D(5), "KRW", _at(20, 10)),
    Fill("sell", D(51000000), D("0.0002"), D("5.1"), "KRW", _at(21, 10), profit=D("189.9")),
    Fill("buy", D(51000000), D("0.0002"), D("5.1"), "KRW", _at(22, 9)),
    Fill("buy", D(52020000), D("0.00019"), D("4.9419"), "KRW", _at(22, 15)),
    Fill("sell", D(53000000), D("0.00019"), D("5.035"), "KRW", _at(23, 10), profit=D("176.2231")),
]
TOTAL_PROFIT = D("366.1231")
HELD_COST = D("10205.1")  # the second buy, 10,200 + 5.1 fee, is not sold yet


@pytest.fixture
async def seeded(app: FastAPI, create_bot: CreateBot) -> str:
    """A running spec-example bot with FILLS recorded as the engine records them."""
    bot_id: str = (await create_bot())["botId"]
    # The first order was given an exchange order id (a live order); the others are paper orders.
    fills = [dataclasses.replace(FILLS[0], exchange_order_id=f"upbit-{bot_id}"), *FILLS[1:]]
    await seed_fills(app.state.session_factory, bot_id, "upbit", fills)
    return bot_id


async def _get(client: httpx.AsyncClient, user: User, path: str, **params: Any) -> dict[str, Any]:
    response = await client.get(path, params=params, headers=user.auth)
    assert response.status_code == 200, response.text
    # Exact: the contract writes money digit for digit, so it is compared digit for digit.
    data: dict[str, Any] = exact_json(response)["data"]
    return data


async def test_performance_is_computed_from_the_trades(
    client: httpx.AsyncClient, user: User, seeded: str, set_price: SetPrice
) -> None:
    await set_price("upbit", "KRW-BTC", "55000000")
    perf = await _get(client, user, f"/api/bots/{seeded}/performance")
    unrealized = D("0.0002") * 55000000 - HELD_COST  # 794.9
    assert perf == {
        "totalProfit": TOTAL_PROFIT,
        "profitPercent": D("0.23"),  # 366.1231 / 160,000 × 100 = 0.2288…
        "totalTrades": 5,
        "buyTrades": 3,
        "sellTrades": 2,
        "avgProfitPerTrade": TOTAL_PROFIT / 2,
        "investmentAmount": 160000,
        "currentValue": 160000 + TOTAL_PROFIT + unrealized,
        "runningDays": 1,
        "dailyAvgProfit": D("366.12"),
    }


async def test_running_days_count_whole_days_since_the_first_start(
    app: FastAPI, client: httpx.AsyncClient, user: User, seeded: str, set_price: SetPrice
) -> None:
    await set_price("upbit", "KRW-BTC", "55000000")
    async with app.state.session_factory() as session:
        first = datetime.now(UTC) - timedelta(days=10, hours=12)
        await session.execute(update(Bot).where(Bot.id == uuid.UUID(seeded)).values(first_started_at=first))
        await session.commit()
    perf = await _get(client, user, f"/api/bots/{seeded}/performance")
    assert perf["runningDays"] == 10 and perf["dailyAvgProfit"] == D("36.61")


async def test_held_base_is_marked_to_the_exchange_price_when_none_is_cached(
    client: httpx.AsyncClient, user: User, create_bot: CreateBot, app: FastAPI, sim_http: httpx.AsyncClient
) -> None:
    bot_id = (await create_bot(ticker="KRW-ETH", lowerPrice=4000000, upperPrice=5000000))["botId"]
    await seed_fills(
        app.state.session_factory,
        bot_id,
        "upbit",
        [Fill("buy", D(4000000), D("0.0025"), D(5), "KRW", _at(20, 1))],
    )
    pinned = await sim_http.put("/_sim/prices/upbit/KRW-ETH", json={"price": "4400000"})
    assert pinned.status_code == 200, pinned.text
    perf = await _get(client, user, f"/api/bots/{bot_id}/performance")
    investment = perf["investmentAmount"]
    # 0.0025 ETH bought for 10,005 KRW, worth 11,000 KRW now.
    assert perf["currentValue"] == investment + 11000 - 10005
    assert perf["totalProfit"] == 0 and perf["avgProfitPerTrade"] == 0 and perf["sellTrades"] == 0


async def test_trade_pages_cover_every_trade_once_newest_first(
    client: httpx.AsyncClient, user: User, seeded: str
) -> None:
    first = await _get(client, user, f"/api/bots/{seeded}/trades", limit=2)
    assert first["pagination"] == {"total": 5, "limit": 2, "offset": 0, "hasMore": True}
    second = await _get(client, user, f"/api/bots/{seeded}/trades", limit=2, offset=2)
    last = await _get(client, user, f"/api/bots/{seeded}/trades", limit=2, offset=4)
    assert last["pagination"] == {"total": 5, "limit": 2, "offset": 4, "hasMore": False}
    trades = first["trades"] + second["trades"] + last["trades"]
    assert len({t["_id"] for t in trades}) == 5
    assert [t["executedAt"] for t in trades] == [
        "2025-01-23T10:00:00.000Z",
        "2025-01-22T15:00:00.000Z",
        "2025-01-22T09:00:00.000Z",
        "2025-01-21T10:00:00.000Z",
        "2025-01-20T10:00:00.000Z",
    ]
    newest = trades[0]
    assert newest["type"] == "sell" and newest["price"] == 53000000 and newest["amount"] == D("0.00019")
    assert newest["total"] == 10070 and newest["fee"] == D("5.035") and newest["profit"] == D("176.2231")
    assert all(("profit" in t) == (t["type"] == "sell") for t in trades)
    assert sum(t["profit"] for t in trades if t["type"] == "sell") == TOTAL_PROFIT
    assert trades[-1]["orderId"] == f"upbit-{seeded}"  # the exchange's id where there is one
    assert trades[-2]["orderId"].startswith("gb")  # paper: our client order id
    everything = await _get(client, user, f"/api/bots/{seeded}/trades")
    assert everything["pagination"] == {"total": 5, "limit": 50, "offset": 0, "hasMore": False}


async def test_empty_answers_of_an_owned_bot_are_empty_not_missing(
    client: httpx.AsyncClient, user: User, seeded: str, create_bot: CreateBot
) -> None:
    # Each read is one statement starting at the owned bot: no rows of the route still answers the bot's row.
    past = await _get(client, user, f"/api/bots/{seeded}/trades", limit=2, offset=10)
    assert past == {"trades": [], "pagination": {"total": 5, "limit": 2, "offset": 10, "hasMore": False}}
    assert await _get(client, user, f"/api/bots/{seeded}/grid-levels", status="filled") == {"gridLevels": []}
    fresh = (await create_bot())["botId"]
    none = await _get(client, user, f"/api/bots/{fresh}/trades")
    assert none == {"trades": [], "pagination": {"total": 0, "limit": 50, "offset": 0, "hasMore": False}}
    detail = await _get(client, user, f"/api/bots/{fresh}")
    assert detail["totalTrades"] == 0 and detail["currentProfit"] == 0 and detail["heldBase"] == 0


@pytest.mark.parametrize(
    ("params", "count"),
    [
        ({"startDate": "2025-01-22"}, 3),
        ({"endDate": "2025-01-22"}, 4),  # a bare end date includes that whole day
        ({"startDate": "2025-01-22T12:00:00Z", "endDate": "2025-01-22T23:59:59Z"}, 1),
        ({"startDate": "2025-01-22T00:00:00+09:00"}, 3),  # = 2025-01-21T15:00Z
        ({"startDate": "2025-01-21T10:00:00.000Z", "endDate": "2025-01-21T10:00:00.000Z"}, 1),
        ({"startDate": "2025-01-24"}, 0),
    ],
)
async def test_trade_date_filters(
    client: httpx.AsyncClient, user: User, seeded: str, params: dict[str, str], count: int
) -> None:
    page = await _get(client, user, f"/api/bots/{seeded}/trades", **params)
    assert len(page["trades"]) == count and page["pagination"]["total"] == count


async def test_date_bounds_include_the_trades_shown_at_them(
    app: FastAPI, client: httpx.AsyncClient, user: User, create_bot: CreateBot
) -> None:
    # The engine records a paper fill at its clock's microsecond; the API shows milliseconds.
    bot_id = (await create_bot())["botId"]
    at = [datetime(2025, 1, 20, 10, 0, 0, micro, tzinfo=UTC) for micro in (123456, 124999, 125000)]
    fills = [Fill("buy", D(50000000), D("0.0002"), D(5), "KRW", t) for t in at]
    await seed_fills(app.state.session_factory, bot_id, "upbit", fills)
    shown = [t["executedAt"] for t in (await _get(client, user, f"/api/bots/{bot_id}/trades"))["trades"]]
    assert shown == ["2025-01-20T10:00:00.125Z", "2025-01-20T10:00:00.124Z", "2025-01-20T10:00:00.123Z"]
    for params, count in (
        ({"endDate": shown[1]}, 2),
        ({"startDate": shown[1], "endDate": shown[1]}, 1),
        ({"startDate": shown[2], "endDate": shown[2]}, 1),
        ({"startDate": "2025-01-20T10:00:00.123456Z", "endDate": "2025-01-20T10:00:00.123999Z"}, 1),
        ({"endDate": "2025-01-20T10:00:00.122999Z"}, 0),
    ):
        page = await _get(client, user, f"/api/bots/{bot_id}/trades", **params)
        assert page["pagination"]["total"] == count, params


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"limit": "ten"},
        {"offset": -1},
        {"startDate": "yesterday"},
        {"endDate": "2025-13-01"},
        {"startDate": "2025-01-23", "endDate": "2025-01-22"},
    ],
)
async def test_bad_trade_queries(
    client: httpx.AsyncClient, user: User, seeded: str, params: dict[str, Any]
) -> None:
    response = await client.get(f"/api/bots/{seeded}/trades", params=params, headers=user.auth)
    assert response.status_code == 400 and error_code(response) == "VALIDATION_ERROR"
    assert response.json()["error"]["details"]["fields"]


async def test_list_summary_and_detail_agree_with_performance(
    client: httpx.AsyncClient, user: User, seeded: str, create_bot: CreateBot, set_price: SetPrice
) -> None:
    other = (
        await create_bot(
            exchange="binance",
            ticker="BTCUSDT",
            lowerPrice=90000,
            upperPrice=110000,
            orderAmount=20,
            autoStart=False,
        )
    )["botId"]
    listed = await _get(client, user, "/api/bots")
    by_id = {b["_id"]: b for b in listed["bots"]}
    assert set(by_id) == {seeded, other}
    assert [b["_id"] for b in listed["bots"]] == [other, seeded]  # newest first
    await set_price("upbit", "KRW-BTC", "55000000")
    perf = await _get(client, user, f"/api/bots/{seeded}/performance")
    pages = await _get(client, user, f"/api/bots/{seeded}/trades")
    row = by_id[seeded]
    assert row["currentProfit"] == perf["totalProfit"] == TOTAL_PROFIT
    assert row["totalTrades"] == perf["totalTrades"] == pages["pagination"]["total"] == 5
    assert row["profitPercent"] == perf["profitPercent"] == D("0.23")
    assert row["investmentAmount"] == perf["investmentAmount"] == 160000
    assert row["lastExecutedAt"] == "2025-01-23T10:00:00.000Z"
    assert by_id[other]["currentProfit"] == 0 and by_id[other]["totalTrades"] == 0
    assert row["stopReason"] is None and by_id[other]["stopReason"] is None  # running; never started
    other_investment = by_id[other]["investmentAmount"]
    krw = {"totalBots": 1, "activeBots": 1, "totalProfit": TOTAL_PROFIT, "totalInvestment": 160000}
    usdt = {"totalBots": 1, "activeBots": 0, "totalProfit": 0, "totalInvestment": other_investment}
    # KRW and USDT are never added together: per currency always, top-level totals only when one currency.
    assert listed["summary"] == {
        "totalBots": 2,
        "activeBots": 1,
        "totalProfit": None,
        "totalInvestment": None,
        "byCurrency": {"KRW": krw, "USDT": usdt},
    }
    running = await _get(client, user, "/api/bots", status="running")
    assert [b["_id"] for b in running["bots"]] == [seeded]
    assert running["summary"] == {**krw, "byCurrency": {"KRW": krw}}
    binance = await _get(client, user, "/api/bots", exchange="binance")
    assert [b["_id"] for b in binance["bots"]] == [other]
    assert binance["summary"] == {**usdt, "byCurrency": {"USDT": usdt}}
    everything = await _get(client, user, "/api/bots", status="", exchange="")
    assert everything["summary"]["totalBots"] == 2
    detail = await _get(client, user, f"/api/bots/{seeded}")
    assert detail["currentPrice"] == 55000000
    assert detail["heldBase"] == D("0.0002")  # the second buy, not sold yet
    assert {k: v for k, v in detail.items() if k not in ("currentPrice", "heldBase")} == row


async def test_bad_list_filters(client: httpx.AsyncClient, user: User) -> None:
    response = await client.get("/api/bots", params={"status": "paused"}, headers=user.auth)
    assert response.status_code == 400 and error_code(response) == "VALIDATION_ERROR"
    response = await client.get("/api/bots", params={"exchange": "bithumb"}, headers=user.auth)
    assert response.status_code == 400 and error_code(response) == "UNSUPPORTED_EXCHANGE"


async def test_current_price_is_null_until_market_data_caches_one(
    client: httpx.AsyncClient, user: User, create_bot: CreateBot, set_price: SetPrice
) -> None:
    bot_id = (await create_bot(ticker="KRW-SOL", lowerPrice=200000, upperPrice=300000))["botId"]
    assert (await _get(client, user, f"/api/bots/{bot_id}"))["currentPrice"] is None
    await set_price("upbit", "KRW-SOL", "251500.5")
    assert (await _get(client, user, f"/api/bots/{bot_id}"))["currentPrice"] == D("251500.5")


async def test_grid_levels_filter_by_status_ascending(
    app: FastAPI, client: httpx.AsyncClient, user: User, seeded: str
) -> None:
    filled_at = _at(23, 10)
    async with app.state.session_factory() as session:
        # What the engine writes as slots trade.
        for index, status, order_id in [(3, "pending", "o-3"), (1, "pending", "o-1"), (5, "filled", "o-5")]:
            await session.execute(
                update(GridLevel)
                .where(GridLevel.bot_id == uuid.UUID(seeded), GridLevel.level_index == index)
                .values(status=status, order_id=order_id, filled_at=filled_at if status == "filled" else None)
            )
        await session.commit()
    pending = (await _get(client, user, f"/api/bots/{seeded}/grid-levels", status="pending"))["gridLevels"]
    assert [level["orderId"] for level in pending] == ["o-1", "o-3"]
    assert pending[0]["price"] < pending[1]["price"] and "filledAt" not in pending[0]
    (filled,) = (await _get(client, user, f"/api/bots/{seeded}/grid-levels", status="filled"))["gridLevels"]
    assert filled["filledAt"] == "2025-01-23T10:00:00.000Z" and filled["orderId"] == "o-5"
    available = (await _get(client, user, f"/api/bots/{seeded}/grid-levels", status="available"))[
        "gridLevels"
    ]
    assert len(available) == 14 and "orderId" not in available[0]
    response = await client.get(
        f"/api/bots/{seeded}/grid-levels", params={"status": "open"}, headers=user.auth
    )
    assert response.status_code == 400 and error_code(response) == "VALIDATION_ERROR"
