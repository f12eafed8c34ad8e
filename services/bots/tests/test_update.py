"""PUT /api/bots/:id: what may change while running, what needs a stopped bot, and the rebuilt grid."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from bots.testing import FakeEngine, User, error_code
from common.testing.wait import eventually

CreateBot = Callable[..., Awaitable[dict[str, Any]]]


async def test_order_amount_and_stop_at_max_change_while_running(
    client: httpx.AsyncClient, user: User, create_bot: CreateBot, engine: FakeEngine
) -> None:
    bot_id = (await create_bot())["botId"]
    response = await client.put(
        f"/api/bots/{bot_id}", json={"orderAmount": 12000, "stopAtMax": True}, headers=user.auth
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"] == "봇 설정이 업데이트되었습니다"
    data = body["data"]
    assert data["_id"] == bot_id and data["orderAmount"] == 12000 and data["stopAtMax"] is True
    assert data["investmentAmount"] == 16 * 12000 and data["gridCount"] == 16
    assert data["updatedAt"].endswith("Z")
    got = (await client.get(f"/api/bots/{bot_id}", headers=user.auth)).json()["data"]
    assert (got["orderAmount"], got["stopAtMax"], got["investmentAmount"], got["status"]) == (
        12000,
        True,
        192000,
        "running",
    )
    await eventually(lambda: bool(engine.commands.of("bot.updated", bot_id=bot_id)))
    (updated,) = engine.commands.of("bot.updated", bot_id=bot_id)
    assert updated.payload["config_version"] == 2 and updated.payload["status"] == "running"


@pytest.mark.parametrize(
    "change",
    [
        {"lowerPrice": 40000000},
        {"upperPrice": 80000000},
        {"priceChangePercent": 3},
        {"gridType": "arithmetic"},
    ],
)
async def test_geometry_needs_a_stopped_bot(
    client: httpx.AsyncClient, user: User, create_bot: CreateBot, change: dict[str, Any]
) -> None:
    bot_id = (await create_bot())["botId"]
    response = await client.put(f"/api/bots/{bot_id}", json=change, headers=user.auth)
    assert response.status_code == 409 and error_code(response) == "BOT_RUNNING"
    got = (await client.get(f"/api/bots/{bot_id}", headers=user.auth)).json()["data"]
    assert got["lowerPrice"] == 50000000 and got["gridType"] == "geometric"


async def test_geometry_change_while_stopped_rebuilds_the_grid(
    client: httpx.AsyncClient, user: User, create_bot: CreateBot
) -> None:
    bot_id = (await create_bot(autoStart=False))["botId"]
    before = (await client.get(f"/api/bots/{bot_id}/grid-levels", headers=user.auth)).json()["data"][
        "gridLevels"
    ]
    response = await client.put(
        f"/api/bots/{bot_id}",
        json={
            "lowerPrice": 60000000,
            "upperPrice": 72000000,
            "priceChangePercent": 1,
            "gridType": "arithmetic",
        },
        headers=user.auth,
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    # floor(ln(1.2) / ln(1.01)) = 18 slots, equal steps of 666,666.67 rounded to the 1,000 KRW unit.
    assert data["gridCount"] == 18 and data["investmentAmount"] == 180000
    assert (data["lowerPrice"], data["upperPrice"], data["priceChangePercent"], data["gridType"]) == (
        60000000,
        72000000,
        1,
        "arithmetic",
    )
    after = (await client.get(f"/api/bots/{bot_id}/grid-levels", headers=user.auth)).json()["data"][
        "gridLevels"
    ]
    prices = [level["price"] for level in after]
    assert len(after) == 19 and prices[0] == 60000000 and prices[-1] == 72000000
    assert {level["_id"] for level in after}.isdisjoint({level["_id"] for level in before})
    assert prices[1] == 60667000  # 60,666,666.67 to the nearest unit


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "VALIDATION_ERROR"),
        ({"orderAmount": None}, "VALIDATION_ERROR"),
        ({"stopAtMax": None}, "VALIDATION_ERROR"),
        ({"orderAmount": "12000"}, "VALIDATION_ERROR"),
        ({"ticker": "KRW-ETH"}, "VALIDATION_ERROR"),
        ({"mode": "live"}, "VALIDATION_ERROR"),
        ({"orderAmount": 4000}, "INVALID_ORDER_AMOUNT"),
        ({"orderAmount": -1}, "INVALID_ORDER_AMOUNT"),
    ],
)
async def test_bad_updates(
    client: httpx.AsyncClient, user: User, create_bot: CreateBot, body: dict[str, Any], code: str
) -> None:
    bot_id = (await create_bot(autoStart=False))["botId"]
    response = await client.put(f"/api/bots/{bot_id}", json=body, headers=user.auth)
    assert response.status_code == 400 and error_code(response) == code


async def test_an_invalid_new_range_changes_nothing(
    client: httpx.AsyncClient, user: User, create_bot: CreateBot
) -> None:
    bot_id = (await create_bot(autoStart=False))["botId"]
    response = await client.put(f"/api/bots/{bot_id}", json={"lowerPrice": 80000000}, headers=user.auth)
    assert response.status_code == 400 and error_code(response) == "INVALID_PRICE_RANGE"
    got = (await client.get(f"/api/bots/{bot_id}", headers=user.auth)).json()["data"]
    assert got["lowerPrice"] == 50000000 and got["gridCount"] == 16
