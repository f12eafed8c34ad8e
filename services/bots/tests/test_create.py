"""POST /api/bots: the spec's example, grid geometry on the exchange's price grid, and every validation error."""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from bots.testing import FakeEngine, User, error_code
from common.grid import MarketRules
from common.testing.service import exact_json
from common.testing.wait import eventually
from trading.models import OUTBOX, Bot
from trading.partitions import market_partition, partition_of

from .conftest import SPEC_BOT

CreateBot = Callable[..., Awaitable[dict[str, Any]]]
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def _levels(client: httpx.AsyncClient, user: User, bot_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/bots/{bot_id}/grid-levels", headers=user.auth)
    assert response.status_code == 200, response.text
    levels: list[dict[str, Any]] = response.json()["data"]["gridLevels"]
    return levels


async def test_spec_example_gives_16_geometric_slots_and_160000(
    client: httpx.AsyncClient, user: User, engine: FakeEngine
) -> None:
    response = await client.post("/api/bots", json=SPEC_BOT, headers=user.auth)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["success"] is True and body["message"] == "봇이 생성되었습니다"
    data = body["data"]
    assert data["gridCount"] == 16 and data["investmentAmount"] == 160000
    assert (data["exchange"], data["ticker"], data["status"], data["mode"]) == (
        "upbit",
        "KRW-BTC",
        "running",
        "paper",
    )
    assert ISO_MS.match(data["createdAt"])
    levels = await _levels(client, user, data["botId"])
    prices = [Decimal(str(level["price"])) for level in levels]
    assert len(prices) == 17 and prices[0] == 50_000_000 and prices[-1] == 70_000_000
    assert prices == sorted(set(prices))
    # Geometric: every step is the same ratio, 1.4^(1/16) ≈ 2.13 % (at least the asked 2 %), off only by
    # the 1,000 KRW price unit at these prices.
    ratio = Decimal("1.4") ** (Decimal(1) / 16)
    for low, high in itertools.pairwise(prices):
        assert abs(high / low - ratio) < Decimal("0.00005"), (low, high)
        assert high / low > Decimal("1.02") and low % 1000 == 0
    assert [level["type"] for level in levels] == ["buy"] * 16 + ["sell"]
    assert {level["status"] for level in levels} == {"available"}
    # autoStart: the engine is told, with a message id that is the command id.
    await eventually(lambda: bool(engine.commands.of("bot.start", bot_id=data["botId"])))
    (start,) = engine.commands.of("bot.start", bot_id=data["botId"])
    assert start.message_id == start.payload["command_id"]
    assert start.payload["user_id"] == user.user_id and start.payload["status"] == "running"
    assert start.payload["config_version"] == 1 and start.payload["ticker"] == "KRW-BTC"


async def test_without_auto_start_the_bot_is_stopped_and_no_command_is_written(
    app: FastAPI, create_bot: CreateBot
) -> None:
    data = await create_bot(autoStart=False)
    assert data["status"] == "stopped"
    async with app.state.session_factory() as session:
        rows = await session.scalar(
            select(func.count())
            .select_from(OUTBOX)
            .where(OUTBOX.c.payload["bot_id"].as_string() == data["botId"])
        )
    assert rows == 0


async def test_market_rules_are_stored_with_the_bot(app: FastAPI, create_bot: CreateBot) -> None:
    data = await create_bot(
        exchange="binance", ticker="BTCUSDT", lowerPrice=90000, upperPrice=110000, orderAmount=20
    )
    async with app.state.session_factory() as session:
        bot = await session.get(Bot, uuid.UUID(data["botId"]))
    assert bot is not None
    rules = MarketRules.from_dict(bot.market_rules)
    assert rules.tick_size == Decimal("0.01") and rules.lot_step == Decimal("0.00001")
    assert rules.min_notional == 5 and rules.quote == "USDT"


async def test_bots_of_one_market_share_its_engine_partition(create_bot: CreateBot) -> None:
    spec = {"lowerPrice": 90000, "upperPrice": 110000, "orderAmount": 20}
    btc = [await create_bot(exchange="binance", ticker="BTCUSDT", **spec) for _ in range(3)]
    ids = [uuid.UUID(data["botId"]) for data in btc]
    assert len(set(ids)) == 3 and all(bot_id.version == 4 for bot_id in ids)
    # One engine replica drives the market's bots and alone needs its ticks.
    assert {partition_of(bot_id) for bot_id in ids} == {market_partition("binance", "BTCUSDT")}


async def test_an_exact_power_gives_the_exact_count(create_bot: CreateBot) -> None:
    # 100 → 121 at 10 % is exactly two steps; a floating-point ln ratio would give 1.9999999.
    data = await create_bot(
        exchange="binance",
        ticker="BTCUSDT",
        lowerPrice=100,
        upperPrice=121,
        priceChangePercent=10,
        orderAmount=10,
    )
    assert data["gridCount"] == 2 and data["investmentAmount"] == 20


async def test_floats_are_taken_as_their_decimal_text(client: httpx.AsyncClient, user: User) -> None:
    body = {
        **SPEC_BOT,
        "exchange": "binance",
        "ticker": "BTCUSDT",
        "lowerPrice": 100.1,
        "upperPrice": 121.11,
        "priceChangePercent": 2.5,
        "orderAmount": 10.3,
    }
    response = await client.post("/api/bots", json=body, headers=user.auth)
    assert response.status_code == 201, response.text
    data = exact_json(response)["data"]
    assert data["investmentAmount"] == Decimal("10.3") * data["gridCount"]
    got = exact_json(await client.get(f"/api/bots/{data['botId']}", headers=user.auth))["data"]
    assert (got["lowerPrice"], got["upperPrice"], got["priceChangePercent"], got["orderAmount"]) == (
        Decimal("100.1"),
        Decimal("121.11"),
        Decimal("2.5"),
        Decimal("10.3"),
    )
    assert got["investmentAmount"] == data["investmentAmount"]


async def test_arithmetic_grid_has_equal_price_steps(
    client: httpx.AsyncClient, user: User, create_bot: CreateBot
) -> None:
    data = await create_bot(
        exchange="binance",
        ticker="BTCUSDT",
        lowerPrice=100,
        upperPrice=200,
        priceChangePercent=10,
        orderAmount=10,
        gridType="arithmetic",
    )
    assert data["gridCount"] == 7 and data["gridType"] == "arithmetic"
    prices = [Decimal(str(level["price"])) for level in await _levels(client, user, data["botId"])]
    assert prices[0] == 100 and prices[-1] == 200
    steps = {b - a for a, b in itertools.pairwise(prices)}
    assert max(steps) - min(steps) <= Decimal("0.01")  # 100/7 each, to the cent


async def test_levels_that_round_onto_a_neighbour_are_dropped(
    client: httpx.AsyncClient, user: User, create_bot: CreateBot
) -> None:
    # 100–110 KRW at 0.1 % is 95 steps by the formula, but Upbit's unit there is 1 KRW: 11 prices remain.
    data = await create_bot(ticker="KRW-XRP", lowerPrice=100, upperPrice=110, priceChangePercent=0.1)
    assert data["gridCount"] == 10 and data["investmentAmount"] == 100000
    prices = [level["price"] for level in await _levels(client, user, data["botId"])]
    assert prices == list(range(100, 111))


async def test_more_than_200_slots_is_an_invalid_range_with_details(
    client: httpx.AsyncClient, user: User
) -> None:
    body = {**SPEC_BOT, "lowerPrice": 10000000, "upperPrice": 90000000, "priceChangePercent": 0.5}
    response = await client.post("/api/bots", json=body, headers=user.auth)
    assert response.status_code == 400 and error_code(response) == "INVALID_PRICE_RANGE"
    error = response.json()["error"]
    assert error["message"] == "가격 범위가 올바르지 않습니다"
    assert error["details"]["gridCount"] == 440 and error["details"]["max"] == 200


@pytest.mark.parametrize(
    "change",
    [
        {"lowerPrice": 70000000, "upperPrice": 50000000},
        {"lowerPrice": 60000000, "upperPrice": 60000000},
        {"lowerPrice": 0},
        {"lowerPrice": -5},
        {"priceChangePercent": 0},
        {"priceChangePercent": -1},
        {"priceChangePercent": 50},  # no full step fits: gridCount 0
    ],
)
async def test_bad_ranges_are_invalid_price_range(
    client: httpx.AsyncClient, user: User, change: dict[str, Any]
) -> None:
    response = await client.post("/api/bots", json={**SPEC_BOT, **change}, headers=user.auth)
    assert response.status_code == 400 and error_code(response) == "INVALID_PRICE_RANGE"


@pytest.mark.parametrize(
    ("exchange", "ticker", "low", "high", "amount"),
    [
        ("upbit", "KRW-BTC", 50000000, 70000000, 4999),  # Upbit: 5,000 KRW minimum
        ("upbit", "KRW-BTC", 50000000, 70000000, 0),
        ("binance", "BTCUSDT", 90000, 110000, 4.99),  # Binance: the symbol's NOTIONAL minimum (5 USDT)
    ],
)
async def test_order_amount_below_the_exchange_minimum(
    client: httpx.AsyncClient, user: User, exchange: str, ticker: str, low: int, high: int, amount: float
) -> None:
    body = {
        **SPEC_BOT,
        "exchange": exchange,
        "ticker": ticker,
        "lowerPrice": low,
        "upperPrice": high,
        "orderAmount": amount,
    }
    response = await client.post("/api/bots", json=body, headers=user.auth)
    assert response.status_code == 400 and error_code(response) == "INVALID_ORDER_AMOUNT"


async def test_unknown_ticker_and_unsupported_exchange(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post("/api/bots", json={**SPEC_BOT, "ticker": "KRW-NOPE"}, headers=user.auth)
    assert response.status_code == 404 and error_code(response) == "TICKER_NOT_FOUND"
    response = await client.post("/api/bots", json={**SPEC_BOT, "exchange": "bithumb"}, headers=user.auth)
    assert response.status_code == 400 and error_code(response) == "UNSUPPORTED_EXCHANGE"
    english = {**user.auth, "Accept-Language": "en"}
    response = await client.post("/api/bots", json={**SPEC_BOT, "ticker": "KRW-NOPE"}, headers=english)
    assert response.json()["error"]["message"] == "Ticker not found"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lowerPrice": "50000000"}, "lowerPrice"),
        ({"orderAmount": True}, "orderAmount"),
        ({"priceChangePercent": None}, "priceChangePercent"),
        ({"stopAtMax": 1}, "stopAtMax"),
        ({"mode": "real"}, "mode"),
        ({"gridType": "fibonacci"}, "gridType"),
        ({"leverage": 10}, "leverage"),
        ({"ticker": ""}, "ticker"),
    ],
)
async def test_malformed_bodies_are_validation_errors(
    client: httpx.AsyncClient, user: User, change: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/bots", json={**SPEC_BOT, **change}, headers=user.auth)
    assert response.status_code == 400 and error_code(response) == "VALIDATION_ERROR"
    assert field in {f["field"] for f in response.json()["error"]["details"]["fields"]}


async def test_missing_fields_and_no_token(client: httpx.AsyncClient, user: User) -> None:
    body = {k: v for k, v in SPEC_BOT.items() if k != "upperPrice"}
    response = await client.post("/api/bots", json=body, headers=user.auth)
    assert error_code(response) == "VALIDATION_ERROR"
    assert response.json()["error"]["details"]["fields"] == [
        {"field": "upperPrice", "reason": "Field required"}
    ]
    response = await client.post("/api/bots", json=SPEC_BOT)
    assert response.status_code == 401 and error_code(response) == "UNAUTHORIZED"


async def test_english_success_message(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post("/api/bots", json=SPEC_BOT, headers={**user.auth, "Accept-Language": "en"})
    assert response.status_code == 201 and response.json()["message"] == "Bot created"


async def test_default_mode_comes_from_settings(create_bot: CreateBot) -> None:
    body_without_mode = {k: v for k, v in SPEC_BOT.items() if k != "mode"}
    data = await create_bot(**{**body_without_mode, "autoStart": False})
    assert data["mode"] == "paper"


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_an_unreachable_exchange_is_a_502_in_bounded_time(
    client: httpx.AsyncClient, user: User, sim_http: httpx.AsyncClient
) -> None:
    fault = {"kind": "http_500", "count": 20, "exchange": "binance"}
    assert (await sim_http.post("/_sim/faults", json=fault)).status_code == 201
    try:
        started = time.monotonic()
        body = {
            **SPEC_BOT,
            "exchange": "binance",
            "ticker": "BTCUSDT",
            "lowerPrice": 90000,
            "upperPrice": 110000,
        }
        response = await client.post("/api/bots", json=body, headers=user.auth)
        assert response.status_code == 502 and error_code(response) == "EXCHANGE_API_ERROR"
        assert time.monotonic() - started < 5
    finally:
        await sim_http.delete("/_sim/faults")
