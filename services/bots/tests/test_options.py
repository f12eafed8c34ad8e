"""Grid options on the bot routes: stored by POST, changed by PUT (TP/SL while running, the rest stopped),
checked against the range as it will be, shown by every read; heldBase; the grid as trailing up leaves it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, func, select, update

from bots.testing import FakeEngine, Fill, User, error_code, seed_fills
from common.testing.service import exact_json
from common.testing.wait import eventually
from common.web import dumps
from trading.models import Bot, GridLevel, LevelStatus, OrderSide

from .conftest import SPEC_BOT

CreateBot = Callable[..., Awaitable[dict[str, Any]]]
D = Decimal
# Every option set, valid for the spec example's 50M–70M range.
OPTIONS: dict[str, Any] = {
    "triggerPrice": 52000000,
    "takeProfitPrice": D("75000000.5"),
    "stopLossPrice": 45000000,
    "sellBaseOnStop": True,
    "trailingUp": True,
    "trailingUpLimit": 90000000,
}
OFF: dict[str, Any] = {
    "triggerPrice": None,
    "takeProfitPrice": None,
    "stopLossPrice": None,
    "sellBaseOnStop": False,
    "trailingUp": False,
    "trailingUpLimit": None,
}


def _send(body: dict[str, Any]) -> dict[str, Any]:
    # Decimals as exact JSON numbers (httpx's json= would refuse them).
    return {"content": dumps(body), "headers": {"Content-Type": "application/json"}}


async def _post(client: httpx.AsyncClient, user: User, body: dict[str, Any]) -> httpx.Response:
    sent = _send(body)
    return await client.post("/api/bots", content=sent["content"], headers={**sent["headers"], **user.auth})


async def _put(client: httpx.AsyncClient, user: User, bot_id: str, body: dict[str, Any]) -> httpx.Response:
    sent = _send(body)
    return await client.put(
        f"/api/bots/{bot_id}", content=sent["content"], headers={**sent["headers"], **user.auth}
    )


async def _get(client: httpx.AsyncClient, user: User, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params, headers=user.auth)
    assert response.status_code == 200, response.text
    return exact_json(response)["data"]


async def _row(app: FastAPI, bot_id: str) -> Bot:
    async with app.state.session_factory() as session:
        bot = await session.get(Bot, uuid.UUID(bot_id))
    assert bot is not None
    return bot


async def _user_bots(app: FastAPI, user: User) -> int:
    async with app.state.session_factory() as session:
        count = await session.scalar(
            select(func.count()).select_from(Bot).where(Bot.user_id == uuid.UUID(user.user_id))
        )
    return int(count or 0)


def _options(read: dict[str, Any]) -> dict[str, Any]:
    return {key: read[key] for key in OPTIONS}


# --- POST /bots ---------------------------------------------------------------------------------------------


async def test_options_are_stored_and_every_read_shows_them(
    app: FastAPI, client: httpx.AsyncClient, user: User, engine: FakeEngine
) -> None:
    response = await _post(client, user, {**SPEC_BOT, **OPTIONS})
    assert response.status_code == 201, response.text
    bot_id = response.json()["data"]["botId"]
    detail = await _get(client, user, f"/api/bots/{bot_id}")
    assert _options(detail) == OPTIONS
    # A trigger holds the bot (running, nothing placed) until the market trades through it.
    assert detail["triggered"] is False and detail["status"] == "running"
    assert detail["heldBase"] == 0
    (listed,) = (await _get(client, user, "/api/bots"))["bots"]
    assert _options(listed) == OPTIONS and listed["triggered"] is False and "heldBase" not in listed
    row = await _row(app, bot_id)
    assert (row.trigger_price, row.take_profit_price, row.stop_loss_price) == (
        D(52000000),
        D("75000000.5"),
        D(45000000),
    )
    assert row.sell_base_on_stop and row.trailing_up and row.trailing_up_limit == 90000000
    assert row.triggered is False and row.config_version == 1
    await eventually(lambda: bool(engine.commands.of("bot.start", bot_id=bot_id)))


async def test_without_options_every_one_is_off_and_the_bot_is_triggered(
    client: httpx.AsyncClient, user: User, create_bot: CreateBot
) -> None:
    plain = (await create_bot())["botId"]
    # null is "none" on POST too (a read's own values can be sent back as they are).
    nulled = (await create_bot(**OFF))["botId"]
    for bot_id in (plain, nulled):
        detail = await _get(client, user, f"/api/bots/{bot_id}")
        assert _options(detail) == OFF and detail["triggered"] is True


@pytest.mark.parametrize(
    ("options", "code", "field"),
    [
        ({"stopLossPrice": 50000000}, "INVALID_PRICE_RANGE", "stopLossPrice"),  # not below lowerPrice
        ({"stopLossPrice": 60000000}, "INVALID_PRICE_RANGE", "stopLossPrice"),
        ({"stopLossPrice": -1}, "INVALID_PRICE_RANGE", "stopLossPrice"),
        ({"takeProfitPrice": 70000000}, "INVALID_PRICE_RANGE", "takeProfitPrice"),  # not above upperPrice
        ({"takeProfitPrice": 55000000}, "INVALID_PRICE_RANGE", "takeProfitPrice"),
        ({"trailingUp": True, "trailingUpLimit": 70000000}, "INVALID_PRICE_RANGE", "trailingUpLimit"),
        ({"trailingUp": True, "trailingUpLimit": 0}, "INVALID_PRICE_RANGE", "trailingUpLimit"),
        ({"triggerPrice": 0}, "INVALID_PRICE_RANGE", "triggerPrice"),
        ({"trailingUpLimit": 90000000}, "VALIDATION_ERROR", "trailingUpLimit"),
        ({"trailingUp": False, "trailingUpLimit": 90000000}, "VALIDATION_ERROR", "trailingUpLimit"),
        ({"triggerPrice": "52000000"}, "VALIDATION_ERROR", "triggerPrice"),
        ({"stopLossPrice": D("1.0000000000000000001")}, "VALIDATION_ERROR", "stopLossPrice"),
        ({"sellBaseOnStop": None}, "VALIDATION_ERROR", "sellBaseOnStop"),
        ({"trailingUp": 1}, "VALIDATION_ERROR", "trailingUp"),
    ],
)
async def test_bad_options_on_create_say_which_field_and_store_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    user: User,
    options: dict[str, Any],
    code: str,
    field: str,
) -> None:
    response = await _post(client, user, {**SPEC_BOT, **options})
    assert response.status_code == 400 and error_code(response) == code, response.text
    details = response.json()["error"]["details"]
    if code == "VALIDATION_ERROR":
        assert field in {f["field"] for f in details["fields"]}
    else:
        assert details["field"] == field and field in details["reason"]
    assert await _user_bots(app, user) == 0


async def test_a_valid_trigger_may_be_anywhere_above_zero(client: httpx.AsyncClient, user: User) -> None:
    for trigger in (1, 60000000, 100000000):
        response = await _post(client, user, {**SPEC_BOT, "triggerPrice": trigger, "autoStart": False})
        assert response.status_code == 201, response.text


# --- PUT /bots/:id ------------------------------------------------------------------------------------------


async def test_take_profit_and_stop_loss_change_while_running(
    app: FastAPI, client: httpx.AsyncClient, user: User, create_bot: CreateBot, engine: FakeEngine
) -> None:
    bot_id = (await create_bot(stopLossPrice=45000000))["botId"]
    response = await _put(client, user, bot_id, {"takeProfitPrice": 80000000, "stopLossPrice": 48000000})
    assert response.status_code == 200, response.text
    data = exact_json(response)["data"]
    assert data["takeProfitPrice"] == 80000000 and data["stopLossPrice"] == 48000000
    assert set(data) == {"_id", "takeProfitPrice", "stopLossPrice", "updatedAt"}
    # The engine hears of it as of any change: a new config_version on the row and the command.
    await eventually(lambda: bool(engine.commands.of("bot.updated", bot_id=bot_id)))
    (updated,) = engine.commands.of("bot.updated", bot_id=bot_id)
    assert updated.payload["config_version"] == 2 and updated.payload["status"] == "running"
    # null clears one; the answer says so with null.
    response = await _put(client, user, bot_id, {"stopLossPrice": None})
    assert response.status_code == 200, response.text
    assert exact_json(response)["data"]["stopLossPrice"] is None
    detail = await _get(client, user, f"/api/bots/{bot_id}")
    assert (detail["takeProfitPrice"], detail["stopLossPrice"], detail["status"]) == (
        80000000,
        None,
        "running",
    )
    assert (await _row(app, bot_id)).config_version == 3


@pytest.mark.parametrize(
    "change",
    [
        {"triggerPrice": 52000000},
        {"triggerPrice": None},
        {"sellBaseOnStop": True},
        {"trailingUp": True},
        {"trailingUp": True, "trailingUpLimit": 90000000},
        {"takeProfitPrice": 80000000, "trailingUp": True},  # one stopped-only field refuses the whole body
    ],
)
async def test_other_options_need_a_stopped_bot(
    app: FastAPI, client: httpx.AsyncClient, user: User, create_bot: CreateBot, change: dict[str, Any]
) -> None:
    bot_id = (await create_bot())["botId"]
    before = await _get(client, user, f"/api/bots/{bot_id}")
    response = await _put(client, user, bot_id, change)
    assert response.status_code == 409 and error_code(response) == "BOT_RUNNING"
    after = await _get(client, user, f"/api/bots/{bot_id}")
    assert after == before and (await _row(app, bot_id)).config_version == 1


@pytest.mark.parametrize(
    ("stored", "change", "code", "field"),
    [
        # The body against the stored values, and the stored values against the body.
        ({"stopLossPrice": 45000000}, {"lowerPrice": 44000000}, "INVALID_PRICE_RANGE", "stopLossPrice"),
        ({}, {"stopLossPrice": 55000000}, "INVALID_PRICE_RANGE", "stopLossPrice"),
        ({"takeProfitPrice": 75000000}, {"upperPrice": 76000000}, "INVALID_PRICE_RANGE", "takeProfitPrice"),
        ({}, {"takeProfitPrice": 65000000}, "INVALID_PRICE_RANGE", "takeProfitPrice"),
        (
            {"trailingUp": True, "trailingUpLimit": 75000000},
            {"upperPrice": 80000000},
            "INVALID_PRICE_RANGE",
            "trailingUpLimit",
        ),
        ({"trailingUp": True}, {"trailingUpLimit": 60000000}, "INVALID_PRICE_RANGE", "trailingUpLimit"),
        ({}, {"trailingUpLimit": 90000000}, "VALIDATION_ERROR", "trailingUpLimit"),
        (
            {"trailingUp": True},
            {"trailingUp": False, "trailingUpLimit": 90000000},
            "VALIDATION_ERROR",
            "trailingUpLimit",
        ),
        ({}, {"triggerPrice": -5}, "INVALID_PRICE_RANGE", "triggerPrice"),
        ({}, {"sellBaseOnStop": None}, "VALIDATION_ERROR", "sellBaseOnStop"),
        ({}, {"trailingUp": None}, "VALIDATION_ERROR", "trailingUp"),
    ],
)
async def test_bad_option_updates_combine_body_and_stored_values_and_change_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    user: User,
    create_bot: CreateBot,
    stored: dict[str, Any],
    change: dict[str, Any],
    code: str,
    field: str,
) -> None:
    bot_id = (await create_bot(autoStart=False, **stored))["botId"]
    before = await _get(client, user, f"/api/bots/{bot_id}")
    levels = await _get(client, user, f"/api/bots/{bot_id}/grid-levels")
    response = await _put(client, user, bot_id, change)
    assert response.status_code == 400 and error_code(response) == code, response.text
    details = response.json()["error"]["details"]
    fields = {f["field"] for f in details["fields"]} if code == "VALIDATION_ERROR" else {details["field"]}
    assert field in fields
    assert await _get(client, user, f"/api/bots/{bot_id}") == before
    assert await _get(client, user, f"/api/bots/{bot_id}/grid-levels") == levels
    assert (await _row(app, bot_id)).config_version == 1


async def test_stopped_only_options_change_while_stopped(
    app: FastAPI, client: httpx.AsyncClient, user: User, create_bot: CreateBot, engine: FakeEngine
) -> None:
    bot_id = (await create_bot(autoStart=False))["botId"]
    response = await _put(client, user, bot_id, {**OPTIONS, "lowerPrice": 46000000})
    assert response.status_code == 200, response.text
    data = exact_json(response)["data"]
    assert _options(data) == OPTIONS and data["triggered"] is False and data["lowerPrice"] == 46000000
    detail = await _get(client, user, f"/api/bots/{bot_id}")
    assert _options(detail) == OPTIONS and detail["triggered"] is False
    await eventually(lambda: bool(engine.commands.of("bot.updated", bot_id=bot_id)))
    assert engine.commands.of("bot.updated", bot_id=bot_id)[0].payload["config_version"] == 2
    # trailingUp false takes its limit with it (a limit on nothing would be refused).
    response = await _put(client, user, bot_id, {"trailingUp": False})
    assert exact_json(response)["data"] == {
        "_id": bot_id,
        "trailingUp": False,
        "trailingUpLimit": None,
        "updatedAt": response.json()["data"]["updatedAt"],
    }
    detail = await _get(client, user, f"/api/bots/{bot_id}")
    assert detail["trailingUp"] is False and detail["trailingUpLimit"] is None


async def test_a_new_trigger_price_waits_again_and_none_is_triggered(
    app: FastAPI, client: httpx.AsyncClient, user: User, create_bot: CreateBot
) -> None:
    bot_id = (await create_bot(autoStart=False, triggerPrice=52000000))["botId"]
    assert (await _row(app, bot_id)).triggered is False
    async with app.state.session_factory() as session:
        # What the engine writes when the market trades through the trigger.
        await session.execute(update(Bot).where(Bot.id == uuid.UUID(bot_id)).values(triggered=True))
        await session.commit()
    assert (await _get(client, user, f"/api/bots/{bot_id}"))["triggered"] is True
    # Other changes leave it be.
    response = await _put(client, user, bot_id, {"sellBaseOnStop": True, "orderAmount": 12000})
    assert response.status_code == 200 and "triggered" not in response.json()["data"]
    assert (await _row(app, bot_id)).triggered is True
    # The same price sent again is the trigger the market already reached (the engine keeps it fired too).
    response = await _put(client, user, bot_id, {"triggerPrice": 52000000})
    assert response.status_code == 200 and "triggered" not in response.json()["data"]
    assert (await _get(client, user, f"/api/bots/{bot_id}"))["triggered"] is True
    # A new price waits again.
    response = await _put(client, user, bot_id, {"triggerPrice": 53000000})
    assert exact_json(response)["data"]["triggered"] is False
    assert (await _get(client, user, f"/api/bots/{bot_id}"))["triggered"] is False
    response = await _put(client, user, bot_id, {"triggerPrice": None})
    data = exact_json(response)["data"]
    assert data["triggerPrice"] is None and data["triggered"] is True
    row = await _row(app, bot_id)
    assert row.trigger_price is None and row.triggered is True and row.config_version == 5


# --- reads --------------------------------------------------------------------------------------------------


async def test_held_base_is_what_the_trades_left(
    app: FastAPI, client: httpx.AsyncClient, user: User, create_bot: CreateBot
) -> None:
    bot_id = (await create_bot())["botId"]
    at = datetime(2025, 1, 20, 10, tzinfo=UTC)
    fills = [
        Fill("buy", D(50000000), D("0.0002"), D(5), "KRW", at),
        Fill("sell", D(51000000), D("0.0002"), D("5.1"), "KRW", at, profit=D("189.9")),
        Fill("buy", D(51000000), D("0.0002"), D("5.1"), "KRW", at),
        # A fee taken in base leaves less base held.
        Fill("buy", D(52020000), D("0.00019"), D("0.000000095"), "BTC", at),
    ]
    await seed_fills(app.state.session_factory, bot_id, "upbit", fills)
    detail = await _get(client, user, f"/api/bots/{bot_id}")
    assert detail["heldBase"] == D("0.000389905")  # 0.0002 + 0.00019 − 0.000000095, exactly


async def test_the_list_is_one_query_however_many_bots(
    app: FastAPI, client: httpx.AsyncClient, user: User, create_bot: CreateBot
) -> None:
    engine = app.state.session_factory.kw["bind"].sync_engine
    statements: list[str] = []

    # Only the request's own statements count: the outbox relay and the stop sweeper query the same
    # database meanwhile, and the context (copied into the request's tasks and SQLAlchemy's greenlets)
    # tells them apart.
    mine: ContextVar[bool] = ContextVar("mine", default=False)

    @contextmanager
    def counting() -> Iterator[None]:
        def record(*args: Any) -> None:
            if mine.get():
                statements.append(args[2])

        event.listen(engine, "before_cursor_execute", record)
        token = mine.set(True)
        try:
            yield
        finally:
            mine.reset(token)
            event.remove(engine, "before_cursor_execute", record)

    assert (await _post(client, user, {**SPEC_BOT, **OPTIONS, "autoStart": False})).status_code == 201
    with counting():
        await _get(client, user, "/api/bots")
    one = len(statements)
    statements.clear()
    for _ in range(4):
        await create_bot(autoStart=False, stopLossPrice=40000000)
    with counting():
        listed = await _get(client, user, "/api/bots")
    assert len(listed["bots"]) == 5
    # The bots (options are columns of their rows) with their trade totals, in one statement: no query per bot.
    assert len(statements) == one == 1, statements


async def test_grid_levels_show_the_active_grid_by_price(
    app: FastAPI, client: httpx.AsyncClient, user: User, create_bot: CreateBot
) -> None:
    bot_id = (await create_bot(trailingUp=True))["botId"]
    levels = await _get(client, user, f"/api/bots/{bot_id}/grid-levels")
    assert len(levels["gridLevels"]) == 17
    await _trail_two_steps(app, bot_id)
    shown = (await _get(client, user, f"/api/bots/{bot_id}/grid-levels"))["gridLevels"]
    prices = [level["price"] for level in shown]
    assert len(shown) == 17 and prices == sorted(prices)
    assert prices[0] == levels["gridLevels"][2]["price"] and prices[-2:] == [72000000, 74000000]
    pending = (await _get(client, user, f"/api/bots/{bot_id}/grid-levels", status="pending"))["gridLevels"]
    assert [level["price"] for level in pending] == [74000000]


async def _trail_two_steps(app: FastAPI, bot_id: str) -> None:
    """What the engine writes when trailing up moves the grid two steps: the lowest two levels retired, two
    rows added on top (their indices past gridCount)."""
    async with app.state.session_factory() as session:
        await session.execute(
            update(GridLevel)
            .where(GridLevel.bot_id == uuid.UUID(bot_id), GridLevel.level_index < 2)
            .values(active=False)
        )
        for index, price, status in (
            (17, 72000000, LevelStatus.AVAILABLE),
            (18, 74000000, LevelStatus.PENDING),
        ):
            session.add(
                GridLevel(
                    bot_id=uuid.UUID(bot_id),
                    level_index=index,
                    price=D(price),
                    type=OrderSide.SELL.value,
                    status=status.value,
                )
            )
        await session.commit()


async def test_a_rebuilt_grid_replaces_every_level_row(
    app: FastAPI, client: httpx.AsyncClient, user: User, create_bot: CreateBot
) -> None:
    bot_id = (await create_bot(autoStart=False, trailingUp=True))["botId"]
    await _trail_two_steps(app, bot_id)
    response = await _put(client, user, bot_id, {"lowerPrice": 60000000, "upperPrice": 72000000})
    assert response.status_code == 200, response.text
    count = exact_json(response)["data"]["gridCount"]
    async with app.state.session_factory() as session:
        rows = list(
            (await session.execute(select(GridLevel).where(GridLevel.bot_id == uuid.UUID(bot_id)))).scalars()
        )
    # The retired rows and those trailing added (indices 17, 18) are gone with the old grid.
    assert sorted(row.level_index for row in rows) == list(range(count + 1))
    assert all(row.active for row in rows)
    shown = (await _get(client, user, f"/api/bots/{bot_id}/grid-levels"))["gridLevels"]
    assert [level["price"] for level in shown][::count] == [60000000, 72000000]


# --- the OpenAPI document -----------------------------------------------------------------------------------


async def test_the_document_shows_every_option_with_an_example_and_the_real_errors(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    for model in ("CreateBotRequest", "UpdateBotRequest"):
        properties = schemas[model]["properties"]
        for name in OPTIONS:
            assert properties[name]["examples"] and properties[name]["description"], (model, name)
    price = schemas["UpdateBotRequest"]["properties"]["stopLossPrice"]
    assert {"type": "null"} in price["anyOf"] and "null" in schemas["UpdateBotRequest"]["description"]
    for model in ("BotRead", "BotDetail"):
        assert set(OPTIONS) | {"triggered", "stopReason"} <= set(schemas[model]["properties"])
    assert "heldBase" in schemas["BotDetail"]["properties"]
    put = document["paths"]["/api/bots/{bot_id}"]["put"]["responses"]
    assert {"INVALID_PRICE_RANGE", "VALIDATION_ERROR"} <= set(put["400"]["x-error-codes"])
    assert put["409"]["x-error-codes"] == ["BOT_RUNNING"]
    post = document["paths"]["/api/bots"]["post"]["responses"]
    assert {"INVALID_PRICE_RANGE", "VALIDATION_ERROR"} <= set(post["400"]["x-error-codes"])
