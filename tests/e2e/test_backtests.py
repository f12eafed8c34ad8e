"""Backtests through the gateway, in `make run` and `make dev`: 30 days of the simulator's Binance BTCUSDT,
the result and its live progress, recommendations a bot can be created from, and refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from websockets.asyncio.client import connect

from common.testing.wait import eventually
from common.web import dumps
from launcher.testing import POLL, System, body, clients, refusal, register, until

pytestmark = pytest.mark.e2e

D = Decimal
THIRTY_DAYS = 30 * 24 * 60


def example(now: datetime) -> dict[str, Any]:
    """The spec's example bot (a 2 % geometric grid over a range of about ±20 %), on Binance BTCUSDT."""
    return {
        "exchange": "binance",
        "ticker": "BTCUSDT",
        "lowerPrice": 85000,
        "upperPrice": 110000,
        "priceChangePercent": 2,
        "orderAmount": 100,
        "stopAtMax": False,
        "startDate": (now - timedelta(days=30)).isoformat(),
        "endDate": now.isoformat(),
    }


@pytest.mark.timeout(240, func_only=True)
async def test_a_thirty_day_backtest_returns_its_full_result_and_pushes_its_progress(
    system: System, client_ip: str
) -> None:
    async with clients(system, client_ip) as (api, _):
        auth = await register(api)
        token = auth["authorization"].removeprefix("Bearer ")
        ws_url = system.gateway.replace("http://", "ws://", 1) + "/api/ws"
        async with connect(f"{ws_url}?token={token}") as ws:
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            queued = body(await api.post("/api/backtests", headers=auth, json=example(now)))
            assert (queued["status"], queued["progress"]) == ("queued", 0)
            backtest_id = queued["backtestId"]

            def settled(seen: list[dict[str, Any]]) -> bool:
                return any(e.get("backtestId") == backtest_id and e["status"] != "running" for e in seen)

            seen: list[dict[str, Any]] = []
            await until(ws, seen, settled, 180, "the backtest's final status was not pushed")
        events = [e for e in seen if e["type"] == "backtest"]
        assert events[-1] == {
            "type": "backtest",
            "backtestId": backtest_id,
            "status": "done",
            "progress": 100,
        }
        progress = [e["progress"] for e in events]
        assert progress == sorted(progress)
        shown = body(await api.get(f"/api/backtests/{backtest_id}", headers=auth))
        assert shown["status"] == "done", shown
        result = shown["result"]
        # The simulator holds the whole shared month (29 days and a minute) and what it replayed since.
        assert result["candles"] + result["missingCandles"] == THIRTY_DAYS
        assert result["candles"] >= 41_761 and result["buyTrades"] > 0 and result["sellTrades"] > 0
        assert result["gridCount"] == 13 and result["investmentAmount"] == 1300
        assert (
            result["finalValue"]
            == result["investmentAmount"] + result["realisedProfit"] + result["unrealisedProfit"]
        )
        assert 0 < len(result["equity"]) <= 500 and len(result["daily"]) >= 29
        assert sum(day["trades"] for day in result["daily"]) == result["buyTrades"] + result["sellTrades"]
        assert sum(day["profit"] for day in result["daily"]) == result["realisedProfit"]
        assert 0 <= result["timeInRangePercent"] <= 100 and result["maxDrawdownPercent"] >= 0
        listed = body(await api.get("/api/backtests", headers=auth))
        assert [b["backtestId"] for b in listed["backtests"]] == [backtest_id]


async def test_a_recommendation_is_created_as_a_bot_as_it_stands(system: System, client_ip: str) -> None:
    async with clients(system, client_ip) as (api, _):
        auth = await register(api)
        wanted = {"exchange": "binance", "ticker": "BTCUSDT", "investment": 1000, "days": 7}
        found = body(await api.post("/api/backtests/recommend", headers=auth, json=wanted))
        assert found["basis"]["days"] == 7 and found["basis"]["candles"] > 0
        top = found["recommendations"][0]
        bot = {
            key: top[key]
            for key in ("lowerPrice", "upperPrice", "priceChangePercent", "orderAmount", "gridType")
        }
        # Exactly as shown: decimals as exact JSON numbers (a float could not carry every one).
        r = await api.post(
            "/api/bots",
            headers={**auth, "content-type": "application/json"},
            content=dumps({"exchange": "binance", "ticker": "BTCUSDT", **bot}),
        )
        created = body(r)
        try:
            assert created["gridCount"] == top["gridCount"]
        finally:
            r = await api.delete(f"/api/bots/{created['botId']}", headers=auth)
            assert r.status_code == 200, r.text


async def test_refusals_and_another_users_backtest(system: System, client_ip: str) -> None:
    async with clients(system, client_ip) as (api, _):
        auth, stranger = await register(api), await register(api)
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        cases = [
            (
                {
                    "startDate": (now - timedelta(days=1)).isoformat(),
                    "endDate": (now - timedelta(days=2)).isoformat(),
                },
                400,
                "VALIDATION_ERROR",
            ),
            ({"startDate": (now - timedelta(days=400)).isoformat()}, 400, "VALIDATION_ERROR"),
            ({"endDate": (now + timedelta(days=1)).isoformat()}, 400, "VALIDATION_ERROR"),
            ({"ticker": "NOPEUSDT"}, 404, "TICKER_NOT_FOUND"),
            ({"lowerPrice": 110000, "upperPrice": 85000}, 400, "INVALID_PRICE_RANGE"),
            ({"orderAmount": 1}, 400, "INVALID_ORDER_AMOUNT"),
        ]
        for overrides, status, code in cases:
            response = await api.post("/api/backtests", headers=auth, json={**example(now), **overrides})
            assert refusal(response)[:2] == (status, code), (overrides, response.text)
        assert body(await api.get("/api/backtests", headers=auth))["pagination"]["total"] == 0
        short = {**example(now), "startDate": (now - timedelta(hours=2)).isoformat()}
        backtest_id = body(await api.post("/api/backtests", headers=auth, json=short))["backtestId"]
        assert refusal(await api.get(f"/api/backtests/{backtest_id}", headers=stranger))[:2] == (
            404,
            "BACKTEST_NOT_FOUND",
        )

        async def done() -> bool:
            shown = body(await api.get(f"/api/backtests/{backtest_id}", headers=auth))
            return bool(shown["status"] == "done")

        await eventually(done, timeout=60, interval=POLL, message="the short backtest never finished")
        assert (await api.delete(f"/api/backtests/{backtest_id}", headers=auth)).status_code == 200
        assert refusal(await api.get(f"/api/backtests/{backtest_id}", headers=auth))[:2] == (
            404,
            "BACKTEST_NOT_FOUND",
        )
