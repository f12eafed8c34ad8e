"""Per-user isolation: another user's bot answers exactly like a bot that does not exist."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bots.testing import FakeEngine, User, error_code
from common.testing.wait import eventually

CreateBot = Callable[..., Awaitable[dict[str, Any]]]

ROUTES = [
    ("GET", "", None),
    ("PUT", "", {"stopAtMax": True}),
    ("PUT", "", {"lowerPrice": 40000000}),
    ("POST", "/start", None),
    ("POST", "/stop", None),
    ("GET", "/grid-levels", None),
    ("GET", "/trades", None),
    ("GET", "/performance", None),
    ("DELETE", "", None),
]


async def _answers(client: httpx.AsyncClient, who: User, bot_id: str) -> list[tuple[int, dict[str, Any]]]:
    answers = []
    for method, path, body in ROUTES:
        response = await client.request(method, f"/api/bots/{bot_id}{path}", json=body, headers=who.auth)
        answers.append((response.status_code, response.json()))
    return answers


async def test_another_users_bot_is_indistinguishable_from_none(
    client: httpx.AsyncClient,
    user: User,
    new_user: Callable[[], User],
    create_bot: CreateBot,
    engine: FakeEngine,
) -> None:
    bot_id = (await create_bot())["botId"]
    intruder = new_user()
    theirs = await _answers(client, intruder, bot_id)
    nobodys = await _answers(client, intruder, str(uuid.uuid4()))
    assert theirs == nobodys
    for status, body in theirs:
        assert status == 404 and body["error"]["code"] == "BOT_NOT_FOUND"
    # Not even a malformed id tells anything apart.
    response = await client.get("/api/bots/not-a-uuid", headers=intruder.auth)
    assert response.status_code == 404 and error_code(response) == "BOT_NOT_FOUND"
    listed = (await client.get("/api/bots", headers=intruder.auth)).json()["data"]
    assert listed["bots"] == []
    assert listed["summary"] == {
        "totalBots": 0,
        "activeBots": 0,
        "totalProfit": 0,
        "totalInvestment": 0,
        "byCurrency": {},
    }
    # Nothing the intruder did reached the bot or the engine.
    mine = (await client.get(f"/api/bots/{bot_id}", headers=user.auth)).json()["data"]
    assert mine["status"] == "running" and mine["stopAtMax"] is False and mine["lowerPrice"] == 50000000
    # The owner's own change is the marker: commands leave in commit order, so once it arrived, anything
    # the intruder's requests had sent would have arrived before it.
    assert (
        await client.put(f"/api/bots/{bot_id}", json={"stopAtMax": True}, headers=user.auth)
    ).status_code == 200
    await eventually(lambda: bool(engine.commands.of("bot.updated", bot_id=bot_id)))
    assert [e.type for e in engine.commands.received if e.payload.get("bot_id") == bot_id] == [
        "bot.start",
        "bot.updated",
    ]
