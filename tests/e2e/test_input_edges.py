"""Input edges through the real gateway (`make run` and `make dev`): exact numbers, one caller per request,
no redirects, dates at the calendar's ends, summaries per currency."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from launcher.testing import System, body, clients, register

pytestmark = pytest.mark.e2e


def spec(**overrides: Any) -> dict[str, Any]:
    return {
        "exchange": "upbit",
        "ticker": "KRW-BTC",
        "lowerPrice": 50000000,
        "upperPrice": 70000000,
        "priceChangePercent": 2,
        "orderAmount": 10000,
        "mode": "paper",
        **overrides,
    }


async def post_bot(api: httpx.AsyncClient, auth: dict[str, str], text: str) -> httpx.Response:
    return await api.post("/api/bots", content=text, headers={**auth, "content-type": "application/json"})


BODY = (
    '{"exchange": "upbit", "ticker": "KRW-BTC", "lowerPrice": 50000000, "upperPrice": 70000000, '
    '"priceChangePercent": 2, "orderAmount": %s, "mode": "paper"}'
)


async def test_body_numbers_arrive_exact_through_the_gateway(system: System, client_ip: str) -> None:
    async with clients(system, client_ip) as (api, _):
        auth = await register(api)
        created = body(await post_bot(api, auth, BODY % "10000.000000000001"))
        assert created["investmentAmount"] == Decimal("160000.000000000016")
        shown = body(await api.get(f"/api/bots/{created['botId']}", headers=auth))
        assert shown["orderAmount"] == Decimal("10000.000000000001")
        r = await post_bot(api, auth, BODY % "10000.0000000000000000001")
        assert (r.status_code, r.json()["error"]["code"]) == (400, "VALIDATION_ERROR")
        assert r.json()["error"]["details"]["fields"] == [
            {"field": "orderAmount", "reason": "at most 18 decimal places"}
        ]
        listed = body(await api.get("/api/bots", headers=auth))
        assert [b["_id"] for b in listed["bots"]] == [created["botId"]]


async def test_one_caller_per_request_and_no_redirects(system: System, client_ip: str) -> None:
    async with clients(system, client_ip) as (api, _):
        alice, bob = await register(api), await register(api)
        twice = [("authorization", alice["authorization"]), ("authorization", bob["authorization"])]
        r = await api.get("/api/bots", headers=twice)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "VALIDATION_ERROR")
        assert r.json()["error"]["details"]["fields"] == [
            {"field": "authorization", "reason": "duplicated header"}
        ]
        r = await api.post("/api/bots/", json=spec(), headers=alice)
        assert (r.status_code, r.json()["error"]["code"]) == (404, "NOT_FOUND")
        assert "location" not in r.headers
        r = await api.delete("/api/bots", headers=alice)
        assert r.status_code == 405 and {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "POST"}
        assert body(await api.get("/api/bots", headers=alice))["bots"] == []


async def test_dates_at_the_calendar_ends_and_a_summary_per_currency(system: System, client_ip: str) -> None:
    async with clients(system, client_ip) as (api, _):
        auth = await register(api)
        upbit = body(await api.post("/api/bots", json=spec(), headers=auth))["botId"]
        binance = spec(
            exchange="binance", ticker="BTCUSDT", lowerPrice=90000, upperPrice=110000, orderAmount=20
        )
        body(await api.post("/api/bots", json=binance, headers=auth))
        for params in ({"endDate": "9999-12-31"}, {"startDate": "0001-01-01T00:00:00+01:00"}):
            r = await api.get(f"/api/bots/{upbit}/trades", params=params, headers=auth)
            assert (r.status_code, r.json()["error"]["code"]) == (400, "VALIDATION_ERROR"), r.text
        r = await api.get(f"/api/bots/{upbit}/trades?startDate=2025-01-01%00", headers=auth)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "VALIDATION_ERROR"), r.text
        summary = body(await api.get("/api/bots", headers=auth))["summary"]
        assert (summary["totalBots"], summary["totalProfit"], summary["totalInvestment"]) == (2, None, None)
        assert set(summary["byCurrency"]) == {"KRW", "USDT"}
        assert summary["byCurrency"]["KRW"]["totalInvestment"] == 160000
