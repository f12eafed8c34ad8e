"""POST /backtests runs on the worker over the simulator's past candles; reads, errors, ownership, deletes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from backtest_support import HOURS, D, finished, grid_body, post
from fastapi import FastAPI
from sqlalchemy import func, select

from backtest import kernel
from backtest.candles import StoredCandle
from backtest.models import Backtest, CandleSpan
from common.exchanges import Exchange, MarketCatalog
from common.grid import plan_grid
from common.testing.service import User, error_code, exact_json
from common.web import dumps
from gridcore.replay import MINUTE_MS


async def exchange_candles(catalog: MarketCatalog, start: int, end: int) -> list[StoredCandle]:
    """The simulator's candles of [start, end), read through ccxt page by page (not from our store)."""
    rows: list[StoredCandle] = []
    for cursor in range(start, end, 1000 * MINUTE_MS):
        page = await catalog.candles_from(Exchange.BINANCE, "BTCUSDT", cursor, 1000)
        rows += [
            StoredCandle(int(c[0]), D(repr(c[1])), D(repr(c[2])), D(repr(c[3])), D(repr(c[4])))
            for c in page
            if cursor <= int(c[0]) < min(end, cursor + 1000 * MINUTE_MS)
        ]
    return rows


@pytest.mark.usefixtures("worker")
async def test_a_backtest_runs_on_the_worker_and_agrees_with_the_kernel_over_the_exchanges_candles(
    client: httpx.AsyncClient, user: User, app: FastAPI
) -> None:
    body = grid_body()
    response = await post(client, user, body)
    assert response.status_code == 202, response.text
    queued = exact_json(response)["data"]
    assert queued["status"] == "queued" and queued["progress"] == 0
    done = await finished(client, user, queued["backtestId"])
    assert done["status"] == "done", done
    assert done["progress"] == 100
    assert (
        done["params"]["priceChangePercent"] == D("0.3") and done["params"]["startDate"] == body["startDate"]
    )
    result = done["result"]
    start = int(datetime.fromisoformat(body["startDate"]).timestamp() * 1000)
    end = int(datetime.fromisoformat(body["endDate"]).timestamp() * 1000)
    assert result["candles"] + result["missingCandles"] == HOURS * 60
    assert result["candles"] > 0 and result["buyTrades"] > 0
    # Stored, read back and replayed, the candles give exactly what the kernel gives over the exchange's own.
    async with app.state.session_factory() as session:
        grid = (await session.execute(select(Backtest.grid))).scalar_one()
    expected = kernel.run_grid(grid, await exchange_candles(app.state.catalog, start, end), start, end)
    assert result == exact_json(httpx.Response(200, content=_dump(expected)))
    for key in ("realisedProfit", "fees", "unrealisedProfit", "finalValue", "totalReturnPercent"):
        assert isinstance(result[key], (int, Decimal)), key  # exact JSON numbers, never floats
    assert len(result["equity"]) <= 500


def _dump(model: Any) -> bytes:
    return dumps(model.model_dump())


@pytest.mark.usefixtures("worker")
async def test_candles_are_fetched_once_and_reused(
    client: httpx.AsyncClient, user: User, app: FastAPI
) -> None:
    body = grid_body()
    first = exact_json(await post(client, user, body))["data"]["backtestId"]
    assert (await finished(client, user, first))["status"] == "done"
    async with app.state.session_factory() as session:
        spans = await session.scalar(select(func.count()).select_from(CandleSpan))
    second = exact_json(await post(client, user, grid_body(priceChangePercent=1)))["data"]["backtestId"]
    again = await finished(client, user, second)
    assert again["status"] == "done"
    async with app.state.session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(CandleSpan)) == spans


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"startDate": "2024-12-10", "endDate": "2024-12-01"}, "VALIDATION_ERROR"),
        ({"startDate": "2023-01-01", "endDate": "2024-12-01"}, "VALIDATION_ERROR"),
        ({"endDate": "2999-01-01"}, "VALIDATION_ERROR"),
        ({"startDate": "2999-01-01", "endDate": "2999-01-02"}, "VALIDATION_ERROR"),
        ({"startDate": "yesterday"}, "VALIDATION_ERROR"),
        ({"ticker": "NOPEUSDT"}, "TICKER_NOT_FOUND"),
        ({"exchange": "kraken"}, "UNSUPPORTED_EXCHANGE"),
        ({"lowerPrice": 106000, "upperPrice": 90000}, "INVALID_PRICE_RANGE"),
        ({"priceChangePercent": 0}, "INVALID_PRICE_RANGE"),
        ({"orderAmount": D("0.5")}, "INVALID_ORDER_AMOUNT"),
        ({"feeRate": D("0.5")}, "VALIDATION_ERROR"),
        ({"autoStart": True}, "VALIDATION_ERROR"),
    ],
)
async def test_bad_input_gets_the_bots_routes_errors_and_stores_nothing(
    client: httpx.AsyncClient, user: User, app: FastAPI, overrides: dict[str, Any], code: str
) -> None:
    response = await post(client, user, grid_body(**overrides))
    assert response.status_code >= 400 and error_code(response) == code, response.text
    async with app.state.session_factory() as session:
        mine = select(func.count()).where(Backtest.user_id == uuid.UUID(user.user_id))
        assert await session.scalar(mine) == 0


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_another_users_backtest_is_not_found_and_delete_removes_it(
    client: httpx.AsyncClient, user: User, new_user: Callable[[], User]
) -> None:
    backtest_id = exact_json(await post(client, user, grid_body()))["data"]["backtestId"]
    stranger = new_user()
    for method in ("GET", "DELETE"):
        response = await client.request(method, f"/api/backtests/{backtest_id}", headers=stranger.auth)
        assert response.status_code == 404 and error_code(response) == "BACKTEST_NOT_FOUND"
    listed = exact_json(await client.get("/api/backtests", headers=stranger.auth))["data"]
    assert listed["backtests"] == [] and listed["pagination"]["total"] == 0
    assert (await client.delete(f"/api/backtests/{backtest_id}", headers=user.auth)).status_code == 200
    response = await client.get(f"/api/backtests/{backtest_id}", headers=user.auth)
    assert error_code(response) == "BACKTEST_NOT_FOUND"
    response = await client.get("/api/backtests/not-a-uuid", headers=user.auth)
    assert response.status_code == 404 and error_code(response) == "NOT_FOUND"


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_the_list_is_newest_first_and_paged(client: httpx.AsyncClient, user: User) -> None:
    ids = [exact_json(await post(client, user, grid_body()))["data"]["backtestId"] for _ in range(3)]
    page = exact_json(await client.get("/api/backtests?limit=2&offset=0", headers=user.auth))["data"]
    assert [b["backtestId"] for b in page["backtests"]] == ids[::-1][:2]
    assert page["pagination"] == {"total": 3, "limit": 2, "offset": 0, "hasMore": True}
    assert all("result" not in b for b in page["backtests"])


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_recommendations_are_ranked_and_each_is_a_grid_the_bots_route_accepts(
    client: httpx.AsyncClient, user: User, app: FastAPI
) -> None:
    body = {"exchange": "binance", "ticker": "BTCUSDT", "investment": 1000, "days": 7}
    response = await post(client, user, body, "/api/backtests/recommend")
    assert response.status_code == 200, response.text
    data = exact_json(response)["data"]
    found = data["recommendations"]
    assert 1 <= len(found) <= app.state.settings.recommendations
    assert data["basis"]["days"] == 7 and data["basis"]["candles"] > 0
    profits = [r["result"]["realisedProfit"] for r in found]
    assert profits == sorted(profits, reverse=True)
    rules = await app.state.catalog.rules(Exchange.BINANCE, "BTCUSDT")
    for r in found:
        lower, upper, pct, amount = (
            D(str(r[k])) for k in ("lowerPrice", "upperPrice", "priceChangePercent", "orderAmount")
        )
        plan = plan_grid(lower, upper, pct, amount, rules)
        assert plan.grid_count == r["gridCount"]
        assert r["gridCount"] * r["orderAmount"] <= 1000
        assert r["priceChangePercent"] > 2 * rules.maker_fee * 100


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"days": 3}, "VALIDATION_ERROR"),
        ({"days": 91}, "VALIDATION_ERROR"),
        ({"investment": 1}, "INVALID_ORDER_AMOUNT"),
        ({"investment": 0}, "INVALID_ORDER_AMOUNT"),
        ({"ticker": "NOPEUSDT"}, "TICKER_NOT_FOUND"),
    ],
)
async def test_a_recommendation_request_that_cannot_be_answered_says_why(
    client: httpx.AsyncClient, user: User, overrides: dict[str, Any], code: str
) -> None:
    body = {"exchange": "binance", "ticker": "BTCUSDT", "investment": 1000, "days": 7, **overrides}
    response = await post(client, user, body, "/api/backtests/recommend")
    assert response.status_code >= 400 and error_code(response) == code, response.text
