"""Edge values of every bot route's parameters and body numbers: a 400 envelope, never a 500 or a rounding."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from bots.testing import User

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

CreateBot = Callable[..., Awaitable[dict[str, Any]]]
BODY = (
    '{"exchange": "upbit", "ticker": "KRW-BTC", "lowerPrice": 50000000, "upperPrice": 70000000, '
    '"priceChangePercent": 2, "orderAmount": %s, "mode": "paper"}'
)


def fields(response: httpx.Response) -> list[dict[str, str]]:
    body = response.json()
    assert (response.status_code, body["error"]["code"]) == (400, "VALIDATION_ERROR"), response.text
    found: list[dict[str, str]] = body["error"]["details"]["fields"]
    return found


def exact(response: httpx.Response) -> Any:
    assert response.status_code < 300, response.text
    return json.loads(response.text, parse_float=Decimal)["data"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"endDate": "9999-12-31"}, "endDate"),
        ({"startDate": "0001-01-01T00:00:00+01:00"}, "startDate"),
        ({"endDate": "9999-12-31T23:59:59-01:00"}, "endDate"),
        ({"startDate": "2025-01-01", "endDate": "9999-12-31"}, "endDate"),
    ],
)
async def test_dates_beyond_the_calendar_are_validation_errors(
    client: httpx.AsyncClient, user: User, create_bot: CreateBot, params: dict[str, str], field: str
) -> None:
    bot_id = (await create_bot())["botId"]
    response = await client.get(f"/api/bots/{bot_id}/trades", params=params, headers=user.auth)
    assert [f["field"] for f in fields(response)] == [field]


async def test_dates_at_the_calendar_edges_are_served(
    client: httpx.AsyncClient, user: User, create_bot: CreateBot
) -> None:
    bot_id = (await create_bot())["botId"]
    for params in (
        {"startDate": "0001-01-01", "endDate": "9999-12-30"},
        {"startDate": "0001-01-01T00:00:00Z", "endDate": "9999-12-31T23:59:59.999999Z"},
        {"startDate": "0001-01-01T00:00:00-01:00"},
    ):
        response = await client.get(f"/api/bots/{bot_id}/trades", params=params, headers=user.auth)
        assert response.status_code == 200, (params, response.text)
        assert response.json()["data"]["pagination"]["total"] == 0


@pytest.mark.parametrize(
    "query",
    [
        "limit=" + "9" * 5000,
        "limit=1e3",
        "offset=" + "9" * 40,
        "offset=-1",
        "limit=0",
        "startDate=2025-01-01%00",
        "status=%FF",
        "endDate=" + "2" * 200,
    ],
)
async def test_hostile_trade_page_parameters_are_validation_errors(
    client: httpx.AsyncClient, user: User, create_bot: CreateBot, query: str
) -> None:
    bot_id = (await create_bot())["botId"]
    response = await client.get(f"/api/bots/{bot_id}/trades?{query}", headers=user.auth)
    assert fields(response)


async def test_body_numbers_are_stored_digit_for_digit(client: httpx.AsyncClient, user: User) -> None:
    # A binary float would make these 10000.000000000002 and 160000.000000000032.
    response = await client.post(
        "/api/bots",
        content=BODY % "10000.000000000001",
        headers={**user.auth, "content-type": "application/json"},
    )
    created = exact(response)
    assert created["investmentAmount"] == Decimal("160000.000000000016")
    shown = exact(await client.get(f"/api/bots/{created['botId']}", headers=user.auth))
    assert shown["orderAmount"] == Decimal("10000.000000000001")
    assert shown["investmentAmount"] == Decimal("160000.000000000016")


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("10000.0000000000000000001", "at most 18 decimal places"),
        ("123456789012345678901", "at most 20 digits before the decimal point"),
        # Fits the column alone, but 16 grid orders of it would not: refused, not a database overflow.
        ("500000000000000000", "must be below 500000000000000000"),
    ],
)
async def test_more_digits_than_the_column_holds_is_a_validation_error(
    client: httpx.AsyncClient, user: User, amount: str, reason: str
) -> None:
    response = await client.post(
        "/api/bots", content=BODY % amount, headers={**user.auth, "content-type": "application/json"}
    )
    assert fields(response) == [{"field": "orderAmount", "reason": reason}]
    listed = (await client.get("/api/bots", headers=user.auth)).json()["data"]
    assert listed["bots"] == []


async def test_the_largest_order_amount_fits_every_grid(client: httpx.AsyncClient, user: User) -> None:
    # 195 levels of the largest amount: investmentAmount still fits NUMERIC(38, 18).
    body = (
        '{"exchange": "upbit", "ticker": "KRW-BTC", "lowerPrice": 1000, "upperPrice": 7000, '
        '"priceChangePercent": 1, "orderAmount": 499999999999999999.5, "mode": "paper"}'
    )
    response = await client.post(
        "/api/bots", content=body, headers={**user.auth, "content-type": "application/json"}
    )
    created = exact(response)
    assert created["investmentAmount"] == created["gridCount"] * Decimal("499999999999999999.5")


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_trailing_slash_is_not_found_never_a_redirect(
    client: httpx.AsyncClient, user: User, method: str
) -> None:
    response = await client.request(method, "/api/bots/", headers=user.auth, json={})
    assert response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"
    assert "location" not in response.headers


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/bots", {"GET", "POST"}),
        ("PATCH", "/api/bots/00000000-0000-0000-0000-000000000000", {"GET", "PUT", "DELETE"}),
        ("GET", "/api/bots/00000000-0000-0000-0000-000000000000/start", {"POST"}),
    ],
)
async def test_405_names_every_method_of_the_path(
    client: httpx.AsyncClient, user: User, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path, headers=user.auth)
    assert response.status_code == 405 and response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed
