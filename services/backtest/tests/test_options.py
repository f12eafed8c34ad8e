"""Grid options in backtests: validated as POST /bots validates them, stored with the grid, replayed by the kernel.

The grids are drawn from the simulator's own candles (read through the candle store first), so the market
surely falls to the stop-loss, and surely rises above the range, whatever stretch of history the window holds.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN
from typing import Any

import httpx
import pytest
from backtest_support import D, finished, grid_body, post
from fastapi import FastAPI
from sqlalchemy import func, select

from backtest import kernel
from backtest.candles import CandleStore, StoredCandle
from backtest.models import Backtest
from common.exchanges import Exchange
from common.testing.service import User, error_code, exact_json
from gridcore.replay import MINUTE_MS, replay

DAY_MINUTES = 1440


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _price(value: Any) -> D:
    return D(value).quantize(D(1), rounding=ROUND_DOWN)


async def _candles(app: FastAPI, start: int, end: int) -> list[StoredCandle]:
    """The simulator's candles of [start, end), through the service's own store (fetched once, then stored)."""
    store = CandleStore(app.state.session_factory, app.state.catalog, lambda: int(time.time() * 1000))
    await store.ensure(Exchange.BINANCE, "BTCUSDT", start, end)
    return await store.load(Exchange.BINANCE, "BTCUSDT", start, end)


async def _run(client: httpx.AsyncClient, user: User, body: dict[str, Any]) -> dict[str, Any]:
    response = await post(client, user, body)
    assert response.status_code == 202, response.text
    done = await finished(client, user, exact_json(response)["data"]["backtestId"])
    assert done["status"] == "done", done
    return done


async def _grid(app: FastAPI, backtest_id: str) -> dict[str, Any]:
    async with app.state.session_factory() as session:
        grid: dict[str, Any] = (
            await session.execute(select(Backtest.grid).where(Backtest.id == uuid.UUID(backtest_id)))
        ).scalar_one()
    return grid


def _same(result: dict[str, Any], expected: Any) -> bool:
    from common.web import dumps

    return result == exact_json(httpx.Response(200, content=dumps(expected.model_dump())))


async def _day(app: FastAPI) -> list[StoredCandle]:
    """The simulator's last day of candles (all the history it holds)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return await _candles(app, _ms(now - timedelta(minutes=DAY_MINUTES - 1)), _ms(now))


def _window(candles: list[StoredCandle], first: int, last: int) -> tuple[dict[str, str], list[StoredCandle]]:
    """startDate/endDate of candles[first..last], and those candles."""
    start, end = candles[first].open_time, candles[last].open_time + MINUTE_MS
    return {"startDate": _iso(start), "endDate": _iso(end)}, candles[first : last + 1]


def _bounds(window: dict[str, str]) -> tuple[int, int]:
    return _ms(datetime.fromisoformat(window["startDate"])), _ms(datetime.fromisoformat(window["endDate"]))


@pytest.mark.usefixtures("worker")
async def test_a_stop_loss_stops_the_replay_where_the_market_falls_to_it(
    client: httpx.AsyncClient, user: User, app: FastAPI
) -> None:
    candles = await _day(app)
    # The day's lowest low, and the highest open of the four hours before it: a fall through the grid.
    bottom = min(range(240, len(candles)), key=lambda i: candles[i].low)
    top = max(range(bottom - 240, bottom - 30), key=lambda i: candles[i].open)
    window, seen = _window(candles, top, min(bottom + 60, len(candles) - 1))
    low, high = candles[bottom].low, candles[top].open
    assert high / low > D("1.005"), (low, high)  # BTC falls more than that in four hours
    # The grid over the upper part of the fall, the stop-loss below it: the market trades the grid on its
    # way down, then reaches the stop.
    lower, stop = _price(low + (high - low) * D("0.6")), _price(low + (high - low) * D("0.3"))
    grid = {
        **window,
        "lowerPrice": lower,
        "upperPrice": _price(high * D("1.005")),
        "priceChangePercent": D("0.2"),
    }
    plain = await _run(client, user, grid_body(**grid, sellBaseOnStop=True))
    stopped = await _run(client, user, grid_body(**grid, sellBaseOnStop=True, stopLossPrice=stop))
    assert plain["result"]["stopReason"] is None and plain["result"]["stoppedAt"] is None
    result = stopped["result"]
    assert result["stopReason"] == "stopLoss" and result["stoppedAt"] < result["lastCandleAt"]
    assert result != plain["result"]
    # It bought on the way down; at the stop it sold what it held (sellBaseOnStop) but the dust below a lot.
    assert result["buyTrades"] > 0 and result["sellTrades"] > plain["result"]["sellTrades"]
    assert abs(result["unrealisedProfit"]) < abs(plain["result"]["unrealisedProfit"])
    # The first minute whose low reaches the stop is the minute it stopped in.
    first = next(c for c in seen if c.low <= stop)
    stopped_ms = _ms(datetime.fromisoformat(result["stoppedAt"].replace("Z", "+00:00")))
    assert first.open_time <= stopped_ms < first.open_time + MINUTE_MS
    # params show the options as sent; the stored grid replays to exactly this result.
    assert stopped["params"]["stopLossPrice"] == stop and stopped["params"]["sellBaseOnStop"] is True
    stored = await _grid(app, stopped["backtestId"])
    assert stored["stopLossPrice"] == format(stop, "f") and stored["sellBaseOnStop"] is True
    assert _same(result, kernel.run_grid(stored, seen, *_bounds(window)))


@pytest.mark.usefixtures("worker")
async def test_trailing_up_keeps_trading_above_the_range_on_a_rise(
    client: httpx.AsyncClient, user: User, app: FastAPI
) -> None:
    candles = await _day(app)
    # The day's largest rise: the lowest low before the highest high after it.
    best, low_at, rise = (0, 0), 0, D(0)
    for index, candle in enumerate(candles):
        if candle.low < candles[low_at].low:
            low_at = index
        if candle.high / candles[low_at].low > rise:
            best, rise = (low_at, index), candle.high / candles[low_at].low
    assert rise > D("1.01"), rise  # BTC rises more than 1 % in a day
    window, seen = _window(candles, *best)
    start_price = seen[0].open
    upper = _price(start_price * D("1.004"))
    grid = {
        **window,
        "lowerPrice": _price(start_price * D("0.996")),
        "upperPrice": upper,
        "priceChangePercent": D("0.25"),
    }
    plain = await _run(client, user, grid_body(**grid))
    trailing = await _run(client, user, grid_body(**grid, trailingUp=True))
    # The plain grid sells out as the market leaves its range; the trailing one follows it up.
    assert trailing["result"]["sellTrades"] > plain["result"]["sellTrades"]
    assert trailing["params"]["trailingUp"] is True and "trailingUpLimit" not in trailing["params"]
    stored = await _grid(app, trailing["backtestId"])
    assert stored["trailingUp"] is True and stored["gridType"] == "geometric"
    assert _same(trailing["result"], kernel.run_grid(stored, seen, *_bounds(window)))
    trades = replay(kernel.spec_of(stored), kernel.series_of(seen)).trades
    assert any(t.price > upper for t in trades if t.side.value == "sell")
    assert not any(
        t.price > upper
        for t in replay(kernel.spec_of(await _grid(app, plain["backtestId"])), kernel.series_of(seen)).trades
    )
    # A limit ends the trailing: capped just above the range, it trades less above it.
    capped = await _run(client, user, grid_body(**grid, trailingUp=True, trailingUpLimit=upper + 1))
    assert capped["result"]["sellTrades"] < trailing["result"]["sellTrades"]
    assert capped["params"]["trailingUpLimit"] == upper + 1


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.parametrize(
    ("options", "code", "field"),
    [
        ({"stopLossPrice": 90000}, "INVALID_PRICE_RANGE", "stopLossPrice"),
        ({"takeProfitPrice": 105000}, "INVALID_PRICE_RANGE", "takeProfitPrice"),
        ({"trailingUp": True, "trailingUpLimit": 106000}, "INVALID_PRICE_RANGE", "trailingUpLimit"),
        ({"triggerPrice": -1}, "INVALID_PRICE_RANGE", "triggerPrice"),
        ({"trailingUpLimit": 120000}, "VALIDATION_ERROR", "trailingUpLimit"),
        ({"sellBaseOnStop": "yes"}, "VALIDATION_ERROR", "sellBaseOnStop"),
    ],
)
async def test_bad_options_get_the_bots_routes_errors_and_store_nothing(
    client: httpx.AsyncClient, user: User, app: FastAPI, options: dict[str, Any], code: str, field: str
) -> None:
    response = await post(client, user, grid_body(**options))
    assert response.status_code == 400 and error_code(response) == code, response.text
    details = response.json()["error"]["details"]
    fields = {f["field"] for f in details["fields"]} if code == "VALIDATION_ERROR" else {details["field"]}
    assert field in fields
    async with app.state.session_factory() as session:
        mine = select(func.count()).where(Backtest.user_id == uuid.UUID(user.user_id))
        assert await session.scalar(mine) == 0


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_the_document_shows_the_options_of_a_backtest(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    properties = document["components"]["schemas"]["CreateBacktestRequest"]["properties"]
    for name in (
        "triggerPrice",
        "takeProfitPrice",
        "stopLossPrice",
        "sellBaseOnStop",
        "trailingUp",
        "trailingUpLimit",
    ):
        assert properties[name]["examples"] and properties[name]["description"], name
    result = document["components"]["schemas"]["BacktestResult"]["properties"]
    assert {"stopReason", "stoppedAt"} <= set(result)
    responses = document["paths"]["/api/backtests"]["post"]["responses"]
    assert {"INVALID_PRICE_RANGE", "VALIDATION_ERROR"} <= set(responses["400"]["x-error-codes"])
